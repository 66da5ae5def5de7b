//! The running agent: a collection thread that publishes one [`Snapshot`] per cycle, and
//! [`run`], which wires it to the exporters the configuration enables.
//!
//! Collection is blocking file I/O, so it runs on its own thread rather than on the async
//! runtime; exporters (async tasks) subscribe to its [`watch`] channel and always see the latest
//! snapshot. The configuration is owned by the collection thread's [`Collectors`]; a new
//! `[collect]` configuration means a new [`Agent`] ([`crate::reload`]).

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::collect::Collectors;
use crate::config::{AgentConfig, CollectConfig};
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

/// Runs the agent until `shutdown` completes: collection plus every enabled exporter, and the
/// control-plane session when enrolled, whose remote configurations are applied live
/// ([`crate::control::remote_config`], [`crate::reload`]).
///
/// # Errors
/// Fails at start if the collection thread cannot be spawned or the `/metrics` address cannot
/// be bound.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    use crate::control::remote_config;
    use crate::update;
    let base = config;
    let state_dir = base.control.state_dir.clone();
    // A trial child (a new build being tried by the previous one) reports its health and
    // takes no offers; anyone else first finishes an update a crash interrupted.
    let trial_marker = update::trial::marker_from_env();
    let updates_enabled = base.updates.enabled && base.control.enabled;
    if updates_enabled && trial_marker.is_none() {
        update::recover_at_start(&state_dir);
    }
    // The last good remote configuration, before connecting; if it cannot start (say its
    // listen address is taken now), the local one.
    let mut persisted = remote_config::load_at_start(&base);
    let runtime = match &persisted {
        Some((config, _)) => match crate::reload::Runtime::start(config.clone()).await {
            Ok(r) => Ok(r),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "The last remote configuration cannot start; using the local one."
                );
                persisted = None;
                crate::reload::Runtime::start(base.clone()).await
            }
        },
        None => crate::reload::Runtime::start(base.clone()).await,
    };
    let mut runtime = runtime?;
    let mut applier = remote_config::Applier::new(base, persisted.map(|(_, r)| r));
    // The control-plane session (if enrolled) is its own task; it hears of shutdown through
    // `stop` and says goodbye to the server before `run` returns.
    let (stop_tx, stop_rx) = watch::channel(false);
    let packages = updates_enabled.then(|| {
        update::status::at_start(
            update::status::Record::load(&state_dir).as_ref(),
            trial_marker.is_some(),
        )
    });
    let mut control =
        crate::control::Control::start(runtime.config(), applier.status(), packages, stop_rx)
            .unwrap_or_else(|error| {
                tracing::error!(
                    error = format!("{error:#}"),
                    "Not connecting to the control plane."
                );
                None
            });
    let mut events = control.as_mut().and_then(|c| c.take_events());
    let updates = control.as_ref().map(|c| c.updates());
    let updater = match (&control, &trial_marker) {
        (Some(c), None) if updates_enabled => update::Updater::new(
            &state_dir,
            c.identity(),
            c.secret().clone(),
            runtime.config().updates.max_download_bytes,
            c.updates(),
        )
        .map(std::sync::Arc::new)
        .map_err(|e| tracing::error!(error = %e, "Updates disabled: the pinned release keys are unusable."))
        .ok(),
        _ => None,
    };
    if let (Some(marker), Some(c)) = (&trial_marker, &control) {
        tokio::spawn(report_trial_health(
            marker.clone(),
            runtime.snapshots(),
            c.stats(),
        ));
    }
    let mut preparing: Option<tokio::task::JoinHandle<Option<update::Staged>>> = None;
    let mut install = None;
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    let mut inventory = InventoryTimer::new(runtime.config());
    loop {
        let event = async {
            match events.as_mut() {
                Some(e) => e.recv().await,
                None => std::future::pending().await,
            }
        };
        let prepared = async {
            match preparing.as_mut() {
                Some(task) => task.await.ok().flatten(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            staged = prepared => {
                preparing = None;
                if staged.is_some() {
                    install = staged;
                    break;
                }
            }
            () = inventory.due(), if updates.is_some() => {
                if let Some(updates) = &updates {
                    inventory.report(updates).await;
                }
            }
            event = event => match event {
                Some(crate::control::ServerEvent::RemoteConfig(rc)) => {
                    let (status, applied) = applier.handle(&rc, &mut runtime).await;
                    if let Some(updates) = &updates {
                        use crate::control::StatusUpdate;
                        if let Some(config) = applied {
                            let effective = crate::control::describe::effective_config(&config);
                            let _ = updates.send(StatusUpdate::EffectiveConfig(effective)).await;
                            inventory.reconfigure(&config);
                        }
                        let _ = updates.send(StatusUpdate::RemoteConfigStatus(status)).await;
                    }
                }
                Some(crate::control::ServerEvent::PackagesAvailable(offer)) => match &updater {
                    Some(u) if preparing.is_none() => {
                        preparing = Some(tokio::spawn(u.clone().prepare(offer)));
                    }
                    Some(_) => tracing::info!("An update is already in progress; ignoring the new offer."),
                    None => tracing::debug!("Package offer ignored: updates are off here."),
                },
                Some(other) => tracing::debug!(event = ?other, "Control-plane request not handled by this agent."),
                None => events = None,
            },
        }
    }
    let _ = stop_tx.send(true);
    tracing::info!(
        "{}",
        if install.is_some() {
            "Stopping to install an update."
        } else {
            "Shutting down."
        }
    );
    if let Some(control) = control {
        control.stop().await;
    }
    let health_timeout = Duration::from_secs(runtime.config().updates.health_timeout_seconds);
    runtime.stop();
    if let Some(staged) = install {
        // Let the aborted listener tasks drop, so the trial child can bind the same address.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return update::install(staged, &state_dir, health_timeout).await;
    }
    Ok(())
}

/// Trial child: writes the health marker once a collection has completed and the OpAMP
/// session is connected.
async fn report_trial_health(
    marker: std::path::PathBuf,
    snapshots: SnapshotReceiver,
    stats: Arc<crate::control::stats::Stats>,
) {
    loop {
        if snapshots.borrow().is_some() && stats.values().connected {
            match crate::update::trial::mark_healthy(&marker) {
                Ok(()) => tracing::info!("Trial: collecting and connected; reported healthy."),
                Err(e) => tracing::error!(error = %e, "Trial: writing the health marker failed."),
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the next user inventory report is due (`inventory.interval_hours`; 0: never).
struct InventoryTimer {
    every: Option<Duration>,
    next: tokio::time::Instant,
}

impl InventoryTimer {
    fn new(config: &AgentConfig) -> Self {
        Self {
            every: Self::every(config),
            // The first report goes with the first messages of the session.
            next: tokio::time::Instant::now(),
        }
    }

    fn every(config: &AgentConfig) -> Option<Duration> {
        let hours = config.inventory.interval_hours;
        (hours > 0).then(|| Duration::from_secs(hours * 3600))
    }

    /// A changed interval reports now and then at the new pace.
    fn reconfigure(&mut self, config: &AgentConfig) {
        let every = Self::every(config);
        if every != self.every {
            self.every = every;
            self.next = tokio::time::Instant::now();
        }
    }

    async fn due(&self) {
        match self.every {
            Some(_) => tokio::time::sleep_until(self.next).await,
            None => std::future::pending().await,
        }
    }

    async fn report(&mut self, updates: &tokio::sync::mpsc::Sender<crate::control::StatusUpdate>) {
        use crate::control::inventory;
        self.next = tokio::time::Instant::now() + self.every.unwrap_or(Duration::from_secs(3600));
        let etc = HostPaths::default().etc;
        let collected = tokio::task::spawn_blocking(move || {
            inventory::collect(&etc, std::path::Path::new(inventory::UTMP_PATH))
        })
        .await;
        match collected {
            Ok(Ok(report)) => {
                tracing::debug!(
                    users = report.users.len(),
                    sessions = report.sessions.len(),
                    "Reporting the user inventory."
                );
                let message = inventory::message(&report);
                let _ = updates
                    .send(crate::control::StatusUpdate::CustomMessage(message))
                    .await;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "Reading the user accounts failed; no inventory report this time.")
            }
            Err(_) => tracing::error!("The inventory collection panicked."),
        }
    }
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
