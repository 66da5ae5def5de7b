//! Policy schema v1: one table of sections and keys ([`SCHEMA_V1`]) from which both the
//! validation of documents ([`validate`]) and the JSON Schema ([`json_schema`]) are derived,
//! so the two cannot disagree. Sections and keys are the agent's TOML configuration
//! (`collect.interval`, `otlp.endpoint`, ...) plus `labels`, `inventory` and `updates`.
//!
//! A policy is a partial document: every key is optional, and an explicit `null` clears a
//! value inherited from a less specific policy. Unknown keys are refused.

use serde_json::{json, Map, Value};

/// The only schema version so far.
pub const SCHEMA_VERSION: u64 = 1;

/// The type of one key.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A nested object of fixed keys.
    Object(&'static [Field]),
    /// A humantime duration text (`15s`, `1m`, `500ms`) within bounds, in milliseconds.
    Duration {
        min_ms: u64,
        max_ms: u64,
    },
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// Free text, 1 to `max` characters, no control characters.
    Text {
        max: usize,
    },
    /// `http://` or `https://` URL.
    Url,
    /// `host:port` socket address (`127.0.0.1:9464`, `[::1]:9464`).
    SocketAddr,
    /// `HH:MM`, 24-hour clock.
    TimeOfDay,
    /// A list of short strings (globs).
    TextList {
        max_items: usize,
    },
    /// A list of distinct weekdays (`mon` ... `sun`).
    Weekdays,
    /// A map of string values; keys follow `keys`.
    Map {
        keys: KeyRule,
        max_entries: usize,
    },
}

/// What keys of a [`Kind::Map`] may look like.
#[derive(Debug, Clone, Copy)]
pub enum KeyRule {
    /// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
    LabelName,
    /// HTTP header names: letters, digits, `-` and `_`.
    HeaderName,
}

/// One key of a section.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

const fn f(name: &'static str, kind: Kind, description: &'static str) -> Field {
    Field {
        name,
        kind,
        description,
    }
}

const GLOBS: Kind = Kind::TextList { max_items: 256 };

const COLLECT: &[Field] = &[
    f(
        "interval",
        Kind::Duration {
            min_ms: 100,
            max_ms: 3_600_000,
        },
        "Time between collection cycles (humantime: `15s`, `1m`, `500ms`), 100ms to 1h.",
    ),
    f(
        "top_processes",
        Kind::Int { min: 1, max: 1000 },
        "Length of each top-process list (by CPU and by memory).",
    ),
    f("cpu", Kind::Bool, "CPU time and utilization collector."),
    f("load", Kind::Bool, "Load averages collector."),
    f("memory", Kind::Bool, "Memory and swap collector."),
    f("filesystem", Kind::Bool, "Filesystem usage collector."),
    f("disk", Kind::Bool, "Disk I/O collector."),
    f("network", Kind::Bool, "Network I/O collector."),
    f("temperature", Kind::Bool, "Temperature sensors collector."),
    f("uptime", Kind::Bool, "Uptime collector."),
    f(
        "processes",
        Kind::Bool,
        "Process counts and top processes collector.",
    ),
    f(
        "filesystem_exclude_types",
        GLOBS,
        "Filesystem types left out (globs).",
    ),
    f(
        "filesystem_exclude_mountpoints",
        GLOBS,
        "Mount points left out (globs).",
    ),
    f(
        "disk_exclude_devices",
        GLOBS,
        "Disk devices left out (globs).",
    ),
    f(
        "network_exclude_interfaces",
        GLOBS,
        "Network interfaces left out (globs).",
    ),
    f(
        "command_line",
        Kind::Bool,
        "Export each top process's command line.",
    ),
    f(
        "command_line_max_length",
        Kind::Int { min: 1, max: 65536 },
        "Characters of the command line kept.",
    ),
];

const PROMETHEUS: &[Field] = &[
    f("enabled", Kind::Bool, "Serve `/metrics`."),
    f(
        "listen",
        Kind::SocketAddr,
        "Address `/metrics` listens on (`host:port`).",
    ),
];

