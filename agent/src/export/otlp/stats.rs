//! The exporter's own counters, shown on `/metrics` (and pushed) as `rmm_agent_otlp_*` by
//! [`crate::export::model`]. Process-wide: an agent runs at most one OTLP exporter, and the
//! model reads them without a handle being threaded through the collection loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters of the running exporter.
#[derive(Debug, Default)]
pub struct Stats {
    enabled: AtomicBool,
    exports: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    buffer_bytes: AtomicU64,
    buffer_batches: AtomicU64,
}

/// Values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsValues {
    /// Pushes the receiver accepted.
    pub exports: u64,
    /// Requests that failed (each retry counts).
    pub failures: u64,
    /// Pushes discarded: buffer full (oldest first) or refused by the receiver as invalid.
    pub dropped: u64,
    /// Bytes waiting in the buffer (memory and disk).
    pub buffer_bytes: u64,
    /// Pushes waiting in the buffer.
    pub buffer_batches: u64,
}

static STATS: Stats = Stats {
    enabled: AtomicBool::new(false),
    exports: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    buffer_bytes: AtomicU64::new(0),
    buffer_batches: AtomicU64::new(0),
};

/// The process's counters.
pub fn global() -> &'static Stats {
    &STATS
}

/// The current values, or `None` when no OTLP exporter runs (nothing is exported then).
pub fn current() -> Option<StatsValues> {
    STATS.enabled.load(Relaxed).then(|| STATS.values())
}

impl Stats {
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }

    pub fn export_ok(&self) {
        self.exports.fetch_add(1, Relaxed);
    }

    pub fn export_failed(&self) {
        self.failures.fetch_add(1, Relaxed);
    }

    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    pub fn buffer(&self, bytes: u64, batches: u64) {
        self.buffer_bytes.store(bytes, Relaxed);
        self.buffer_batches.store(batches, Relaxed);
    }

    pub fn values(&self) -> StatsValues {
        StatsValues {
            exports: self.exports.load(Relaxed),
            failures: self.failures.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            buffer_bytes: self.buffer_bytes.load(Relaxed),
            buffer_batches: self.buffer_batches.load(Relaxed),
        }
    }
}
