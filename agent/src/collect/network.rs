//! Bytes, packets, errors and drops per network interface from `/proc/net/dev` (the agent's
//! network namespace). `collect.network_exclude_interfaces` globs drop interfaces (`lo` by
//! default).

use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::host::HostPaths;
use crate::snapshot::{NetworkInterface, Snapshot};
use crate::util::matches_any;

pub struct NetworkCollector {
    path: PathBuf,
    exclude: Vec<String>,
}

impl NetworkCollector {
    pub fn new(paths: &HostPaths, config: &CollectConfig) -> Self {
        Self {
            path: paths.proc.join("net/dev"),
            exclude: config.network_exclude_interfaces.clone(),
        }
    }
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| CollectError::io(&self.path, e))?;
        let mut out = Vec::new();
        // Two header lines, then `name: 16 counters` (receive 8, transmit 8).
        for line in text.lines().skip(2) {
            let Some((name, counters)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if matches_any(&self.exclude, name) {
                continue;
            }
            let c: Vec<u64> = counters
                .split_ascii_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if c.len() < 16 {
                return Err(CollectError::parse(
                    &self.path,
                    format!("interface {name}: expected 16 counters, got {}", c.len()),
                ));
            }
            out.push(NetworkInterface {
                device: name.to_owned(),
                receive_bytes: c[0],
                receive_packets: c[1],
                receive_errors: c[2],
                receive_dropped: c[3],
                transmit_bytes: c[8],
                transmit_packets: c[9],
                transmit_errors: c[10],
                transmit_dropped: c[11],
            });
        }
        snapshot.network = out;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    4789      46    0    0    0     0          0         0     4789      46    0    0    0     0       0          0
  eth0: 172459796    7091    3    4    0     0          0         0   618263    4874    5    6    0     0       0          0
veth1a2b3c:0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
";

    #[test]
    fn parses_and_excludes_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(paths.proc.join("net")).unwrap();
        std::fs::write(paths.proc.join("net/dev"), NET_DEV).unwrap();
        let mut s = Snapshot::default();
        NetworkCollector::new(&paths, &CollectConfig::default())
            .collect(&mut s)
            .unwrap();
        let names: Vec<_> = s.network.iter().map(|n| n.device.as_str()).collect();
        assert_eq!(names, ["eth0", "veth1a2b3c"]);
        let eth0 = &s.network[0];
        assert_eq!(
            (
                eth0.receive_bytes,
                eth0.receive_packets,
                eth0.receive_errors,
                eth0.receive_dropped
            ),
            (172459796, 7091, 3, 4)
        );
        assert_eq!(
            (
                eth0.transmit_bytes,
                eth0.transmit_packets,
                eth0.transmit_errors,
                eth0.transmit_dropped
            ),
            (618263, 4874, 5, 6)
        );
        assert_eq!(s.network[1].transmit_bytes, 8);
    }

    #[test]
    fn truncated_line_is_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(paths.proc.join("net")).unwrap();
        std::fs::write(paths.proc.join("net/dev"), "h\nh\n eth0: 1 2 3\n").unwrap();
        let mut s = Snapshot::default();
        let err = NetworkCollector::new(&paths, &CollectConfig::default())
            .collect(&mut s)
            .unwrap_err();
        assert!(err.to_string().contains("eth0"), "{err}");
    }
}