const OTLP: &[Field] = &[
    f("enabled", Kind::Bool, "Push metrics over OTLP."),
    f("endpoint", Kind::Url, "Base URL of the OTLP receiver."),
    f(
        "metrics_endpoint",
        Kind::Url,
        "Full URL of the metrics endpoint (HTTP only).",
    ),
    f(
        "protocol",
        Kind::Enum(&["http/protobuf", "grpc"]),
        "Wire protocol.",
    ),
    f(
        "headers",
        Kind::Map {
            keys: KeyRule::HeaderName,
            max_entries: 64,
        },
        "Extra request headers (HTTP headers or gRPC metadata).",
    ),
    f(
        "interval",
        Kind::Duration {
            min_ms: 100,
            max_ms: 86_400_000,
        },
        "Time between pushes (humantime); defaults to the collection interval.",
    ),
    f(
        "timeout",
        Kind::Duration {
            min_ms: 100,
            max_ms: 600_000,
        },
        "Time allowed for one request (humantime).",
    ),
    f(
        "compression",
        Kind::Enum(&["gzip", "none"]),
        "Body compression.",
    ),
];

const INVENTORY: &[Field] = &[f(
    "interval_hours",
    Kind::Int { min: 1, max: 168 },
    "Hours between reports of local user accounts and sessions.",
)];

const MAINTENANCE_WINDOW: &[Field] = &[
    f("days", Kind::Weekdays, "Weekdays of the window."),
    f("start", Kind::TimeOfDay, "Start time, `HH:MM`."),
    f(
        "end",
        Kind::TimeOfDay,
        "End time, `HH:MM` (before start: the window crosses midnight).",
    ),
    f(
        "time_zone",
        Kind::Text { max: 64 },
        "IANA time zone of start and end (`Europe/Paris`, `UTC`).",
    ),
];

const UPDATES: &[Field] = &[
    f(
        "channel",
        Kind::Enum(&["stable", "beta", "edge"]),
        "Release channel the agent follows.",
    ),
    f("auto", Kind::Bool, "Install updates automatically."),
    f(
        "maintenance_window",
        Kind::Object(MAINTENANCE_WINDOW),
        "When updates may be installed.",
    ),
];

/// The sections of a v1 document (`schema_version` aside).
pub const SCHEMA_V1: &[Field] = &[
    f(
        "collect",
        Kind::Object(COLLECT),
        "What to collect and how often (`[collect]`).",
    ),
    f(
        "prometheus",
        Kind::Object(PROMETHEUS),
        "The Prometheus endpoint (`[prometheus]`).",
    ),
    f("otlp", Kind::Object(OTLP), "OTLP pushes (`[otlp]`)."),
    f(
        "labels",
        Kind::Map {
            keys: KeyRule::LabelName,
            max_entries: 64,
        },
        "Extra labels put on every series of the agent.",
    ),
    f(
        "inventory",
        Kind::Object(INVENTORY),
        "User inventory (`[inventory]`).",
    ),
    f(
        "updates",
        Kind::Object(UPDATES),
        "Agent updates (`[updates]`).",
    ),
];

