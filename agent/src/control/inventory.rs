//! User inventory: local accounts (`/etc/passwd`) and logged-in sessions (`utmp`), reported to
//! the control plane every `inventory.interval_hours` as an OpAMP custom message.
//!
//! Wire format: capability [`CAPABILITY`], type [`MESSAGE_TYPE`], `data` = JSON:
//!
//! ```json
//! {"collected_at_unix": 1764216000,
//!  "users": [{"name": "alice", "uid": 1000, "gid": 1000, "home": "/home/alice",
//!             "shell": "/bin/bash", "login_shell": true}],
//!  "sessions": [{"user": "alice", "line": "pts/0", "host": "10.0.0.5",
//!                "login_time_unix": 1764215000, "pid": 4242}]}
//! ```
//!
//! `login_shell` is false for the shells that refuse logins (`nologin`, `false`) and for an
//! empty shell. Sessions are the `USER_PROCESS` records of `/var/run/utmp` (glibc's 384-byte
//! x86_64/aarch64 layout); an unreadable utmp gives no sessions rather than an error. No
//! password hashes are read (`/etc/shadow` is never opened).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rmm_opamp::proto::{CustomCapabilities, CustomMessage};
use serde::Serialize;

/// The custom capability the agent announces and the message belongs to.
pub const CAPABILITY: &str = "io.rmm.inventory";
/// The message type of a users report.
pub const MESSAGE_TYPE: &str = "users";
/// Where the login records are.
pub const UTMP_PATH: &str = "/var/run/utmp";

/// One local account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub login_shell: bool,
}

/// One logged-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub user: String,
    pub line: String,
    pub host: String,
    pub login_time_unix: u64,
    pub pid: i32,
}

/// A users report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub collected_at_unix: u64,
    pub users: Vec<User>,
    pub sessions: Vec<Session>,
}

/// The accounts of a `passwd` file; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            let shell = f[6].trim().to_owned();
            Some(User {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
                login_shell: is_login_shell(&shell),
                shell,
            })
        })
        .collect()
}

fn is_login_shell(shell: &str) -> bool {
    let name = shell.rsplit('/').next().unwrap_or_default();
    !shell.is_empty() && !matches!(name, "nologin" | "false")
}

/// glibc's `struct utmp` on 64-bit Linux (x86_64, aarch64): 384 bytes.
const UTMP_SIZE: usize = 384;
const USER_PROCESS: i16 = 7;

/// The `USER_PROCESS` records of a `utmp` file's bytes.
pub fn parse_utmp(bytes: &[u8]) -> Vec<Session> {
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let i32_at = |r: &[u8], o: usize| i32::from_ne_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
    bytes
        .chunks_exact(UTMP_SIZE)
        .filter(|r| i16::from_ne_bytes([r[0], r[1]]) == USER_PROCESS)
        .map(|r| Session {
            pid: i32_at(r, 4),
            line: text(&r[8..40]),
            user: text(&r[44..76]),
            host: text(&r[76..332]),
            login_time_unix: u64::try_from(i32_at(r, 340)).unwrap_or(0),
        })
        .filter(|s| !s.user.is_empty())
        .collect()
}

/// Reads the accounts under `etc` and the sessions in `utmp`.
///
/// # Errors
/// `passwd` cannot be read.
pub fn collect(etc: &Path, utmp: &Path) -> std::io::Result<Report> {
    let users = parse_passwd(&std::fs::read_to_string(etc.join("passwd"))?);
    let sessions = match std::fs::read(utmp) {
        Ok(bytes) => parse_utmp(&bytes),
        Err(error) => {
            tracing::debug!(%error, utmp = %utmp.display(), "No login records; reporting no sessions.");
            Vec::new()
        }
    };
    let collected_at_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(Report {
        collected_at_unix,
        users,
        sessions,
    })
}

/// The custom capabilities to announce.
pub fn capabilities() -> CustomCapabilities {
    CustomCapabilities {
        capabilities: vec![CAPABILITY.to_owned()],
    }
}

/// The report as a custom message.
pub fn message(report: &Report) -> CustomMessage {
    CustomMessage {
        capability: CAPABILITY.to_owned(),
        r#type: MESSAGE_TYPE.to_owned(),
        data: serde_json::to_vec(report).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_accounts_and_login_shells() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                    # comment\n\
                    broken line\n\
                    sync:x:4:65534:sync:/bin:/bin/sync\n\
                    ftp:x:7:7::/srv/ftp:/bin/false\n\
                    svc:x:999:999::/var/lib/svc:\n";
        let users = parse_passwd(text);
        let names: Vec<(&str, bool)> = users
            .iter()
            .map(|u| (u.name.as_str(), u.login_shell))
            .collect();
        assert_eq!(
            names,
            [
                ("root", true),
                ("daemon", false),
                ("sync", true),
                ("ftp", false),
                ("svc", false)
            ]
        );
        assert_eq!(users[0].home, "/root");
        assert_eq!(users[2].gid, 65534);
    }

    fn record(kind: i16, pid: i32, line: &str, user: &str, host: &str, t: i32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_SIZE];
        r[0..2].copy_from_slice(&kind.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r[8..8 + line.len()].copy_from_slice(line.as_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r[76..76 + host.len()].copy_from_slice(host.as_bytes());
        r[340..344].copy_from_slice(&t.to_ne_bytes());
        r
    }

    #[test]
    fn utmp_user_processes_only() {
        let mut bytes = record(2, 0, "~", "reboot", "6.1.0", 100); // BOOT_TIME
        bytes.extend(record(
            USER_PROCESS,
            4242,
            "pts/0",
            "alice",
            "10.0.0.5",
            1_700_000_000,
        ));
        bytes.extend(record(8, 17, "pts/1", "", "", 5)); // DEAD_PROCESS
        bytes.extend(record(USER_PROCESS, 7, "tty1", "root", "", 1_700_000_100));
        bytes.extend([1, 2, 3]); // a torn trailing record is ignored
        let s = parse_utmp(&bytes);
        assert_eq!(
            s,
            [
                Session {
                    user: "alice".into(),
                    line: "pts/0".into(),
                    host: "10.0.0.5".into(),
                    login_time_unix: 1_700_000_000,
                    pid: 4242
                },
                Session {
                    user: "root".into(),
                    line: "tty1".into(),
                    host: String::new(),
                    login_time_unix: 1_700_000_100,
                    pid: 7
                }
            ]
        );
    }

    #[test]
    fn report_as_custom_message() {
        let r = Report {
            collected_at_unix: 1,
            users: parse_passwd("root:x:0:0:root:/root:/bin/bash\n"),
            sessions: vec![],
        };
        let m = message(&r);
        assert_eq!(
            (m.capability.as_str(), m.r#type.as_str()),
            (CAPABILITY, MESSAGE_TYPE)
        );
        let v: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
        assert_eq!(v["users"][0]["name"], "root");
        assert_eq!(v["users"][0]["login_shell"], true);
        assert!(v["sessions"].as_array().unwrap().is_empty());
    }
}
