//! The OTLP path against a real OTLP backend. Debian's Prometheus 2.53 has its OTLP receiver
//! compiled out, so the backend is VictoriaMetrics (`-opentelemetry.usePrometheusNaming`, which
//! applies the same OTLP → Prometheus name translation) serving the Prometheus query API.
//!
//! - Parity: one agent both pushes OTLP and is scraped by the same VictoriaMetrics, whose scrape
//!   configuration is `deploy/prometheus/otlp-example.yml` (job `rmm-agent` with the target
//!   labels the control plane's service discovery sets; only the target address and the
//!   interval are substituted). For every family of protocol-facts §4.4 the label names, and
//!   the label values of every series (process churn aside), must match. `promtool check
//!   config` (Prometheus 2.53) accepts the same file, and a real Prometheus 2.53 scrapes the
//!   agent with it.
//! - Outage: the backend is stopped for 30 s while the agent runs at a 1 s interval, then
//!   started again; the pushed samples must cover the outage with no gap above two intervals,
//!   collection must not stall, and the buffer must stay within its configured size.
//!
//! What VictoriaMetrics 1.112 does differently from Prometheus 2.53's OTLP receiver (documented
//! in `deploy/prometheus/otlp-example.yml`): it turns *every* resource attribute into a label on
//! every series (`host_name`, `os_type`, `service_version`, …, `service_name`,
//! `service_instance_id`), derives no `job`/`instance` from `service.*`, and writes no
//! `target_info`. The comparison applies Prometheus 2.53's rule itself (`job` = `service_name`,
//! `instance` = `service_instance_id`) and ignores the other resource labels; the data-point
//! labels, which are what the agent controls, must match exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const INSTANCE: &str = "0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10";
const IDENTITY: [(&str, &str); 4] = [
    ("agent", INSTANCE),
    ("client", "Acme Corp"),
    ("host", "web-1"),
    ("site", "HQ"),
];

/// Resource attributes VictoriaMetrics adds as labels to pushed series (Prometheus 2.53 puts
/// them only on target_info, and turns `service.*` into `job`/`instance`).
const RESOURCE_LABELS: &[&str] = &[
    "host_name",
    "host_id",
    "host_arch",
    "os_type",
    "os_version",
    "os_description",
    "service_version",
    "service_name",
    "service_instance_id",
];

struct Victoria {
    child: Option<ChildGuard>,
    port: u16,
    data: std::path::PathBuf,
    scrape_config: Option<std::path::PathBuf>,
}

impl Victoria {
    fn start(dir: &Path, scrape_config: Option<std::path::PathBuf>) -> Self {
        let mut v = Self {
            child: None,
            port: free_port(),
            data: dir.join("vm-data"),
            scrape_config,
        };
        v.launch();
        v
    }

    fn launch(&mut self) {
        let bin = tool("victoria-metrics", "RMM_TEST_VICTORIA_METRICS");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg("-opentelemetry.usePrometheusNaming")
            .arg("-retentionPeriod=1d")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR")
            // The example is a Prometheus file: VictoriaMetrics would refuse its storage section.
            .arg("-promscrape.config.strictParse=false")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(c) = &self.scrape_config {
            cmd.arg(format!("-promscrape.config={}", c.display()));
        }
        self.child = Some(ChildGuard::spawn(&mut cmd));
        let up = poll(Duration::from_secs(20), Duration::from_millis(100), || {
            matches!(http_get(self.addr(), "/health"), Ok((200, _))).then_some(())
        });
        assert!(up.is_some(), "VictoriaMetrics did not start");
    }

    /// Graceful stop (SIGTERM), so its data is on disk for the restart.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.pid() as i32, libc::SIGTERM) };
            let _ = c.0.wait();
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn otlp_endpoint(&self) -> String {
        format!("http://{}/opentelemetry", self.addr())
    }

    fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.addr(), path).ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// Label sets of the series matching `selector` in the last `window_s` seconds.
    fn series(&self, selector: &str, window_s: u64) -> Vec<BTreeMap<String, String>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let path = format!(
            "/api/v1/series?match[]={}&start={}&end={}",
            urlencode(selector),
            now - window_s,
            now + 1
        );
        let Some(v) = self.get_json(&path) else {
            return Vec::new();
        };
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        s.as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Instant query → (labels, value) per series.
    fn query(&self, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let Some(v) = self.get_json(&format!("/api/v1/query?query={}", urlencode(q))) else {
            return Vec::new();
        };
        v["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let labels = r["metric"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect();
                        let value = r["value"][1].as_str().unwrap().parse().unwrap();
                        (labels, value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Raw sample timestamps (ms) of one series, via VictoriaMetrics's export API.
    fn sample_times(&self, selector: &str) -> Vec<i64> {
        let path = format!("/api/v1/export?match[]={}", urlencode(selector));
        let Ok((200, body)) = http_get(self.addr(), &path) else {
            return Vec::new();
        };
        let mut times: Vec<i64> = body
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|v| {
                v["timestamps"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.as_i64())
            })
            .collect();
        times.sort();
        times.dedup();
        times
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        self.stop();
    }
}

fn identity_attributes() -> String {
    IDENTITY
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20")))
        .collect::<Vec<_>>()
        .join(",")
}

fn otlp_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("RMM_AGENT_OTLP_ENABLED", "true".into()),
        ("RMM_AGENT_OTLP_ENDPOINT", endpoint.into()),
        ("RMM_AGENT_OTLP_ATTRIBUTES", identity_attributes()),
        ("RMM_AGENT_OTLP_SERVICE_INSTANCE_ID", INSTANCE.into()),
    ]
}

/// Selects the pushed series: VictoriaMetrics keeps `service.name` as a label (no `job`).
const PUSHED: &str = r#"service_name="rmm-agent""#;
/// Selects the scraped series (VictoriaMetrics gives pushed ones no `job`).
const SCRAPED: &str = r#"job="rmm-agent""#;

fn example_config() -> std::path::PathBuf {
    repo_root().join("deploy/prometheus/otlp-example.yml")
}