/// One problem of a document: the dotted path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Check a policy document; every problem is reported, each naming its field.
pub fn validate(doc: &Value) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(obj) = doc.as_object() else {
        return Err(vec![Problem {
            path: "document".into(),
            reason: "expected an object".into(),
        }]);
    };
    if let Some(v) = obj.get("schema_version") {
        if v.as_u64() != Some(SCHEMA_VERSION) {
            problems.push(Problem {
                path: "schema_version".into(),
                reason: format!("expected {SCHEMA_VERSION}"),
            });
        }
    }
    let rest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "schema_version")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_object("", SCHEMA_V1, &rest, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn check_object(prefix: &str, fields: &[Field], obj: &Map<String, Value>, out: &mut Vec<Problem>) {
    for (key, value) in obj {
        let path = join(prefix, key);
        match fields.iter().find(|f| f.name == key) {
            None => {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                out.push(Problem {
                    path,
                    reason: format!("unknown field (known: {})", known.join(", ")),
                });
            }
            // null clears an inherited value.
            Some(_) if value.is_null() => {}
            Some(field) => check(&path, &field.kind, value, out),
        }
    }
}

fn problem(out: &mut Vec<Problem>, path: &str, reason: impl Into<String>) {
    out.push(Problem {
        path: path.to_owned(),
        reason: reason.into(),
    });
}

fn check(path: &str, kind: &Kind, v: &Value, out: &mut Vec<Problem>) {
    match kind {
        Kind::Object(fields) => match v.as_object() {
            Some(o) => check_object(path, fields, o, out),
            None => problem(out, path, "expected an object"),
        },
        Kind::Duration { min_ms, max_ms } => {
            let range = || {
                format!(
                    "expected a duration between {} and {} (like `15s`, `1m`, `500ms`)",
                    humantime::format_duration(std::time::Duration::from_millis(*min_ms)),
                    humantime::format_duration(std::time::Duration::from_millis(*max_ms))
                )
            };
            match v.as_str().map(humantime::parse_duration) {
                Some(Ok(d))
                    if d.as_millis() >= *min_ms as u128 && d.as_millis() <= *max_ms as u128 => {}
                _ => problem(out, path, range()),
            }
        }
        Kind::Int { min, max } => match v.as_i64() {
            Some(n) if n >= *min && n <= *max => {}
            _ => problem(
                out,
                path,
                format!("expected an integer between {min} and {max}"),
            ),
        },
        Kind::Bool => {
            if !v.is_boolean() {
                problem(out, path, "expected true or false");
            }
        }
        Kind::Enum(options) => match v.as_str() {
            Some(s) if options.contains(&s) => {}
            _ => problem(out, path, format!("expected one of {}", quoted(options))),
        },
        Kind::Text { max } => match v.as_str() {
            Some(s) if text_ok(s, *max) => {}
            _ => problem(
                out,
                path,
                format!("expected a text of 1 to {max} characters without control characters"),
            ),
        },
        Kind::Url => match v.as_str() {
            Some(s)
                if (s.starts_with("http://") || s.starts_with("https://"))
                    && s.len() > 8
                    && text_ok(s, 2048)
                    && !s.contains(' ') => {}
            _ => problem(out, path, "expected an http:// or https:// URL"),
        },
        Kind::SocketAddr => match v.as_str() {
            Some(s) if s.parse::<std::net::SocketAddr>().is_ok() => {}
            _ => problem(
                out,
                path,
                "expected an IP address and port, like `0.0.0.0:9464` or `[::1]:9464`",
            ),
        },
        Kind::TimeOfDay => match v.as_str() {
            Some(s) if time_of_day(s) => {}
            _ => problem(out, path, "expected a time of day `HH:MM` (00:00 to 23:59)"),
        },
        Kind::TextList { max_items } => match v.as_array() {
            Some(items)
                if items.len() <= *max_items
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| text_ok(s, 256))) => {}
            _ => problem(
                out,
                path,
                format!("expected a list of at most {max_items} texts (1 to 256 characters each)"),
            ),
        },
        Kind::Weekdays => {
            let ok = v.as_array().is_some_and(|items| {
                let mut seen = Vec::new();
                items.iter().all(|i| match i.as_str() {
                    Some(d) if WEEKDAYS.contains(&d) && !seen.contains(&d) => {
                        seen.push(d);
                        true
                    }
                    _ => false,
                })
            });
            if !ok {
                problem(
                    out,
                    path,
                    format!(
                        "expected a list of distinct weekdays from {}",
                        quoted(WEEKDAYS)
                    ),
                );
            }
        }
        Kind::Map { keys, max_entries } => {
            let Some(m) = v.as_object() else {
                return problem(out, path, "expected an object of text values");
            };
            if m.len() > *max_entries {
                problem(out, path, format!("at most {max_entries} entries"));
            }
            for (k, val) in m {
                let key_ok = match keys {
                    KeyRule::LabelName => label_name(k),
                    KeyRule::HeaderName => {
                        !k.is_empty()
                            && k.len() <= 128
                            && k.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                    }
                };
                let entry = join(path, k);
                if matches!(keys, KeyRule::LabelName) && RESERVED_LABELS.contains(&k.as_str()) {
                    problem(
                        out,
                        &entry,
                        "reserved label: set by the agent's identity and service discovery",
                    );
                } else if !key_ok {
                    let rule = match keys {
                        KeyRule::LabelName => {
                            "must match [a-zA-Z_][a-zA-Z0-9_]* (at most 64 characters, not starting with __)"
                        }
                        KeyRule::HeaderName => "must be letters, digits, `-` and `_`",
                    };
                    problem(out, &entry, format!("invalid key: {rule}"));
                } else if !val.is_null()
                    && !val.as_str().is_some_and(|s| {
                        s.chars().count() <= 1024 && !s.chars().any(char::is_control)
                    })
                {
                    problem(
                        out,
                        &entry,
                        "expected a text of at most 1024 characters without control characters",
                    );
                }
            }
        }
    }
}

