//! The OTLP exporter: pushes every snapshot (or every `otlp.interval`) to an OpenTelemetry
//! receiver over OTLP/HTTP (protobuf) or OTLP/gRPC, and keeps what it cannot send.
//!
//! ```text
//! snapshot ─▶ model::from_snapshot ─▶ encode::Encoder (OpenTelemetry SDK, observable instruments,
//!                                     cumulative) ─▶ ExportMetricsServiceRequest (opentelemetry-proto
//!                                     `transform`) ─▶ protobuf (+ gzip) ─▶ buffer::Buffer ─▶ sender
//! ```
//!
//! Design choices:
//! - **The SDK aggregates, our code sends.** `opentelemetry-otlp`'s exporter sends what the SDK
//!   collects *now* and drops it on failure; it cannot resend an older collection with its
//!   original timestamps, which is what filling a gap after an outage needs. So the SDK's
//!   collection is converted to the protobuf request right away, encoded once, and queued; one
//!   sender drains the queue in order over the configured transport ([`transport`]). Live and
//!   replayed pushes take the same path.
//!   `opentelemetry-otlp` is therefore not used; its transports are replaced by tonic's
//!   generated client (gRPC) and reqwest (HTTP), with gzip, headers and a timeout.
//! - **Same series as `/metrics`.** Both paths start from [`model::from_snapshot`]; the
//!   identity labels service discovery adds in scrape mode (`client`, `site`, `host`, `agent`)
//!   come from `[otlp] attributes` (and the enrollment, [`resolve`]) and go on every data
//!   point and on the Resource. `service.name = rmm-agent` (→ `job`), `service.instance.id`
//!   (→ `instance`) is the agent id, `otlp.service_instance_id`, or the host id as a UUID.
//!   The Resource has no `telemetry.sdk.*`, so `target_info` matches the one on `/metrics`.
//! - **Never blocks collection.** Collection publishes on a `watch` channel (latest snapshot
//!   only) and never waits on anything; the encoder task appends to the buffer, bounded in
//!   bytes rather than in entries because push sizes vary with the host (oldest dropped, or
//!   spilled to disk first, every drop counted); the sender retries with backoff (up to the
//!   collection interval, 1–30 s) and logs an outage once when it starts and once when it
//!   ends. A push the receiver refuses as invalid (4xx) is dropped rather than retried, so it
//!   cannot wedge the queue. Counters: `rmm_agent_otlp_*` ([`stats`]).

pub mod buffer;
pub mod encode;
pub mod settings;
pub mod stats;
pub mod transport;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::model::{self, ModelOptions};
use crate::SnapshotReceiver;
use buffer::{Buffer, DiskSpill, Payload};
use encode::{Encoder, Identity};
pub use settings::{Compression, OtlpConfig, Protocol};
use transport::Transport;

/// The running exporter: an encoder task and a sender task on the current runtime.
pub struct Exporter {
    encoder: JoinHandle<()>,
    sender: JoinHandle<()>,
    buffer: Arc<Mutex<Buffer>>,
}

