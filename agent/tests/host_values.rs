//! The agent's figures against the kernel's own, on the real host.

mod common;

use std::ffi::CString;

use common::*;
use serde_json::Value;

fn snapshot_json() -> Value {
    let out = collect_once("json", &[]);
    serde_json::from_slice(&out.stdout).expect("collect --format json prints JSON")
}

fn meminfo_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn memory_total_equals_proc_meminfo() {
    let s = snapshot_json();
    let m = &s["memory"];
    assert_eq!(m["total"].as_u64().unwrap(), meminfo_total_bytes());
    let states = [
        "used",
        "free",
        "buffered",
        "cached",
        "slab_reclaimable",
        "slab_unreclaimable",
    ];
    let sum: u64 = states.iter().map(|k| m[k].as_u64().unwrap()).sum();
    assert_eq!(sum, meminfo_total_bytes(), "states partition MemTotal");

    let text = String::from_utf8(collect_once("prometheus", &[]).stdout).unwrap();
    let samples = parse_metrics(&text);
    let limit = samples
        .iter()
        .find(|s| s.name == "system_memory_limit_bytes")
        .unwrap();
    assert_eq!(limit.value as u64, meminfo_total_bytes());
    let usage: f64 = samples
        .iter()
        .filter(|s| s.name == "system_memory_usage_bytes")
        .map(|s| s.value)
        .sum();
    assert_eq!(usage as u64, meminfo_total_bytes());
}

#[test]
fn root_filesystem_size_equals_statvfs() {
    let s = snapshot_json();
    let fs = s["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["mountpoint"] == "/")
        .expect("/ is reported");
    let size = ["used", "free", "reserved"]
        .iter()
        .map(|k| fs[k].as_u64().unwrap())
        .sum::<u64>();
    // SAFETY: statvfs is plain data; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let root = CString::new("/").unwrap();
    assert_eq!(unsafe { libc::statvfs(root.as_ptr(), &mut st) }, 0);
    assert_eq!(size, st.f_blocks * st.f_frsize);
    assert!(!fs["type"].as_str().unwrap().is_empty());
    // No pseudo filesystem slipped through the default filters.
    for f in s["filesystems"].as_array().unwrap() {
        let t = f["type"].as_str().unwrap();
        assert!(
            !["proc", "sysfs", "tmpfs", "overlay", "devtmpfs", "cgroup2"].contains(&t),
            "{f}"
        );
    }
}

#[test]
fn json_has_the_documented_shape() {
    let s = snapshot_json();
    for list in ["top_cpu", "top_memory"] {
        let arr = s[list]
            .as_array()
            .unwrap_or_else(|| panic!("{list} is an array"));
        assert!(arr.len() <= 10);
        for p in arr {
            for key in ["pid", "name", "owner", "cpu_utilization", "memory_bytes"] {
                assert!(!p[key].is_null(), "{list} entry lacks {key}: {p}");
            }
        }
    }
    assert!(!s["top_memory"].as_array().unwrap().is_empty());
    assert!(s["cpus"].as_array().unwrap().len() as f64 == logical_cpus());
    assert!(s["uptime_seconds"].as_f64().unwrap() > 0.0);
    assert!(s["host"]["host_name"].as_str().is_some());
}

#[test]
fn table_format_and_example_config() {
    let out = agent_command()
        .args(["collect", "--once", "--format", "table", "--config"])
        .arg(repo_root().join("deploy/examples/agent.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for heading in ["host ", "mem ", "TOP MEMORY", "MOUNT"] {
        assert!(text.contains(heading), "no {heading:?} in\n{text}");
    }
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    for (var, value, needle) in [
        (
            "RMM_AGENT_COLLECT_INTERVAL",
            "soon",
            "RMM_AGENT_COLLECT_INTERVAL",
        ),
        ("RMM_AGENT_COLLECT_NOPE", "1", "RMM_AGENT_COLLECT_NOPE"),
        (
            "RMM_AGENT_PROMETHEUS_LISTEN",
            "nowhere",
            "RMM_AGENT_PROMETHEUS_LISTEN",
        ),
    ] {
        let out = agent_command().arg("run").env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{var}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "[collect]\ntop_process = 3\n").unwrap();
    let out = agent_command()
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("collect.top_process"), "{err}");
}
