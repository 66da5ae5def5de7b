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
    snapshots: SnapshotReceiver,
    options: ModelOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (body_tx, body_rx) = watch::channel(initial_body(options));
    tokio::select! {
        () = render_loop(snapshots, options, Arc::new(Vec::new()), body_tx) => {}
        () = accept_loop(Arc::new(listener), body_rx) => {}
        () = shutdown => {}
    }
    Ok(())
}

/// Extra labels put on every series (`labels` of the configuration), keys interned with
/// [`model::intern`].
pub type ExtraLabels = Arc<Vec<(&'static str, String)>>;

/// The body before the first cycle: the agent's build info only (no host facts are known yet).
pub fn initial_body(options: ModelOptions) -> Bytes {
    let mut initial = Snapshot::default();
    initial.agent.version = crate::version().to_owned();
    Bytes::from(render_snapshot(&initial, options))
}

/// Renders the latest snapshot (at once if there is one) and every later one into `body`.
/// Runs until aborted; the body keeps the last rendering. Restarted with new options when the
/// configuration changes, while [`accept_loop`] keeps serving the same `body`.
pub async fn render_loop(
    mut snapshots: SnapshotReceiver,
    options: ModelOptions,
    labels: ExtraLabels,
    body: watch::Sender<Bytes>,
) {
    let render = |snapshot: &Snapshot| {
        let mut metrics = model::from_snapshot(snapshot, options);
        model::add_labels(&mut metrics, &labels);
        Bytes::from(render(&metrics))
    };
    let current: Option<Arc<Snapshot>> = snapshots.borrow_and_update().clone();
    if let Some(snapshot) = current {
        body.send_replace(render(&snapshot));
    }
    while snapshots.changed().await.is_ok() {
        let snapshot: Option<Arc<Snapshot>> = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            body.send_replace(render(&snapshot));
        }
    }
    // The collector stopped: keep serving the last rendering.
    std::future::pending::<()>().await;
}

/// Accepts `/metrics` connections on `listener` and answers with the latest `body`, until
/// aborted (connections already accepted live on with the same `body`).
pub async fn accept_loop(listener: Arc<TcpListener>, body: watch::Receiver<Bytes>) {
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
        let body = body.clone();
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
