//! Seconds since boot from `/proc/uptime`.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::host::HostPaths;
use crate::snapshot::Snapshot;

pub struct UptimeCollector {
    path: PathBuf,
}

impl UptimeCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            path: paths.proc.join("uptime"),
        }
    }
}

impl Collector for UptimeCollector {
    fn name(&self) -> &'static str {
        "uptime"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| CollectError::io(&self.path, e))?;
        let seconds = text
            .split_ascii_whitespace()
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| CollectError::parse(&self.path, "expected seconds since boot"))?;
        snapshot.uptime_seconds = Some(seconds);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uptime() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(&paths.proc).unwrap();
        std::fs::write(paths.proc.join("uptime"), "13041.93 25991.67\n").unwrap();
        let mut s = Snapshot::default();
        UptimeCollector::new(&paths).collect(&mut s).unwrap();
        assert_eq!(s.uptime_seconds, Some(13041.93));
        std::fs::write(paths.proc.join("uptime"), "").unwrap();
        assert!(UptimeCollector::new(&paths).collect(&mut s).is_err());
    }
}
