//! The running agent: a collection thread that publishes one [`Snapshot`] per cycle, and
//! [`run`], which wires it to the exporters the configuration enables.
//!
//! Collection is blocking file I/O, so it runs on its own thread rather than on the async
//! runtime; exporters (async tasks) subscribe to its [`watch`] channel and always see the latest
//! snapshot. The configuration is owned by the collection thread's [`Collectors`]; swapping it at
//! runtime means building a new `Collectors` there (a later issue), nothing else changes.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::collect::Collectors;
use crate::config::{AgentConfig, CollectConfig};
use crate::export::model::ModelOptions;
use crate::export::prometheus;
use crate::host::{HostPaths, SystemConstants};
use crate::snapshot::Snapshot;

/// Receives the latest snapshot; `None` until the first cycle completes.
pub type SnapshotReceiver = watch::Receiver<Option<Arc<Snapshot>>>;

/// Longest wait between the baseline sample and the first published snapshot. Long enough for
/// utilization to be meaningful at 100 clock ticks per second, short enough that a fresh agent
/// has data within a second even with a 15 s interval.
const FIRST_CYCLE_DELAY: Duration = Duration::from_secs(1);

/// The collection loop running on its own thread. Dropping it stops the loop.
pub struct Agent {
    snapshots: SnapshotReceiver,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts collecting with `config`, reading the host through `paths`.
    pub fn start(config: &CollectConfig, paths: &HostPaths) -> std::io::Result<Self> {
        let collectors = Collectors::new(config, paths, SystemConstants::detect());
        let (tx, rx) = watch::channel(None);
        let (stop_tx, stop_rx) = mpsc::channel();
        let interval = config.interval;
        let thread = std::thread::Builder::new()
            .name("rmm-collect".into())
            .spawn(move || collection_loop(collectors, interval, &tx, &stop_rx))?;
        Ok(Self {
            snapshots: rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// A receiver of every snapshot from now on (and the latest one, if any).
    pub fn subscribe(&self) -> SnapshotReceiver {
        self.snapshots.clone()
    }

    /// Stops the collection thread and waits for it (at most one cycle's work).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn collection_loop(
    mut collectors: Collectors,
    interval: Duration,
    tx: &watch::Sender<Option<Arc<Snapshot>>>,
    stop: &mpsc::Receiver<()>,
) {
    collectors.prime();
    if stopped(stop, interval.min(FIRST_CYCLE_DELAY)) {
        return;
    }
    let mut next = Instant::now();
    loop {
        let snapshot = collectors.collect();
        tx.send_replace(Some(Arc::new(snapshot)));
        next += interval;
        let now = Instant::now();
        if next <= now {
            // A cycle overran (a stalled filesystem, a suspended VM): skip the missed ticks
            // instead of collecting in a burst.
            let behind = now - next;
            let skipped = (behind.as_nanos() / interval.as_nanos()) as u32 + 1;
            next += interval * skipped;
        }
        if stopped(stop, next - now) {
            return;
        }
    }
}

/// Waits up to `wait`; true if the agent is stopping.
fn stopped(stop: &mpsc::Receiver<()>, wait: Duration) -> bool {
    !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout))
}

/// Runs the agent until `shutdown` completes: collection plus every enabled exporter.
///
/// # Errors
/// Fails at start if the collection thread cannot be spawned or the `/metrics` address cannot
/// be bound; afterwards only on an I/O error of the listener.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let agent =
        Agent::start(&config.collect, &HostPaths::default()).context("starting collection")?;
    // The control-plane session (if enrolled) is its own task; it hears of shutdown through
    // `stop` and says goodbye to the server before `run` returns.
    let (stop_tx, stop_rx) = watch::channel(false);
    let control = crate::control::Control::start(&config, stop_rx).unwrap_or_else(|error| {
        tracing::error!(
            error = format!("{error:#}"),
            "Not connecting to the control plane."
        );
        None
    });
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let options = ModelOptions {
        command_line: config.collect.command_line,
    };
    let otlp = if config.otlp.enabled {
        let agent_id = crate::control::StateDir::new(&config.control.state_dir)
            .load()
            .ok()
            .flatten()
            .map(|(identity, _)| identity.agent_id);
        let otlp_config = crate::export::otlp::resolve(
            &config.otlp,
            &config.control.state_dir,
            agent_id.as_deref(),
        );
        let exporter = crate::export::otlp::Exporter::spawn(
            &otlp_config,
            agent_id.is_some(),
            config.collect.interval,
            agent.subscribe(),
            options,
        )?;
        tracing::info!(endpoint = %config.otlp.endpoint(), protocol = ?config.otlp.protocol, "Pushing metrics over OTLP.");
        Some(exporter)
    } else {
        None
    };
    if config.prometheus.enabled {
        let listener = prometheus::bind(config.prometheus.listen)
            .await
            .with_context(|| format!("binding /metrics to {}", config.prometheus.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(listen = %addr, interval = %humantime::format_duration(config.collect.interval), "Serving Prometheus metrics at http://{addr}/metrics.");
        prometheus::serve(listener, agent.subscribe(), options, shutdown).await?;
    } else {
        tracing::info!("Prometheus endpoint disabled; collecting only.");
        shutdown.await;
    }
    tracing::info!("Shutting down.");
    if let Some(control) = control {
        control.stop().await;
    }
    if let Some(exporter) = otlp {
        exporter.stop();
    }
    agent.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_snapshots_and_stops_promptly() {
        let config = CollectConfig {
            interval: Duration::from_millis(100),
            ..CollectConfig::default()
        };
        let agent = Agent::start(&config, &HostPaths::default()).unwrap();
        let mut rx = agent.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let snapshot = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    rx.changed().await.unwrap();
                    if let Some(s) = rx.borrow_and_update().clone() {
                        if s.agent.collections >= 2 {
                            return s;
                        }
                    }
                }
            })
            .await
            .expect("two snapshots within 5 s")
        });
        assert!(snapshot.memory.is_some());
        assert!(!snapshot.cpus.is_empty());
        let t = Instant::now();
        agent.stop();
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