impl Exporter {
    /// Starts pushing the snapshots `snapshots` publishes. `config` comes from [`resolve`];
    /// `enrolled` adds `host` from `host.name` unless configured. `collect_interval` is the
    /// default of `otlp.interval`. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// A malformed endpoint or header, or a disk buffer directory that cannot be created.
    pub fn spawn(
        config: &OtlpConfig,
        enrolled: bool,
        collect_interval: Duration,
        snapshots: SnapshotReceiver,
        options: ModelOptions,
    ) -> anyhow::Result<Self> {
        let transport = Transport::new(config)?;
        let disk = config.buffer_disk_dir.as_ref().map(|dir| DiskSpill {
            dir: dir.clone(),
            max_bytes: config.buffer_disk_max_bytes,
        });
        let buffer = Buffer::new(config.buffer_max_bytes, disk).map_err(|e| {
            anyhow::anyhow!(
                "otlp.buffer_disk_dir {}: {e}",
                config
                    .buffer_disk_dir
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            )
        })?;
        let stats = stats::global();
        stats.set_enabled(true);
        stats.buffer(buffer.bytes(), buffer.len() as u64);
        let buffer = Arc::new(Mutex::new(buffer));
        let ready = Arc::new(Notify::new());
        if !lock(&buffer).is_empty() {
            ready.notify_one();
        }
        let encoder = Encoder::new(Identity {
            service_instance_id: config.service_instance_id.clone(),
            attributes: config.attributes.clone(),
            host_from_host_name: enrolled,
        });
        let encode_task = tokio::spawn(encode_loop(EncodeLoop {
            encoder: Arc::new(Mutex::new(encoder)),
            snapshots,
            options,
            interval: config.interval.unwrap_or(collect_interval),
            collect_interval,
            gzip: config.compression == Compression::Gzip,
            buffer: Arc::clone(&buffer),
            ready: Arc::clone(&ready),
        }));
        let retry_max = collect_interval.clamp(Duration::from_secs(1), Duration::from_secs(30));
        let send_task = tokio::spawn(send_loop(
            transport,
            Arc::clone(&buffer),
            ready,
            retry_max,
            config.endpoint().to_owned(),
        ));
        Ok(Self {
            encoder: encode_task,
            sender: send_task,
            buffer,
        })
    }

    /// Stops both tasks. Unsent pushes in memory are lost unless a disk directory is
    /// configured, where they were (or are now) written.
    pub fn stop(self) {
        self.encoder.abort();
        self.sender.abort();
        let mut buffer = lock(&self.buffer);
        let dropped = buffer.persist_memory();
        if dropped > 0 {
            tracing::info!(
                pushes = dropped,
                "Unsent OTLP pushes discarded at shutdown (no otlp.buffer_disk_dir)."
            );
        }
        stats::global().set_enabled(false);
    }
}

