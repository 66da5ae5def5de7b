//! `[otlp]`: where and how the OTLP exporter pushes, and how much it keeps while it cannot.
//!
//! Precedence, lowest first: defaults, the TOML file, the standard `OTEL_EXPORTER_OTLP_*`
//! variables ([`otel_env`]), then `RMM_AGENT_OTLP_*` (the agent's own overrides win, so an
//! environment inherited from another OpenTelemetry program cannot undo an explicit setting).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The wire protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// OTLP/HTTP with a protobuf body: `POST {endpoint}/v1/metrics`.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/gRPC: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`.
    #[serde(rename = "grpc")]
    Grpc,
}

/// Body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// `[otlp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Push metrics over OTLP.
    pub enabled: bool,
    /// Base URL of the receiver. Default `http://127.0.0.1:4318` (http/protobuf) or
    /// `http://127.0.0.1:4317` (grpc). HTTP posts to `{endpoint}/v1/metrics`.
    pub endpoint: Option<String>,
    /// Full URL of the metrics endpoint (HTTP only), used as is instead of
    /// `{endpoint}/v1/metrics` (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub metrics_endpoint: Option<String>,
    /// `http/protobuf` or `grpc`.
    pub protocol: Protocol,
    /// Extra request headers (HTTP headers or gRPC metadata), e.g. an authorization token.
    pub headers: BTreeMap<String, String>,
    /// Time between pushes; defaults to the collection interval. Rounded up to whole cycles.
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Time allowed for one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `gzip` or `none`.
    pub compression: Compression,
    /// Attributes put on every data point and on the Resource: the labels service discovery adds
    /// to scraped series (`client`, `site`, `host`, `agent`), so both paths give the same series.
    pub attributes: BTreeMap<String, String>,
    /// `service.instance.id` (→ `instance`); defaults to the enrolled agent id, else to the host
    /// id (machine-id as a UUID).
    pub service_instance_id: Option<String>,
    /// Bytes of unsent pushes kept in memory while the receiver is unreachable.
    pub buffer_max_bytes: u64,
    /// Directory where pushes that overflow the memory buffer are kept (and survive a restart);
    /// a relative path is under `control.state_dir`.
    pub buffer_disk_dir: Option<PathBuf>,
    /// Bytes kept in `buffer_disk_dir`; the oldest files are deleted beyond it.
    pub buffer_disk_max_bytes: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: None,
            metrics_endpoint: None,
            protocol: Protocol::HttpProtobuf,
            headers: BTreeMap::new(),
            interval: None,
            timeout: Duration::from_secs(10),
            compression: Compression::Gzip,
            attributes: BTreeMap::new(),
            service_instance_id: None,
            buffer_max_bytes: 8 << 20,
            buffer_disk_dir: None,
            buffer_disk_max_bytes: 64 << 20,
        }
    }
}

/// Attribute keys that Prometheus's OTLP translation overwrites (`shared/design/protocol-facts.md`
/// §4.3); refused in `attributes`.
const RESERVED_KEYS: [&str; 2] = ["job", "instance"];

impl OtlpConfig {
    /// The base endpoint, after the protocol's default.
    pub fn endpoint(&self) -> &str {
        match (&self.endpoint, self.protocol) {
            (Some(e), _) => e.trim_end_matches('/'),
            (None, Protocol::HttpProtobuf) => "http://127.0.0.1:4318",
            (None, Protocol::Grpc) => "http://127.0.0.1:4317",
        }
    }

    /// The URL an HTTP push goes to.
    pub fn http_url(&self) -> String {
        match &self.metrics_endpoint {
            Some(url) => url.clone(),
            None => format!("{}/v1/metrics", self.endpoint()),
        }
    }

    /// Range checks; `name` maps a key to how the user spelled it (file key or variable).
    pub fn problems(&self, name: impl Fn(&str) -> String) -> Vec<String> {
        let mut problems = Vec::new();
        for url in [&self.endpoint, &self.metrics_endpoint]
            .into_iter()
            .flatten()
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "{}: `{url}` must start with http:// or https://",
                    name(if Some(url) == self.endpoint.as_ref() {
                        "otlp.endpoint"
                    } else {
                        "otlp.metrics_endpoint"
                    })
                ));
            }
        }
        if self.timeout.is_zero() {
            problems.push(format!("{}: must be more than 0", name("otlp.timeout")));
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            problems.push(format!("{}: must be more than 0", name("otlp.interval")));
        }
        if self.buffer_max_bytes == 0 {
            problems.push(format!(
                "{}: must be at least 1",
                name("otlp.buffer_max_bytes")
            ));
        }
        for key in self.attributes.keys() {
            if RESERVED_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "{}: `{key}` is set by Prometheus from service.name / service.instance.id; use another key",
                    name("otlp.attributes")
                ));
            }
        }
        for (key, value) in &self.headers {
            let valid_name = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid_name || value.bytes().any(|b| b.is_ascii_control()) {
                problems.push(format!(
                    "{}: `{key}` is not a valid header",
                    name("otlp.headers")
                ));
            }
        }
        problems
    }
}

