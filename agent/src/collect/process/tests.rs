//! Process collector tests on fixture `/proc` trees built in temp dirs.

use std::time::{Duration, Instant};

use super::*;
use crate::config::CollectConfig;
use crate::host::{HostPaths, SystemConstants};

const CONSTANTS: SystemConstants = SystemConstants {
    clock_ticks_per_second: 100,
    page_size: 4096,
    logical_cpus: 2,
};

struct Fixture {
    _dir: tempfile::TempDir,
    paths: HostPaths,
}

#[derive(Clone, Copy)]
struct Proc<'a> {
    pid: u32,
    comm: &'a str,
    state: char,
    utime: u64,
    stime: u64,
    rss_pages: u64,
    uid: u32,
    starttime: u64,
}

impl<'a> Proc<'a> {
    fn new(pid: u32, comm: &'a str) -> Self {
        Self {
            pid,
            comm,
            state: 'S',
            utime: 0,
            stime: 0,
            rss_pages: 0,
            uid: 0,
            starttime: 1000 + pid as u64,
        }
    }
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(&paths.proc).unwrap();
        std::fs::create_dir_all(&paths.etc).unwrap();
        std::fs::write(
            paths.etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        // Non-process entries a real /proc has.
        std::fs::write(paths.proc.join("stat"), "cpu 0\n").unwrap();
        std::fs::create_dir_all(paths.proc.join("sys")).unwrap();
        Self { _dir: dir, paths }
    }

