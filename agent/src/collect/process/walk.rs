//! The `/proc` walk: one `stat` read per process, into buffers reused across processes and
//! cycles.
//!
//! Each `/proc/PID/stat` is opened once and kept open across walks: a later walk re-reads it
//! with one `pread` at offset 0 (procfs regenerates the content on every read from 0), which
//! costs about half of `openat` + `read` + `close` and skips the path lookup. The directory is
//! still listed every walk (`readdir`, no allocation) to find new processes. When a process
//! exits, reading its kept descriptor fails (`ESRCH`) and the descriptor is closed; a reused
//! pid is a different process behind a different descriptor, so it is opened afresh.
//!
//! Kept descriptors are capped ([`ProcWalker::with_max_open`], by default from the
//! `RLIMIT_NOFILE` soft limit, which [`raise_fd_limit`] raises to the hard limit, and at most
//! [`DEFAULT_MAX_OPEN`]); past the cap, processes are read with `openat` + `read` + `close`.
//! Each kept descriptor holds a page of kernel memory (the seq_file buffer): about 4 KiB per
//! process, 2.4 MiB for 600 processes, charged to the agent's cgroup, not to its RSS.
//!
//! A process that exits mid-walk (its directory or `stat` gone, or `read` failing with `ESRCH`)
//! is skipped, as is an entry whose `stat` cannot be read or parsed. Names go into one shared
//! arena and samples into a reused `Vec`: in steady state a walk allocates nothing.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::util::read_all;

/// What the walk keeps of one `/proc/PID/stat`. Times are in clock ticks, memory in pages
/// (`rss`) and bytes (`vsize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatSample {
    pub pid: u32,
    pub ppid: u32,
    /// The state letter (`R`, `S`, `D`, `Z`, `T`, `t`, `I`, …).
    pub state: u8,
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    /// Start time in ticks since boot: with `pid`, identifies the process across walks.
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
    name_start: u32,
    name_len: u32,
}

/// Most `stat` descriptors kept open by default.
pub const DEFAULT_MAX_OPEN: usize = 4096;

/// Descriptors left free for everything else the agent opens.
const FD_RESERVE: u64 = 256;

/// A kept-open `/proc/PID/stat`.
struct OpenStat {
    pid: u32,
    file: File,
}

/// Walks a procfs root, keeping its buffers and `stat` descriptors between walks.
pub struct ProcWalker {
    root: CString,
    buf: Vec<u8>,
    path: Vec<u8>,
    pids: Vec<u32>,
    /// Descriptors kept from the last walk, sorted by pid.
    open: Vec<OpenStat>,
    /// The previous walk's descriptors while this walk runs (kept for its allocation).
    previous: Vec<OpenStat>,
    max_open: usize,
    /// The samples of the last walk, sorted by pid.
    pub samples: Vec<StatSample>,
    names: String,
}

impl ProcWalker {
    /// A walker whose descriptor cap follows the process's `RLIMIT_NOFILE`, raised first to
    /// the hard limit ([`raise_fd_limit`]).
    pub fn new(proc_root: &Path) -> Self {
        let limit = raise_fd_limit().saturating_sub(FD_RESERVE) as usize;
        Self::with_max_open(proc_root, limit.min(DEFAULT_MAX_OPEN))
    }

    /// A walker keeping at most `max_open` descriptors (0: open, read and close every time).
    pub fn with_max_open(proc_root: &Path, max_open: usize) -> Self {
        Self {
            root: CString::new(proc_root.as_os_str().as_bytes()).unwrap_or_default(),
            buf: Vec::with_capacity(1024),
            path: Vec::with_capacity(32),
            pids: Vec::new(),
            open: Vec::new(),
            previous: Vec::new(),
            max_open,
            samples: Vec::new(),
            names: String::new(),
        }
    }

    /// The executable name (`comm`) of a sample of the last walk.
    pub fn name(&self, sample: &StatSample) -> &str {
        let start = sample.name_start as usize;
        &self.names[start..start + sample.name_len as usize]
    }

    /// Descriptors currently kept open.
    pub fn open_descriptors(&self) -> usize {
        self.open.len()
    }

