//! Collection cost, side by side in one process (`cargo bench -p rmm-agent --bench collect`):
//!
//! - **floor**: the reference, reading `/proc/PID/stat` for every pid with one reused
//!   buffer (std `read_dir` + `File::open` + one `read`), nothing else;
//! - **stat walk**: [`ProcWalker::walk`] alone: the same `stat` files, each kept open across
//!   walks and re-read with one `pread`, parsed into samples;
//! - **process walk**: the `processes` collector's whole cycle (walk, CPU deltas, both top
//!   lists, remainder, `status` of the top processes, owner names);
//! - **full cycle**: every collector with the default configuration, as the agent runs it.
//!
//! Each is measured on the machine as it is and again with 500 extra idle processes
//! (`sleep 600` children, killed at the end). Rounds interleave the four measurements so drift
//! hits them equally; medians and their ratios to the floor are printed.
//! `RMM_BENCH_ROUNDS` sets the rounds (default 300).

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmm_agent::collect::{process::ProcWalker, Collector, Collectors, ProcessCollector};
use rmm_agent::config::CollectConfig;
use rmm_agent::host::{HostPaths, SystemConstants};
use rmm_agent::snapshot::Snapshot;

/// The floor: read every `/proc/PID/stat` into one reused buffer.
fn floor_std(buf: &mut [u8]) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").expect("listing /proc").flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let mut path = std::path::PathBuf::from("/proc");
        path.push(name);
        path.push("stat");
        if let Ok(mut f) = File::open(&path) {
            total += f.read(buf).unwrap_or(0);
        }
    }
    total
}

struct Idle(Vec<Child>);

impl Idle {
    fn spawn(n: usize) -> Self {
        let children = (0..n)
            .map(|_| {
                Command::new("sleep")
                    .arg("600")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawning sleep")
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        Self(children)
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>8.3} ms", d.as_secs_f64() * 1e3)
}

fn run(label: &str, rounds: usize) {
    let paths = HostPaths::default();
    let constants = SystemConstants::detect();
    let config = CollectConfig::default();
    let mut buf = vec![0u8; 4096];
    let mut walker = ProcWalker::new(&paths.proc);
    let mut processes = ProcessCollector::new(&paths, constants, &config);
    let mut collectors = Collectors::new(&config, &paths, constants);
    collectors.prime();
    let mut snapshot = Snapshot::default();
    processes.collect(&mut snapshot).unwrap();
    walker.walk().unwrap();
    let pids = walker.samples.len();

    let (mut floor, mut floor_at, mut walk, mut full) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(floor_std(&mut buf));
        floor.push(t.elapsed());

        let t = Instant::now();
        walker.walk().unwrap();
        black_box(walker.samples.len());
        floor_at.push(t.elapsed());

        let t = Instant::now();
        processes.collect(&mut snapshot).unwrap();
        black_box(&snapshot.top_cpu);
        walk.push(t.elapsed());

        let t = Instant::now();
        black_box(collectors.collect());
        full.push(t.elapsed());
    }
    let (f, fa, w, c) = (
        median(&mut floor),
        median(&mut floor_at),
        median(&mut walk),
        median(&mut full),
    );
    let r = |x: Duration| x.as_secs_f64() / f.as_secs_f64();
    println!("\n{label}: {pids} processes, {rounds} rounds, medians");
    println!("  floor (read_dir + open + read) {}   1.00x", ms(f));
    println!(
        "  stat walk alone (kept fds)     {}   {:.2}x",
        ms(fa),
        r(fa)
    );
    println!(
        "  process collector              {}   {:.2}x   (goal <= 1.5x)",
        ms(w),
        r(w)
    );
    println!(
        "  full collection cycle          {}   {:.2}x   (goal <= 2x)",
        ms(c),
        r(c)
    );
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run only under `cargo bench`.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = std::env::var("RMM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    run("machine as it is", rounds);
    let idle = Idle::spawn(500);
    run("with 500 extra idle processes", rounds);
    drop(idle);
}
