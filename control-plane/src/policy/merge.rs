//! The effective configuration of an agent: the merge of the policies assigned to it, with
//! the provenance of every field. Pure code, no I/O.
//!
//! Order, least to most specific: `global < client < site < agent`; within one scope the
//! assignment with the HIGHER priority is applied later and so wins. (Two assignments at one
//! scope target with one priority cannot exist: the store refuses the second.) The result
//! does not depend on the order the policies were created or are given in.
//!
//! Rules: objects merge field by field; scalars and arrays replace what was there; an
//! explicit `null` removes the inherited value (the agent then uses its own local setting or
//! default). Objects left empty are dropped, so an empty policy changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Where a policy is assigned, least specific first (the derived order is the merge order).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AssignScope {
    Global,
    Client,
    Site,
    Agent,
}

impl AssignScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignScope::Global => "global",
            AssignScope::Client => "client",
            AssignScope::Site => "site",
            AssignScope::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "global" => Some(AssignScope::Global),
            "client" => Some(AssignScope::Client),
            "site" => Some(AssignScope::Site),
            "agent" => Some(AssignScope::Agent),
            _ => None,
        }
    }
}

/// The policy and assignment a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Source {
    pub policy_id: String,
    pub policy_name: String,
    pub scope: AssignScope,
    /// Client, site or agent id; `null` for global.
    pub target_id: Option<String>,
    pub priority: i64,
}

impl Source {
    fn rank(&self) -> (AssignScope, i64, &str) {
        (self.scope, self.priority, &self.policy_id)
    }
}

/// One policy document as it applies to an agent.
#[derive(Clone, Debug)]
pub struct Layer {
    pub source: Source,
    pub document: Value,
}

/// Why one field has its value.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Provenance {
    /// The value set (`null`: the policy cleared an inherited value).
    #[schema(value_type = Object)]
    pub value: Value,
    #[serde(flatten)]
    pub source: Source,
    /// What this policy replaced, if anything.
    pub overrode: Option<Overridden>,
}

/// A replaced value and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Overridden {
    #[schema(value_type = Object)]
    pub value: Value,
    /// The policy that had set it (absent for a whole section set by several).
    pub source: Option<Source>,
}

/// An effective configuration and the provenance of each of its fields (dotted paths).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    pub config: Map<String, Value>,
    pub provenance: BTreeMap<String, Provenance>,
}

/// Merge `layers` in specificity order (whatever order they are given in).
pub fn merge(layers: &[Layer]) -> Merged {
    let mut ordered: Vec<&Layer> = layers.iter().collect();
    ordered.sort_by(|a, b| a.source.rank().cmp(&b.source.rank()));
    let mut out = Merged::default();
    for layer in ordered {
        if let Some(doc) = layer.document.as_object() {
            let doc: Map<String, Value> = doc
                .iter()
                .filter(|(k, _)| k.as_str() != "schema_version")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            apply(
                &mut out.config,
                &mut out.provenance,
                "",
                &doc,
                &layer.source,
            );
        }
    }
    prune(&mut out.config);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Forget the provenance of everything at or below `path`.
fn forget(prov: &mut BTreeMap<String, Provenance>, path: &str) -> Option<Provenance> {
    let below = format!("{path}.");
    prov.retain(|k, _| !k.starts_with(&below));
    prov.remove(path)
}

fn apply(
    config: &mut Map<String, Value>,
    prov: &mut BTreeMap<String, Provenance>,
    prefix: &str,
    doc: &Map<String, Value>,
    source: &Source,
) {
    for (key, value) in doc {
        let path = join(prefix, key);
        if let Value::Object(inner) = value {
            let slot = config
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
                forget(prov, &path);
            }
            // A clearing recorded here is superseded by the values set below it.
            if !inner.is_empty() && prov.get(&path).is_some_and(|p| p.value.is_null()) {
                prov.remove(&path);
            }
            if let Value::Object(slot) = slot {
                apply(slot, prov, &path, inner, source);
            }
            continue;
        }
        let previous = if value.is_null() {
            config.remove(key)
        } else {
            config.insert(key.clone(), value.clone())
        };
        let previous_source = forget(prov, &path);
        let overrode = match (previous, previous_source) {
            (Some(v), Some(p)) if !v.is_object() => Some(Overridden {
                value: v,
                source: Some(p.source),
            }),
            (Some(v), _) => Some(Overridden {
                value: v,
                source: None,
            }),
            // Set over an earlier clearing: name the policy that cleared it.
            (None, Some(p)) => Some(Overridden {
                value: Value::Null,
                source: Some(p.source),
            }),
            (None, None) => None,
        };
        if value.is_null() && overrode.is_none() {
            // Clearing nothing: nothing to explain.
            continue;
        }
        prov.insert(
            path,
            Provenance {
                value: value.clone(),
                source: source.clone(),
                overrode,
            },
        );
    }
}

