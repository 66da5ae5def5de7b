//! The real agent binary pushing OTLP to receivers built in the test: OTLP/gRPC on
//! `opentelemetry-proto`'s tonic server types, OTLP/HTTP on a small hyper server decoding with
//! prost. Each asserts the decoded names, units, types, temporality, attributes and values, and
//! that the pushed families are exactly those `/metrics` shows (after Prometheus's translation).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as PointValue;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Metric, NumberDataPoint};
use prost::Message;
use rmm_agent::export::model::Kind;
use rmm_agent::export::prometheus::translate;

use common::*;

/// What a receiver got: the request and the headers (HTTP headers or gRPC metadata).
struct Received {
    request: ExportMetricsServiceRequest,
    headers: BTreeMap<String, String>,
}

const INSTANCE: &str = "0191f0d2-7c1e-7b4e-9a51-3f0e6b1f2a10";
const IDENTITY: [(&str, &str); 4] = [
    ("agent", INSTANCE),
    ("client", "Acme Corp"),
    ("host", "web-1"),
    ("site", "HQ"),
];

fn runtime_thread(f: impl FnOnce(tokio::runtime::Runtime) + Send + 'static) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        f(rt)
    });
}

struct Grpc(mpsc::Sender<Received>);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                }
                _ => None,
            })
            .collect();
        let _ = self.0.send(Received {
            request: request.into_inner(),
            headers,
        });
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn grpc_receiver() -> (SocketAddr, mpsc::Receiver<Received>) {
    grpc_receiver_on(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
}

fn grpc_receiver_on(listener: std::net::TcpListener) -> (SocketAddr, mpsc::Receiver<Received>) {
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    runtime_thread(move |rt| {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(
                    MetricsServiceServer::new(Grpc(tx))
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        })
    });
    (addr, rx)
}

/// An OTLP/HTTP receiver; while `down` is set it answers 503 Service Unavailable.
fn http_receiver(down: Arc<AtomicBool>) -> (SocketAddr, mpsc::Receiver<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    runtime_thread(move |rt| {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                let down = Arc::clone(&down);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            let down = down.load(Ordering::SeqCst);
                            async move {
                                let ok = req.method() == hyper::Method::POST
                                    && req.uri().path() == "/v1/metrics";
                                let headers: BTreeMap<String, String> = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or_default().to_owned())
                                    })
                                    .collect();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let plain = if headers.get("content-encoding").map(String::as_str)
                                    == Some("gzip")
                                {
                                    let mut out = Vec::new();
                                    flate2::read::GzDecoder::new(&body[..])
                                        .read_to_end(&mut out)
                                        .unwrap();
                                    out
                                } else {
                                    body.to_vec()
                                };
                                let status =
                                    match (ok, ExportMetricsServiceRequest::decode(&plain[..])) {
                                        _ if down => 503,
                                        (true, Ok(request)) => {
                                            let _ = tx.send(Received { request, headers });
                                            200
                                        }
                                        _ => 400,
                                    };
                                let mut resp = hyper::Response::new(Full::new(Bytes::from(
                                    ExportMetricsServiceResponse::default().encode_to_vec(),
                                )));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                resp.headers_mut().insert(
                                    "content-type",
                                    hyper::header::HeaderValue::from_static(
                                        "application/x-protobuf",
                                    ),
                                );
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    });
    (addr, rx)
}

fn attr_text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attrs(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), attr_text(kv)))
        .collect()
}

fn points(m: &Metric) -> &[NumberDataPoint] {
    match m.data.as_ref().unwrap() {
        Data::Sum(s) => &s.data_points,
        Data::Gauge(g) => &g.data_points,
        other => panic!("{}: unexpected {other:?}", m.name),
    }
}

fn kind(m: &Metric) -> Kind {
    match m.data.as_ref().unwrap() {
        Data::Sum(s) => {
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32,
                "{} must be cumulative",
                m.name
            );
            Kind::Sum {
                monotonic: s.is_monotonic,
            }
        }
        Data::Gauge(_) => Kind::Gauge,
        other => panic!("{}: unexpected {other:?}", m.name),
    }
}