/// Label names the agent sets itself (identity, service discovery); refused in `labels`.
pub const RESERVED_LABELS: &[&str] = &["job", "instance", "client", "site", "host", "agent"];

/// Weekday names of `maintenance_window.days`.
pub const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn quoted(options: &[&str]) -> String {
    options
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn label_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && !k.starts_with("__")
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn time_of_day(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && s[..2]
            .parse::<u8>()
            .is_ok_and(|h| h < 24 && b[0].is_ascii_digit() && b[1].is_ascii_digit())
        && s[3..]
            .parse::<u8>()
            .is_ok_and(|m| m < 60 && b[3].is_ascii_digit() && b[4].is_ascii_digit())
}

/// The JSON Schema (draft 2020-12) of a policy document, derived from [`SCHEMA_V1`].
pub fn json_schema() -> Value {
    let mut root = object_schema(SCHEMA_V1);
    root["properties"]["schema_version"] = json!({
        "description": "Version of this schema; 1.",
        "const": SCHEMA_VERSION,
    });
    let mut out = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rmm.example/schemas/policy.v1.schema.json",
        "title": "RMM policy document, schema version 1",
        "description": "A partial agent configuration. Every key is optional; an explicit null clears a value inherited from a less specific policy. Sections and keys are the agent's TOML configuration.",
    });
    if let (Some(o), Some(r)) = (out.as_object_mut(), root.as_object()) {
        o.extend(r.clone());
    }
    out
}

/// `null` is allowed everywhere below the root (it clears an inherited value).
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn object_schema(fields: &[Field]) -> Value {
    let mut props = Map::new();
    for field in fields {
        let mut s = kind_schema(&field.kind);
        s["description"] = json!(field.description);
        props.insert(field.name.to_owned(), nullable(s));
    }
    json!({ "type": "object", "additionalProperties": false, "properties": props })
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Object(fields) => object_schema(fields),
        Kind::Duration { min_ms, max_ms } => json!({
            "type": "string",
            "pattern": "^([0-9]+ ?(ns|us|ms|s|m|h|d|sec|min|hour|hours|days) ?)+$",
            "x-min-duration-ms": min_ms,
            "x-max-duration-ms": max_ms,
        }),
        Kind::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Enum(options) => json!({ "type": "string", "enum": options }),
        Kind::Text { max } => json!({ "type": "string", "minLength": 1, "maxLength": max }),
        Kind::Url => json!({ "type": "string", "format": "uri", "pattern": "^https?://" }),
        Kind::SocketAddr => {
            json!({ "type": "string", "pattern": "^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+):[0-9]{1,5}$" })
        }
        Kind::TimeOfDay => {
            json!({ "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$" })
        }
        Kind::TextList { max_items } => json!({
            "type": "array", "maxItems": max_items,
            "items": { "type": "string", "minLength": 1, "maxLength": 256 },
        }),
        Kind::Weekdays => json!({
            "type": "array", "uniqueItems": true, "items": { "enum": WEEKDAYS },
        }),
        Kind::Map { keys, max_entries } => {
            let names = match keys {
                KeyRule::LabelName => json!({
                    "pattern": "^(?!__)[a-zA-Z_][a-zA-Z0-9_]{0,63}$",
                    "not": { "enum": RESERVED_LABELS },
                }),
                KeyRule::HeaderName => json!({ "pattern": "^[A-Za-z0-9_-]{1,128}$" }),
            };
            json!({
                "type": "object", "maxProperties": max_entries,
                "propertyNames": names,
                "additionalProperties": nullable(json!({ "type": "string", "maxLength": 1024 })),
            })
        }
    }
}

