//! Shared by the self-update tests: stamped copies of the compiled agent (builds of several
//! versions from one compile), SHA-256, and what a running agent says about itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A copy of the compiled agent reporting `version`, at `dir/name`.
pub fn stamped(dir: &Path, name: &str, version: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new(super::agent_bin())
        .args(["stamp-version", "--in", super::agent_bin(), "--out"])
        .arg(&out)
        .args(["--version", version])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "stamp-version failed");
    let shown = Command::new(&out).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        format!("rmm-agent {version}"),
        "the stamped copy reports its version"
    );
    out
}

/// `rmm_agent_build_info{version}` on the agent's `/metrics`, if it answers.
pub fn build_info_version(addr: SocketAddr) -> Option<String> {
    let (status, body) = super::http_get(addr, "/metrics").ok()?;
    (status == 200).then_some(())?;
    super::parse_metrics(&body)
        .into_iter()
        .find(|s| s.name == "rmm_agent_build_info")
        .map(|s| s.label("version").to_owned())
}

/// The target of `/proc/<pid>/exe`.
pub fn proc_exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}
