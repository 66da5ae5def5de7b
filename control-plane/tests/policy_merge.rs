//! Property tests of the policy merge (pure code) and the schema file in the repository.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rmm_control_plane::policy::merge::{self, AssignScope, Layer, Source};
use rmm_control_plane::policy::schema;
use serde_json::{json, Map, Value};

/// Leaf paths the generated documents use (objects of the schema, maps included).
const PATHS: &[&str] = &[
    "collect.interval",
    "collect.top_processes",
    "collect.cpu",
    "collect.filesystem_exclude_types",
    "otlp.endpoint",
    "otlp.headers.authorization",
    "otlp.headers.x-tenant",
    "labels.env",
    "labels.team",
    "updates.maintenance_window.days",
    "updates.maintenance_window.start",
];

fn value_for(path: &str, n: u8) -> Value {
    match path {
        "collect.interval" => json!(format!("{}s", 1 + n % 50)),
        "collect.top_processes" => json!(1 + n as i64),
        "collect.cpu" => json!(n.is_multiple_of(2)),
        "collect.filesystem_exclude_types" => json!([format!("fs{n}"), "tmpfs"]),
        "otlp.endpoint" => json!(format!("http://collector-{n}:4318")),
        "updates.maintenance_window.days" => json!(["sat", "sun"][..(1 + n as usize % 2)]),
        "updates.maintenance_window.start" => json!(format!("{:02}:00", n % 24)),
        _ => json!(format!("v{n}")),
    }
}

fn set(doc: &mut Map<String, Value>, path: &str, v: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = doc;
    for p in &parts[..parts.len() - 1] {
        let e = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !e.is_object() {
            *e = Value::Object(Map::new());
        }
        cur = e.as_object_mut().unwrap();
    }
    cur.insert(parts[parts.len() - 1].to_owned(), v);
}

/// A document: some leaves set, some cleared with null; sometimes a whole section cleared.
fn document() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (0..PATHS.len(), any::<u8>(), prop::bool::weighted(0.2)),
            0..6,
        ),
        prop::option::weighted(0.1, 0..2usize),
    )
        .prop_map(|(entries, clear_section)| {
            let mut doc = Map::new();
            for (i, n, null) in entries {
                set(
                    &mut doc,
                    PATHS[i],
                    if null {
                        Value::Null
                    } else {
                        value_for(PATHS[i], n)
                    },
                );
            }
            if let Some(s) = clear_section {
                doc.insert(["otlp", "labels"][s].to_owned(), Value::Null);
            }
            Value::Object(doc)
        })
}

fn scope() -> impl Strategy<Value = AssignScope> {
    prop_oneof![
        Just(AssignScope::Global),
        Just(AssignScope::Client),
        Just(AssignScope::Site),
        Just(AssignScope::Agent),
    ]
}

/// Layers with distinct (scope, priority) slots, as the store guarantees.
fn layers() -> impl Strategy<Value = Vec<Layer>> {
    prop::collection::vec((scope(), -3i64..4, document()), 0..7).prop_map(|raw| {
        let mut seen = BTreeSet::new();
        raw.into_iter()
            .enumerate()
            .filter(|(_, (s, p, _))| seen.insert((*s, *p)))
            .map(|(i, (scope, priority, document))| Layer {
                source: Source {
                    policy_id: format!("p{i}"),
                    policy_name: format!("policy {i}"),
                    scope,
                    target_id: (scope != AssignScope::Global).then(|| "t".to_owned()),
                    priority,
                },
                document,
            })
            .collect()
    })
}