    /// Reads every process's `stat`. Fails only when the procfs root itself cannot be listed.
    pub fn walk(&mut self) -> io::Result<()> {
        self.samples.clear();
        self.names.clear();
        let mut dir = Dir::open(&self.root)?;
        let dirfd = dir.fd();
        self.pids.clear();
        while let Some(name) = dir.next_name() {
            if let Some(pid) = parse_pid(name) {
                self.pids.push(pid);
            }
        }
        if !self.pids.windows(2).all(|w| w[0] < w[1]) {
            self.pids.sort_unstable();
            self.pids.dedup();
        }
        std::mem::swap(&mut self.open, &mut self.previous);
        let mut previous = self.previous.drain(..).peekable();
        for &pid in &self.pids {
            // Descriptors of processes no longer listed are dropped (closed) here.
            while previous.next_if(|o| o.pid < pid).is_some() {}
            let mut file = previous.next_if(|o| o.pid == pid).map(|o| o.file);
            let kept_ok = file
                .as_ref()
                .is_some_and(|f| read_all(f, &mut self.buf).is_ok());
            if !kept_ok {
                // New, reused pid, or the kept descriptor failed: open it afresh.
                file = None;
                self.path.clear();
                self.path.extend_from_slice(itoa_buf(pid).as_bytes());
                self.path.extend_from_slice(b"/stat\0");
                match open_at(dirfd, &self.path) {
                    Ok(f) if read_all(&f, &mut self.buf).is_ok() => file = Some(f),
                    _ => continue, // exited mid-walk, or unreadable
                }
            }
            let Some(parsed) = parse_stat(&self.buf) else {
                continue;
            };
            let name_start = self.names.len() as u32;
            match std::str::from_utf8(parsed.comm) {
                Ok(s) => self.names.push_str(s),
                Err(_) => self.names.push_str(&String::from_utf8_lossy(parsed.comm)),
            }
            self.samples.push(StatSample {
                pid,
                name_start,
                name_len: self.names.len() as u32 - name_start,
                ..parsed.sample
            });
            if let Some(file) = file {
                if self.open.len() < self.max_open {
                    self.open.push(OpenStat { pid, file });
                }
            }
        }
        Ok(())
    }
}

/// A `/proc/PID` directory name as a PID; anything else (`self`, `net`, …) is `None`.
fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// A parsed `stat` line; `comm` borrows the read buffer.
pub struct ParsedStat<'a> {
    pub comm: &'a [u8],
    pub sample: StatSample,
}

/// Parses `/proc/PID/stat`. `comm` may contain spaces and parentheses (`(sd-pam)`, `a) b`), so
/// it runs from the first `(` to the **last** `)`.
pub fn parse_stat(buf: &[u8]) -> Option<ParsedStat<'_>> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &buf[open + 1..close];
    let rest = buf.get(close + 2..)?;
    // Fields after comm, 0-based: 0 state, 1 ppid, 11 utime, 12 stime, 17 num_threads,
    // 19 starttime, 20 vsize, 21 rss.
    let mut sample = StatSample::default();
    let mut seen = 0;
    for (i, field) in rest.split(|&b| b == b' ').enumerate() {
        match i {
            0 => sample.state = *field.first()?,
            1 => sample.ppid = parse_u64(field)? as u32,
            11 => sample.utime = parse_u64(field)?,
            12 => sample.stime = parse_u64(field)?,
            17 => sample.threads = parse_u64(field)?,
            19 => sample.starttime = parse_u64(field)?,
            20 => sample.vsize = parse_u64(field)?,
            21 => {
                // `rss` is a signed long; negative never happens in practice but must not wrap.
                sample.rss_pages = if field.first() == Some(&b'-') {
                    0
                } else {
                    parse_u64(field)?
                };
                seen = 22;
                break;
            }
            _ => {}
        }
    }
    (seen == 22).then_some(ParsedStat { comm, sample })
}

fn parse_u64(field: &[u8]) -> Option<u64> {
    let field = field.strip_suffix(b"\n").unwrap_or(field);
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then(|| acc.wrapping_mul(10).wrapping_add(d as u64))
    })
}

/// An open directory stream over `readdir(3)`.
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(path: &CString) -> io::Result<Self> {
        // SAFETY: path is a valid NUL-terminated string.
        let dir = unsafe { libc::opendir(path.as_ptr()) };
        if dir.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(dir))
    }

    fn fd(&self) -> libc::c_int {
        // SAFETY: self.0 is an open DIR stream until drop.
        unsafe { libc::dirfd(self.0) }
    }

    /// The next entry's name. It points into `readdir`'s buffer, valid until the next call:
    /// the `&mut self` borrow makes the compiler enforce that.
    fn next_name(&mut self) -> Option<&[u8]> {
        // SAFETY: self.0 is an open DIR stream; readdir returns null at the end or a pointer to
        // an entry valid until the next readdir/closedir on this stream, whose d_name is
        // NUL-terminated.
        unsafe {
            let entry = libc::readdir(self.0);
            if entry.is_null() {
                return None;
            }
            Some(std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes())
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: self.0 was returned by opendir and is closed exactly once.
        unsafe { libc::closedir(self.0) };
    }
}

