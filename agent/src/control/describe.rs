//! What the agent tells the control plane about itself: description, capabilities, health and
//! effective configuration.

use std::time::{SystemTime, UNIX_EPOCH};

use rmm_opamp::capabilities::agent;
use rmm_opamp::proto::{AgentConfigMap, AgentDescription, ComponentHealth, EffectiveConfig};
use rmm_opamp::InstanceUid;

use crate::config::AgentConfig;
use crate::host::HostFacts;

/// `service.name` of this agent (identifying attribute).
pub const SERVICE_NAME: &str = "rmm-agent";
/// Key of the effective config file in `EffectiveConfig.config_map`.
pub const CONFIG_FILE_KEY: &str = "agent.toml";
/// Content type of that file.
pub const CONFIG_CONTENT_TYPE: &str = "application/toml";

/// Capabilities of every session. AcceptsPackages / ReportsPackageStatuses join when updates
/// are enabled ([`capabilities`]).
pub const CAPABILITIES: u64 = agent::REPORTS_STATUS
    | agent::REPORTS_HEALTH
    | agent::REPORTS_EFFECTIVE_CONFIG
    | agent::REPORTS_HEARTBEAT
    | agent::ACCEPTS_REMOTE_CONFIG
    | agent::REPORTS_REMOTE_CONFIG;

/// What self-updates add.
pub const UPDATE_CAPABILITIES: u64 = agent::ACCEPTS_PACKAGES | agent::REPORTS_PACKAGE_STATUSES;

/// The capabilities of a session, with or without self-updates (`updates.enabled`).
pub fn capabilities(updates: bool) -> u64 {
    if updates {
        CAPABILITIES | UPDATE_CAPABILITIES
    } else {
        CAPABILITIES
    }
}

/// The agent description: identifying `service.*`, non-identifying host and OS facts.
pub fn agent_description(uid: InstanceUid, facts: &HostFacts) -> AgentDescription {
    let mut d = AgentDescription::default()
        .with_identifying("service.name", SERVICE_NAME)
        .with_identifying("service.instance.id", uid.to_string())
        .with_identifying("service.version", facts.service_version.clone())
        .with_non_identifying("host.name", facts.host_name.clone())
        .with_non_identifying("host.arch", facts.host_arch.clone())
        .with_non_identifying("os.type", facts.os_type.clone());
    if let Some(id) = &facts.host_id {
        d = d.with_non_identifying("host.id", id.clone());
    }
    if let Some(v) = &facts.os_version {
        d = d.with_non_identifying("os.version", v.clone());
    }
    if let Some(desc) = &facts.os_description {
        d = d.with_non_identifying("os.description", desc.clone());
    }
    d
}

/// Healthy since `started`, status `running`.
pub fn health(started: SystemTime) -> ComponentHealth {
    let nanos = unix_nanos(started);
    ComponentHealth {
        status: "running".into(),
        status_time_unix_nano: nanos,
        ..ComponentHealth::healthy(nanos)
    }
}

/// Keys whose values are credentials (e.g. `otlp.headers = { authorization = "Bearer ..." }`):
/// reported with their names but not their values.
const REDACTED_TABLES: &[&str] = &["headers"];
/// What replaces a redacted value.
pub const REDACTED: &str = "<redacted>";

/// The configuration in force, as TOML under [`CONFIG_FILE_KEY`], credentials redacted.
pub fn effective_config(config: &AgentConfig) -> EffectiveConfig {
    let text = toml::Table::try_from(config)
        .map(|mut t| {
            redact(&mut t);
            t
        })
        .and_then(|t| toml::to_string(&t))
        .unwrap_or_else(|e| {
            // Every field serialises; if that ever breaks, say so instead of reporting nothing.
            format!("# rendering the configuration failed: {e}\n")
        });
    EffectiveConfig::new(AgentConfigMap::single(
        CONFIG_FILE_KEY,
        text,
        CONFIG_CONTENT_TYPE,
    ))
}

fn redact(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        if let toml::Value::Table(inner) = value {
            if REDACTED_TABLES.contains(&key.as_str()) {
                for (_, v) in inner.iter_mut() {
                    *v = toml::Value::String(REDACTED.into());
                }
            } else {
                redact(inner);
            }
        }
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            host_name: "web-01".into(),
            host_id: Some("abc".into()),
            host_arch: "amd64".into(),
            os_type: "linux".into(),
            os_version: Some("6.1.0".into()),
            os_description: Some("Debian GNU/Linux 12 (bookworm)".into()),
            service_version: "1.2.3".into(),
        }
    }

    #[test]
    fn description_carries_identity_and_host_facts() {
        let uid: InstanceUid = "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01".parse().unwrap();
        let d = agent_description(uid, &facts());
        let ident: Vec<&str> = d
            .identifying_attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            ident,
            ["service.name", "service.instance.id", "service.version"]
        );
        assert_eq!(d.string_attribute("service.name"), Some("rmm-agent"));
        assert_eq!(
            d.string_attribute("service.instance.id"),
            Some("0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01")
        );
        for (k, v) in [
            ("host.name", "web-01"),
            ("host.id", "abc"),
            ("host.arch", "amd64"),
            ("os.type", "linux"),
            ("os.description", "Debian GNU/Linux 12 (bookworm)"),
        ] {
            assert_eq!(d.string_attribute(k), Some(v), "{k}");
        }
    }

    #[test]
    fn effective_config_is_the_toml_that_loads_back() {
        let config = AgentConfig::default();
        let e = effective_config(&config);
        let file = &e.config_map.as_ref().unwrap().config_map[CONFIG_FILE_KEY];
        assert_eq!(file.content_type, "application/toml");
        let text = std::str::from_utf8(&file.body).unwrap();
        let back = AgentConfig::from_sources(
            Some((std::path::Path::new("agent.toml"), text)),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn credentials_in_headers_are_not_reported() {
        let mut config = AgentConfig::default();
        config
            .otlp
            .headers
            .insert("authorization".into(), "Bearer s3cret".into());
        let e = effective_config(&config);
        let file = &e.config_map.as_ref().unwrap().config_map[CONFIG_FILE_KEY];
        let text = std::str::from_utf8(&file.body).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(
            t["otlp"]["headers"]["authorization"].as_str(),
            Some(REDACTED)
        );
    }

    #[test]
    fn health_is_healthy_with_start_time() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(10);
        let h = health(t);
        assert!(h.healthy);
        assert_eq!(h.start_time_unix_nano, 10_000_000_000);
        assert_eq!(h.status, "running");
    }

    #[test]
    fn capabilities_claim_packages_only_with_updates() {
        assert_eq!(CAPABILITIES, 0x1 | 0x2 | 0x4 | 0x800 | 0x1000 | 0x2000);
        assert_eq!(capabilities(false), CAPABILITIES);
        assert_eq!(capabilities(true), CAPABILITIES | 0x8 | 0x10);
    }
}