/// The value a path gets: from the last layer (in merge order) that sets the path or clears
/// it or one of its ancestors.
fn expected(layers: &[Layer], path: &str) -> Option<Value> {
    let mut ordered: Vec<&Layer> = layers.iter().collect();
    ordered.sort_by_key(|l| (l.source.scope, l.source.priority));
    let mut out = None;
    for l in ordered {
        let parts: Vec<&str> = path.split('.').collect();
        let mut cur = &l.document;
        for (i, p) in parts.iter().enumerate() {
            match cur.get(p) {
                None => break,
                Some(Value::Null) => {
                    out = None;
                    break;
                }
                Some(v) if i == parts.len() - 1 => out = Some(v.clone()),
                Some(v) => cur = v,
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every leaf has the value of the most specific (then highest-priority) policy that
    /// mentions it: a more specific scope always wins; null clears.
    #[test]
    fn most_specific_wins_and_null_clears(layers in layers()) {
        let m = merge::merge(&layers);
        for path in PATHS {
            prop_assert_eq!(merge::lookup(&m.config, path).cloned(), expected(&layers, path), "path {}", path);
        }
        // Nothing appears that no policy set.
        for leaf in merge::leaves(&m.config) {
            prop_assert!(PATHS.contains(&leaf.as_str()), "unexpected leaf {}", leaf);
        }
    }

    /// The order policies were created (or are listed) in does not matter.
    #[test]
    fn independent_of_order(layers in layers(), seed in any::<u64>()) {
        let mut shuffled = layers.clone();
        // A deterministic shuffle from the seed.
        let n = shuffled.len();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(merge::merge(&layers), merge::merge(&shuffled));
    }

    /// An empty policy, at any scope and priority, changes nothing.
    #[test]
    fn empty_policy_changes_nothing(layers in layers(), scope in scope(), priority in 10i64..20) {
        let before = merge::merge(&layers);
        let mut with = layers.clone();
        with.push(Layer {
            source: Source { policy_id: "empty".into(), policy_name: "empty".into(), scope, target_id: None, priority },
            document: json!({}),
        });
        prop_assert_eq!(before, merge::merge(&with));
    }

    /// Every leaf of the effective config names the policy that set it, with that value.
    #[test]
    fn provenance_names_a_policy_for_every_leaf(layers in layers()) {
        let m = merge::merge(&layers);
        for leaf in merge::leaves(&m.config) {
            let p = m.provenance.get(&leaf);
            prop_assert!(p.is_some(), "no provenance for {}", leaf);
            let p = p.unwrap();
            prop_assert!(layers.iter().any(|l| l.source == p.source), "unknown source for {}", leaf);
            prop_assert_eq!(Some(&p.value), merge::lookup(&m.config, &leaf));
        }
    }

    /// Generated documents are valid policies (the generator speaks the schema).
    #[test]
    fn generated_documents_validate(doc in document()) {
        prop_assert!(schema::validate(&doc).is_ok(), "{:?}", schema::validate(&doc));
    }
}

/// The JSON Schema checked into the repository is the one the code derives and serves.
/// Regenerate with `RMM_WRITE_POLICY_SCHEMA=1 cargo test -p rmm-control-plane --test policy_merge`.
#[test]
fn schema_file_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/policy.v1.schema.json");
    let generated = serde_json::to_string_pretty(&schema::json_schema()).unwrap() + "\n";
    if std::env::var_os("RMM_WRITE_POLICY_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date; regenerate it with RMM_WRITE_POLICY_SCHEMA=1 cargo test -p rmm-control-plane --test policy_merge",
        path.display()
    );
}

/// The schema and the validator agree: a full example passes; for every key, a value of the
/// wrong type is refused naming that key.
#[test]
fn schema_and_validator_agree() {
    let full = schema::full_example();
    schema::validate(&full).unwrap();
    let s = schema::json_schema();
    for (section, props) in s["properties"].as_object().unwrap() {
        if section == "schema_version" {
            continue;
        }
        let inner = &props["anyOf"][0];
        let keys: Vec<String> = match inner["properties"].as_object() {
            Some(p) => p.keys().map(|k| format!("{section}.{k}")).collect(),
            None => vec![section.clone()],
        };
        for key in keys {
            let mut doc = Map::new();
            // An object where the schema says something else, or a number where it says object.
            let wrong = if key == section.as_str()
                || key.ends_with("headers")
                || key.ends_with("maintenance_window")
            {
                json!(42)
            } else {
                json!({"x": 1})
            };
            set(&mut doc, &key, wrong);
            let err = schema::validate(&Value::Object(doc)).unwrap_err();
            assert!(err.iter().any(|p| p.path == key), "{key}: {err:?}");
        }
    }
}
