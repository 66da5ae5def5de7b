//! Helpers for the integration tests: the real `rmm-agent` binary on a free loopback port,
//! child processes that die with the test, a minimal HTTP client, the real tools.
#![allow(dead_code)]

pub mod control_plane;
pub mod update;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}")),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rmm-agent")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent binary with no inherited `RMM_AGENT_*` variables.
pub fn agent_command() -> Command {
    let mut cmd = Command::new(agent_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("RMM_AGENT_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// `rmm-agent collect --once --format <format>` with extra env, returning its output.
pub fn collect_once(format: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = agent_command();
    cmd.args(["collect", "--once", "--format", format]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running rmm-agent collect");
    assert!(
        out.status.success(),
        "collect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running `rmm-agent run` at a 1 s interval on a free port.
pub struct RunningAgent {
    pub child: ChildGuard,
    pub addr: SocketAddr,
}

impl RunningAgent {
    pub fn start(extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut cmd = agent_command();
        cmd.arg("run")
            .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
            .env("RMM_AGENT_PROMETHEUS_LISTEN", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let agent = Self {
            child: ChildGuard::spawn(&mut cmd),
            addr,
        };
        agent.wait_for_collections(1);
        agent
    }

    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.addr, "/metrics").expect("scraping /metrics");
        assert_eq!(status, 200);
        body
    }

    /// Waits until `rmm_agent_collections_total` reaches `n`.
    pub fn wait_for_collections(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, body)) = http_get(self.addr, "/metrics") {
                let got = parse_metrics(&body)
                    .iter()
                    .find(|s| s.name == "rmm_agent_collections_total")
                    .map(|s| s.value as u64)
                    .unwrap_or(0);
                if got >= n {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "agent did not reach {n} collections"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET path` over HTTP/1.1, returning status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
}

/// Parses the samples (not the comments) of a text exposition. Good enough for our output:
/// label values may contain escaped quotes, commas and spaces.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').unwrap()),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 2;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        chars.next(); // opening quote
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => {}
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &rest[end..];
        }
        let value = match rest.trim() {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// A real tool: `$env_var`, else `<repo>/.tools/bin/<name>`. Panics naming the installer when
/// missing: a test never passes without the part it names.
pub fn tool(name: &str, env_var: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin").join(name));
    assert!(
        path.is_file(),
        "{name} not found at {} (set {env_var} or run deploy/install-test-tools.sh)",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Logical CPUs as the agent counts them.
pub fn logical_cpus() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as f64
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Runs `promtool check metrics` (Prometheus 2.53 lint) on `text`; panics with its complaints.
pub fn promtool_check(text: &str) {
    let mut child = Command::new(tool("promtool", "RMM_TEST_PROMTOOL"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric family of protocol-facts §4.4 (v0 names), `target_info` aside: it is no
/// metric of the host, and an OTLP backend such as VictoriaMetrics writes none.
pub const TABLE_FAMILIES: &[&str] = &[
    "system_cpu_time_seconds_total",
    "system_cpu_utilization_ratio",
    "system_cpu_load_average_1m",
    "system_cpu_load_average_5m",
    "system_cpu_load_average_15m",
    "system_memory_usage_bytes",
    "system_memory_utilization_ratio",
    "system_memory_limit_bytes",
    "system_filesystem_usage_bytes",
    "system_filesystem_utilization_ratio",
    "system_disk_io_bytes_total",
    "system_disk_operations_total",
    "system_network_io_bytes_total",
    "system_network_errors_total",
    "system_network_dropped_total",
    "system_uptime_seconds",
    "system_processes_count",
    "process_cpu_time_seconds_total",
    "process_cpu_utilization_ratio",
    "process_memory_usage_bytes",
    "process_memory_virtual_bytes",
];
