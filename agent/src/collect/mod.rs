//! Collectors: each file reads one part of the host into a [`Snapshot`].
//!
//! [`Collectors`] holds the enabled collectors and runs them in order once per cycle. A
//! collector that fails leaves its part of the snapshot empty; the failure is logged once per
//! distinct message and counted in [`AgentStats::collector_errors`]
//! (`rmm_agent_collector_errors_total{collector=…}`), and the others still run.
//!
//! Collectors that report rates (CPU and process utilization) keep their previous sample; the
//! first call only records a baseline. [`Collectors::prime`] takes that baseline so the first
//! published snapshot already has real utilization.

mod cpu;
mod disk;
mod filesystem;
mod load;
mod memory;
mod network;
pub mod process;
mod temperature;
mod uptime;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::CollectConfig;
use crate::host::{HostFacts, HostPaths, SystemConstants};
use crate::snapshot::{AgentStats, Snapshot};

pub use cpu::CpuCollector;
pub use disk::DiskCollector;
pub use filesystem::FilesystemCollector;
pub use load::LoadCollector;
pub use memory::MemoryCollector;
pub use network::NetworkCollector;
pub use process::ProcessCollector;
pub use temperature::TemperatureCollector;
pub use uptime::UptimeCollector;

/// Why a collector produced nothing this cycle.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A kernel file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A kernel file did not have the expected shape.
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl CollectError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, message: impl Into<String>) -> Self {
        Self::Parse {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// One part of the host. Implementations keep whatever state they need between cycles
/// (previous samples, reused buffers).
pub trait Collector: Send {
    /// Stable name: the `collector` label of the agent's self-metrics and the config key.
    fn name(&self) -> &'static str;
    /// Reads the host and fills this collector's part of `snapshot`.
    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError>;
}

/// Most distinct error messages remembered per collector for "log once" purposes.
const MAX_REMEMBERED_ERRORS: usize = 32;

struct Entry {
    collector: Box<dyn Collector>,
    errors: u64,
    logged: HashSet<String>,
}

/// The enabled collectors of one configuration, run together once per cycle.
pub struct Collectors {
    entries: Vec<Entry>,
    host: HostFacts,
    collections: u64,
}

impl Collectors {
    /// Builds the collectors `config` enables, reading the host through `paths`.
    pub fn new(config: &CollectConfig, paths: &HostPaths, constants: SystemConstants) -> Self {
        let mut list: Vec<Box<dyn Collector>> = Vec::new();
        if config.cpu {
            list.push(Box::new(CpuCollector::new(paths, constants)));
        }
        if config.load {
            list.push(Box::new(LoadCollector::new(paths)));
        }
        if config.memory {
            list.push(Box::new(MemoryCollector::new(paths)));
        }
        if config.filesystem {
            list.push(Box::new(FilesystemCollector::new(paths, config)));
        }
        if config.disk {
            list.push(Box::new(DiskCollector::new(paths, config)));
        }
        if config.network {
            list.push(Box::new(NetworkCollector::new(paths, config)));
        }
        if config.temperature {
            list.push(Box::new(TemperatureCollector::new(paths)));
        }
        if config.uptime {
            list.push(Box::new(UptimeCollector::new(paths)));
        }
        if config.processes {
            list.push(Box::new(ProcessCollector::new(paths, constants, config)));
        }
        Self::from_collectors(list, HostFacts::detect(paths))
    }

    /// Wraps an explicit list of collectors (tests, embedding).
    pub fn from_collectors(collectors: Vec<Box<dyn Collector>>, host: HostFacts) -> Self {
        let entries = collectors
            .into_iter()
            .map(|collector| Entry {
                collector,
                errors: 0,
                logged: HashSet::new(),
            })
            .collect();
        Self {
            entries,
            host,
            collections: 0,
        }
    }

    /// Names of the enabled collectors, in run order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.collector.name())
    }

    /// Takes the baseline sample that rate-based collectors need, discarding the result and
    /// without counting it as a collection.
    pub fn prime(&mut self) {
        let mut scratch = Snapshot::default();
        for entry in &mut self.entries {
            // Errors surface (and are counted) on the real cycles that follow.
            let _ = entry.collector.collect(&mut scratch);
        }
    }

    /// Runs every collector once and returns the snapshot.
    pub fn collect(&mut self) -> Snapshot {
        let started = Instant::now();
        let mut snapshot = Snapshot {
            timestamp_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            host: self.host.clone(),
            ..Snapshot::default()
        };
        let mut stats = AgentStats {
            version: crate::version().to_owned(),
            ..AgentStats::default()
        };
        for entry in &mut self.entries {
            let name = entry.collector.name();
            let t0 = Instant::now();
            if let Err(error) = entry.collector.collect(&mut snapshot) {
                entry.errors += 1;
                log_once(entry, name, &error);
            }
            stats
                .collector_duration_seconds
                .insert(name, t0.elapsed().as_secs_f64());
            stats.collector_errors.insert(name, entry.errors);
        }
        self.collections += 1;
        stats.collections = self.collections;
        stats.collection_duration_seconds = started.elapsed().as_secs_f64();
        snapshot.agent = stats;
        snapshot
    }
}

/// Logs a collector error the first time its message is seen, so a persistent failure does
/// not flood the log every cycle (the counter still counts every occurrence).
fn log_once(entry: &mut Entry, collector: &'static str, error: &CollectError) {
    let message = error.to_string();
    if entry.logged.contains(&message) {
        return;
    }
    tracing::warn!(collector, error = %message, "Collector failed; its metrics are missing from this cycle.");
    if entry.logged.len() < MAX_REMEMBERED_ERRORS {
        entry.logged.insert(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(u32);
    impl Collector for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn collect(&mut self, _: &mut Snapshot) -> Result<(), CollectError> {
            self.0 += 1;
            Err(CollectError::parse(Path::new("/x"), "broken"))
        }
    }

    struct Uptime;
    impl Collector for Uptime {
        fn name(&self) -> &'static str {
            "uptime"
        }
        fn collect(&mut self, s: &mut Snapshot) -> Result<(), CollectError> {
            s.uptime_seconds = Some(42.0);
            Ok(())
        }
    }

    #[test]
    fn a_failing_collector_is_counted_and_the_others_still_run() {
        let mut c = Collectors::from_collectors(
            vec![Box::new(Failing(0)), Box::new(Uptime)],
            HostFacts::default(),
        );
        c.prime();
        let s1 = c.collect();
        let s2 = c.collect();
        assert_eq!(s2.uptime_seconds, Some(42.0));
        assert_eq!(s1.agent.collector_errors["failing"], 1);
        assert_eq!(s2.agent.collector_errors["failing"], 2);
        assert_eq!(s2.agent.collector_errors["uptime"], 0);
        assert_eq!(s2.agent.collections, 2);
        assert!(s2.agent.collector_duration_seconds.contains_key("uptime"));
        assert_eq!(c.names().collect::<Vec<_>>(), ["failing", "uptime"]);
    }
}