fn value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(PointValue::AsDouble(d)) => d,
        Some(PointValue::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

fn mem_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

/// (name, unit, kind, attribute keys besides the identity ones) the agent must push on any host.
const EXPECTED: &[(&str, &str, Kind, &[&str])] = &[
    (
        "system.cpu.time",
        "s",
        Kind::Sum { monotonic: true },
        &["cpu", "state"],
    ),
    (
        "system.cpu.utilization",
        "1",
        Kind::Gauge,
        &["cpu", "state"],
    ),
    ("system.cpu.load_average.1m", "{thread}", Kind::Gauge, &[]),
    (
        "system.memory.usage",
        "By",
        Kind::Sum { monotonic: false },
        &["state"],
    ),
    ("system.memory.utilization", "1", Kind::Gauge, &["state"]),
    (
        "system.memory.limit",
        "By",
        Kind::Sum { monotonic: false },
        &[],
    ),
    (
        "system.filesystem.usage",
        "By",
        Kind::Sum { monotonic: false },
        &["device", "mode", "mountpoint", "type", "state"],
    ),
    (
        "system.network.io",
        "By",
        Kind::Sum { monotonic: true },
        &["device", "direction"],
    ),
    ("system.uptime", "s", Kind::Gauge, &[]),
    (
        "system.processes.count",
        "{processes}",
        Kind::Sum { monotonic: false },
        &["status"],
    ),
    (
        "process.cpu.time",
        "s",
        Kind::Sum { monotonic: true },
        &[
            "state",
            "process.pid",
            "process.executable.name",
            "process.owner",
        ],
    ),
    (
        "process.cpu.utilization",
        "1",
        Kind::Gauge,
        &[
            "state",
            "process.pid",
            "process.executable.name",
            "process.owner",
        ],
    ),
    (
        "process.memory.usage",
        "By",
        Kind::Sum { monotonic: false },
        &["process.pid", "process.executable.name", "process.owner"],
    ),
    ("rmm_agent.build.info", "", Kind::Gauge, &["version"]),
    (
        "rmm_agent.collections",
        "{collections}",
        Kind::Sum { monotonic: true },
        &[],
    ),
    (
        "rmm_agent.otlp.exports",
        "{exports}",
        Kind::Sum { monotonic: true },
        &[],
    ),
    ("rmm_agent.otlp.buffer", "By", Kind::Gauge, &[]),
];

fn check_push(first: &Received, second: &Received) {
    let rm = &first.request.resource_metrics;
    assert_eq!(rm.len(), 1);
    let resource = attrs(&rm[0].resource.as_ref().unwrap().attributes);
    assert_eq!(resource["service.name"], "rmm-agent");
    assert_eq!(resource["service.instance.id"], INSTANCE);
    assert_eq!(resource["os.type"], "linux");
    assert!(!resource["host.name"].is_empty());
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    for (k, v) in IDENTITY {
        assert_eq!(resource[k], v, "resource {k}");
    }
    assert!(!resource.contains_key("job") && !resource.contains_key("instance"));
    let scope = &rm[0].scope_metrics;
    assert_eq!(scope.len(), 1);
    assert_eq!(scope[0].scope.as_ref().unwrap().name, "rmm-agent");
    let metrics = &scope[0].metrics;
    let by_name: BTreeMap<&str, &Metric> = metrics.iter().map(|m| (m.name.as_str(), m)).collect();
    assert_eq!(by_name.len(), metrics.len(), "each family once");
    for (name, unit, expected_kind, keys) in EXPECTED {
        let m = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} not pushed"));
        assert_eq!(m.unit, *unit, "{name} unit");
        assert_eq!(kind(m), *expected_kind, "{name} kind");
        assert!(!m.description.is_empty(), "{name} description");
        let pts = points(m);
        assert!(!pts.is_empty(), "{name} has points");
        for p in pts {
            let a = attrs(&p.attributes);
            let mut want: BTreeSet<&str> = keys.iter().copied().collect();
            want.extend(IDENTITY.iter().map(|(k, _)| *k));
            let got: BTreeSet<&str> = a.keys().map(String::as_str).collect();
            assert_eq!(got, want, "{name} attribute keys");
            for (k, v) in IDENTITY {
                assert_eq!(a[k], v);
            }
            assert!(p.time_unix_nano > 0 && value(p).is_finite(), "{name}");
        }
    }
    // Values.
    let limit = value(&points(by_name["system.memory.limit"])[0]);
    assert_eq!(limit, mem_total_bytes());
    let info = &points(by_name["rmm_agent.build.info"])[0];
    assert_eq!(value(info), 1.0);
    assert_eq!(
        attrs(&info.attributes)["version"],
        env!("CARGO_PKG_VERSION")
    );
    let cpus = points(by_name["system.cpu.time"])
        .iter()
        .map(|p| attrs(&p.attributes)["cpu"].clone())
        .collect::<BTreeSet<_>>();
    assert_eq!(cpus.len() as f64, logical_cpus());
    let util_sum: f64 = points(by_name["system.memory.utilization"])
        .iter()
        .map(value)
        .sum();
    assert!(
        (util_sum - 1.0).abs() < 0.05,
        "memory states sum to ~1: {util_sum}"
    );
    // Cumulative: the collection counter grows between pushes, its start time stays.
    let collections = |r: &Received| -> (f64, u64) {
        let m = r.request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == "rmm_agent.collections")
            .unwrap();
        let p = &points(m)[0];
        (value(p), p.start_time_unix_nano)
    };
    let (c1, s1) = collections(first);
    let (c2, s2) = collections(second);
    assert!(c2 > c1, "collections counter grows: {c1} then {c2}");
    assert!(s1 > 0 && s1 == s2, "cumulative start time is stable");
}

