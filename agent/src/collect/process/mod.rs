//! Processes: counts by state, the top N by CPU and by resident memory, and the remainder.
//!
//! Each cycle walks `/proc` once, reading only `/proc/PID/stat` per process ([`walk`]). The few
//! processes that make a top list are then enriched from `status` (owner: the real uid, as the
//! hostmetrics receiver reports it) and, when needed, `cmdline` (opt-in command line, or the
//! full name when `comm` was cut at 15 bytes).
//!
//! **CPU utilization** follows semconv `process.cpu.utilization`: the difference in CPU time
//! since the previous walk, divided by the elapsed wall time and by the number of logical CPUs
//! (so a process busy on one core of a 2-CPU host reads 0.5, and all processes together read at
//! most 1). A process first seen in this walk started after the previous one, so all its CPU
//! time counts as this interval's. The first walk only records a baseline: no CPU top list.
//!
//! **Top lists**: the top N by utilization (only processes that used CPU in the interval) and
//! the top N by RSS; ties go to the lower pid. A process in both lists is exported once.
//!
//! **Remainder**: everything in neither list, summed per metric. Its CPU time is kept
//! monotonic by accumulating each interval's CPU use of the processes outside the lists, so
//! `rate()` over the remainder plus the top processes is the host's process CPU use even as
//! processes move in and out of the lists or exit.

mod users;
pub mod walk;

use std::path::PathBuf;
use std::time::Instant;

use super::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::host::{HostPaths, SystemConstants};
use crate::snapshot::{ProcessCounts, ProcessInfo, ProcessRemainder, Snapshot};
use users::UserNames;
pub use walk::{ProcWalker, StatSample};

/// Longest `comm` the kernel reports; a name this long may have been cut.
const COMM_MAX: usize = 15;

/// Previous-walk CPU ticks of one process.
#[derive(Debug, Clone, Copy)]
struct Prev {
    pid: u32,
    starttime: u64,
    utime: u64,
    stime: u64,
}

/// CPU ticks of one process in the interval just ended.
#[derive(Debug, Clone, Copy, Default)]
struct Delta {
    user: u64,
    system: u64,
}

impl Delta {
    fn total(self) -> u64 {
        self.user + self.system
    }
}

pub struct ProcessCollector {
    proc_root: PathBuf,
    constants: SystemConstants,
    top_n: usize,
    command_line_max: Option<usize>,
    walker: ProcWalker,
    users: UserNames,
    previous: Vec<Prev>,
    previous_at: Option<Instant>,
    // Reused per-cycle scratch space.
    deltas: Vec<Delta>,
    exported: Vec<bool>,
    order: Vec<u32>,
    buf: Vec<u8>,
    /// Accumulated CPU ticks of the remainder (monotonic).
    remainder_user_ticks: u64,
    remainder_system_ticks: u64,
}

impl ProcessCollector {
    pub fn new(paths: &HostPaths, constants: SystemConstants, config: &CollectConfig) -> Self {
        Self {
            proc_root: paths.proc.clone(),
            constants,
            top_n: config.top_processes,
            command_line_max: config
                .command_line
                .then_some(config.command_line_max_length),
            walker: ProcWalker::new(&paths.proc),
            users: UserNames::new(paths.etc.join("passwd")),
            previous: Vec::new(),
            previous_at: None,
            deltas: Vec::new(),
            exported: Vec::new(),
            order: Vec::new(),
            buf: Vec::new(),
            remainder_user_ticks: 0,
            remainder_system_ticks: 0,
        }
    }

