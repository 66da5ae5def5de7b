//! The effective configuration as the agent receives it: a TOML file `agent.toml` in an
//! OpAMP `AgentConfigMap` (content type `application/toml`), hashed with
//! `rmm_opamp::config_hash` (SHA-256 of the encoded map). Keys are written sorted, so the
//! same configuration always gives the same bytes and the same hash.

use rmm_opamp::proto::{AgentConfigMap, AgentRemoteConfig};
use serde_json::{Map, Value};

/// Name of the one file of the config map.
pub const CONFIG_FILE: &str = "agent.toml";
/// Its content type.
pub const CONTENT_TYPE: &str = "application/toml";

/// An effective configuration ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The TOML text.
    pub toml: String,
    /// Hex SHA-256 of the encoded `AgentConfigMap` (= the `config_hash` sent).
    pub hash: String,
}

impl Rendered {
    /// The OpAMP message part carrying this configuration.
    pub fn remote_config(&self) -> AgentRemoteConfig {
        AgentRemoteConfig::new(config_map(&self.toml))
    }
}

fn config_map(toml: &str) -> AgentConfigMap {
    AgentConfigMap::single(CONFIG_FILE, toml.as_bytes().to_vec(), CONTENT_TYPE)
}

/// Render `config` (an effective configuration: no nulls, validated) as canonical TOML.
pub fn render(config: &Map<String, Value>) -> Rendered {
    let table = to_table(config);
    let toml = toml::to_string(&table).unwrap_or_default();
    let hash = hex::encode(rmm_opamp::config_hash(&config_map(&toml)));
    Rendered { toml, hash }
}

fn to_table(m: &Map<String, Value>) -> toml::Table {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut t = toml::Table::new();
    for k in keys {
        if let Some(v) = to_toml(&m[k]) {
            t.insert(k.clone(), v);
        }
    }
    t
}

fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(to_table(o)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_toml_and_hash() {
        let a = json!({"otlp": {"headers": {"b": "2", "a": "1"}, "enabled": true}, "collect": {"top_processes": 5, "interval": "10s"}});
        let b = json!({"collect": {"interval": "10s", "top_processes": 5}, "otlp": {"enabled": true, "headers": {"a": "1", "b": "2"}}});
        let ra = render(a.as_object().unwrap());
        let rb = render(b.as_object().unwrap());
        assert_eq!(ra, rb);
        assert_eq!(ra.hash.len(), 64);
        let back: toml::Table = ra.toml.parse().unwrap();
        assert_eq!(back["collect"]["top_processes"].as_integer(), Some(5));
        assert_eq!(back["otlp"]["headers"]["a"].as_str(), Some("1"));
        assert_eq!(
            hex::encode(ra.remote_config().config_hash),
            ra.hash,
            "the hash shown is the hash sent"
        );
        assert_eq!(render(&Map::new()).toml, "");
    }
}