/// `OTEL_EXPORTER_OTLP_*` variables (the metrics-specific `OTEL_EXPORTER_OTLP_METRICS_*` win
/// over the generic ones), as `(key, TOML value, variable)` settings of `[otlp]`. Values that do
/// not parse are reported with the variable's name.
pub fn otel_env(
    env: &BTreeMap<String, String>,
) -> Result<Vec<(&'static str, toml::Value, String)>, Vec<String>> {
    use toml::Value;
    let pick = |generic: &str, specific: &str| -> Option<(String, String)> {
        [specific, generic]
            .into_iter()
            .find_map(|k| env.get(k).map(|v| (k.to_owned(), v.trim().to_owned())))
            .filter(|(_, v)| !v.is_empty())
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if let Some((var, v)) = env
        .get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .map(|v| ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT".to_owned(), v.clone()))
        .filter(|(_, v)| !v.is_empty())
    {
        out.push(("metrics_endpoint", Value::String(v.clone()), var.clone()));
        // gRPC has no path: the signal-specific URL is its endpoint.
        out.push(("endpoint", Value::String(v), var));
    } else if let Some(v) = env
        .get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .filter(|v| !v.is_empty())
    {
        out.push((
            "endpoint",
            Value::String(v.clone()),
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
        ));
    }
    if let Some((var, v)) = pick(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ) {
        match v.as_str() {
            "http/protobuf" | "grpc" => out.push(("protocol", Value::String(v), var)),
            _ => problems.push(format!(
                "{var}: `{v}` is not supported (http/protobuf or grpc)"
            )),
        }
    }
    if let Some((var, v)) = pick(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    ) {
        match parse_key_values(&v) {
            Some(t) => out.push(("headers", Value::Table(t), var)),
            None => problems.push(format!("{var}: expected `key=value,key2=value2`")),
        }
    }
    if let Some((var, v)) = pick(
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    ) {
        match v.parse::<u64>() {
            Ok(ms) => out.push(("timeout", Value::String(format!("{ms}ms")), var)),
            Err(_) => problems.push(format!("{var}: expected milliseconds, got `{v}`")),
        }
    }
    if let Some((var, v)) = pick(
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    ) {
        match v.as_str() {
            "gzip" | "none" => out.push(("compression", Value::String(v), var)),
            _ => problems.push(format!("{var}: expected gzip or none, got `{v}`")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `k=v,k2=v2` (values percent-decoded, as the OTLP exporter spec says) as a TOML table.
pub fn parse_key_values(raw: &str) -> Option<toml::Table> {
    let mut t = toml::Table::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        let k = percent_decode(k.trim())?;
        if k.is_empty() {
            return None;
        }
        t.insert(k, toml::Value::String(percent_decode(v.trim())?));
    }
    Some(t)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn metrics_specific_variables_win() {
        let out = otel_env(&env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20x,x-tenant=a",
            ),
        ]))
        .unwrap();
        let get = |k: &str| out.iter().find(|(key, _, _)| *key == k).unwrap().1.clone();
        assert_eq!(get("protocol").as_str(), Some("http/protobuf"));
        assert_eq!(get("timeout").as_str(), Some("2500ms"));
        let headers = get("headers");
        assert_eq!(headers["authorization"].as_str(), Some("Bearer x"));
        assert_eq!(headers["x-tenant"].as_str(), Some("a"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let problems = otel_env(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).unwrap_err();
        assert!(
            problems[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL:"),
            "{problems:?}"
        );
    }

    #[test]
    fn default_endpoint_follows_the_protocol() {
        let mut c = OtlpConfig::default();
        assert_eq!(c.http_url(), "http://127.0.0.1:4318/v1/metrics");
        c.protocol = Protocol::Grpc;
        assert_eq!(c.endpoint(), "http://127.0.0.1:4317");
    }

    fn load(file: &str, env: &[(&str, &str)]) -> Result<crate::AgentConfig, String> {
        crate::AgentConfig::from_sources(
            Some((std::path::Path::new("agent.toml"), file)),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn precedence_is_file_then_otel_then_rmm_agent_variables() {
        let c = load(
            "[otlp]\nendpoint = \"http://file:1\"\ntimeout = \"9s\"\ncompression = \"none\"\n",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1"),
                ("RMM_AGENT_OTLP_ENDPOINT", "http://rmm:4318"),
            ],
        )
        .unwrap();
        assert_eq!(c.otlp.endpoint(), "http://rmm:4318");
        assert_eq!(c.otlp.timeout, Duration::from_millis(1500));
        assert_eq!(c.otlp.headers["api-key"], "k1");
        assert_eq!(c.otlp.compression, Compression::None);
    }

    #[test]
    fn maps_come_from_key_value_lists_or_inline_tables() {
        let c = load(
            "",
            &[
                ("RMM_AGENT_OTLP_HEADERS", "authorization=Bearer%20t,x-a=b"),
                (
                    "RMM_AGENT_OTLP_ATTRIBUTES",
                    "{ client = \"Acme Corp\", site = \"HQ\" }",
                ),
                ("RMM_AGENT_OTLP_INTERVAL", "30s"),
            ],
        )
        .unwrap();
        assert_eq!(c.otlp.headers["authorization"], "Bearer t");
        assert_eq!(c.otlp.attributes["client"], "Acme Corp");
        assert_eq!(c.otlp.interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn bad_otlp_settings_name_their_source() {
        let e = load("", &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_COMPRESSION"), "{e}");
        let e = load("", &[("RMM_AGENT_OTLP_ENDPOINT", "collector:4317")]).unwrap_err();
        assert!(e.contains("RMM_AGENT_OTLP_ENDPOINT"), "{e}");
        let e = load("[otlp]\nattributes = { instance = \"x\" }\n", &[]).unwrap_err();
        assert!(e.contains("otlp.attributes"), "{e}");
    }

    #[test]
    fn job_and_instance_are_refused_as_attributes() {
        let mut c = OtlpConfig::default();
        c.attributes.insert("job".into(), "x".into());
        assert_eq!(c.problems(|k| k.to_owned()).len(), 1);
    }
}
