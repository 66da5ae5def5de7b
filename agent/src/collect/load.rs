//! Load averages from `/proc/loadavg`.

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::host::HostPaths;
use crate::snapshot::{LoadAverage, Snapshot};

pub struct LoadCollector {
    path: PathBuf,
}

impl LoadCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            path: paths.proc.join("loadavg"),
        }
    }
}

impl Collector for LoadCollector {
    fn name(&self) -> &'static str {
        "load"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| CollectError::io(&self.path, e))?;
        let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
        let mut next = || {
            fields
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| CollectError::parse(&self.path, "expected three load averages"))
        };
        snapshot.load = Some(LoadAverage {
            load1: next()?,
            load5: next()?,
            load15: next()?,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(&paths.proc).unwrap();
        std::fs::write(paths.proc.join("loadavg"), "0.52 1.00 2.25 2/85 4130\n").unwrap();
        let mut s = Snapshot::default();
        LoadCollector::new(&paths).collect(&mut s).unwrap();
        assert_eq!(
            s.load,
            Some(LoadAverage {
                load1: 0.52,
                load5: 1.0,
                load15: 2.25
            })
        );
        std::fs::write(paths.proc.join("loadavg"), "0.52\n").unwrap();
        assert!(LoadCollector::new(&paths).collect(&mut s).is_err());
    }
}
