//! OTLP over TLS: `https://` endpoints, the receiver's certificate issued by a private CA that
//! the agent trusts through `SSL_CERT_FILE` (as an operator installing a CA would). The CA and
//! the certificate for 127.0.0.1 are made with the `openssl` command line for each run.
//! OTLP/HTTP goes to a rustls server in the test, OTLP/gRPC to a tonic server with TLS.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a certificate for IP 127.0.0.1 it signed (`cert.pem`, `key.pem`).
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=rmm test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cert.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A one-thread HTTPS/1.1 receiver: decodes each POSTed body (gzip) and answers 200.
fn https_receiver(dir: &Path) -> (SocketAddr, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
            // Keep-alive: requests until the client closes or fails the handshake.
            loop {
                let mut length = 0usize;
                let mut gzip = false;
                let mut line = String::new();
                if tls.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                loop {
                    let mut h = String::new();
                    if tls.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if lower.starts_with("content-encoding:") && lower.contains("gzip") {
                        gzip = true;
                    }
                }
                let mut body = vec![0; length];
                if tls.read_exact(&mut body).is_err() {
                    break;
                }
                if gzip {
                    let mut plain = Vec::new();
                    flate2::read::GzDecoder::new(&body[..])
                        .read_to_end(&mut plain)
                        .unwrap();
                    body = plain;
                }
                if let Ok(req) = ExportMetricsServiceRequest::decode(&body[..]) {
                    let _ = tx.send(req);
                }
                let reply = ExportMetricsServiceResponse::default().encode_to_vec();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                    reply.len()
                );
                let w = tls.get_mut();
                if w.write_all(head.as_bytes()).is_err() || w.write_all(&reply).is_err() {
                    break;
                }
                let _ = w.flush();
            }
        }
    });
    (addr, rx)
}

struct Grpc(mpsc::Sender<ExportMetricsServiceRequest>);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn grpc_tls_receiver(dir: &Path) -> (SocketAddr, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(dir.join("cert.pem")).unwrap(),
        std::fs::read(dir.join("key.pem")).unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .unwrap()
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

/// Runs an agent pushing to `https://{addr}` and returns two decoded pushes.
fn push_over_tls(
    protocol: &str,
    addr: SocketAddr,
    rx: &mpsc::Receiver<ExportMetricsServiceRequest>,
    dir: &Path,
) -> [ExportMetricsServiceRequest; 2] {
    let ca = dir.join("ca.pem");
    let _agent = RunningAgent::start(&[
        ("RMM_AGENT_OTLP_ENABLED", "true"),
        ("RMM_AGENT_OTLP_PROTOCOL", protocol),
        ("RMM_AGENT_OTLP_ENDPOINT", &format!("https://{addr}")),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ]);
    let recv = || {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no {protocol} push over TLS within 20 s"))
    };
    [recv(), recv()]
}

fn check(req: &ExportMetricsServiceRequest) {
    let rm = &req.resource_metrics[0];
    assert!(rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .any(|kv| kv.key == "service.name"));
    assert!(rm.scope_metrics[0]
        .metrics
        .iter()
        .any(|m| m.name == "system.memory.limit"));
}

#[test]
fn http_protobuf_over_https_verifies_the_receiver_with_the_system_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (addr, rx) = https_receiver(dir.path());
    for req in push_over_tls("http/protobuf", addr, &rx, dir.path()) {
        check(&req);
    }
}

#[test]
fn grpc_over_tls_verifies_the_receiver_with_the_system_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (addr, rx) = grpc_tls_receiver(dir.path());
    for req in push_over_tls("grpc", addr, &rx, dir.path()) {
        check(&req);
    }
}

#[test]
fn an_untrusted_receiver_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (addr, rx) = https_receiver(dir.path());
    // The agent trusts only another CA.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    make_pki(&other);
    let agent = RunningAgent::start(&[
        ("RMM_AGENT_OTLP_ENABLED", "true"),
        ("RMM_AGENT_OTLP_ENDPOINT", &format!("https://{addr}")),
        ("SSL_CERT_FILE", other.join("ca.pem").to_str().unwrap()),
    ]);
    assert!(rx.recv_timeout(Duration::from_secs(4)).is_err());
    let failures = poll(Duration::from_secs(10), Duration::from_millis(200), || {
        let text = agent.metrics();
        parse_metrics(&text)
            .into_iter()
            .find(|s| s.name == "rmm_agent_otlp_export_failures_total" && s.value > 0.0)
    });
    assert!(failures.is_some(), "failures are counted");
}