    /// One cycle as of `now` (tests pass synthetic instants).
    pub fn collect_at(
        &mut self,
        snapshot: &mut Snapshot,
        now: Instant,
    ) -> Result<(), CollectError> {
        self.walker
            .walk()
            .map_err(|e| CollectError::io(&self.proc_root, e))?;
        let elapsed = self
            .previous_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .filter(|&e| e > 0.0);
        self.compute_deltas();
        let samples = &self.walker.samples;
        snapshot.process_counts = Some(count_states(samples));

        // Top lists as indices into `samples`.
        let top_cpu = match elapsed {
            Some(_) => self.select(
                |i, d, _| d[i].total() > 0,
                |i, d, s| (d[i].total(), s[i].pid),
            ),
            None => Vec::new(),
        };
        let top_mem = self.select(
            |i, _, s| s[i].rss_pages > 0,
            |i, _, s| (s[i].rss_pages, s[i].pid),
        );

        self.exported.clear();
        self.exported.resize(self.walker.samples.len(), false);
        for &i in top_cpu.iter().chain(&top_mem) {
            self.exported[i as usize] = true;
        }
        let remainder = self.remainder(elapsed);
        let mut infos: Vec<(u32, ProcessInfo)> = Vec::with_capacity(top_cpu.len() + top_mem.len());
        for &i in top_cpu.iter().chain(&top_mem) {
            if !infos.iter().any(|(j, _)| *j == i) {
                let info = self.info(i as usize, elapsed);
                infos.push((i, info));
            }
        }
        let pick = |list: &[u32]| -> Vec<ProcessInfo> {
            list.iter()
                .filter_map(|i| infos.iter().find(|(j, _)| j == i).map(|(_, p)| p.clone()))
                .collect()
        };
        snapshot.top_cpu = pick(&top_cpu);
        snapshot.top_memory = pick(&top_mem);
        snapshot.other_processes = Some(remainder);

        self.previous.clear();
        self.previous
            .extend(self.walker.samples.iter().map(|s| Prev {
                pid: s.pid,
                starttime: s.starttime,
                utime: s.utime,
                stime: s.stime,
            }));
        self.previous_at = Some(now);
        Ok(())
    }

    /// CPU ticks used since the previous walk, per sample (both lists are sorted by pid).
    fn compute_deltas(&mut self) {
        self.deltas.clear();
        let mut prev = self.previous.iter().peekable();
        for s in &self.walker.samples {
            while prev.next_if(|p| p.pid < s.pid).is_some() {}
            let delta = match prev.peek() {
                Some(p) if p.pid == s.pid && p.starttime == s.starttime => Delta {
                    user: s.utime.saturating_sub(p.utime),
                    system: s.stime.saturating_sub(p.stime),
                },
                // New since the last walk (or a reused pid): all of its time is this interval's.
                _ => Delta {
                    user: s.utime,
                    system: s.stime,
                },
            };
            self.deltas.push(delta);
        }
    }

    /// The top `top_n` sample indices among those passing `keep`, by descending `key`.
    fn select<K: Ord>(
        &mut self,
        keep: impl Fn(usize, &[Delta], &[StatSample]) -> bool,
        key: impl Fn(usize, &[Delta], &[StatSample]) -> (u64, K),
    ) -> Vec<u32> {
        let (deltas, samples) = (&self.deltas, &self.walker.samples);
        self.order.clear();
        self.order
            .extend((0..samples.len() as u32).filter(|&i| keep(i as usize, deltas, samples)));
        // Highest value first; on ties the lower pid (hence `Reverse` on the tie-breaker).
        let cmp = |a: &u32, b: &u32| {
            let (va, ka) = key(*a as usize, deltas, samples);
            let (vb, kb) = key(*b as usize, deltas, samples);
            vb.cmp(&va).then(ka.cmp(&kb))
        };
        let n = self.top_n.min(self.order.len());
        if n == 0 {
            return Vec::new();
        }
        if n < self.order.len() {
            self.order.select_nth_unstable_by(n - 1, cmp);
            self.order.truncate(n);
        }
        self.order.sort_unstable_by(cmp);
        self.order.clone()
    }

    fn remainder(&mut self, elapsed: Option<f64>) -> ProcessRemainder {
        let mut r = ProcessRemainder::default();
        let (mut du, mut ds) = (0u64, 0u64);
        for (i, s) in self.walker.samples.iter().enumerate() {
            if self.exported[i] {
                continue;
            }
            r.processes += 1;
            r.memory_bytes += s.rss_pages * self.constants.page_size;
            r.virtual_memory_bytes += s.vsize;
            r.threads += s.threads;
            du += self.deltas[i].user;
            ds += self.deltas[i].system;
        }
        self.remainder_user_ticks += du;
        self.remainder_system_ticks += ds;
        let tps = self.constants.clock_ticks_per_second as f64;
        r.cpu_time_user = self.remainder_user_ticks as f64 / tps;
        r.cpu_time_system = self.remainder_system_ticks as f64 / tps;
        if let Some(elapsed) = elapsed {
            r.cpu_utilization_user = self.utilization(du, elapsed);
            r.cpu_utilization_system = self.utilization(ds, elapsed);
        }
        r
    }

