//! Prometheus 2.53's OTLP → Prometheus name translation (`AddMetricSuffixes: true`), as in
//! `storage/remote/otlptranslator/prometheus/normalize_name.go` and `normalize_label.go`
//! (`shared/design/protocol-facts.md` §4.2). `/metrics` must already carry the names Prometheus
//! would have produced from our OTLP export, so one set of dashboards works for both.

use crate::export::model::Kind;

/// The Prometheus series name of an OTel metric.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();

    let (main_unit, per_unit) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    if !main_unit.is_empty() && !main_unit.contains(['{', '}']) {
        let mapped = unit_word(main_unit);
        let cleaned = clean_token(mapped);
        if !cleaned.is_empty() && !tokens.contains(&cleaned) {
            tokens.push(cleaned);
        }
    }
    if let Some(per) = per_unit.filter(|p| !p.is_empty() && !p.contains(['{', '}'])) {
        let cleaned = clean_token(per_unit_word(per));
        if !cleaned.is_empty() && !tokens.contains(&cleaned) {
            tokens.push("per".to_owned());
            tokens.push(cleaned);
        }
    }
    match kind {
        Kind::Sum { monotonic: true } => {
            tokens.retain(|t| t != "total");
            tokens.push("total".to_owned());
        }
        Kind::Gauge if unit == "1" => {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".to_owned());
        }
        _ => {}
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A Prometheus label name from an attribute key.
pub fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    push_label_name(&mut out, key);
    out
}

/// Appends the label name of `key` to `out` (no allocation: the render loop's version).
pub fn push_label_name(out: &mut String, key: &str) {
    let sanitized = |c: char| if c.is_ascii_alphanumeric() { c } else { '_' };
    let mut chars = key.chars().map(sanitized).peekable();
    match chars.peek() {
        Some(c) if c.is_ascii_digit() => out.push_str("key_"),
        Some('_') if !key.chars().map(sanitized).take(2).eq("__".chars()) => out.push_str("key"),
        _ => {}
    }
    out.extend(chars);
}

fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// A unit word with every run of non-alphanumerics removed at the ends and replaced by `_`
/// inside (2.53's `CleanUpString`).
fn clean_token(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Kind = Kind::Gauge;
    const C: Kind = Kind::Sum { monotonic: true };
    const U: Kind = Kind::Sum { monotonic: false };

    /// Every row of protocol-facts §4.4 (profile v0) plus the §4.4 "other examples".
    #[test]
    fn worked_table() {
        let rows = [
            ("system.cpu.time", "s", C, "system_cpu_time_seconds_total"),
            (
                "system.cpu.utilization",
                "1",
                G,
                "system_cpu_utilization_ratio",
            ),
            (
                "system.cpu.load_average.1m",
                "{thread}",
                G,
                "system_cpu_load_average_1m",
            ),
            (
                "system.cpu.load_average.5m",
                "{thread}",
                G,
                "system_cpu_load_average_5m",
            ),
            (
                "system.cpu.load_average.15m",
                "{thread}",
                G,
                "system_cpu_load_average_15m",
            ),
            ("system.memory.usage", "By", U, "system_memory_usage_bytes"),
            (
                "system.memory.utilization",
                "1",
                G,
                "system_memory_utilization_ratio",
            ),
            ("system.memory.limit", "By", U, "system_memory_limit_bytes"),
            (
                "system.filesystem.usage",
                "By",
                U,
                "system_filesystem_usage_bytes",
            ),
            (
                "system.filesystem.utilization",
                "1",
                G,
                "system_filesystem_utilization_ratio",
            ),
            ("system.disk.io", "By", C, "system_disk_io_bytes_total"),
            (
                "system.disk.operations",
                "{operations}",
                C,
                "system_disk_operations_total",
            ),
            (
                "system.network.io",
                "By",
                C,
                "system_network_io_bytes_total",
            ),
            (
                "system.network.errors",
                "{errors}",
                C,
                "system_network_errors_total",
            ),
            (
                "system.network.dropped",
                "{packets}",
                C,
                "system_network_dropped_total",
            ),
            ("system.uptime", "s", G, "system_uptime_seconds"),
            (
                "system.processes.count",
                "{processes}",
                U,
                "system_processes_count",
            ),
            ("process.cpu.time", "s", C, "process_cpu_time_seconds_total"),
            (
                "process.cpu.utilization",
                "1",
                G,
                "process_cpu_utilization_ratio",
            ),
            (
                "process.memory.usage",
                "By",
                U,
                "process_memory_usage_bytes",
            ),
            (
                "process.memory.virtual",
                "By",
                U,
                "process_memory_virtual_bytes",
            ),
            (
                "system.network.packet.dropped",
                "{packet}",
                C,
                "system_network_packet_dropped_total",
            ),
            (
                "system.process.count",
                "{process}",
                U,
                "system_process_count",
            ),
            ("process.uptime", "s", G, "process_uptime_seconds"),
            (
                "system.cpu.frequency",
                "Hz",
                G,
                "system_cpu_frequency_hertz",
            ),
            ("x.rate", "By/s", G, "x_rate_bytes_per_second"),
            ("x.updown", "1", U, "x_updown"),
            ("hw.temperature", "Cel", G, "hw_temperature_celsius"),
            ("requests.total", "", C, "requests_total"),
            ("my.ratio", "1", G, "my_ratio"),
            ("latency.seconds", "s", G, "latency_seconds"),
            ("9lives", "", G, "_9lives"),
            ("rmm_agent.build.info", "", G, "rmm_agent_build_info"),
            (
                "rmm_agent.collector.errors",
                "{errors}",
                C,
                "rmm_agent_collector_errors_total",
            ),
        ];
        for (name, unit, kind, want) in rows {
            assert_eq!(metric_name(name, unit, kind), want, "{name} [{unit}]");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            label_name("process.executable.name"),
            "process_executable_name"
        );
        assert_eq!(label_name("host.id"), "host_id");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved"), "__reserved");
        assert_eq!(label_name("a-b/c"), "a_b_c");
    }
}