    fn write(&self, p: Proc<'_>) {
        let dir = self.paths.proc.join(p.pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let stat = format!(
            "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {ut} {st} 0 0 20 0 2 0 {start} {vsize} {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 9 0 0 0 0 0 0 0 0 0 0\n",
            pid = p.pid,
            comm = p.comm,
            state = p.state,
            ut = p.utime,
            st = p.stime,
            start = p.starttime,
            vsize = p.rss_pages * 4096 * 3,
            rss = p.rss_pages,
        );
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(
            dir.join("status"),
            format!(
                "Name:\t{}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n",
                p.comm,
                uid = p.uid
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("cmdline"),
            format!("/usr/bin/{}\0--flag\0", p.comm),
        )
        .unwrap();
    }

    fn remove(&self, pid: u32) {
        std::fs::remove_dir_all(self.paths.proc.join(pid.to_string())).unwrap();
    }

    fn collector(&self, config: CollectConfig) -> ProcessCollector {
        ProcessCollector::new(&self.paths, CONSTANTS, &config)
    }
}

fn config(top: usize) -> CollectConfig {
    CollectConfig {
        top_processes: top,
        ..CollectConfig::default()
    }
}

fn pids(list: &[ProcessInfo]) -> Vec<u32> {
    list.iter().map(|p| p.pid).collect()
}

#[test]
fn first_walk_is_a_baseline_then_utilization_is_per_cpu_share() {
    let fx = Fixture::new();
    fx.write(Proc {
        utime: 100,
        ..Proc::new(10, "busy")
    });
    fx.write(Proc {
        rss_pages: 10,
        ..Proc::new(11, "idle")
    });
    let mut c = fx.collector(config(10));
    let t0 = Instant::now();
    let mut s = Snapshot::default();
    c.collect_at(&mut s, t0).unwrap();
    assert!(s.top_cpu.is_empty(), "no CPU ranking from a single sample");
    assert_eq!(pids(&s.top_memory), [11]);

    // 2 s later the busy process used 200 ticks = 2 s of CPU: one full core of two.
    fx.write(Proc {
        utime: 250,
        stime: 50,
        ..Proc::new(10, "busy")
    });
    c.collect_at(&mut s, t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(pids(&s.top_cpu), [10]);
    let busy = &s.top_cpu[0];
    assert!((busy.cpu_utilization - 0.5).abs() < 1e-9, "{busy:?}");
    assert!((busy.cpu_utilization_user - 0.375).abs() < 1e-9);
    assert!((busy.cpu_utilization_system - 0.125).abs() < 1e-9);
    assert_eq!(busy.cpu_time_user, 2.5);
    assert_eq!(busy.cpu_time_system, 0.5);
    assert_eq!(busy.owner, "root");
    assert_eq!(busy.name, "busy");
    assert_eq!(busy.command_line, None, "command line is opt-in");
}

#[test]
fn odd_names_vanished_and_unreadable_entries() {
    let fx = Fixture::new();
    fx.write(Proc {
        rss_pages: 30,
        ..Proc::new(1, "(sd-pam)")
    });
    fx.write(Proc {
        rss_pages: 20,
        uid: 1000,
        ..Proc::new(2, "a) b")
    });
    fx.write(Proc {
        rss_pages: 10,
        uid: 4242,
        ..Proc::new(3, "x y")
    });
    // A pid directory whose process exited (no stat), and one whose stat cannot be read.
    std::fs::create_dir_all(fx.paths.proc.join("4")).unwrap();
    std::fs::create_dir_all(fx.paths.proc.join("5/stat")).unwrap();
    // Garbage stat content.
    std::fs::create_dir_all(fx.paths.proc.join("6")).unwrap();
    std::fs::write(fx.paths.proc.join("6/stat"), "6 (broken").unwrap();
    let mut c = fx.collector(config(10));
    let mut s = Snapshot::default();
    c.collect_at(&mut s, Instant::now()).unwrap();
    let names: Vec<(&str, &str)> = s
        .top_memory
        .iter()
        .map(|p| (p.name.as_str(), p.owner.as_str()))
        .collect();
    assert_eq!(
        names,
        [("(sd-pam)", "root"), ("a) b", "alice"), ("x y", "4242")]
    );
    assert_eq!(s.process_counts.unwrap().total(), 3);
}

#[test]
fn process_vanishing_between_walk_and_enrichment_keeps_its_sample() {
    let fx = Fixture::new();
    fx.write(Proc {
        rss_pages: 5,
        ..Proc::new(7, "gone")
    });
    let mut c = fx.collector(config(10));
    c.walker.walk().unwrap();
    fx.remove(7);
    let info = {
        c.compute_deltas();
        c.info(0, None)
    };
    assert_eq!(info.pid, 7);
    assert_eq!(info.name, "gone");
    assert_eq!(info.owner, "", "owner unknown once the process is gone");
}

#[test]
fn top_lists_ties_union_and_remainder_sum_to_host_totals() {
    let fx = Fixture::new();
    // rss: 1..=6 pages; cpu: pids 1 and 2 busy.
    for pid in 1..=6u32 {
        fx.write(Proc {
            rss_pages: pid as u64,
            ..Proc::new(pid, "p")
        });
    }
    // Two with equal RSS: the lower pid wins the tie.
    fx.write(Proc {
        rss_pages: 6,
        ..Proc::new(7, "twin")
    });
    let mut c = fx.collector(config(2));
    let t0 = Instant::now();
    let mut s = Snapshot::default();
    c.collect_at(&mut s, t0).unwrap();
    fx.write(Proc {
        utime: 50,
        rss_pages: 1,
        ..Proc::new(1, "p")
    });
    fx.write(Proc {
        utime: 30,
        rss_pages: 2,
        ..Proc::new(2, "p")
    });
    fx.write(Proc {
        stime: 10,
        rss_pages: 6,
        ..Proc::new(6, "p")
    });
    c.collect_at(&mut s, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(pids(&s.top_cpu), [1, 2]);
    assert_eq!(pids(&s.top_memory), [6, 7]);
    let other = s.other_processes.unwrap();
    assert_eq!(other.processes, 3, "pids 3, 4, 5");
    assert_eq!(other.memory_bytes, (3 + 4 + 5) * 4096);
    let exported_rss: u64 = [1u64, 2, 6, 6].iter().map(|p| p * 4096).sum();
    assert_eq!(
        exported_rss + other.memory_bytes,
        (1 + 2 + 3 + 4 + 5 + 6 + 6) * 4096
    );
    // CPU: pid 6 used 10 ticks but is only in the memory list, so it is exported, not "other".
    assert_eq!(
        other.cpu_utilization_user + other.cpu_utilization_system,
        0.0
    );
    let total_util: f64 = s.top_cpu.iter().map(|p| p.cpu_utilization).sum::<f64>()
        + s.top_memory
            .iter()
            .filter(|p| p.pid == 6)
            .map(|p| p.cpu_utilization)
            .sum::<f64>()
        + other.cpu_utilization_user
        + other.cpu_utilization_system;
    assert!((total_util - 0.9 / 2.0).abs() < 1e-9, "{total_util}");
}

#[test]
fn remainder_cpu_time_is_monotonic_as_processes_come_and_go() {
    let fx = Fixture::new();
    fx.write(Proc {
        utime: 100,
        ..Proc::new(1, "a")
    });
    fx.write(Proc {
        utime: 100,
        ..Proc::new(2, "b")
    });
    let mut c = fx.collector(config(1));
    let t0 = Instant::now();
    let mut s = Snapshot::default();
    let mut last = 0.0;
    let mut step = |c: &mut ProcessCollector, s: &mut Snapshot, n: u64| {
        c.collect_at(s, t0 + Duration::from_secs(n)).unwrap();
        let o = s.other_processes.unwrap();
        let t = o.cpu_time_user + o.cpu_time_system;
        assert!(t >= last, "remainder CPU time went back: {last} -> {t}");
        last = t;
    };
    step(&mut c, &mut s, 0);
    // pid 2 becomes the busiest; pid 1 drops into the remainder.
    fx.write(Proc {
        utime: 110,
        ..Proc::new(1, "a")
    });
    fx.write(Proc {
        utime: 300,
        ..Proc::new(2, "b")
    });
    step(&mut c, &mut s, 1);
    assert_eq!(pids(&s.top_cpu), [2]);
    // pid 1 exits, a new pid 3 appears with 40 ticks, pid 2 idles.
    fx.remove(1);
    fx.write(Proc {
        utime: 40,
        ..Proc::new(3, "c")
    });
    step(&mut c, &mut s, 2);
    assert_eq!(pids(&s.top_cpu), [3]);
    // A reused pid (different start time) counts as new, not as a negative delta.
    fx.write(Proc {
        utime: 5,
        starttime: 99_999,
        ..Proc::new(2, "b2")
    });
    step(&mut c, &mut s, 3);
    assert_eq!(pids(&s.top_cpu), [2]);
    assert!((s.top_cpu[0].cpu_utilization - 0.05 / 2.0).abs() < 1e-9);
}

#[test]
fn state_counts() {
    let fx = Fixture::new();
    for (pid, state) in [
        (1, 'R'),
        (2, 'S'),
        (3, 'D'),
        (4, 'Z'),
        (5, 'T'),
        (6, 't'),
        (7, 'I'),
        (8, 'X'),
        (9, 'S'),
    ] {
        fx.write(Proc {
            state,
            ..Proc::new(pid, "p")
        });
    }
    let mut s = Snapshot::default();
    fx.collector(config(10))
        .collect_at(&mut s, Instant::now())
        .unwrap();
    let c = s.process_counts.unwrap();
    assert_eq!(
        (c.running, c.sleeping, c.blocked, c.zombies, c.stopped, c.idle, c.unknown),
        (1, 2, 1, 1, 2, 1, 1)
    );
}

#[test]
fn command_line_opt_in_truncated_and_full_names() {
    let fx = Fixture::new();
    // comm is cut at 15 bytes; argv[0] has the full name.
    fx.write(Proc {
        rss_pages: 2,
        ..Proc::new(1, "kube-controller")
    });
    std::fs::write(
        fx.paths.proc.join("1/cmdline"),
        "/usr/local/bin/kube-controller-manager\0--kubeconfig=/etc/k.conf\0",
    )
    .unwrap();
    // A kernel thread: empty cmdline.
    fx.write(Proc {
        rss_pages: 1,
        ..Proc::new(2, "kthreadd")
    });
    std::fs::write(fx.paths.proc.join("2/cmdline"), "").unwrap();
    let cfg = CollectConfig {
        command_line: true,
        command_line_max_length: 20,
        ..config(10)
    };
    let mut s = Snapshot::default();
    fx.collector(cfg)
        .collect_at(&mut s, Instant::now())
        .unwrap();
    assert_eq!(s.top_memory[0].name, "kube-controller-manager");
    assert_eq!(
        s.top_memory[0].command_line.as_deref(),
        Some("/usr/local/bin/kube-")
    );
    assert_eq!(s.top_memory[1].command_line.as_deref(), Some(""));
    assert_eq!(truncate_chars("héllo", 2), "hé");
}

#[test]
fn zero_top_processes_exports_only_the_remainder() {
    let fx = Fixture::new();
    fx.write(Proc {
        rss_pages: 3,
        utime: 5,
        ..Proc::new(1, "a")
    });
    let mut s = Snapshot::default();
    fx.collector(config(0))
        .collect_at(&mut s, Instant::now())
        .unwrap();
    assert!(s.top_cpu.is_empty() && s.top_memory.is_empty());
    assert_eq!(s.other_processes.unwrap().memory_bytes, 3 * 4096);
}

#[test]
fn missing_proc_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let paths = HostPaths::from_root(&dir.path().join("nothing"));
    let mut c = ProcessCollector::new(&paths, CONSTANTS, &config(10));
    assert!(matches!(
        c.collect(&mut Snapshot::default()),
        Err(CollectError::Io { .. })
    ));
}

#[test]
fn real_host_walk_finds_this_test_process() {
    let mut c = ProcessCollector::new(
        &HostPaths::default(),
        SystemConstants::detect(),
        &config(1000),
    );
    let mut s = Snapshot::default();
    c.collect(&mut s).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.collect(&mut s).unwrap();
    let me = std::process::id();
    let mine = s
        .top_memory
        .iter()
        .find(|p| p.pid == me)
        .expect("own process in top memory");
    assert!(mine.memory_bytes > 0);
    assert!(!mine.owner.is_empty());
}