/// The Prometheus names (and label names) of the push equal those of `/metrics`.
fn check_same_families_as_scrape(push: &Received, scrape: &str) {
    let mut pushed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &push.request.resource_metrics[0].scope_metrics[0].metrics {
        let name = translate::metric_name(&m.name, &m.unit, kind(m));
        let labels = pushed.entry(name).or_default();
        for p in points(m) {
            for kv in &p.attributes {
                if !IDENTITY.iter().any(|(k, _)| *k == kv.key) {
                    labels.insert(translate::label_name(&kv.key));
                }
            }
        }
    }
    let mut scraped: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in parse_metrics(scrape) {
        if s.name == "target_info" {
            continue;
        }
        scraped
            .entry(s.name)
            .or_default()
            .extend(s.labels.into_keys());
    }
    assert_eq!(
        pushed.keys().collect::<Vec<_>>(),
        scraped.keys().collect::<Vec<_>>(),
        "the same families on both paths"
    );
    assert_eq!(pushed, scraped, "the same label names on both paths");
}

fn identity_env() -> String {
    IDENTITY
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20")))
        .collect::<Vec<_>>()
        .join(",")
}

fn run_against(
    protocol: &str,
    addr: SocketAddr,
    rx: mpsc::Receiver<Received>,
) -> (Received, Received) {
    let endpoint = format!("http://{addr}");
    let attributes = identity_env();
    let agent = RunningAgent::start(&[
        ("RMM_AGENT_OTLP_ENABLED", "true"),
        ("RMM_AGENT_OTLP_PROTOCOL", protocol),
        ("RMM_AGENT_OTLP_ENDPOINT", &endpoint),
        (
            "RMM_AGENT_OTLP_HEADERS",
            "authorization=Bearer%20s3cret,x-tenant=acme",
        ),
        ("RMM_AGENT_OTLP_ATTRIBUTES", &attributes),
        ("RMM_AGENT_OTLP_SERVICE_INSTANCE_ID", INSTANCE),
    ]);
    let recv = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a push within 20 s")
    };
    let first = recv();
    let second = recv();
    check_push(&first, &second);
    assert_eq!(first.headers["authorization"], "Bearer s3cret");
    assert_eq!(first.headers["x-tenant"], "acme");
    // /metrics of the same agent, taken between two pushes: process churn aside, the families
    // match; compare with the push that follows the scrape.
    let scrape = agent.metrics();
    let _ = recv();
    let after = recv();
    check_same_families_as_scrape(&after, &scrape);
    (first, after)
}

#[test]
fn grpc_push_decodes_with_the_expected_names_units_attributes_and_values() {
    let (addr, rx) = grpc_receiver();
    let (first, _) = run_against("grpc", addr, rx);
    assert_eq!(
        first.headers.get("grpc-encoding").map(String::as_str),
        Some("gzip")
    );
}

#[test]
fn http_protobuf_push_decodes_with_the_expected_names_units_attributes_and_values() {
    let (addr, rx) = http_receiver(Arc::new(AtomicBool::new(false)));
    let (first, _) = run_against("http/protobuf", addr, rx);
    assert_eq!(first.headers["content-type"], "application/x-protobuf");
    assert_eq!(first.headers["content-encoding"], "gzip");
}

fn collections(r: &Received) -> f64 {
    let m = r.request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "rmm_agent.collections")
        .expect("rmm_agent.collections pushed");
    value(&points(m)[0])
}

fn scalar(text: &str, name: &str) -> f64 {
    parse_metrics(text)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .value
}

