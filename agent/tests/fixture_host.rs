//! The whole collection and exposition path on a fixture host (`tests/fixtures/host`): a
//! `/proc`, `/sys` and `/etc` with sensors, swap, odd process names and a partitioned disk,
//! which the CI VM lacks. Checks the snapshot's values, then the rendered `/metrics` text with
//! the real `promtool`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rmm_agent::collect::Collectors;
use rmm_agent::config::CollectConfig;
use rmm_agent::export::model::ModelOptions;
use rmm_agent::export::prometheus::render_snapshot;
use rmm_agent::host::{HostPaths, SystemConstants};
use rmm_agent::Snapshot;

const CONSTANTS: SystemConstants = SystemConstants {
    clock_ticks_per_second: 100,
    page_size: 4096,
    logical_cpus: 2,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host")
}

fn collect(root: &Path, config: &CollectConfig) -> Snapshot {
    let mut c = Collectors::new(config, &HostPaths::from_root(root), CONSTANTS);
    c.prime();
    c.collect()
}

#[test]
fn snapshot_of_the_fixture_host() {
    let s = collect(&fixture(), &CollectConfig::default());
    assert!(
        s.agent.collector_errors.values().all(|&n| n == 0),
        "{:?}",
        s.agent
    );
    assert_eq!(s.host.host_name, "fixture-host");
    assert_eq!(
        s.host.host_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(s.host.os_description.as_deref(), Some("Fixture Linux 1.0"));
    assert_eq!(s.cpus.len(), 2);
    assert_eq!(s.cpus[0].time.user, 10.0);
    assert!(
        s.cpus[0].utilization.is_none(),
        "no tick elapsed between two identical samples"
    );
    let m = s.memory.unwrap();
    assert_eq!(m.total, 8_000_000 * 1024);
    assert_eq!(
        m.used,
        (8_000_000 - 5_000_000 - 100_000 - 1_200_000 - 150_000 - 50_000) * 1024
    );
    assert_eq!(s.swap.len(), 1);
    assert_eq!(s.swap[0].used, 97148 * 1024);
    assert_eq!(s.load.unwrap().load15, 0.75);
    assert_eq!(s.uptime_seconds, Some(86400.5));
    let disks: Vec<&str> = s.disks.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(disks, ["vda"], "partition and loop device left out");
    let nics: Vec<&str> = s.network.iter().map(|n| n.device.as_str()).collect();
    assert_eq!(nics, ["eth0"], "loopback left out");
    let fs: Vec<&str> = s
        .filesystems
        .iter()
        .map(|f| f.mountpoint.as_str())
        .collect();
    assert_eq!(fs, ["/"], "proc, sysfs, tmpfs, overlay left out");
    assert_eq!(s.temperatures.len(), 2);
    assert_eq!(s.temperatures[0].sensor, "Package id 0");

    let counts = s.process_counts.unwrap();
    assert_eq!((counts.running, counts.sleeping, counts.idle), (1, 2, 1));
    // Both samples identical: nothing used CPU, so no CPU top list.
    assert!(s.top_cpu.is_empty());
    let top: Vec<(u32, &str, &str)> = s
        .top_memory
        .iter()
        .map(|p| (p.pid, p.name.as_str(), p.owner.as_str()))
        .collect();
    assert_eq!(
        top,
        [
            (77, "a) b", "4242"),
            (1, "systemd", "root"),
            (42, "(sd-pam)", "alice")
        ]
    );
    assert_eq!(s.top_memory[0].memory_bytes, 60000 * 4096);
    assert_eq!(s.top_memory[0].virtual_memory_bytes, 60000 * 4096 * 4);
    assert_eq!(s.top_memory[0].cpu_time_user, 9.0);
    let other = s.other_processes.unwrap();
    assert_eq!(other.processes, 1, "only the kernel thread is left");
}

#[test]
fn exposition_of_the_fixture_host_passes_promtool() {
    let s = collect(&fixture(), &CollectConfig::default());
    let text = render_snapshot(&s, ModelOptions::default());
    promtool_check(&text);
    for line in [
        "hw_temperature_celsius{hw_id=\"hwmon0_temp1\",hw_name=\"coretemp\",hw_sensor_location=\"Package id 0\"} 45",
        "hw_temperature_celsius{hw_id=\"thermal_zone0\",hw_name=\"acpitz\",hw_sensor_location=\"acpitz\"} 27.8",
        "system_paging_usage_bytes{device=\"/swap.img\",state=\"used\"} 99479552",
        "system_memory_limit_bytes 8192000000",
        "system_disk_io_bytes_total{device=\"vda\",direction=\"read\"} 10240000",
        "system_network_errors_total{device=\"eth0\",direction=\"transmit\"} 3",
        "system_processes_count{status=\"running\"} 1",
        "process_memory_usage_bytes{process_pid=\"77\",process_executable_name=\"a) b\",process_owner=\"4242\"} 245760000",
        "process_memory_usage_bytes{process_pid=\"42\",process_executable_name=\"(sd-pam)\",process_owner=\"alice\"} 6144000",
        "process_memory_usage_bytes{process_pid=\"\",process_executable_name=\"other\",process_owner=\"\"} 0",
        "target_info{service_version=\"",
        "# TYPE system_processes_count untyped",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("hunter2"), "command lines are opt-in");

    let config = CollectConfig {
        command_line: true,
        ..CollectConfig::default()
    };
    let s = collect(&fixture(), &config);
    let text = render_snapshot(&s, ModelOptions { command_line: true });
    promtool_check(&text);
    assert!(text.contains("process_command_line=\"./a) b --secret=hunter2\""));
}

#[test]
fn zero_cpu_host_and_missing_files_still_export_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    std::fs::write(dir.path().join("proc/stat"), "intr 0\nctxt 0\n").unwrap();
    std::fs::remove_file(dir.path().join("proc/diskstats")).unwrap();
    let s = collect(dir.path(), &CollectConfig::default());
    assert!(s.cpus.is_empty());
    assert!(s.disks.is_empty());
    assert_eq!(s.agent.collector_errors["disk"], 1);
    assert_eq!(s.agent.collector_errors["cpu"], 0);
    assert!(s.memory.is_some());
    let text = render_snapshot(&s, ModelOptions::default());
    promtool_check(&text);
    assert!(!text.contains("system_cpu_time_seconds_total{"));
    assert!(text.contains("rmm_agent_collector_errors_total{collector=\"disk\"} 1"));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
