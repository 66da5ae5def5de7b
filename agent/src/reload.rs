//! The parts of a running agent that a configuration change touches, swappable without a
//! restart: the collection thread, the `/metrics` listener and renderer, the OTLP exporter.
//!
//! ```text
//! Agent (collection thread) ─▶ forwarder ─▶ stable snapshot channel ─┬▶ renderer ─▶ body ─▶ accept loop
//!                                                                    └▶ OTLP exporter
//! ```
//!
//! The snapshot channel and the `/metrics` body outlive every swap, so an exporter never
//! notices a new collection thread and a keep-alive scraper never holds a stale body.
//! [`Runtime::apply`] first prepares what can fail (bind a new listen address, start the new
//! collection thread, start the new exporter) and only then swaps; if any step fails the old
//! parts stay in force and the error says which setting could not be applied.
//!
//! What a swap costs: a new collection thread starts from a fresh baseline (its first snapshot
//! comes within `min(interval, 1 s)`; `/metrics` serves the previous one meanwhile) and
//! `rmm_agent_collections_total` restarts from zero; a new OTLP exporter restarts its
//! cumulative sums and loses pushes still queued in memory (those on disk are kept).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::{Agent, SnapshotReceiver};
use crate::config::AgentConfig;
use crate::export::model::{self, ModelOptions};
use crate::export::otlp::{self, Exporter};
use crate::export::prometheus::{self, ExtraLabels};
use crate::host::HostPaths;
use crate::snapshot::Snapshot;

/// The `/metrics` listener and its accept loop.
struct MetricsListener {
    /// The configured address (`prometheus.listen`), which may differ from the bound one (port 0).
    configured: SocketAddr,
    listener: Arc<TcpListener>,
    accept: JoinHandle<()>,
}

/// A listener ready for a new configuration.
enum Prepared {
    /// The address is unchanged: keep the running listener.
    Running,
    /// Bound to a new address.
    New(SocketAddr, TcpListener),
}

/// The swappable parts of the running agent.
pub struct Runtime {
    config: AgentConfig,
    agent_id: Option<String>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    agent: Option<Agent>,
    forward: JoinHandle<()>,
    body: watch::Sender<Bytes>,
    render: JoinHandle<()>,
    metrics: Option<MetricsListener>,
    otlp: Option<Exporter>,
}

