//! OTLP on the wire per collection cycle, next to the other exports of the same host
//! (`cargo bench -p rmm-agent --bench otlp_wire`):
//!
//! - bytes of one push (`ExportMetricsServiceRequest`, protobuf), plain and gzip-compressed
//!   (what is sent with the default `compression = "gzip"`), and of the `/metrics` text;
//! - series per host: data points in one push (each becomes one series), next to the samples
//!   node_exporter 1.9 exposes on the same host with its default collectors
//!   (`$RMM_TEST_NODE_EXPORTER` or `.tools/bin/node_exporter`);
//! - time to encode one push (SDK collection, conversion, protobuf) and to gzip it.
//!
//! Cycles are real collections 1 s apart; medians over `RMM_BENCH_CYCLES` cycles (default 15).
//! The default configuration applies (top 10 by CPU and by memory, no command lines).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmm_agent::collect::Collectors;
use rmm_agent::config::CollectConfig;
use rmm_agent::export::model::{self, ModelOptions};
use rmm_agent::export::otlp::encode::{Encoder, Identity};
use rmm_agent::export::otlp::transport::gzip;
use rmm_agent::export::prometheus;
use rmm_agent::host::{HostPaths, SystemConstants};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_exporter_path() -> PathBuf {
    std::env::var_os("RMM_TEST_NODE_EXPORTER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/node_exporter")
        })
}

/// Samples and bytes of node_exporter's `/metrics`, or why not.
fn node_exporter_scrape() -> Result<(usize, usize), String> {
    let bin = node_exporter_path();
    if !bin.is_file() {
        return Err(format!(
            "node_exporter not found at {} (run deploy/install-test-tools.sh)",
            bin.display()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let _child = Kill(
        Command::new(&bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(body) = get(addr) {
            let samples = body
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count();
            return Ok((samples, body.len()));
        }
        if Instant::now() > deadline {
            return Err("node_exporter did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept-Encoding: identity\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no body"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_owned(),
        ));
    }
    Ok(body.to_owned())
}

fn main() {
    let cycles: usize = std::env::var("RMM_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .max(1);
    let config = CollectConfig::default();
    let mut collectors = Collectors::new(&config, &HostPaths::default(), SystemConstants::detect());
    collectors.prime();
    let mut encoder = Encoder::new(Identity {
        service_instance_id: Some("0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10".into()),
        attributes: [
            ("agent", "0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10"),
            ("client", "Acme Corp"),
            ("host", "web-1"),
            ("site", "HQ"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        host_from_host_name: false,
    });
    let (mut plain, mut gz, mut text, mut points, mut enc_us, mut gz_us) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_secs(1));
        let snapshot = collectors.collect();
        let metrics = Arc::new(model::from_snapshot(&snapshot, ModelOptions::default()));
        let t = Instant::now();
        let request = encoder.request(Arc::clone(&metrics));
        let bytes = prost::Message::encode_to_vec(&request);
        enc_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let compressed = gzip(&bytes);
        gz_us.push(t.elapsed().as_secs_f64() * 1e6);
        plain.push(bytes.len() as f64);
        gz.push(compressed.len() as f64);
        text.push(prometheus::render(&metrics).len() as f64);
        let n: usize = metrics.families.iter().map(|f| f.points.len()).sum();
        points.push(n as f64);
    }
    let families = {
        let snapshot = collectors.collect();
        model::from_snapshot(&snapshot, ModelOptions::default())
            .families
            .len()
    };
    println!("OTLP per collection cycle, medians of {cycles} cycles (default config, top 10):");
    println!(
        "  push, protobuf            {:>9.0} B",
        median(plain.clone())
    );
    println!("  push, protobuf + gzip     {:>9.0} B", median(gz.clone()));
    println!(
        "  gzip ratio                {:>9.2}",
        median(plain) / median(gz)
    );
    println!("  /metrics text (same data) {:>9.0} B", median(text));
    println!("  encode (SDK + protobuf)   {:>9.0} µs", median(enc_us));
    println!("  gzip                      {:>9.0} µs", median(gz_us));
    let series = median(points);
    println!(
        "series per host: rmm-agent {series:.0} data points in {families} families (+1 target_info)"
    );
    match node_exporter_scrape() {
        Ok((samples, bytes)) => println!(
            "                 node_exporter 1.9 {samples} samples, {bytes} B of /metrics text (default collectors); agent / node_exporter = {:.2}",
            series / samples as f64
        ),
        Err(why) => println!("                 node_exporter: not measured: {why}"),
    }
}