/// While the receiver answers 503 the agent keeps collecting and queues pushes in its memory
/// buffer and then its disk directory, both capped; beyond them the oldest are dropped and
/// counted. When the receiver recovers, what was kept arrives in order, and the outage is
/// logged once when it starts and once when it ends.
#[test]
fn a_failing_receiver_gets_the_kept_pushes_in_order_and_the_oldest_beyond_the_caps_are_dropped() {
    const MEMORY: u64 = 12_000;
    const DISK: u64 = 20_000;
    let down = Arc::new(AtomicBool::new(true));
    let (addr, rx) = http_receiver(Arc::clone(&down));
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("otlp-buffer");
    let log = dir.path().join("agent.log");
    let port = free_port();
    let mut cmd = agent_command();
    cmd.arg("run")
        .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
        .env("RMM_AGENT_PROMETHEUS_LISTEN", format!("127.0.0.1:{port}"))
        .env("RMM_AGENT_OTLP_ENABLED", "true")
        .env("RMM_AGENT_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("RMM_AGENT_OTLP_BUFFER_MAX_BYTES", MEMORY.to_string())
        .env("RMM_AGENT_OTLP_BUFFER_DISK_DIR", &spill)
        .env("RMM_AGENT_OTLP_BUFFER_DISK_MAX_BYTES", DISK.to_string())
        .env("RMM_AGENT_CONTROL_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let agent = RunningAgent {
        child: ChildGuard::spawn(&mut cmd),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    agent.wait_for_collections(1);
    std::thread::sleep(Duration::from_secs(14));
    let during = agent.metrics();
    assert!(scalar(&during, "rmm_agent_otlp_export_failures_total") > 0.0);
    let dropped = scalar(&during, "rmm_agent_otlp_buffer_dropped_total");
    assert!(
        dropped >= 1.0,
        "14 pushes of a few kB exceed {MEMORY} + {DISK} bytes"
    );
    let buffered = scalar(&during, "rmm_agent_otlp_buffer_bytes");
    assert!(
        buffered > 0.0 && buffered <= (MEMORY + DISK) as f64,
        "buffer {buffered}"
    );
    let on_disk: u64 = std::fs::read_dir(&spill)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk > 0 && on_disk <= DISK, "disk {on_disk}");
    assert!(rx.try_recv().is_err(), "nothing accepted while down");

    down.store(false, Ordering::SeqCst);
    let kept = scalar(&during, "rmm_agent_otlp_buffer_pushes");
    let mut got = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(3)) {
        got.push(collections(&r));
        if got.len() as f64 >= kept + 3.0 {
            break;
        }
    }
    assert!(
        got.len() as f64 >= kept,
        "{} pushes after recovery, {kept} were kept",
        got.len()
    );
    assert!(got.windows(2).all(|w| w[1] > w[0]), "in order: {got:?}");
    assert!(
        // Pushes go out from the first cycle on: with `dropped` of them gone, the first one
        // sent after the outage is at least that many cycles in.
        got[0] > dropped,
        "the oldest were dropped: first sent {got:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("OTLP receiver unreachable").count(), 1, "{log}");
    assert_eq!(
        log.matches("OTLP receiver reachable again").count(),
        1,
        "{log}"
    );
}

/// `otlp.interval` longer than the collection interval: a push every few cycles, each with the
/// latest snapshot.
#[test]
fn otlp_interval_spaces_the_pushes() {
    let (addr, rx) = http_receiver(Arc::new(AtomicBool::new(false)));
    let _agent = RunningAgent::start(&[
        ("RMM_AGENT_OTLP_ENABLED", "true"),
        ("RMM_AGENT_OTLP_ENDPOINT", &format!("http://{addr}")),
        ("RMM_AGENT_OTLP_INTERVAL", "3s"),
    ]);
    let recv = || {
        let r = rx.recv_timeout(Duration::from_secs(10)).expect("a push");
        (std::time::Instant::now(), collections(&r))
    };
    let (t0, c0) = recv();
    let (t1, c1) = recv();
    let (t2, c2) = recv();
    for (gap, cycles) in [(t1 - t0, c1 - c0), (t2 - t1, c2 - c1)] {
        assert!(
            gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(4500),
            "pushes {gap:?} apart"
        );
        assert!(
            (2.0..=4.0).contains(&cycles),
            "{cycles} cycles between pushes"
        );
    }
}

/// OTLP/gRPC while the receiver is not there yet: the agent keeps retrying, and once the
/// receiver listens the backlog arrives in order over the re-established connection.
#[test]
fn grpc_backlog_arrives_in_order_once_the_receiver_listens() {
    let port = free_port();
    let agent = RunningAgent::start(&[
        ("RMM_AGENT_OTLP_ENABLED", "true"),
        ("RMM_AGENT_OTLP_PROTOCOL", "grpc"),
        (
            "RMM_AGENT_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        ),
    ]);
    std::thread::sleep(Duration::from_secs(5));
    let during = agent.metrics();
    assert!(scalar(&during, "rmm_agent_otlp_export_failures_total") > 0.0);
    let kept = scalar(&during, "rmm_agent_otlp_buffer_pushes");
    assert!(kept >= 3.0, "{kept} pushes kept");
    let (_, rx) = grpc_receiver_on(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let mut got = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(10)) {
        got.push(collections(&r));
        if got.len() as f64 >= kept + 2.0 {
            break;
        }
    }
    assert!(got.len() as f64 >= kept + 2.0, "received {got:?}");
    assert_eq!(
        got[0], 1.0,
        "nothing dropped: the first cycle's push comes first"
    );
    assert!(got.windows(2).all(|w| w[1] > w[0]), "in order: {got:?}");
}
