//! Reported OpAMP status as stored JSON, and host facts for enrollment taken from an
//! `AgentDescription` (OpenTelemetry resource attribute names).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rmm_opamp::prost::Message;
use rmm_opamp::proto::{
    any_value, AgentDescription, AnyValue, ComponentHealth, EffectiveConfig, KeyValue,
    PackageStatuses, RemoteConfigStatus,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::store::enrollment::HostFacts;

/// An `AnyValue` as JSON: scalars as themselves, arrays and key-value lists as arrays and
/// objects, bytes as base64.
pub fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_value).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => attributes(&kv.values),
        Some(any_value::Value::BytesValue(b)) => json!(STANDARD.encode(b)),
    }
}

/// Key-value pairs as a JSON object (a repeated key keeps its last value).
pub fn attributes(kvs: &[KeyValue]) -> Value {
    let mut m = Map::new();
    for kv in kvs {
        m.insert(
            kv.key.clone(),
            kv.value.as_ref().map(any_value).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// `{"identifying_attributes": {...}, "non_identifying_attributes": {...}}`.
pub fn description(d: &AgentDescription) -> Value {
    json!({
        "identifying_attributes": attributes(&d.identifying_attributes),
        "non_identifying_attributes": attributes(&d.non_identifying_attributes),
    })
}

pub fn health(h: &ComponentHealth) -> Value {
    let mut v = json!({
        "healthy": h.healthy,
        "start_time_unix_nano": h.start_time_unix_nano,
        "last_error": h.last_error,
        "status": h.status,
        "status_time_unix_nano": h.status_time_unix_nano,
    });
    if !h.component_health_map.is_empty() {
        v["components"] = Value::Object(
            h.component_health_map
                .iter()
                .map(|(k, c)| (k.clone(), health(c)))
                .collect(),
        );
    }
    if !h.attributes.is_empty() {
        v["attributes"] = attributes(&h.attributes);
    }
    v
}

/// `{"files": {name: {"content_type", "body"}}}`; a body that is not UTF-8 is base64 with
/// `"encoding": "base64"`.
pub fn effective_config(c: &EffectiveConfig) -> Value {
    let mut files = Map::new();
    if let Some(map) = &c.config_map {
        for (name, f) in &map.config_map {
            let file = match std::str::from_utf8(&f.body) {
                Ok(text) => json!({"content_type": f.content_type, "body": text}),
                Err(_) => {
                    json!({"content_type": f.content_type, "body": STANDARD.encode(&f.body), "encoding": "base64"})
                }
            };
            files.insert(name.clone(), file);
        }
    }
    json!({ "files": files })
}

/// Hex SHA-256 of the encoded message: changes exactly when the reported config changes.
pub fn effective_config_hash(c: &EffectiveConfig) -> String {
    hex::encode(Sha256::digest(c.encode_to_vec()))
}

pub fn remote_config_status(s: &RemoteConfigStatus) -> Value {
    json!({
        "last_remote_config_hash": hex::encode(&s.last_remote_config_hash),
        "status": s.state().as_str(),
        "error_message": s.error_message,
    })
}

pub fn package_statuses(p: &PackageStatuses) -> Value {
    let packages: Map<String, Value> = p
        .packages
        .iter()
        .map(|(name, s)| {
            let mut v = json!({
                "agent_has_version": s.agent_has_version,
                "agent_has_hash": hex::encode(&s.agent_has_hash),
                "server_offered_version": s.server_offered_version,
                "server_offered_hash": hex::encode(&s.server_offered_hash),
                "status": s.state().as_str(),
                "error_message": s.error_message,
            });
            if let Some(d) = &s.download_details {
                v["download_percent"] = json!(d.download_percent);
                v["download_bytes_per_second"] = json!(d.download_bytes_per_second);
            }
            (name.clone(), v)
        })
        .collect();
    json!({
        "packages": packages,
        "server_provided_all_packages_hash": hex::encode(&p.server_provided_all_packages_hash),
        "error_message": p.error_message,
    })
}

/// A description attribute as text (strings as they are, numbers and booleans printed),
/// trimmed and cut to `max` characters; `None` when absent or empty.
fn text_attr(d: &AgentDescription, key: &str, max: usize) -> Option<String> {
    let v = d.attribute(key)?.to_display_string()?;
    let v: String = v
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Host facts for enrolling an OpAMP client: `host.id`, `host.name`, `os.type`, `host.arch`
/// and `service.version`, with fallbacks for clients that describe a service rather than a
/// host (`service.instance.id` or the instance uid as host id, `service.name` as name).
pub fn host_facts(d: &AgentDescription, instance_uid: &str) -> HostFacts {
    HostFacts {
        host_id: text_attr(d, "host.id", 256)
            .or_else(|| text_attr(d, "service.instance.id", 256))
            .unwrap_or_else(|| instance_uid.to_owned()),
        hostname: text_attr(d, "host.name", 255)
            .or_else(|| text_attr(d, "service.name", 255))
            .unwrap_or_else(|| instance_uid.to_owned()),
        os: text_attr(d, "os.type", 64).unwrap_or_else(|| "unknown".to_owned()),
        arch: text_attr(d, "host.arch", 64).unwrap_or_else(|| "unknown".to_owned()),
        agent_version: text_attr(d, "service.version", 64).unwrap_or_else(|| "unknown".to_owned()),
        metrics_address: None,
        labels: Default::default(),
    }
}

/// Facts worth copying onto the agent row when a description arrives later: `None` for each
/// one the description does not carry.
pub fn reported_facts(
    d: &AgentDescription,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        text_attr(d, "service.version", 64),
        text_attr(d, "host.name", 255),
        text_attr(d, "os.type", 64),
        text_attr(d, "host.arch", 64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmm_opamp::proto::{AgentConfigMap, KeyValueList};

    #[test]
    fn description_and_facts() {
        let d = AgentDescription::default()
            .with_identifying("service.name", "demo")
            .with_identifying("service.version", "1.2.3")
            .with_non_identifying("host.name", "web-1")
            .with_non_identifying("host.id", "abc")
            .with_non_identifying("os.type", "linux")
            .with_non_identifying("cores", 8i64);
        let v = description(&d);
        assert_eq!(v["identifying_attributes"]["service.name"], "demo");
        assert_eq!(v["non_identifying_attributes"]["cores"], 8);
        let f = host_facts(&d, "uid");
        assert_eq!(
            (f.host_id.as_str(), f.hostname.as_str(), f.os.as_str()),
            ("abc", "web-1", "linux")
        );
        assert_eq!(
            (f.arch.as_str(), f.agent_version.as_str()),
            ("unknown", "1.2.3")
        );
        let bare = host_facts(
            &AgentDescription::default().with_identifying("service.name", "svc"),
            "u-1",
        );
        assert_eq!(
            (bare.host_id.as_str(), bare.hostname.as_str()),
            ("u-1", "svc")
        );
    }

    #[test]
    fn nested_values_and_binary_config() {
        let kv = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue::new("a", true)],
            })),
        };
        assert_eq!(any_value(&kv), json!({"a": true}));
        let c = EffectiveConfig::new(AgentConfigMap::single(
            "",
            vec![0xff, 0x00],
            "application/octet-stream",
        ));
        let v = effective_config(&c);
        assert_eq!(v["files"][""]["encoding"], "base64");
        assert_eq!(effective_config_hash(&c).len(), 64);
    }
}
