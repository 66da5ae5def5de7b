//! CPU time per logical CPU and mode from `/proc/stat`, and utilization over the last interval.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::host::{HostPaths, SystemConstants};
use crate::snapshot::{CpuCore, CpuModes, Snapshot};
use crate::util::read_file_into;

/// Reads `cpuN` lines of `/proc/stat`.
pub struct CpuCollector {
    path: PathBuf,
    ticks_per_second: f64,
    buf: Vec<u8>,
    /// Previous sample in ticks, by CPU name.
    previous: Vec<(String, [u64; 8])>,
}

impl CpuCollector {
    pub fn new(paths: &HostPaths, constants: SystemConstants) -> Self {
        Self {
            path: paths.proc.join("stat"),
            ticks_per_second: constants.clock_ticks_per_second as f64,
            buf: Vec::new(),
            previous: Vec::new(),
        }
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        read_file_into(&self.path, &mut self.buf).map_err(|e| CollectError::io(&self.path, e))?;
        let text = String::from_utf8_lossy(&self.buf);
        let mut current = Vec::with_capacity(self.previous.len());
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            // The aggregate `cpu ` line is skipped: v0 reports per logical CPU only.
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let name = fields.next().unwrap_or_default();
            let mut ticks = [0u64; 8];
            for (slot, field) in ticks.iter_mut().zip(fields) {
                *slot = field
                    .parse()
                    .map_err(|_| CollectError::parse(&self.path, format!("bad field in {name}")))?;
            }
            current.push((name.to_owned(), ticks));
        }
        let tps = self.ticks_per_second;
        snapshot.cpus = current
            .iter()
            .map(|(name, ticks)| {
                let utilization = self
                    .previous
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, prev)| utilization(prev, ticks));
                CpuCore {
                    cpu: name.clone(),
                    time: modes(ticks.map(|t| t as f64 / tps)),
                    utilization,
                }
            })
            .collect();
        self.previous = current;
        Ok(())
    }
}

/// `/proc/stat` column order: user nice system idle iowait irq softirq steal.
fn modes(v: [f64; 8]) -> CpuModes {
    CpuModes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        wait: v[4],
        interrupt: v[5],
        softirq: v[6],
        steal: v[7],
    }
}

/// Share of the interval in each mode; `None` when no tick elapsed (or the counters went back,
/// as after CPU hotplug).
fn utilization(prev: &[u64; 8], cur: &[u64; 8]) -> Option<CpuModes> {
    let mut delta = [0f64; 8];
    for i in 0..8 {
        delta[i] = cur[i].checked_sub(prev[i])? as f64;
    }
    let total: f64 = delta.iter().sum();
    (total > 0.0).then(|| modes(delta.map(|d| d / total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(dir: &std::path::Path) -> CpuCollector {
        let paths = HostPaths::from_root(dir);
        std::fs::create_dir_all(&paths.proc).unwrap();
        CpuCollector::new(
            &paths,
            SystemConstants {
                clock_ticks_per_second: 100,
                page_size: 4096,
                logical_cpus: 2,
            },
        )
    }

    fn write_stat(dir: &std::path::Path, text: &str) {
        std::fs::write(dir.join("proc/stat"), text).unwrap();
    }

    #[test]
    fn times_then_utilization() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        write_stat(
            dir.path(),
            "cpu  300 0 100 1000 0 0 0 0 0 0\ncpu0 100 0 50 500 0 0 0 0 0 0\ncpu1 200 0 50 500 0 0 0 0 0 0\nintr 1 2 3\nctxt 5\n",
        );
        let mut s = Snapshot::default();
        c.collect(&mut s).unwrap();
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(s.cpus[0].cpu, "cpu0");
        assert_eq!(s.cpus[0].time.user, 1.0);
        assert_eq!(s.cpus[0].time.idle, 5.0);
        assert!(s.cpus[0].utilization.is_none(), "first sample has no rate");

        write_stat(
            dir.path(),
            "cpu  0\ncpu0 150 0 50 550 0 0 0 0 0 0\ncpu1 200 0 50 500 0 0 0 0 0 0\n",
        );
        c.collect(&mut s).unwrap();
        let u = s.cpus[0].utilization.unwrap();
        assert_eq!(u.user, 0.5);
        assert_eq!(u.idle, 0.5);
        assert!((u.total() - 1.0).abs() < 1e-9);
        assert!(s.cpus[1].utilization.is_none(), "no tick elapsed on cpu1");
    }

    #[test]
    fn short_lines_of_old_kernels_fill_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        write_stat(dir.path(), "cpu0 1 2 3 4\n");
        let mut s = Snapshot::default();
        c.collect(&mut s).unwrap();
        assert_eq!(s.cpus[0].time.idle, 0.04);
        assert_eq!(s.cpus[0].time.steal, 0.0);
    }

    #[test]
    fn zero_cpu_host_has_no_series() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        write_stat(dir.path(), "cpu  0 0 0 0\nintr 0\n");
        let mut s = Snapshot::default();
        c.collect(&mut s).unwrap();
        assert!(s.cpus.is_empty());
    }

    #[test]
    fn missing_or_garbage_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = collector(dir.path());
        let mut s = Snapshot::default();
        assert!(matches!(c.collect(&mut s), Err(CollectError::Io { .. })));
        write_stat(dir.path(), "cpu0 1 x 3\n");
        assert!(matches!(c.collect(&mut s), Err(CollectError::Parse { .. })));
    }
}
