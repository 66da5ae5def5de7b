//! Renders [`Metrics`] as Prometheus text exposition format 0.0.4.
//!
//! Rules (protocol-facts §4.5): names and labels translated as Prometheus 2.53's OTLP receiver
//! would ([`super::translate`]); `# HELP` and `# TYPE` on every family, named by the full sample
//! name; monotonic sums are `counter`s, gauges and up-down sums `gauge`s; no timestamps;
//! a `target_info` gauge carries the resource attributes except `service.name`,
//! `service.namespace` and `service.instance.id` (those become `job`/`instance`, which the
//! scrape config and service discovery set).
//!
//! One exception to the type mapping: a gauge whose translated name ends in `_count`, `_sum` or
//! `_bucket` is exposed as `untyped`. That is exactly `system_processes_count`, which
//! `promtool check metrics` (2.53) rejects as a gauge ("non-histogram and non-summary metrics
//! should not have _count suffix") while skipping untyped families; Prometheus stores untyped
//! samples like gauges, so queries see no difference.

use std::fmt::Write;

use super::translate::{metric_name, push_label_name};
use crate::export::model::{AttrValue, Kind, Metrics, Value};

/// Resource attributes that become `job`/`instance` rather than `target_info` labels.
const NOT_ON_TARGET_INFO: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// The exposition text of `metrics`.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::with_capacity(32 * 1024);
    render_target_info(&mut out, &metrics.resource);
    for family in &metrics.families {
        let name = metric_name(family.name, family.unit, family.kind);
        let kind = match family.kind {
            Kind::Sum { monotonic: true } => "counter",
            _ if ["_count", "_sum", "_bucket"]
                .iter()
                .any(|s| name.ends_with(s)) =>
            {
                "untyped"
            }
            _ => "gauge",
        };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(family.description));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for point in &family.points {
            out.push_str(&name);
            write_labels(&mut out, point.attributes.iter().map(|(k, v)| (*k, v)));
            out.push(' ');
            write_value(&mut out, point.value);
            out.push('\n');
        }
    }
    out
}

fn render_target_info(out: &mut String, resource: &[(&'static str, AttrValue)]) {
    // An empty value is an unknown fact (and the same as no label to Prometheus).
    let attrs: Vec<_> = resource
        .iter()
        .filter(|(k, v)| !NOT_ON_TARGET_INFO.contains(k) && !v.to_text().is_empty())
        .collect();
    if attrs.is_empty() {
        return;
    }
    out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
    write_labels(out, attrs.iter().map(|(k, v)| (*k, v)));
    out.push_str(" 1\n");
}

fn write_labels<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a AttrValue)>) {
    let mut first = true;
    for (key, value) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        push_label_name(out, key);
        out.push_str("=\"");
        escape_label_value(out, &value.to_text());
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn write_value(out: &mut String, v: Value) {
    match v {
        Value::I64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F64(f) if f.is_nan() => out.push_str("NaN"),
        Value::F64(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::F64(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::model::{DataPoint, MetricFamily};

    fn metrics(families: Vec<MetricFamily>) -> Metrics {
        Metrics {
            resource: vec![
                ("service.name", "rmm-agent".into()),
                ("service.version", "1.2.3".into()),
                ("host.name", "web \"01\"".into()),
            ],
            families,
            timestamp_unix_ms: 0,
        }
    }

    #[test]
    fn target_info_leaves_out_unknown_facts_and_needs_one() {
        let mut m = metrics(vec![]);
        m.resource.push(("host.id", "".into()));
        assert!(!render(&m).contains("host_id"));
        m.resource = vec![
            ("service.name", "rmm-agent".into()),
            ("host.name", "".into()),
        ];
        assert_eq!(render(&m), "");
    }

    #[test]
    fn renders_types_labels_and_escapes() {
        let text = render(&metrics(vec![
            MetricFamily {
                name: "system.cpu.time",
                unit: "s",
                kind: Kind::Sum { monotonic: true },
                description: "CPU.\nSeconds \\ more",
                points: vec![DataPoint {
                    attributes: vec![("cpu", "cpu0".into()), ("state", "user".into())],
                    value: Value::F64(1.5),
                }],
            },
            MetricFamily {
                name: "system.processes.count",
                unit: "{processes}",
                kind: Kind::Sum { monotonic: false },
                description: "Processes.",
                points: vec![DataPoint {
                    attributes: vec![("status", "running".into())],
                    value: Value::I64(3),
                }],
            },
            MetricFamily {
                name: "process.memory.usage",
                unit: "By",
                kind: Kind::Sum { monotonic: false },
                description: "RSS.",
                points: vec![DataPoint {
                    attributes: vec![
                        ("process.pid", AttrValue::Int(7)),
                        ("process.executable.name", "a\\b\n\"c\"".into()),
                    ],
                    value: Value::I64(4096),
                }],
            },
            MetricFamily {
                name: "x.weird",
                unit: "1",
                kind: Kind::Gauge,
                description: "Odd values.",
                points: vec![
                    DataPoint {
                        attributes: vec![],
                        value: Value::F64(f64::NAN),
                    },
                    DataPoint {
                        attributes: vec![],
                        value: Value::F64(f64::INFINITY),
                    },
                    DataPoint {
                        attributes: vec![],
                        value: Value::F64(1e-9),
                    },
                ],
            },
        ]));
        let want = "# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_version=\"1.2.3\",host_name=\"web \\\"01\\\"\"} 1
# HELP system_cpu_time_seconds_total CPU.\\nSeconds \\\\ more
# TYPE system_cpu_time_seconds_total counter
system_cpu_time_seconds_total{cpu=\"cpu0\",state=\"user\"} 1.5
# HELP system_processes_count Processes.
# TYPE system_processes_count untyped
system_processes_count{status=\"running\"} 3
# HELP process_memory_usage_bytes RSS.
# TYPE process_memory_usage_bytes gauge
process_memory_usage_bytes{process_pid=\"7\",process_executable_name=\"a\\\\b\\n\\\"c\\\"\"} 4096
# HELP x_weird_ratio Odd values.
# TYPE x_weird_ratio gauge
x_weird_ratio NaN
x_weird_ratio +Inf
x_weird_ratio 0.000000001
";
        assert_eq!(text, want);
    }
}
