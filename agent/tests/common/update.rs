//! Shared by the self-update, install and live tests: stamped copies of the compiled agent
//! (builds of several versions from one compile), release keys and signatures in the control
//! plane's formats, SHA-256, and what a running agent says about itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};

/// A release key pair, from a fixed seed.
pub struct ReleaseKey(SigningKey);

impl ReleaseKey {
    pub fn new(seed: u8) -> Self {
        Self(SigningKey::from_bytes(&[seed; 32]))
    }

    /// `rmm-ed25519-public:<base64>`, as the control plane's `[releases] signing_keys` and the
    /// agent's pinned keys hold it.
    pub fn public_text(&self) -> String {
        format!(
            "rmm-ed25519-public:{}",
            B64.encode(self.0.verifying_key().as_bytes())
        )
    }

    /// Raw signature over `"rmm-agent-release-v1\0" || sha256`, as `release sign` makes it.
    pub fn sign(&self, sha256: &[u8; 32]) -> Vec<u8> {
        let mut m = b"rmm-agent-release-v1\0".to_vec();
        m.extend_from_slice(sha256);
        self.0.sign(&m).to_bytes().to_vec()
    }

    /// `rmm-ed25519-sig:<base64>` of `build`, as the release upload takes it.
    pub fn signature_text(&self, build: &[u8]) -> String {
        format!("rmm-ed25519-sig:{}", B64.encode(self.sign(&sha256(build))))
    }
}

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
