//! Small helpers shared by the collectors: reading kernel files into reused buffers and
//! matching the `*` globs of the config's exclude lists.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Reads a whole file into `buf` (cleared first), keeping `buf`'s allocation across calls.
///
/// Unlike `std::fs::read` this skips the `statx`/`lseek` size probe std does before reading
/// (useless for procfs, whose files report size 0), so a small procfs file costs `open` + one
/// `read` + `close`: see [`read_all`].
pub fn read_file_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    read_all(&File::open(path)?, buf)
}

/// Reads `file` from offset 0 to the end into `buf` (cleared first), straight into `buf`'s
/// spare capacity, with `pread` so a kept-open procfs file is regenerated on each call. procfs
/// generates files like `stat` whole on the first read, so a short read that ends in a newline
/// is taken as the end without a second call. An empty file is an error (`UnexpectedEof`): a
/// procfs file of an exiting process reads empty.
pub fn read_all(file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if buf.capacity() < 1024 {
        buf.reserve(1024);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let spare = buf.spare_capacity_mut();
        let asked = spare.len();
        // SAFETY: `spare` is writable for `asked` bytes and pread(2) writes at most that many;
        // the fd stays open for the call because `file` is borrowed.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                asked,
                buf.len() as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        // SAFETY: pread(2) initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        if n == 0 || (n < asked && buf.last() == Some(&b'\n')) {
            return if buf.is_empty() {
                Err(io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok(())
            };
        }
    }
}

/// Matches `name` against a glob where `*` stands for any run of characters (including none)
/// and `?` for one character. Everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ni));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ni = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when any pattern of `patterns` matches `name`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, name))
}

/// Undoes the kernel's `\040`-style escaping of spaces, tabs, newlines and backslashes in paths
/// (`/proc/swaps`, `/proc/self/mounts`).
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error and its sources on one line, `error: cause: cause` (reqwest keeps the useful part,
/// e.g. "connection refused", in the sources); a cause already in the text is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("lo", "lo"));
        assert!(!glob_match("lo", "lo0"));
        assert!(glob_match("loop*", "loop12"));
        assert!(glob_match("loop*", "loop"));
        assert!(glob_match("*docker*", "/var/lib/docker/overlay"));
        assert!(glob_match("/var/lib/docker/*", "/var/lib/docker/x/y"));
        assert!(!glob_match("/var/lib/docker/*", "/var/lib/docker"));
        assert!(glob_match("veth?", "veth1"));
        assert!(!glob_match("veth?", "veth12"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal("/a\\134b"), "/a\\b");
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal("/trailing\\04"), "/trailing\\04");
    }

    #[test]
    fn reads_whole_files_with_a_reused_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let big = "x".repeat(10_000) + "\n";
        std::fs::write(&path, &big).unwrap();
        let mut buf = Vec::new();
        read_file_into(&path, &mut buf).unwrap();
        assert_eq!(buf, big.as_bytes());
        std::fs::write(&path, "short\n").unwrap();
        read_file_into(&path, &mut buf).unwrap();
        assert_eq!(buf, b"short\n");
        std::fs::write(&path, "no newline").unwrap();
        read_file_into(&path, &mut buf).unwrap();
        assert_eq!(buf, b"no newline");
        std::fs::write(&path, "").unwrap();
        assert!(read_file_into(&path, &mut buf).is_err());
        assert!(read_file_into(&dir.path().join("missing"), &mut buf).is_err());
    }
}