/// Opens `rel` (NUL-terminated, relative to `dirfd`) read-only, so the kernel resolves only
/// `PID/stat`, not the whole `/proc/PID/stat` path.
fn open_at(dirfd: libc::c_int, rel: &[u8]) -> io::Result<File> {
    assert_eq!(rel.last(), Some(&0), "path must be NUL-terminated");
    // SAFETY: rel is NUL-terminated (asserted above).
    let fd = unsafe {
        libc::openat(
            dirfd,
            rel.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nothing else; File closes it on drop.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The decimal text of `pid` in a stack buffer.
fn itoa_buf(pid: u32) -> DecimalBuf {
    let mut b = DecimalBuf::default();
    let mut n = pid;
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    b.len = tmp.len() - i;
    b.bytes[..b.len].copy_from_slice(&tmp[i..]);
    b
}

#[derive(Default)]
struct DecimalBuf {
    bytes: [u8; 10],
    len: usize,
}

impl DecimalBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Raises the `RLIMIT_NOFILE` soft limit to the hard limit (capped at 65536), as Go programs
/// such as node_exporter do at start, so the walk can keep one descriptor per process. Returns
/// the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let wanted = lim.rlim_max.min(65536);
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: raised is a valid rlimit; failure leaves the limit unchanged.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted;
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn stat_line(pid: u32, comm: &str, state: char, utime: u64, rss: u64) -> String {
        format!(
            "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} 7 0 0 20 0 3 0 4242 12345678 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 9 0 0 0 0 0 0 0 0 0 0\n"
        )
    }

    #[test]
    fn parses_odd_names() {
        for comm in ["(sd-pam)", "a) b", "tmux: server", ")", "((", "x y z"] {
            let line = stat_line(42, comm, 'S', 11, 5);
            let p = parse_stat(line.as_bytes()).unwrap();
            assert_eq!(p.comm, comm.as_bytes(), "{comm}");
            assert_eq!(p.sample.state, b'S');
            assert_eq!(p.sample.ppid, 1);
            assert_eq!(p.sample.utime, 11);
            assert_eq!(p.sample.stime, 7);
            assert_eq!(p.sample.threads, 3);
            assert_eq!(p.sample.starttime, 4242);
            assert_eq!(p.sample.vsize, 12345678);
            assert_eq!(p.sample.rss_pages, 5);
        }
    }

    #[test]
    fn rejects_truncated_or_garbage() {
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"1 (x) S 1 2 3").is_none());
        assert!(parse_stat(b"1 x) S (").is_none());
        let line = stat_line(1, "x", 'S', 1, 1).replace(" 7 ", " 7x ");
        assert!(parse_stat(line.as_bytes()).is_none());
    }

    #[test]
    fn parses_real_self_stat() {
        let text = std::fs::read("/proc/self/stat").unwrap();
        let p = parse_stat(&text).unwrap();
        assert!(p.sample.rss_pages > 0);
        assert!(p.sample.threads >= 1);
    }

    #[test]
    fn walks_real_proc() {
        let mut w = ProcWalker::new(Path::new("/proc"));
        w.walk().unwrap();
        let me = std::process::id();
        let s = w.samples.iter().find(|s| s.pid == me).expect("own pid");
        assert!(!w.name(s).is_empty());
        assert!(w.samples.windows(2).all(|p| p[0].pid < p[1].pid));
        let first = w.samples.len();
        assert_eq!(
            w.open_descriptors(),
            first,
            "one kept descriptor per process"
        );
        w.walk().unwrap();
        assert!(w.samples.len().abs_diff(first) < 50);
    }

    #[test]
    fn kept_descriptors_see_fresh_values_exits_and_reused_pids() {
        let dir = tempfile::tempdir().unwrap();
        let write = |pid: u32, utime: u64| {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), stat_line(pid, "p", 'S', utime, 1)).unwrap();
        };
        write(1, 10);
        write(2, 20);
        let mut w = ProcWalker::with_max_open(dir.path(), 8);
        w.walk().unwrap();
        assert_eq!(w.open_descriptors(), 2);
        // Rewriting a file in place is what procfs regeneration looks like to a kept fd.
        std::fs::write(dir.path().join("1/stat"), stat_line(1, "p", 'S', 11, 1)).unwrap();
        // pid 2 exits; pid 3 appears.
        std::fs::remove_dir_all(dir.path().join("2")).unwrap();
        write(3, 30);
        w.walk().unwrap();
        let got: Vec<(u32, u64)> = w.samples.iter().map(|s| (s.pid, s.utime)).collect();
        assert_eq!(got, [(1, 11), (3, 30)]);
        assert_eq!(w.open_descriptors(), 2);
    }

    #[test]
    fn descriptor_cap_falls_back_to_open_read_close() {
        let mut w = ProcWalker::with_max_open(Path::new("/proc"), 3);
        w.walk().unwrap();
        assert_eq!(w.open_descriptors(), 3);
        assert!(w.samples.len() > 3);
        let mut none = ProcWalker::with_max_open(Path::new("/proc"), 0);
        none.walk().unwrap();
        assert_eq!(none.open_descriptors(), 0);
        assert!(none.samples.len() > 3);
    }

    #[test]
    fn decimal_text() {
        assert_eq!(itoa_buf(0).as_bytes(), b"0");
        assert_eq!(itoa_buf(4194304).as_bytes(), b"4194304");
        assert_eq!(itoa_buf(u32::MAX).as_bytes(), b"4294967295");
    }

    #[test]
    fn missing_root_is_an_error() {
        let mut w = ProcWalker::new(Path::new("/definitely/not/proc"));
        assert!(w.walk().is_err());
    }
}
