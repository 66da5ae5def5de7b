use super::*;
use crate::host::HostFacts;
use crate::snapshot::*;

fn process(pid: u32, name: &str, cpu: f64, rss: u64) -> ProcessInfo {
    ProcessInfo {
        pid,
        parent_pid: 1,
        name: name.into(),
        owner: "root".into(),
        command_line: Some(format!("/bin/{name} --x")),
        cpu_utilization: cpu,
        cpu_utilization_user: cpu * 0.75,
        cpu_utilization_system: cpu * 0.25,
        cpu_time_user: 10.0,
        cpu_time_system: 2.0,
        memory_bytes: rss,
        virtual_memory_bytes: rss * 3,
        threads: 4,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        timestamp_unix_ms: 1,
        host: HostFacts {
            host_name: "h".into(),
            host_id: Some("id".into()),
            host_arch: "amd64".into(),
            os_type: "linux".into(),
            os_version: None,
            os_description: None,
            service_version: "9.9.9".into(),
        },
        cpus: vec![CpuCore {
            cpu: "cpu0".into(),
            time: CpuModes {
                user: 1.0,
                idle: 9.0,
                ..CpuModes::default()
            },
            utilization: Some(CpuModes {
                user: 0.1,
                idle: 0.9,
                ..CpuModes::default()
            }),
        }],
        memory: Some(Memory {
            total: 100,
            used: 40,
            free: 60,
            ..Memory::default()
        }),
        top_cpu: vec![
            process(10, "burn", 0.5, 1000),
            process(11, "both", 0.2, 5000),
        ],
        top_memory: vec![
            process(11, "both", 0.2, 5000),
            process(12, "fat", 0.0, 4000),
        ],
        other_processes: Some(ProcessRemainder {
            processes: 50,
            cpu_utilization_user: 0.03,
            cpu_utilization_system: 0.01,
            cpu_time_user: 100.0,
            cpu_time_system: 50.0,
            memory_bytes: 7000,
            virtual_memory_bytes: 21000,
            threads: 60,
        }),
        process_counts: Some(ProcessCounts {
            running: 1,
            sleeping: 52,
            ..ProcessCounts::default()
        }),
        agent: AgentStats {
            version: "9.9.9".into(),
            collections: 3,
            collector_errors: [("cpu", 0), ("disk", 2)].into_iter().collect(),
            ..AgentStats::default()
        },
        ..Snapshot::default()
    }
}

fn family<'a>(m: &'a Metrics, name: &str) -> &'a MetricFamily {
    m.families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

fn attr<'a>(p: &'a DataPoint, key: &str) -> Option<&'a AttrValue> {
    p.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

#[test]
fn empty_collectors_leave_no_families() {
    let m = from_snapshot(&Snapshot::default(), ModelOptions::default());
    let names: Vec<_> = m.families.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["rmm_agent.build.info"],
        "only build info before the first cycle"
    );
}

#[test]
fn resource_has_host_facts_and_service() {
    let m = from_snapshot(&snapshot(), ModelOptions::default());
    let keys: Vec<_> = m.resource.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "service.name",
            "service.version",
            "host.name",
            "host.id",
            "host.arch",
            "os.type"
        ]
    );
}

#[test]
fn processes_exported_once_with_identical_label_sets_and_a_remainder() {
    let m = from_snapshot(&snapshot(), ModelOptions::default());
    let rss = family(&m, "process.memory.usage");
    let pids: Vec<String> = rss
        .points
        .iter()
        .map(|p| attr(p, "process.pid").unwrap().to_text().into_owned())
        .collect();
    assert_eq!(
        pids,
        ["10", "11", "12", ""],
        "union once each, remainder last"
    );
    let keys = |p: &DataPoint| p.attributes.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    for p in &rss.points {
        assert_eq!(keys(p), keys(&rss.points[0]));
    }
    let other = rss.points.last().unwrap();
    assert_eq!(
        attr(other, "process.executable.name"),
        Some(&AttrValue::from("other"))
    );
    assert_eq!(attr(other, "process.owner"), Some(&AttrValue::from("")));
    // Exported RSS plus the remainder is the sum over all processes.
    let sum: i64 = rss
        .points
        .iter()
        .map(|p| match p.value {
            Value::I64(v) => v,
            Value::F64(_) => unreachable!(),
        })
        .sum();
    assert_eq!(sum, 1000 + 5000 + 4000 + 7000);

    let util = family(&m, "process.cpu.utilization");
    assert_eq!(util.points.len(), 4 * 2, "user and system per process");
    assert_eq!(
        attr(&util.points[0], "state"),
        Some(&AttrValue::from("user"))
    );
    assert!(attr(&util.points[0], "process.command_line").is_none());
    assert_eq!(
        family(&m, "process.cpu.time").kind,
        Kind::Sum { monotonic: true }
    );
    assert_eq!(family(&m, "process.threads").points.len(), 4);
}

#[test]
fn command_line_attribute_only_when_opted_in() {
    let m = from_snapshot(&snapshot(), ModelOptions { command_line: true });
    let rss = family(&m, "process.memory.usage");
    assert_eq!(
        attr(&rss.points[0], "process.command_line"),
        Some(&AttrValue::from("/bin/burn --x".to_owned()))
    );
    assert_eq!(
        attr(rss.points.last().unwrap(), "process.command_line"),
        Some(&AttrValue::from(""))
    );
}

#[test]
fn memory_states_and_ratios() {
    let m = from_snapshot(&snapshot(), ModelOptions::default());
    let util = family(&m, "system.memory.utilization");
    assert_eq!(util.unit, "1");
    assert_eq!(util.points[0].value, Value::F64(0.4));
    assert_eq!(
        family(&m, "system.memory.limit").points[0].value,
        Value::I64(100)
    );
}

#[test]
fn agent_self_metrics() {
    let m = from_snapshot(&snapshot(), ModelOptions::default());
    let errors = family(&m, "rmm_agent.collector.errors");
    assert_eq!(errors.points.len(), 2);
    assert_eq!(errors.points[1].value, Value::I64(2));
    assert_eq!(
        family(&m, "rmm_agent.collections").points[0].value,
        Value::I64(3)
    );
}

#[test]
fn extra_labels_on_every_point_and_the_resource_without_overwriting() {
    let mut m = from_snapshot(&snapshot(), ModelOptions::default());
    let team = intern("team");
    let pid = intern("process.pid");
    add_labels(&mut m, &[(team, "ops".into()), (pid, "clash".into())]);
    assert!(std::ptr::eq(team, intern("team")), "interned once");
    for f in &m.families {
        for p in &f.points {
            assert_eq!(attr(p, "team"), Some(&AttrValue::from("ops")), "{}", f.name);
            let pids = p.attributes.iter().filter(|(k, _)| *k == "process.pid");
            assert!(pids.count() <= 1, "no duplicate label on {}", f.name);
        }
    }
    let procs = family(&m, "process.memory.usage");
    assert!(procs
        .points
        .iter()
        .all(|p| attr(p, "process.pid") != Some(&AttrValue::from("clash"))));
    assert!(m
        .resource
        .iter()
        .any(|(k, v)| *k == "team" && v.to_text() == "ops"));
}