/// `config` completed from the agent's enrollment and state directory:
/// - `service.instance.id` defaults to the enrolled agent id (the `instance` that service
///   discovery gives scraped series), else to the host id;
/// - the `agent` attribute defaults to the agent id (service discovery's `agent` label);
/// - a relative `buffer_disk_dir` lies under the state directory.
///
/// `client` and `site` are names the control plane knows and the enrollment does not store:
/// set them in `[otlp] attributes`.
pub fn resolve(config: &OtlpConfig, state_dir: &Path, agent_id: Option<&str>) -> OtlpConfig {
    let mut c = config.clone();
    if let Some(id) = agent_id {
        c.service_instance_id.get_or_insert_with(|| id.to_owned());
        c.attributes
            .entry("agent".to_owned())
            .or_insert_with(|| id.to_owned());
    }
    if let Some(dir) = &c.buffer_disk_dir {
        if dir.is_relative() {
            c.buffer_disk_dir = Some(state_dir.join(dir));
        }
    }
    c
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct EncodeLoop {
    encoder: Arc<Mutex<Encoder>>,
    snapshots: SnapshotReceiver,
    options: ModelOptions,
    interval: Duration,
    collect_interval: Duration,
    gzip: bool,
    buffer: Arc<Mutex<Buffer>>,
    ready: Arc<Notify>,
}

async fn encode_loop(mut l: EncodeLoop) {
    let mut last: Option<Instant> = None;
    // A push is due once `interval` has passed, less half a cycle of scheduling jitter.
    let due_after = l.interval.saturating_sub(l.collect_interval / 2);
    while l.snapshots.changed().await.is_ok() {
        let Some(snapshot) = l.snapshots.borrow_and_update().clone() else {
            continue;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < due_after) {
            continue;
        }
        last = Some(now);
        let encoder = Arc::clone(&l.encoder);
        let (options, gzip) = (l.options, l.gzip);
        // The SDK collects on its reader thread and we wait for it: off the async runtime.
        let body = tokio::task::spawn_blocking(move || {
            let metrics = Arc::new(model::from_snapshot(&snapshot, options));
            let plain = lock(&encoder).encode(metrics);
            if gzip {
                transport::gzip(&plain)
            } else {
                plain
            }
        })
        .await;
        let Ok(body) = body else {
            tracing::error!("Encoding an OTLP push panicked; skipping this cycle.");
            continue;
        };
        let mut buffer = lock(&l.buffer);
        let dropped = buffer.push(Payload {
            body: body.into(),
            gzip,
        });
        let stats = stats::global();
        if dropped > 0 {
            stats.dropped(dropped);
        }
        stats.buffer(buffer.bytes(), buffer.len() as u64);
        drop(buffer);
        l.ready.notify_one();
    }
}

async fn send_loop(
    mut transport: Transport,
    buffer: Arc<Mutex<Buffer>>,
    ready: Arc<Notify>,
    retry_max: Duration,
    endpoint: String,
) {
    let stats = stats::global();
    let retry_min = Duration::from_millis(250).min(retry_max);
    let mut retry = retry_min;
    let mut outage_since: Option<Instant> = None;
    let mut refusing = false;
    loop {
        let (front, unreadable) = lock(&buffer).front();
        if unreadable > 0 {
            stats.dropped(unreadable);
        }
        let Some(payload) = front else {
            ready.notified().await;
            continue;
        };
        match transport.send(&payload).await {
            Ok(()) => {
                stats.export_ok();
                refusing = false;
                retry = retry_min;
                if let Some(since) = outage_since.take() {
                    let queued = lock(&buffer).len().saturating_sub(1);
                    tracing::info!(
                        %endpoint,
                        outage = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                        queued,
                        "OTLP receiver reachable again; sending the buffered pushes in order."
                    );
                }
                pop(&buffer);
            }
            Err(error) if !error.retryable => {
                stats.export_failed();
                stats.dropped(1);
                if !refusing {
                    tracing::warn!(%endpoint, %error, "The OTLP receiver refused a push; dropping it (logged once until a push succeeds).");
                    refusing = true;
                }
                pop(&buffer);
            }
            Err(error) => {
                stats.export_failed();
                if outage_since.is_none() {
                    outage_since = Some(Instant::now());
                    tracing::warn!(%endpoint, %error, "OTLP receiver unreachable; buffering pushes until it is back (logged once).");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(retry_max);
            }
        }
    }
}

fn pop(buffer: &Mutex<Buffer>) {
    let mut b = lock(buffer);
    b.pop_front();
    stats::global().buffer(b.bytes(), b.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_fills_the_identity_unless_configured() {
        let mut c = OtlpConfig {
            buffer_disk_dir: Some("otlp-buffer".into()),
            ..OtlpConfig::default()
        };
        let r = resolve(&c, Path::new("/var/lib/rmm-agent"), Some("id-1"));
        assert_eq!(r.service_instance_id.as_deref(), Some("id-1"));
        assert_eq!(r.attributes["agent"], "id-1");
        assert_eq!(
            r.buffer_disk_dir.as_deref(),
            Some(Path::new("/var/lib/rmm-agent/otlp-buffer"))
        );
        c.service_instance_id = Some("mine".into());
        c.attributes.insert("agent".into(), "a".into());
        c.buffer_disk_dir = Some("/tmp/b".into());
        let r = resolve(&c, Path::new("/var/lib/rmm-agent"), Some("id-1"));
        assert_eq!(r.service_instance_id.as_deref(), Some("mine"));
        assert_eq!(r.attributes["agent"], "a");
        assert_eq!(r.buffer_disk_dir.as_deref(), Some(Path::new("/tmp/b")));
        let r = resolve(&OtlpConfig::default(), Path::new("/s"), None);
        assert_eq!(r, OtlpConfig::default());
    }
}
