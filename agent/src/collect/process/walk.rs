//! The `/proc` walk: one `stat` read per process, into buffers reused across processes and
//! cycles.
//!
//! Per process this costs `openat(dirfd, "PID/stat")` + one `read` + `close`; directory entries
//! come from `readdir` without allocating, names go into one shared arena, and the parsed
//! samples into a reused `Vec`. In steady state a walk allocates nothing.
//!
//! A process that exits mid-walk (its directory or `stat` gone, or `read` failing with `ESRCH`)
//! is skipped, as is an entry whose `stat` cannot be read or parsed.

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

/// Walks a procfs root, keeping its buffers between walks.
pub struct ProcWalker {
    root: CString,
    buf: Vec<u8>,
    path: Vec<u8>,
    /// The samples of the last walk, in the order `readdir` returned them (ascending PID on
    /// Linux; [`ProcWalker::walk`] sorts them if not).
    pub samples: Vec<StatSample>,
    names: String,
}

impl ProcWalker {
    pub fn new(proc_root: &Path) -> Self {
        Self {
            root: CString::new(proc_root.as_os_str().as_bytes()).unwrap_or_default(),
            buf: Vec::with_capacity(1024),
            path: Vec::with_capacity(32),
            samples: Vec::new(),
            names: String::new(),
        }
    }

    /// The executable name (`comm`) of a sample of the last walk.
    pub fn name(&self, sample: &StatSample) -> &str {
        let start = sample.name_start as usize;
        &self.names[start..start + sample.name_len as usize]
    }

    /// Reads every process's `stat`. Fails only when the procfs root itself cannot be listed.
    pub fn walk(&mut self) -> io::Result<()> {
        self.samples.clear();
        self.names.clear();
        let mut dir = Dir::open(&self.root)?;
        let fd = dir.fd();
        while let Some(name) = dir.next_name() {
            let Some(pid) = parse_pid(name) else {
                continue;
            };
            self.path.clear();
            self.path.extend_from_slice(name);
            self.path.extend_from_slice(b"/stat\0");
            if read_at(fd, &self.path, &mut self.buf).is_err() {
                continue; // exited mid-walk, or unreadable
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
        }
        if !self.samples.windows(2).all(|w| w[0].pid <= w[1].pid) {
            self.samples.sort_unstable_by_key(|s| s.pid);
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

/// Reads the file at `rel` (NUL-terminated, relative to `dirfd`) into `buf` with `openat`, so
/// the kernel resolves only `PID/stat`, not the whole `/proc/PID/stat` path.
pub fn read_at(dirfd: libc::c_int, rel: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
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
    let file = unsafe { File::from_raw_fd(fd) };
    read_all(&file, buf)
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
        w.walk().unwrap();
        assert!(w.samples.len().abs_diff(first) < 50);
    }

    #[test]
    fn missing_root_is_an_error() {
        let mut w = ProcWalker::new(Path::new("/definitely/not/proc"));
        assert!(w.walk().is_err());
    }
}
