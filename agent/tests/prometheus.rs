//! The `/metrics` endpoint against the real Prometheus 2.53 tools: `promtool check metrics`
//! lints the exposition, and a real Prometheus scrapes the agent and must return every series
//! family of protocol-facts §4.4 (profile v0) through its HTTP API.
//!
//! Host-dependent families: `hw_temperature_celsius` only exists where the host exposes hwmon
//! or thermal-zone sensors, and `system_paging_*` only where swap is configured (the CI VM has
//! neither); the test requires them exactly when the host has them.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Families beyond the table that the agent also exposes on every host.
const EXTRA_FAMILIES: &[&str] = &[
    "system_network_packets_total",
    "system_disk_io_time_seconds_total",
    "system_disk_operation_time_seconds_total",
    "system_disk_pending_operations",
    "process_threads",
    "rmm_agent_build_info",
    "rmm_agent_collection_duration_seconds",
    "rmm_agent_collections_total",
    "rmm_agent_collector_errors_total",
    "rmm_agent_collector_duration_seconds",
];

fn host_has_temperature_sensors() -> bool {
    let has = |dir: &str, pred: &dyn Fn(&str) -> bool| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| pred(&f.file_name().to_string_lossy()))
            })
    };
    has("/sys/class/hwmon", &|n| {
        n.starts_with("temp") && n.ends_with("_input")
    }) || has("/sys/class/thermal", &|n| n == "temp")
}

fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|t| t.lines().count() > 1)
        .unwrap_or(false)
}

fn expected_families() -> Vec<&'static str> {
    let mut all: Vec<&str> = TABLE_FAMILIES
        .iter()
        .chain(&["target_info"])
        .chain(EXTRA_FAMILIES)
        .copied()
        .collect();
    if host_has_temperature_sensors() {
        all.push("hw_temperature_celsius");
    }
    if host_has_swap() {
        all.extend([
            "system_paging_usage_bytes",
            "system_paging_utilization_ratio",
        ]);
    }
    all
}

#[test]
fn promtool_accepts_the_exposition_with_and_without_command_lines() {
    let agent = RunningAgent::start(&[]);
    agent.wait_for_collections(2);
    let text = agent.metrics();
    promtool_check(&text);
    let samples = parse_metrics(&text);
    for family in expected_families() {
        assert!(samples.iter().any(|s| s.name == family), "{family} missing");
    }
    // No labels that service discovery owns, and target_info has host facts only.
    for s in &samples {
        for forbidden in ["job", "instance", "client", "site", "host", "agent"] {
            assert!(!s.labels.contains_key(forbidden), "{s:?}");
        }
    }
    let info = samples.iter().find(|s| s.name == "target_info").unwrap();
    assert!(info.labels.contains_key("host_name") && info.labels.contains_key("os_type"));
    assert!(info.labels.contains_key("service_version"));
    assert!(!info.labels.contains_key("service_name"));
    assert!(!samples
        .iter()
        .any(|s| s.labels.contains_key("process_command_line")));

    let agent = RunningAgent::start(&[("RMM_AGENT_COLLECT_COMMAND_LINE", "true")]);
    let text = agent.metrics();
    promtool_check(&text);
    let samples = parse_metrics(&text);
    let with_cmd = samples
        .iter()
        .filter(|s| s.name == "process_memory_usage_bytes")
        .filter(|s| s.labels.contains_key("process_command_line"))
        .count();
    assert!(with_cmd > 0);
}

#[test]
fn real_prometheus_scrapes_every_family() {
    let prometheus = tool("prometheus", "RMM_TEST_PROMETHEUS");
    let agent = RunningAgent::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: rmm-agent\n    static_configs:\n      - targets: ['{}']\n",
            agent.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = ChildGuard::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let api = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let query = |q: &str| -> Option<serde_json::Value> {
        let (status, body) =
            http_get(api, &format!("/api/v1/query?query={}", urlencode(q))).ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let expected = expected_families();
    let mut missing = expected.clone();
    let got = poll(Duration::from_secs(45), Duration::from_millis(500), || {
        let v = query(r#"count by (__name__) ({job="rmm-agent"})"#)?;
        let names: Vec<String> = v["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|r| r["metric"]["__name__"].as_str().map(str::to_owned))
            .collect();
        missing = expected
            .iter()
            .copied()
            .filter(|f| !names.iter().any(|n| n == f))
            .collect();
        missing.is_empty().then_some(names)
    });
    assert!(
        got.is_some(),
        "families missing from Prometheus: {missing:?}"
    );

    // The scrape was healthy, and no scraped label clashed with a target label.
    let up = query(r#"up{job="rmm-agent"}"#).unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1");
    let clashes = query(
        r#"count({job="rmm-agent", exported_job!=""} or {job="rmm-agent", exported_instance!=""})"#,
    )
    .unwrap();
    assert_eq!(clashes["data"]["result"].as_array().unwrap().len(), 0);
    // The host-facts join of protocol-facts §4.3 works.
    let joined = query(r#"system_memory_limit_bytes * on (job, instance) group_left (host_name, os_type) target_info"#).unwrap();
    let series = &joined["data"]["result"][0]["metric"];
    assert_eq!(series["os_type"], "linux", "{joined}");
    // The untyped processes family is stored and queryable like a gauge.
    let procs = query(r#"sum(system_processes_count{job="rmm-agent"})"#).unwrap();
    let n: f64 = procs["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 1.0);
}
