//! [`Snapshot`]: everything one collection cycle saw, the one item passed from `collect/` to
//! every exporter.
//!
//! Values are in base units (bytes, seconds, ratios in `[0, 1]`); exporters only rename and
//! reshape, never convert. A collector that is off or failed leaves its part empty (`None` or
//! an empty list), which exporters turn into "no series", never into zeros.
//!
//! `rmm-agent collect --once --format json` prints this struct as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::host::HostFacts;

/// One collection cycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Wall-clock time the cycle started, milliseconds since the Unix epoch.
    pub timestamp_unix_ms: u64,
    /// Host facts (resource attributes).
    pub host: HostFacts,
    /// Per logical CPU times and utilization.
    pub cpus: Vec<CpuCore>,
    /// Load averages.
    pub load: Option<LoadAverage>,
    /// Memory by state.
    pub memory: Option<Memory>,
    /// Swap usage per swap device (empty when the host has no swap).
    pub swap: Vec<SwapDevice>,
    /// Usage per mounted filesystem (pseudo filesystems excluded by config).
    pub filesystems: Vec<Filesystem>,
    /// I/O counters per whole disk.
    pub disks: Vec<Disk>,
    /// I/O counters per network interface.
    pub network: Vec<NetworkInterface>,
    /// Temperature sensors (hwmon and thermal zones); empty when the host exposes none.
    pub temperatures: Vec<Temperature>,
    /// Seconds since boot.
    pub uptime_seconds: Option<f64>,
    /// Process counts by state.
    pub process_counts: Option<ProcessCounts>,
    /// The top N processes by CPU utilization, highest first.
    pub top_cpu: Vec<ProcessInfo>,
    /// The top N processes by resident memory, highest first.
    pub top_memory: Vec<ProcessInfo>,
    /// Everything the two top lists leave out, summed.
    pub other_processes: Option<ProcessRemainder>,
    /// The agent's own health.
    pub agent: AgentStats,
}

/// CPU time per mode, as in `/proc/stat` (v0 names: `wait` is iowait, `interrupt` is irq).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuModes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub wait: f64,
    pub interrupt: f64,
    pub softirq: f64,
    pub steal: f64,
}

impl CpuModes {
    /// `(state label, value)` pairs in a fixed order, for exporters.
    pub fn by_state(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("wait", self.wait),
            ("interrupt", self.interrupt),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// Sum over all modes.
    pub fn total(&self) -> f64 {
        self.by_state().iter().map(|(_, v)| v).sum()
    }
}

/// One logical CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuCore {
    /// `cpu0`, `cpu1`, … (the v0 `cpu` label value).
    pub cpu: String,
    /// Seconds spent in each mode since boot.
    pub time: CpuModes,
    /// Share of the last interval spent in each mode; `None` until two samples exist.
    pub utilization: Option<CpuModes>,
}

/// `/proc/loadavg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LoadAverage {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

/// Physical memory by state, bytes. The six states partition `total` exactly:
/// `used + free + buffered + cached + slab_reclaimable + slab_unreclaimable == total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// `MemTotal`.
    pub total: u64,
    /// Everything not in another state (processes and non-slab kernel memory).
    pub used: u64,
    /// `MemFree`.
    pub free: u64,
    /// `Buffers`.
    pub buffered: u64,
    /// `Cached` (page cache, excluding reclaimable slab).
    pub cached: u64,
    /// `SReclaimable`.
    pub slab_reclaimable: u64,
    /// `SUnreclaim`.
    pub slab_unreclaimable: u64,
    /// `MemAvailable`, the kernel's estimate of memory available without swapping.
    pub available: Option<u64>,
}

impl Memory {
    /// `(state label, bytes)` pairs in a fixed order, for exporters.
    pub fn by_state(&self) -> [(&'static str, u64); 6] {
        [
            ("used", self.used),
            ("free", self.free),
            ("buffered", self.buffered),
            ("cached", self.cached),
            ("slab_reclaimable", self.slab_reclaimable),
            ("slab_unreclaimable", self.slab_unreclaimable),
        ]
    }
}

/// One swap device from `/proc/swaps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SwapDevice {
    pub device: String,
    pub used: u64,
    pub free: u64,
}

