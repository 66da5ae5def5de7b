//! Memory by state from `/proc/meminfo`, and swap per device from `/proc/swaps`.
//!
//! The six memory states partition `MemTotal` exactly, so a sum over
//! `system_memory_usage_bytes` is the machine's memory:
//! `used = MemTotal - MemFree - Buffers - Cached - SReclaimable - SUnreclaim`.
//! (The hostmetrics receiver's `used` also contains unreclaimable slab and its `cached` the
//! reclaimable slab, so its states overlap; ours don't.)

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::host::HostPaths;
use crate::snapshot::{Memory, Snapshot, SwapDevice};
use crate::util::unescape_octal;

pub struct MemoryCollector {
    meminfo: PathBuf,
    swaps: PathBuf,
}

impl MemoryCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            meminfo: paths.proc.join("meminfo"),
            swaps: paths.proc.join("swaps"),
        }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.meminfo)
            .map_err(|e| CollectError::io(&self.meminfo, e))?;
        snapshot.memory =
            Some(parse_meminfo(&text).ok_or_else(|| {
                CollectError::parse(&self.meminfo, "MemTotal or MemFree missing")
            })?);
        // No /proc/swaps (swap support compiled out) means no swap, not an error.
        snapshot.swap = match std::fs::read_to_string(&self.swaps) {
            Ok(text) => parse_swaps(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(CollectError::io(&self.swaps, e)),
        };
        Ok(())
    }
}

fn parse_meminfo(text: &str) -> Option<Memory> {
    let mut total = None;
    let mut free = None;
    let (mut buffers, mut cached, mut sreclaimable, mut sunreclaim) = (0u64, 0u64, 0u64, 0u64);
    let mut available = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match parts.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value,
        };
        match key {
            "MemTotal" => total = Some(bytes),
            "MemFree" => free = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            "SReclaimable" => sreclaimable = bytes,
            "SUnreclaim" => sunreclaim = bytes,
            _ => {}
        }
    }
    let (total, free) = (total?, free?);
    // Clamp each state to what is left so the partition holds even on odd kernels.
    let mut left = total;
    let mut take = |v: u64| {
        let v = v.min(left);
        left -= v;
        v
    };
    let free = take(free);
    let buffered = take(buffers);
    let cached = take(cached);
    let slab_reclaimable = take(sreclaimable);
    let slab_unreclaimable = take(sunreclaim);
    Some(Memory {
        total,
        used: left,
        free,
        buffered,
        cached,
        slab_reclaimable,
        slab_unreclaimable,
        available,
    })
}

/// `/proc/swaps`: `Filename Type Size Used Priority`, sizes in KiB.
fn parse_swaps(text: &str) -> Vec<SwapDevice> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let size: u64 = f.get(2)?.parse().ok()?;
            let used: u64 = f.get(3)?.parse().ok()?;
            Some(SwapDevice {
                device: unescape_octal(f[0]),
                used: used * 1024,
                free: size.saturating_sub(used) * 1024,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684084 kB
MemFree:        23604000 kB
MemAvailable:   23784000 kB
Buffers:           12000 kB
Cached:           300000 kB
SwapCached:            0 kB
SReclaimable:      40000 kB
SUnreclaim:        30000 kB
HugePages_Total:       0
";

    #[test]
    fn states_partition_the_total() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, 24684084 * 1024);
        assert_eq!(m.free, 23604000 * 1024);
        assert_eq!(m.cached, 300000 * 1024);
        assert_eq!(m.available, Some(23784000 * 1024));
        assert_eq!(
            m.by_state().iter().map(|(_, v)| v).sum::<u64>(),
            m.total,
            "states sum to MemTotal"
        );
        assert_eq!(
            m.used,
            (24684084 - 23604000 - 12000 - 300000 - 40000 - 30000) * 1024
        );
    }

    #[test]
    fn missing_total_is_none() {
        assert!(parse_meminfo("MemFree: 1 kB\n").is_none());
        // States larger than the total are clamped rather than underflowing.
        let m = parse_meminfo("MemTotal: 10 kB\nMemFree: 8 kB\nCached: 5 kB\n").unwrap();
        assert_eq!((m.free, m.cached, m.used), (8192, 2048, 0));
    }

    #[test]
    fn swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/zram0                              partition\t8388604\t\t1024\t\t100\n/swap\\040file file 1000 0 -2\n";
        let s = parse_swaps(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].device, "/dev/zram0");
        assert_eq!(s[0].used, 1024 * 1024);
        assert_eq!(s[0].free, (8388604 - 1024) * 1024);
        assert_eq!(s[1].device, "/swap file");
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn collector_reads_fixture_and_tolerates_missing_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(&paths.proc).unwrap();
        let mut c = MemoryCollector::new(&paths);
        let mut s = Snapshot::default();
        assert!(c.collect(&mut s).is_err());
        std::fs::write(paths.proc.join("meminfo"), MEMINFO).unwrap();
        c.collect(&mut s).unwrap();
        assert!(s.memory.is_some());
        assert!(s.swap.is_empty());
    }
}
