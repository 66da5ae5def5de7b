//! The Prometheus exporter: renders each new [`Snapshot`] once into text format 0.0.4 and
//! serves the latest rendering on `GET /metrics` (a scrape copies nothing: the body is a
//! reference-counted [`Bytes`]).
//!
//! Until the first snapshot arrives `/metrics` serves only `rmm_agent_build_info`, so an early
//! scrape succeeds. Responses are not compressed: the body is a few tens of kB, served on
//! loopback or a LAN, and compressing it would cost more CPU than the agent's collection.

mod text;
pub mod translate;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::model::{self, ModelOptions};
use crate::snapshot::Snapshot;
use crate::SnapshotReceiver;

pub use text::render;

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition text of one snapshot.
pub fn render_snapshot(snapshot: &Snapshot, options: ModelOptions) -> String {
    render(&model::from_snapshot(snapshot, options))
}

/// Serves `/metrics` on `listener` until `shutdown` completes, rendering every snapshot that
/// `snapshots` publishes.
pub async fn serve(
    listener: TcpListener,
    mut snapshots: SnapshotReceiver,
    options: ModelOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Before the first cycle: the agent's build info only (no host facts are known yet).
    let mut initial = Snapshot::default();
    initial.agent.version = crate::VERSION.to_owned();
    let initial = render_snapshot(&initial, options);
    let (body_tx, body_rx) = watch::channel(Bytes::from(initial));
    let renderer = async move {
        while snapshots.changed().await.is_ok() {
            let snapshot: Option<Arc<Snapshot>> = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = snapshot {
                let text = render_snapshot(&snapshot, options);
                body_tx.send_replace(Bytes::from(text));
            }
        }
        // The collector stopped: keep serving the last rendering until shutdown.
        std::future::pending::<()>().await;
    };
    let accept = async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "Accepting a /metrics connection failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let body = body_rx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(&req, &body);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(error) = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, %peer, "A /metrics connection ended with an error.");
                }
            });
        }
    };
    tokio::select! {
        () = renderer => {}
        () = accept => {}
        () = shutdown => {}
    }
    Ok(())
}

/// Binds the `/metrics` listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn respond(req: &Request<Incoming>, body: &watch::Receiver<Bytes>) -> Response<Full<Bytes>> {
    let (status, content_type, bytes) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, CONTENT_TYPE_TEXT, body.borrow().clone())
        }
        (&Method::GET | &Method::HEAD, "/") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"rmm-agent: metrics at /metrics\n"),
        ),
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found; metrics are at /metrics\n"),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"method not allowed\n"),
        ),
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