#[test]
fn promtool_accepts_the_example_config() {
    let promtool = tool("promtool", "RMM_TEST_PROMTOOL");
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(example_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The series of one path, labels normalised for comparison: `instance` as Prometheus 2.53
/// derives it from `service.instance.id`, then `job` and VictoriaMetrics's resource labels
/// removed.
fn normalised(series: Vec<BTreeMap<String, String>>) -> BTreeSet<BTreeMap<String, String>> {
    series
        .into_iter()
        .map(|mut s| {
            if let Some(id) = s.get("service_instance_id").cloned() {
                assert!(s.insert("instance".into(), id).is_none(), "{s:?}");
            }
            s.remove("job");
            for l in RESOURCE_LABELS {
                s.remove(*l);
            }
            s
        })
        .collect()
}

fn is_process_family(name: &str) -> bool {
    name.starts_with("process_")
}

/// The example with its target pointed at a running agent, scraping every second.
fn example_for(agent: SocketAddr) -> String {
    let example = std::fs::read_to_string(example_config()).unwrap();
    for (k, v) in IDENTITY {
        assert!(
            example.contains(&format!("{k}: \"{v}\"")),
            "example labels {k}"
        );
    }
    let config = example
        .replace("127.0.0.1:9464", &agent.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("scrape_timeout: 10s", "scrape_timeout: 1s");
    assert_ne!(config, example);
    config
}

/// Prometheus 2.53 itself runs the example (its scrape half: Debian's build cannot receive
/// OTLP) and stores the agent's series with the service-discovery labels of the example.
#[test]
fn real_prometheus_scrapes_with_the_example_config() {
    let prometheus = tool("prometheus", "RMM_TEST_PROMETHEUS");
    let agent = RunningAgent::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, example_for(agent.addr)).unwrap();
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
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    let series = poll(Duration::from_secs(30), Duration::from_millis(500), || {
        let q = urlencode(r#"system_memory_limit_bytes{job="rmm-agent"}"#);
        let (status, body) = http_get(api, &format!("/api/v1/query?query={q}")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let metric = v["data"]["result"].get(0)?["metric"].clone();
        (status == 200).then_some(metric)
    })
    .expect("Prometheus scraped the agent with the example config");
    assert_eq!(series["instance"], INSTANCE);
    for (k, v) in IDENTITY {
        assert_eq!(series[k], v, "{series}");
    }
}

#[test]
fn pushed_and_scraped_series_have_the_same_names_labels_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let agent_port = free_port();
    let scrape = dir.path().join("scrape.yml");
    let config = example_for(SocketAddr::from(([127, 0, 0, 1], agent_port)));
    std::fs::write(&scrape, config).unwrap();
    let vm = &Victoria::start(dir.path(), Some(scrape));
    let env = otlp_env(&vm.otlp_endpoint());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listen = format!("127.0.0.1:{agent_port}");
    env.push(("RMM_AGENT_PROMETHEUS_LISTEN", &listen));
    let _agent = start_agent(&env, None);

    // Both paths have every family.
    let mut missing = Vec::new();
    let ready = poll(Duration::from_secs(40), Duration::from_millis(500), || {
        missing = TABLE_FAMILIES
            .iter()
            .flat_map(|f| {
                [PUSHED, SCRAPED]
                    .into_iter()
                    .filter(move |sel| vm.series(&format!("{f}{{{sel}}}"), 60).is_empty())
                    .map(move |sel| format!("{f}{{{sel}}}"))
            })
            .collect();
        missing.is_empty().then_some(())
    });
    assert!(ready.is_some(), "missing in VictoriaMetrics: {missing:?}");
    // Let the top lists settle into the same recent window on both paths.
    std::thread::sleep(Duration::from_secs(2));

    let mut vm_only = BTreeSet::new();
    for family in TABLE_FAMILIES {
        // The latest samples only (a 3 s window), so that series of processes that left the
        // top list long ago do not count.
        let pushed = vm.series(&format!("{family}{{{PUSHED}}}"), 3);
        let scraped = vm.series(&format!("{family}{{{SCRAPED}}}"), 3);
        vm_only.extend(
            pushed
                .iter()
                .flat_map(|s| s.keys().cloned())
                .filter(|k| RESOURCE_LABELS.contains(&k.as_str())),
        );
        let (pushed, scraped) = (normalised(pushed), normalised(scraped));
        let names = |s: &BTreeSet<BTreeMap<String, String>>| -> BTreeSet<String> {
            s.iter().flat_map(|m| m.keys().cloned()).collect()
        };
        assert_eq!(names(&pushed), names(&scraped), "{family}: label names");
        for s in pushed.iter().chain(&scraped) {
            assert_eq!(s["instance"], INSTANCE, "{family}: {s:?}");
            for (k, v) in IDENTITY {
                assert_eq!(s[k], v, "{family}: {s:?}");
            }
        }
        if is_process_family(family) {
            // Processes come and go between a push and a scrape; the remainder and most
            // processes are on both.
            let common = pushed.intersection(&scraped).count();
            assert!(
                common * 2 >= pushed.len().max(scraped.len()),
                "{family}: only {common} of {} / {} series in common",
                pushed.len(),
                scraped.len()
            );
            assert!(
                pushed
                    .iter()
                    .any(|s| s["process_executable_name"] == "other"
                        && s.get("process_pid").is_none())
            );
        } else {
            assert_eq!(pushed, scraped, "{family}: label sets");
        }
    }
    eprintln!("labels VictoriaMetrics adds to pushed series from the Resource: {vm_only:?}");

    // Values: exact for what does not move, close for what does.
    let pair = |q: &str| -> (f64, f64) {
        let get = |sel: &str| {
            let r = vm.query(&q.replace("SEL", sel));
            assert_eq!(r.len(), 1, "{q} @ {sel}: {r:?}");
            r[0].1
        };
        (get(PUSHED), get(SCRAPED))
    };
    let (a, b) = pair(r#"sum(system_memory_limit_bytes{SEL})"#);
    assert_eq!(a, b, "memory limit");
    let (a, b) = pair(r#"count(system_cpu_time_seconds_total{SEL})"#);
    assert_eq!(a, b, "cpu time series");
    let (a, b) = pair(r#"max(rmm_agent_build_info{SEL})"#);
    assert_eq!((a, b), (1.0, 1.0));
    let (a, b) = pair(r#"max(system_uptime_seconds{SEL})"#);
    assert!((a - b).abs() < 3.0, "uptime {a} vs {b}");
    let (a, b) = pair(r#"sum(system_cpu_time_seconds_total{SEL})"#);
    assert!((a - b).abs() < 3.0 * logical_cpus(), "cpu time {a} vs {b}");
    let (a, b) = pair(r#"sum(system_filesystem_usage_bytes{SEL})"#);
    assert!(
        (a - b).abs() / a.max(1.0) < 0.01,
        "filesystem usage {a} vs {b}"
    );
}

/// Starts `rmm-agent run` at a 1 s interval; stderr to `log` if given.
fn start_agent(env: &[(&str, &str)], log: Option<&Path>) -> RunningAgent {
    let addr: SocketAddr = match env
        .iter()
        .find(|(k, _)| *k == "RMM_AGENT_PROMETHEUS_LISTEN")
    {
        Some((_, v)) => v.parse().unwrap(),
        None => SocketAddr::from(([127, 0, 0, 1], free_port())),
    };
    let mut cmd = agent_command();
    cmd.arg("run")
        .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
        .env("RMM_AGENT_PROMETHEUS_LISTEN", addr.to_string())
        .stdout(Stdio::null());
    match log {
        Some(path) => cmd.stderr(std::fs::File::create(path).unwrap()),
        None => cmd.stderr(Stdio::null()),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    let agent = RunningAgent {
        child: ChildGuard::spawn(&mut cmd),
        addr,
    };
    agent.wait_for_collections(1);
    agent
}

fn scalar(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .value
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn a_30_second_backend_outage_leaves_no_gap() {
    const BUFFER_MAX: u64 = 1 << 20;
    const OUTAGE: Duration = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Victoria::start(dir.path(), None);
    let log = dir.path().join("agent.log");
    let env = otlp_env(&vm.otlp_endpoint());
    let max = BUFFER_MAX.to_string();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RMM_AGENT_OTLP_BUFFER_MAX_BYTES", &max));
    env.push(("RMM_AGENT_OTLP_TIMEOUT", "2s"));
    let agent = start_agent(&env, Some(&log));
    let selector = &format!("rmm_agent_collections_total{{{PUSHED}}}");
    let flowing = poll(Duration::from_secs(20), Duration::from_millis(250), || {
        (vm.sample_times(selector).len() >= 3).then_some(())
    });
    assert!(flowing.is_some(), "no pushes reached VictoriaMetrics");

    let rss_before = rss_bytes(agent.child.pid());
    vm.stop();
    let outage_start = Instant::now();
    let mut seen = Vec::new();
    let mut max_buffer = 0.0_f64;
    let mut max_rss = rss_before;
    while outage_start.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_secs(1));
        let samples = parse_metrics(&agent.metrics());
        seen.push(scalar(&samples, "rmm_agent_collections_total"));
        max_buffer = max_buffer.max(scalar(&samples, "rmm_agent_otlp_buffer_bytes"));
        max_rss = max_rss.max(rss_bytes(agent.child.pid()));
    }
    let during = parse_metrics(&agent.metrics());
    // Collection went on at its pace: about one cycle per second, never stuck.
    let cycles = seen.last().unwrap() - seen.first().unwrap();
    assert!(
        cycles >= OUTAGE.as_secs_f64() - 4.0,
        "only {cycles} cycles in {OUTAGE:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "a stalled cycle: {seen:?}"
    );
    assert!(scalar(&during, "rmm_agent_otlp_export_failures_total") > 0.0);
    assert!(scalar(&during, "rmm_agent_otlp_buffer_pushes") >= 25.0);
    assert!(
        max_buffer > 0.0 && max_buffer <= BUFFER_MAX as f64,
        "buffer {max_buffer}"
    );

    vm.launch();
    let drained = poll(Duration::from_secs(30), Duration::from_millis(250), || {
        let s = parse_metrics(&agent.metrics());
        (scalar(&s, "rmm_agent_otlp_buffer_pushes") == 0.0).then_some(())
    });
    assert!(drained.is_some(), "the buffer did not drain");
    let after = parse_metrics(&agent.metrics());
    assert_eq!(scalar(&after, "rmm_agent_otlp_buffer_dropped_total"), 0.0);

    // The samples cover the outage: no gap above two intervals from the first sample on.
    let mut worst = 0;
    let covered = poll(Duration::from_secs(20), Duration::from_millis(500), || {
        let times = vm.sample_times(selector);
        let span = times.last()? - times.first()?;
        worst = times.windows(2).map(|w| w[1] - w[0]).max()?;
        (span >= (OUTAGE.as_millis() as i64) && worst <= 2_000).then_some(times.len())
    });
    assert!(
        covered.is_some(),
        "gap of {worst} ms in the pushed samples (at most 2000 ms allowed)"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("OTLP receiver unreachable").count(), 1, "{log}");
    assert_eq!(
        log.matches("OTLP receiver reachable again").count(),
        1,
        "{log}"
    );
    eprintln!(
        "outage: {} samples, worst gap {worst} ms, buffer peak {max_buffer} B, RSS {} -> {} KiB",
        covered.unwrap(),
        rss_before / 1024,
        max_rss / 1024
    );
    // The process grew by no more than the buffer plus allocator slack.
    assert!(
        max_rss <= rss_before + BUFFER_MAX + (8 << 20),
        "RSS grew from {rss_before} to {max_rss}"
    );
}
