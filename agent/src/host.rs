//! Where the host's kernel interfaces live, the few constants read from `sysconf`, and the host
//! facts that become the OpenTelemetry resource (`target_info` on `/metrics`).
//!
//! Every collector reads through a [`HostPaths`], so unit tests point it at a fixture tree
//! (`agent/tests/fixtures/…` or a temp dir) instead of the real `/proc`, `/sys` and `/etc`.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Roots of the kernel and system files the collectors read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// procfs root, `/proc` on a normal host.
    pub proc: PathBuf,
    /// sysfs root, `/sys` on a normal host.
    pub sys: PathBuf,
    /// Configuration root, `/etc` on a normal host (`passwd`, `machine-id`, `os-release`).
    pub etc: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self::from_root(Path::new("/"))
    }
}

impl HostPaths {
    /// The three roots under one directory: `<root>/proc`, `<root>/sys`, `<root>/etc`.
    pub fn from_root(root: &Path) -> Self {
        Self {
            proc: root.join("proc"),
            sys: root.join("sys"),
            etc: root.join("etc"),
        }
    }
}

/// Kernel constants the collectors convert with, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemConstants {
    /// `sysconf(_SC_CLK_TCK)`: the unit of CPU times in `/proc/stat` and `/proc/PID/stat`.
    pub clock_ticks_per_second: u64,
    /// `sysconf(_SC_PAGESIZE)`: the unit of `rss` in `/proc/PID/stat`.
    pub page_size: u64,
    /// Logical CPUs online at start (`sysconf(_SC_NPROCESSORS_ONLN)`); process CPU utilization
    /// is divided by it. Never 0.
    pub logical_cpus: u32,
}

impl SystemConstants {
    /// Reads the constants from the running kernel, with the usual Linux values as fallback.
    pub fn detect() -> Self {
        Self {
            clock_ticks_per_second: sysconf_or(libc::_SC_CLK_TCK, 100),
            page_size: sysconf_or(libc::_SC_PAGESIZE, 4096),
            logical_cpus: sysconf_or(libc::_SC_NPROCESSORS_ONLN, 1).clamp(1, u32::MAX as u64)
                as u32,
        }
    }
}

fn sysconf_or(name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf only reads the name and has no memory-safety preconditions.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 {
        value as u64
    } else {
        fallback
    }
}

/// Facts about the host itself: the OpenTelemetry resource attributes of every export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// `host.name`: the kernel hostname.
    pub host_name: String,
    /// `host.id`: `/etc/machine-id`, else `/var/lib/dbus/machine-id` (semconv's Linux source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// `host.arch`: semconv value (`amd64`, `arm64`, …).
    pub host_arch: String,
    /// `os.type`: `linux`, `darwin`, `windows`, …
    pub os_type: String,
    /// `os.version`: the kernel release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// `os.description`: `PRETTY_NAME` from `os-release`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_description: Option<String>,
    /// `service.version`: this agent's version.
    pub service_version: String,
}

impl HostFacts {
    /// Reads the host facts. Missing sources leave the optional facts empty; nothing here fails.
    pub fn detect(paths: &HostPaths) -> Self {
        let read_trimmed = |path: PathBuf| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let host_name = read_trimmed(paths.proc.join("sys/kernel/hostname"))
            .or_else(hostname_from_libc)
            .unwrap_or_else(|| "localhost".to_owned());
        let host_id = read_trimmed(paths.etc.join("machine-id")).or_else(|| {
            let root = paths.etc.parent().unwrap_or(Path::new("/"));
            read_trimmed(root.join("var/lib/dbus/machine-id"))
        });
        let os_description = std::fs::read_to_string(paths.etc.join("os-release"))
            .ok()
            .and_then(|text| os_release_pretty_name(&text));
        Self {
            host_name,
            host_id,
            host_arch: semconv_arch(std::env::consts::ARCH).to_owned(),
            os_type: std::env::consts::OS.to_owned(),
            os_version: read_trimmed(paths.proc.join("sys/kernel/osrelease")),
            os_description,
            service_version: crate::version().to_owned(),
        }
    }
}

fn hostname_from_libc() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates on success
    // (and we bound the search by the buffer length either way).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// `PRETTY_NAME` of an `os-release` file, unquoted.
fn os_release_pretty_name(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|v| !v.is_empty())
}

/// Rust's architecture names mapped to semconv `host.arch` values.
fn semconv_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_sane_on_this_host() {
        let c = SystemConstants::detect();
        assert!(c.clock_ticks_per_second > 0);
        assert!(c.page_size >= 4096);
        assert!(c.logical_cpus >= 1);
    }

    #[test]
    fn facts_from_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(paths.proc.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(&paths.etc).unwrap();
        std::fs::write(paths.proc.join("sys/kernel/hostname"), "web-01\n").unwrap();
        std::fs::write(paths.proc.join("sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        std::fs::write(paths.etc.join("machine-id"), "abc123\n").unwrap();
        std::fs::write(
            paths.etc.join("os-release"),
            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .unwrap();
        let facts = HostFacts::detect(&paths);
        assert_eq!(facts.host_name, "web-01");
        assert_eq!(facts.host_id.as_deref(), Some("abc123"));
        assert_eq!(facts.os_version.as_deref(), Some("6.1.0-test"));
        assert_eq!(
            facts.os_description.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(facts.os_type, std::env::consts::OS);
    }

    #[test]
    fn facts_without_sources_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let facts = HostFacts::detect(&HostPaths::from_root(dir.path()));
        assert!(!facts.host_name.is_empty());
        assert_eq!(facts.host_id, None);
        assert_eq!(facts.os_description, None);
    }
}
