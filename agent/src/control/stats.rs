//! The OpAMP session's own numbers, for the agent's self-metrics
//! (`rmm_agent_opamp_connected`, `rmm_agent_opamp_reconnects_total`).
//!
//! Each session loop owns a [`Stats`]; the agent's one control-plane session is published
//! process-wide ([`publish`]), like the OTLP exporter's counters, so the metric model reads it
//! without a handle threaded through the collection loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// Counters of one session loop.
#[derive(Debug, Default)]
pub struct Stats {
    connected: AtomicBool,
    reconnects: AtomicU64,
}

/// Values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsValues {
    /// A WebSocket session is up and the server answered it.
    pub connected: bool,
    /// Connection attempts after the first one (each retry after a failure or a lost session).
    pub reconnects: u64,
}

static GLOBAL: RwLock<Option<Arc<Stats>>> = RwLock::new(None);

/// Makes `stats` the process's session numbers (`None`: no session any more).
pub fn publish(stats: Option<Arc<Stats>>) {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = stats;
}

/// The published session's values, or `None` when the agent has no control-plane session
/// (not enrolled, or `[control] enabled = false`): then no OpAMP metrics are exported at all.
pub fn current() -> Option<StatsValues> {
    GLOBAL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|s| s.values())
}

impl Stats {
    pub fn set_connected(&self, on: bool) {
        self.connected.store(on, Relaxed);
    }

    pub fn reconnect(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }

    pub fn values(&self) -> StatsValues {
        StatsValues {
            connected: self.connected.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
        }
    }
}