/// A valid example value of each kind (for tests and documentation).
pub fn example(kind: &Kind) -> Value {
    match kind {
        Kind::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|f| (f.name.to_owned(), example(&f.kind)))
                .collect(),
        ),
        Kind::Duration { min_ms, .. } => json!(format!("{}ms", (*min_ms).max(1) * 2)),
        Kind::Int { min, .. } => json!(min + 1),
        Kind::Bool => json!(true),
        Kind::Enum(options) => json!(options[options.len() - 1]),
        Kind::Text { .. } => json!("Europe/Paris"),
        Kind::Url => json!("https://otlp.example:4318"),
        Kind::SocketAddr => json!("0.0.0.0:9464"),
        Kind::TimeOfDay => json!("02:30"),
        Kind::TextList { .. } => json!(["tmpfs", "lo*"]),
        Kind::Weekdays => json!(["sat", "sun"]),
        Kind::Map { .. } => json!({"env": "prod"}),
    }
}

/// A complete valid document: every key of [`SCHEMA_V1`] set.
pub fn full_example() -> Value {
    let mut v = example(&Kind::Object(SCHEMA_V1));
    v["schema_version"] = json!(SCHEMA_VERSION);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(doc: Value) -> String {
        validate(&doc)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn accepts_full_partial_and_null_documents() {
        validate(&full_example()).unwrap();
        validate(&json!({})).unwrap();
        validate(&json!({"collect": {"top_processes": 5}})).unwrap();
        validate(&json!({"otlp": null, "collect": {"interval": null}, "labels": {"env": null}}))
            .unwrap();
    }

    #[test]
    fn errors_name_the_field_and_reason() {
        assert_eq!(
            msg(json!({"collect": {"top_processes": 0}})),
            "collect.top_processes: expected an integer between 1 and 1000"
        );
        assert_eq!(
            msg(json!({"collect": {"top_processes": "ten"}})),
            "collect.top_processes: expected an integer between 1 and 1000"
        );
        assert!(msg(json!({"collect": {"intervall": "1s"}}))
            .starts_with("collect.intervall: unknown field"));
        assert!(msg(json!({"colect": {}})).starts_with("colect: unknown field"));
        assert!(msg(json!({"collect": {"interval": "5ms"}}))
            .starts_with("collect.interval: expected a duration"));
        assert!(msg(json!({"otlp": {"protocol": "http"}}))
            .starts_with("otlp.protocol: expected one of"));
        assert!(msg(json!({"labels": {"bad-key": "x"}})).starts_with("labels.bad-key: invalid key"));
        assert!(msg(json!({"labels": {"instance": "x"}}))
            .starts_with("labels.instance: reserved label"));
        validate(&json!({"otlp": {"headers": {"instance": "x"}}})).unwrap();
        assert!(
            msg(json!({"updates": {"maintenance_window": {"days": ["mon", "mon"]}}}))
                .starts_with("updates.maintenance_window.days")
        );
        assert!(
            msg(json!({"updates": {"maintenance_window": {"start": "24:00"}}}))
                .starts_with("updates.maintenance_window.start")
        );
        assert_eq!(
            msg(json!({"schema_version": 2})),
            "schema_version: expected 1"
        );
        assert_eq!(msg(json!([])), "document: expected an object");
        assert!(
            msg(json!({"prometheus": {"listen": "localhost"}})).starts_with("prometheus.listen")
        );
    }

    #[test]
    fn schema_lists_every_field() {
        let s = json_schema();
        for section in SCHEMA_V1 {
            let p = &s["properties"][section.name];
            assert!(p.is_object(), "{}", section.name);
            if let Kind::Object(fields) = section.kind {
                for f in fields {
                    assert!(
                        p["anyOf"][0]["properties"][f.name].is_object(),
                        "{}.{}",
                        section.name,
                        f.name
                    );
                }
            }
        }
        assert_eq!(s["additionalProperties"], false);
    }
}
