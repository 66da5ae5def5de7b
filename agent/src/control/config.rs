//! `[control]`: where the enrollment state lives and how the OpAMP session behaves.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default state directory (identity and secret).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rmm-agent";

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Keep an OpAMP session with the control plane when the state directory holds an
    /// identity (after `rmm-agent enroll`). Without an identity the agent is a plain exporter.
    pub enabled: bool,
    /// Directory holding `identity.json` and `secret` (`--state-dir` overrides it).
    pub state_dir: PathBuf,
    /// Time between heartbeats; a server-offered interval replaces it for the session.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// First reconnect delay ceiling (the backoff's base).
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Largest reconnect delay (the backoff's cap).
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            heartbeat_interval: Duration::from_secs(30),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

impl ControlConfig {
    /// Range problems; `name` maps a key path to how the user set it (file key or variable).
    pub fn problems(&self, name: impl Fn(&str) -> String) -> Vec<String> {
        let mut problems = Vec::new();
        let range = |key: &str, v: Duration, min: Duration, max: Duration| {
            (v < min || v > max).then(|| {
                format!(
                    "{}: must be between {} and {}, got {}",
                    name(key),
                    humantime::format_duration(min),
                    humantime::format_duration(max),
                    humantime::format_duration(v)
                )
            })
        };
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        problems.extend(range(
            "control.heartbeat_interval",
            self.heartbeat_interval,
            ms(100),
            s(86_400),
        ));
        problems.extend(range(
            "control.reconnect_min",
            self.reconnect_min,
            ms(10),
            s(3600),
        ));
        problems.extend(range(
            "control.reconnect_max",
            self.reconnect_max,
            ms(10),
            s(86_400),
        ));
        if self.reconnect_max < self.reconnect_min {
            problems.push(format!(
                "{}: must not be below {}",
                name("control.reconnect_max"),
                name("control.reconnect_min")
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            problems.push(format!("{}: must not be empty", name("control.state_dir")));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(key: &str) -> String {
        format!("key `{key}`")
    }

    #[test]
    fn defaults_are_valid() {
        assert!(ControlConfig::default().problems(name).is_empty());
    }

    #[test]
    fn refuses_inverted_backoff_and_tiny_heartbeat() {
        let c = ControlConfig {
            heartbeat_interval: Duration::from_millis(1),
            reconnect_min: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(5),
            ..ControlConfig::default()
        };
        let p = c.problems(name);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("control.heartbeat_interval"), "{p:?}");
        assert!(p[1].contains("must not be below"), "{p:?}");
    }
}