/// Drop objects left empty (recursively).
fn prune(config: &mut Map<String, Value>) {
    config.retain(|_, v| match v {
        Value::Object(inner) => {
            prune(inner);
            !inner.is_empty()
        }
        _ => true,
    });
}

/// Dotted paths of the leaves (non-object values) of `config`.
pub fn leaves(config: &Map<String, Value>) -> Vec<String> {
    fn walk(prefix: &str, m: &Map<String, Value>, out: &mut Vec<String>) {
        for (k, v) in m {
            let path = join(prefix, k);
            match v {
                Value::Object(inner) => walk(&path, inner, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk("", config, &mut out);
    out
}

/// The value at a dotted path.
pub fn lookup<'a>(config: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = config.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(id: &str, scope: AssignScope, priority: i64, doc: Value) -> Layer {
        Layer {
            source: Source {
                policy_id: id.into(),
                policy_name: format!("policy {id}"),
                scope,
                target_id: (scope != AssignScope::Global).then(|| format!("t-{id}")),
                priority,
            },
            document: doc,
        }
    }

    #[test]
    fn specific_wins_objects_merge_null_clears() {
        let m = merge(&[
            layer(
                "site",
                AssignScope::Site,
                0,
                json!({"collect": {"top_processes": 3}, "otlp": {"endpoint": null}}),
            ),
            layer(
                "global",
                AssignScope::Global,
                0,
                json!({"collect": {"top_processes": 10, "interval": "15s"}, "otlp": {"endpoint": "http://a:4318", "enabled": true}, "labels": {"env": "prod"}}),
            ),
            layer(
                "client-hi",
                AssignScope::Client,
                5,
                json!({"labels": {"tier": "gold"}}),
            ),
            layer(
                "client-lo",
                AssignScope::Client,
                1,
                json!({"labels": {"tier": "silver", "env": "staging"}}),
            ),
        ]);
        assert_eq!(
            Value::Object(m.config.clone()),
            json!({"collect": {"top_processes": 3, "interval": "15s"}, "otlp": {"enabled": true}, "labels": {"env": "staging", "tier": "gold"}})
        );
        let p = &m.provenance["collect.top_processes"];
        assert_eq!(p.source.policy_id, "site");
        let over = p.overrode.as_ref().unwrap();
        assert_eq!(over.value, json!(10));
        assert_eq!(over.source.as_ref().unwrap().policy_id, "global");
        assert_eq!(m.provenance["otlp.endpoint"].value, Value::Null);
        assert_eq!(m.provenance["labels.tier"].source.policy_id, "client-hi");
        assert_eq!(m.provenance["collect.interval"].overrode, None);
        for leaf in leaves(&m.config) {
            assert!(m.provenance.contains_key(&leaf), "{leaf}");
        }
    }

    #[test]
    fn empty_documents_change_nothing() {
        let base = layer(
            "g",
            AssignScope::Global,
            0,
            json!({"collect": {"cpu": false}}),
        );
        let a = merge(std::slice::from_ref(&base));
        let b = merge(&[
            base.clone(),
            layer(
                "e",
                AssignScope::Agent,
                0,
                json!({"collect": {}, "labels": {}}),
            ),
        ]);
        assert_eq!(a, b);
    }
}
