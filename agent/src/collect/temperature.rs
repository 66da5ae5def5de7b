//! Temperatures from hwmon (`/sys/class/hwmon/hwmon*/temp*_input`) and thermal zones
//! (`/sys/class/thermal/thermal_zone*/temp`), both in millidegrees Celsius.
//!
//! Hosts without sensors (most VMs) have neither directory: that yields no series and no error.
//! A sensor file that fails to read (some drivers return `EIO`/`ENODATA` while a device sleeps)
//! is skipped quietly.

use std::path::{Path, PathBuf};

use super::{CollectError, Collector};
use crate::host::HostPaths;
use crate::snapshot::{Snapshot, Temperature};

pub struct TemperatureCollector {
    hwmon: PathBuf,
    thermal: PathBuf,
}

impl TemperatureCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            hwmon: paths.sys.join("class/hwmon"),
            thermal: paths.sys.join("class/thermal"),
        }
    }
}

impl Collector for TemperatureCollector {
    fn name(&self) -> &'static str {
        "temperature"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut out = Vec::new();
        for (chip_id, chip) in sorted_entries(&self.hwmon, "hwmon") {
            let chip_name = read_trimmed(&chip.join("name")).unwrap_or_else(|| chip_id.clone());
            for (sensor, input) in sorted_entries(&chip, "temp") {
                let Some(stem) = sensor.strip_suffix("_input") else {
                    continue;
                };
                let Some(millis) = read_trimmed(&input).and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                let label = read_trimmed(&chip.join(format!("{stem}_label")));
                out.push(Temperature {
                    id: format!("{chip_id}_{stem}"),
                    name: chip_name.clone(),
                    sensor: label.unwrap_or_else(|| stem.to_owned()),
                    celsius: millis / 1000.0,
                });
            }
        }
        for (zone_id, zone) in sorted_entries(&self.thermal, "thermal_zone") {
            let Some(millis) = read_trimmed(&zone.join("temp")).and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let kind = read_trimmed(&zone.join("type")).unwrap_or_else(|| zone_id.clone());
            out.push(Temperature {
                id: zone_id,
                name: kind.clone(),
                sensor: kind,
                celsius: millis / 1000.0,
            });
        }
        snapshot.temperatures = out;
        Ok(())
    }
}

/// `(file name, path)` of the entries of `dir` whose name starts with `prefix`, in natural
/// order (`hwmon2` before `hwmon10`). A missing directory is empty.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            name.starts_with(prefix).then(|| (name, e.path()))
        })
        .collect();
    out.sort_by_key(|(name, _)| natural_key(name));
    out
}

fn natural_key(name: &str) -> (String, u64, String) {
    let split = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let (head, tail) = name.split_at(split);
    let digits_end = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    let number = tail[..digits_end].parse().unwrap_or(0);
    (head.to_owned(), number, tail[digits_end..].to_owned())
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn hwmon_and_thermal_zones() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        let hw = paths.sys.join("class/hwmon");
        write(hw.join("hwmon10/name"), "nvme\n");
        write(hw.join("hwmon10/temp1_input"), "38850\n");
        write(hw.join("hwmon2/name"), "coretemp\n");
        write(hw.join("hwmon2/temp1_input"), "45000\n");
        write(hw.join("hwmon2/temp1_label"), "Package id 0\n");
        write(hw.join("hwmon2/temp2_input"), "");
        write(hw.join("hwmon2/temp1_crit"), "100000\n");
        write(
            paths.sys.join("class/thermal/thermal_zone0/temp"),
            "27800\n",
        );
        write(
            paths.sys.join("class/thermal/thermal_zone0/type"),
            "acpitz\n",
        );
        write(
            paths.sys.join("class/thermal/cooling_device0/type"),
            "fan\n",
        );
        let mut s = Snapshot::default();
        TemperatureCollector::new(&paths).collect(&mut s).unwrap();
        let got: Vec<(&str, &str, &str, f64)> = s
            .temperatures
            .iter()
            .map(|t| (t.id.as_str(), t.name.as_str(), t.sensor.as_str(), t.celsius))
            .collect();
        assert_eq!(
            got,
            [
                ("hwmon2_temp1", "coretemp", "Package id 0", 45.0),
                ("hwmon10_temp1", "nvme", "temp1", 38.85),
                ("thermal_zone0", "acpitz", "acpitz", 27.8),
            ]
        );
    }

    #[test]
    fn no_sensors_no_series_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Snapshot::default();
        TemperatureCollector::new(&HostPaths::from_root(dir.path()))
            .collect(&mut s)
            .unwrap();
        assert!(s.temperatures.is_empty());
    }
}