/// One mounted filesystem, from `statvfs`. `used + free + reserved` is the filesystem's size
/// (`f_blocks * f_frsize`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    pub device: String,
    pub mountpoint: String,
    /// Filesystem type (`ext4`, `xfs`, …).
    #[serde(rename = "type")]
    pub fs_type: String,
    /// `rw` or `ro`.
    pub mode: String,
    pub used: u64,
    /// Available to unprivileged users (`f_bavail`).
    pub free: u64,
    /// Free but reserved for root (`f_bfree - f_bavail`).
    pub reserved: u64,
}

impl Filesystem {
    /// The filesystem's size in bytes.
    pub fn size(&self) -> u64 {
        self.used + self.free + self.reserved
    }
}

/// Counters of one whole disk from `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Disk {
    pub device: String,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    /// Seconds spent reading (sum over requests).
    pub read_time_seconds: f64,
    /// Seconds spent writing (sum over requests).
    pub write_time_seconds: f64,
    /// Seconds the device had I/O in flight.
    pub io_time_seconds: f64,
    /// Requests in flight now.
    pub pending_operations: u64,
}

/// Counters of one network interface from `/proc/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkInterface {
    pub device: String,
    pub receive_bytes: u64,
    pub transmit_bytes: u64,
    pub receive_packets: u64,
    pub transmit_packets: u64,
    pub receive_errors: u64,
    pub transmit_errors: u64,
    pub receive_dropped: u64,
    pub transmit_dropped: u64,
}

/// One temperature sensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Temperature {
    /// Unique within the host: `hwmon0_temp1`, `thermal_zone0`.
    pub id: String,
    /// The chip or zone: hwmon `name`, thermal zone `type`.
    pub name: String,
    /// The sensor's label (`Package id 0`, `Core 1`) or its file stem (`temp1`).
    pub sensor: String,
    pub celsius: f64,
}

/// Process counts by state (v0 `status` values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcessCounts {
    pub running: u64,
    pub sleeping: u64,
    pub blocked: u64,
    pub stopped: u64,
    pub zombies: u64,
    pub idle: u64,
    pub unknown: u64,
}

impl ProcessCounts {
    /// `(status label, count)` pairs in a fixed order, for exporters.
    pub fn by_status(&self) -> [(&'static str, u64); 7] {
        [
            ("running", self.running),
            ("sleeping", self.sleeping),
            ("blocked", self.blocked),
            ("stopped", self.stopped),
            ("zombies", self.zombies),
            ("idle", self.idle),
            ("unknown", self.unknown),
        ]
    }

    /// All processes.
    pub fn total(&self) -> u64 {
        self.by_status().iter().map(|(_, n)| n).sum()
    }
}

/// One process of a top list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent_pid: u32,
    /// Executable name (the kernel's `comm`, completed from `argv[0]` when truncated).
    pub name: String,
    /// User name of the real uid, or the uid as a number when it has no name.
    pub owner: String,
    /// Command line, only when `collect.command_line` is on; truncated to the configured length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// CPU utilization over the last interval, user + system, share of all logical CPUs.
    pub cpu_utilization: f64,
    pub cpu_utilization_user: f64,
    pub cpu_utilization_system: f64,
    /// CPU seconds since the process started.
    pub cpu_time_user: f64,
    pub cpu_time_system: f64,
    /// Resident set size, bytes.
    pub memory_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: u64,
    pub threads: u64,
}

/// The sum over every process that is in neither top list. Its CPU times are monotonic: they
/// accumulate the CPU time the remainder used since the agent started, so `rate()` over the
/// remainder plus the top processes is the host's process CPU use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessRemainder {
    pub processes: u64,
    pub cpu_utilization_user: f64,
    pub cpu_utilization_system: f64,
    pub cpu_time_user: f64,
    pub cpu_time_system: f64,
    pub memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub threads: u64,
}

/// The agent's own health, reported with every snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentStats {
    pub version: String,
    /// Wall time of this collection cycle, seconds.
    pub collection_duration_seconds: f64,
    /// Cycles completed since start, this one included.
    pub collections: u64,
    /// Errors per collector since start (every enabled collector is listed).
    pub collector_errors: BTreeMap<&'static str, u64>,
    /// Wall time of each collector in this cycle, seconds.
    pub collector_duration_seconds: BTreeMap<&'static str, f64>,
}