impl Runtime {
    /// Starts collection and the exporters `config` enables. Within a Tokio runtime.
    ///
    /// # Errors
    /// The collection thread cannot be spawned, `/metrics` cannot be bound, or the OTLP
    /// exporter's settings are unusable.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Self> {
        let agent_id = crate::control::StateDir::new(&config.control.state_dir)
            .load()
            .ok()
            .flatten()
            .map(|(identity, _)| identity.agent_id);
        let (snapshots, _) = watch::channel(None);
        let agent =
            Agent::start(&config.collect, &HostPaths::default()).context("starting collection")?;
        let forward = forward(agent.subscribe(), snapshots.clone());
        let options = options(&config);
        let (body, _) = watch::channel(prometheus::initial_body(options));
        let render = tokio::spawn(prometheus::render_loop(
            snapshots.subscribe(),
            options,
            labels(&config),
            body.clone(),
        ));
        let mut runtime = Self {
            config: config.clone(),
            agent_id,
            snapshots,
            agent: Some(agent),
            forward,
            body,
            render,
            metrics: None,
            otlp: None,
        };
        if let Some(Prepared::New(addr, listener)) = runtime.listener(&config).await? {
            runtime.metrics = Some(runtime.serve_on(addr, listener));
        }
        if let Some(m) = &runtime.metrics {
            let addr = m.listener.local_addr()?;
            tracing::info!(listen = %addr, interval = %humantime::format_duration(config.collect.interval), "Serving Prometheus metrics at http://{addr}/metrics.");
        } else {
            tracing::info!("Prometheus endpoint disabled.");
        }
        runtime.otlp = runtime.exporter(&config)?;
        Ok(runtime)
    }

    /// Every snapshot from now on (and the latest, if any), across reconfigurations.
    pub fn snapshots(&self) -> crate::SnapshotReceiver {
        self.snapshots.subscribe()
    }

    /// The configuration in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Puts `new` in force. On `Err` nothing changed.
    ///
    /// # Errors
    /// The new `/metrics` address cannot be bound, the collection thread cannot be spawned,
    /// or the OTLP exporter cannot start with the new settings.
    pub async fn apply(&mut self, new: AgentConfig) -> anyhow::Result<()> {
        let old = self.config.clone();
        // 1. What can fail, before anything is swapped.
        let listener = self.listener(&new).await?;
        let agent = if new.collect != old.collect {
            Some(
                Agent::start(&new.collect, &HostPaths::default())
                    .context("starting collection with the new [collect] settings")?,
            )
        } else {
            None
        };
        let otlp_changed = new.otlp != old.otlp
            || new.labels != old.labels
            || new.collect.interval != old.collect.interval
            || new.collect.command_line != old.collect.command_line;
        if otlp_changed {
            // The old exporter owns the disk buffer: stop it before the new one reads it.
            if let Some(e) = self.otlp.take() {
                e.stop();
            }
            match self.exporter(&new) {
                Ok(e) => self.otlp = e,
                Err(error) => {
                    self.otlp = self.exporter(&old).unwrap_or_else(|e| {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "Restarting the OTLP exporter with the previous settings failed."
                        );
                        None
                    });
                    if let Some(unused) = agent {
                        tokio::task::spawn_blocking(move || unused.stop());
                    }
                    return Err(error);
                }
            }
        }
        // 2. Swap.
        if let Some(agent) = agent {
            self.forward.abort();
            self.forward = forward(agent.subscribe(), self.snapshots.clone());
            if let Some(old_agent) = self.agent.replace(agent) {
                // Joining waits for a cycle in progress: off the async runtime.
                tokio::task::spawn_blocking(move || old_agent.stop());
            }
        }
        if options(&new) != options(&old) || new.labels != old.labels {
            self.render.abort();
            self.render = tokio::spawn(prometheus::render_loop(
                self.snapshots.subscribe(),
                options(&new),
                labels(&new),
                self.body.clone(),
            ));
        }
        match listener {
            Some(Prepared::Running) => {}
            Some(Prepared::New(configured, listener)) => {
                if let Some(old) = self.metrics.take() {
                    old.accept.abort();
                }
                tracing::info!(listen = %configured, "Serving Prometheus metrics on the new address.");
                self.metrics = Some(self.serve_on(configured, listener));
            }
            None => {
                if let Some(old) = self.metrics.take() {
                    old.accept.abort();
                    tracing::info!("Prometheus endpoint disabled.");
                }
            }
        }
        self.config = new;
        Ok(())
    }

    /// The listener `config` needs: the running one if the address is unchanged, else a newly
    /// bound one (not accepting yet).
    async fn listener(&self, config: &AgentConfig) -> anyhow::Result<Option<Prepared>> {
        if !config.prometheus.enabled {
            return Ok(None);
        }
        let addr = config.prometheus.listen;
        if self.metrics.as_ref().is_some_and(|m| m.configured == addr) {
            return Ok(Some(Prepared::Running));
        }
        let listener = prometheus::bind(addr)
            .await
            .with_context(|| format!("binding /metrics to {addr} (prometheus.listen)"))?;
        Ok(Some(Prepared::New(addr, listener)))
    }

    fn serve_on(&self, configured: SocketAddr, listener: TcpListener) -> MetricsListener {
        let listener = Arc::new(listener);
        let accept = tokio::spawn(prometheus::accept_loop(
            Arc::clone(&listener),
            self.body.subscribe(),
        ));
        MetricsListener {
            configured,
            listener,
            accept,
        }
    }

    fn exporter(&self, config: &AgentConfig) -> anyhow::Result<Option<Exporter>> {
        if !config.otlp.enabled {
            return Ok(None);
        }
        let mut resolved = otlp::resolve(
            &config.otlp,
            &config.control.state_dir,
            self.agent_id.as_deref(),
        );
        for (k, v) in &config.labels {
            resolved
                .attributes
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        let exporter = Exporter::spawn(
            &resolved,
            self.agent_id.is_some(),
            config.collect.interval,
            self.snapshots.subscribe(),
            options(config),
        )
        .context("starting the OTLP exporter")?;
        tracing::info!(endpoint = %config.otlp.endpoint(), protocol = ?config.otlp.protocol, "Pushing metrics over OTLP.");
        Ok(Some(exporter))
    }

    /// The bound `/metrics` address, if serving.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|m| m.listener.local_addr().ok())
    }

    /// Stops everything.
    pub fn stop(mut self) {
        if let Some(m) = self.metrics.take() {
            m.accept.abort();
        }
        self.render.abort();
        self.forward.abort();
        if let Some(e) = self.otlp.take() {
            e.stop();
        }
        if let Some(a) = self.agent.take() {
            a.stop();
        }
    }
}

fn options(config: &AgentConfig) -> ModelOptions {
    ModelOptions {
        command_line: config.collect.command_line,
    }
}

fn labels(config: &AgentConfig) -> ExtraLabels {
    Arc::new(
        config
            .labels
            .iter()
            .map(|(k, v)| (model::intern(k), v.clone()))
            .collect(),
    )
}

/// Copies every snapshot of one collection thread to the stable channel.
fn forward(mut from: SnapshotReceiver, to: watch::Sender<Option<Arc<Snapshot>>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while from.changed().await.is_ok() {
            let snapshot = from.borrow_and_update().clone();
            if snapshot.is_some() {
                to.send_replace(snapshot);
            }
        }
    })
}
