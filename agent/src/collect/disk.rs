//! I/O counters per whole disk from `/proc/diskstats`.
//!
//! Only whole disks are reported (a name listed under `/sys/block`), so partitions don't
//! double-count their disk; `collect.disk_exclude_devices` globs drop more (loop and ram devices
//! by default). Sector counts are in 512-byte units whatever the device's sector size.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::host::HostPaths;
use crate::snapshot::{Disk, Snapshot};
use crate::util::matches_any;

const SECTOR_BYTES: u64 = 512;

pub struct DiskCollector {
    diskstats: PathBuf,
    sys_block: PathBuf,
    exclude: Vec<String>,
}

impl DiskCollector {
    pub fn new(paths: &HostPaths, config: &CollectConfig) -> Self {
        Self {
            diskstats: paths.proc.join("diskstats"),
            sys_block: paths.sys.join("block"),
            exclude: config.disk_exclude_devices.clone(),
        }
    }

    /// Names under `/sys/block`, or `None` when sysfs is not there (then every device counts).
    fn whole_disks(&self) -> Option<Vec<String>> {
        let entries = std::fs::read_dir(&self.sys_block).ok()?;
        Some(
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect(),
        )
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text = std::fs::read_to_string(&self.diskstats)
            .map_err(|e| CollectError::io(&self.diskstats, e))?;
        let whole = self.whole_disks();
        let mut disks = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 14 {
                continue;
            }
            let name = f[2];
            if matches_any(&self.exclude, name)
                || whole.as_ref().is_some_and(|w| !w.iter().any(|d| d == name))
            {
                continue;
            }
            let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
            disks.push(Disk {
                device: name.to_owned(),
                reads: n(3),
                read_bytes: n(5) * SECTOR_BYTES,
                read_time_seconds: n(6) as f64 / 1000.0,
                writes: n(7),
                write_bytes: n(9) * SECTOR_BYTES,
                write_time_seconds: n(10) as f64 / 1000.0,
                pending_operations: n(11),
                io_time_seconds: n(12) as f64 / 1000.0,
            });
        }
        snapshot.disks = disks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = "   7       0 loop0 10 0 20 1 0 0 0 0 0 4 1 0 0 0 0
 254       0 vda 14158 3297 1112194 5840 91473 61512 4313000 102932 2 85424 108772 0 0 0 0
 254       1 vda1 100 0 800 10 0 0 0 0 0 10 10 0 0 0 0
 252       0 zram0 5 0 40 0 0 0 0 0 0 0 0
";

    fn setup(with_sys: bool) -> (tempfile::TempDir, HostPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(&paths.proc).unwrap();
        std::fs::write(paths.proc.join("diskstats"), DISKSTATS).unwrap();
        if with_sys {
            for d in ["loop0", "vda", "zram0"] {
                std::fs::create_dir_all(paths.sys.join("block").join(d)).unwrap();
            }
        }
        (dir, paths)
    }

    #[test]
    fn whole_disks_only_and_excludes() {
        let (_dir, paths) = setup(true);
        let mut s = Snapshot::default();
        DiskCollector::new(&paths, &CollectConfig::default())
            .collect(&mut s)
            .unwrap();
        assert_eq!(s.disks.len(), 1, "{:?}", s.disks);
        let vda = &s.disks[0];
        assert_eq!(vda.device, "vda");
        assert_eq!(vda.reads, 14158);
        assert_eq!(vda.read_bytes, 1112194 * 512);
        assert_eq!(vda.writes, 91473);
        assert_eq!(vda.write_bytes, 4313000 * 512);
        assert_eq!(vda.pending_operations, 2);
        assert_eq!(vda.io_time_seconds, 85.424);
        assert_eq!(vda.read_time_seconds, 5.84);
    }

    #[test]
    fn without_sysfs_partitions_are_kept() {
        let (_dir, paths) = setup(false);
        let mut s = Snapshot::default();
        DiskCollector::new(&paths, &CollectConfig::default())
            .collect(&mut s)
            .unwrap();
        let names: Vec<_> = s.disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda", "vda1"]);
    }
}