    fn utilization(&self, ticks: u64, elapsed: f64) -> f64 {
        let cpus = self.constants.logical_cpus.max(1) as f64;
        ticks as f64 / self.constants.clock_ticks_per_second as f64 / (elapsed * cpus)
    }

    /// The exported view of one sample, reading `status` (and `cmdline` if needed) now.
    fn info(&mut self, i: usize, elapsed: Option<f64>) -> ProcessInfo {
        let s = self.walker.samples[i];
        let d = self.deltas[i];
        let tps = self.constants.clock_ticks_per_second as f64;
        let (user, system) = match elapsed {
            Some(e) => (self.utilization(d.user, e), self.utilization(d.system, e)),
            None => (0.0, 0.0),
        };
        let comm = self.walker.name(&s).to_owned();
        let owner = match self.owner_uid(s.pid) {
            Some(uid) => self.users.name(uid),
            None => String::new(),
        };
        let want_cmdline = self.command_line_max.is_some() || comm.len() >= COMM_MAX;
        let cmdline = if want_cmdline {
            self.cmdline(s.pid)
        } else {
            None
        };
        let name = match &cmdline {
            Some(cmd) if comm.len() >= COMM_MAX => full_name(&comm, cmd),
            _ => comm,
        };
        let command_line = self
            .command_line_max
            .map(|max| truncate_chars(cmdline.as_deref().unwrap_or(""), max));
        ProcessInfo {
            pid: s.pid,
            parent_pid: s.ppid,
            name,
            owner,
            command_line,
            cpu_utilization: user + system,
            cpu_utilization_user: user,
            cpu_utilization_system: system,
            cpu_time_user: s.utime as f64 / tps,
            cpu_time_system: s.stime as f64 / tps,
            memory_bytes: s.rss_pages * self.constants.page_size,
            virtual_memory_bytes: s.vsize,
            threads: s.threads,
        }
    }

    /// The real uid from `status`, else the owner of the `/proc/PID` directory; `None` if the
    /// process is gone.
    fn owner_uid(&mut self, pid: u32) -> Option<u32> {
        let dir = self.proc_root.join(pid.to_string());
        if crate::util::read_file_into(&dir.join("status"), &mut self.buf).is_ok() {
            let uid = self
                .buf
                .split(|&b| b == b'\n')
                .find_map(|line| line.strip_prefix(b"Uid:"))
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(|rest| rest.split_ascii_whitespace().next()?.parse().ok());
            if uid.is_some() {
                return uid;
            }
        }
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&dir).ok().map(|m| m.uid())
    }

    /// The command line with NULs as spaces; `None` for kernel threads (empty) or gone.
    fn cmdline(&mut self, pid: u32) -> Option<String> {
        use std::io::Read;
        let path = self.proc_root.join(pid.to_string()).join("cmdline");
        let limit = self.command_line_max.unwrap_or(0).max(256) as u64 * 4;
        self.buf.clear();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut self.buf))
            .ok()?;
        while self.buf.last() == Some(&0) {
            self.buf.pop();
        }
        if self.buf.is_empty() {
            return None;
        }
        for b in &mut self.buf {
            if *b == 0 {
                *b = b' ';
            }
        }
        Some(String::from_utf8_lossy(&self.buf).into_owned())
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "processes"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.collect_at(snapshot, Instant::now())
    }
}

/// Process counts by state letter (`proc_pid_stat(5)`), in the v0 `status` vocabulary.
fn count_states(samples: &[StatSample]) -> ProcessCounts {
    let mut c = ProcessCounts::default();
    for s in samples {
        match s.state {
            b'R' => c.running += 1,
            b'S' => c.sleeping += 1,
            b'D' => c.blocked += 1,
            b'T' | b't' => c.stopped += 1,
            b'Z' => c.zombies += 1,
            b'I' => c.idle += 1,
            _ => c.unknown += 1,
        }
    }
    c
}

/// `comm` is cut at 15 bytes; when `argv[0]`'s base name extends it, that is the full name.
fn full_name(comm: &str, cmdline: &str) -> String {
    let argv0 = cmdline.split(' ').next().unwrap_or("");
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    if base.len() > comm.len() && base.starts_with(comm) {
        base.to_owned()
    } else {
        comm.to_owned()
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
