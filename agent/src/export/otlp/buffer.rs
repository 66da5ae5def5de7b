//! The queue of encoded pushes waiting for the receiver: bounded in bytes, oldest first.
//!
//! New pushes go to memory. When memory holds more than its cap, the oldest pushes in memory
//! move to the disk directory if one is configured (one file each, named by sequence number so
//! a restarted agent resends them in order), else they are dropped. The disk directory is capped
//! too: beyond it the oldest files are deleted. Every discarded push is counted.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// One encoded `ExportMetricsServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Bytes,
    /// `body` is gzip-compressed.
    pub gzip: bool,
}

#[derive(Debug)]
enum Entry {
    Memory(Payload),
    Disk { path: PathBuf, len: u64, gzip: bool },
}

impl Entry {
    fn len(&self) -> u64 {
        match self {
            Entry::Memory(p) => p.body.len() as u64,
            Entry::Disk { len, .. } => *len,
        }
    }
}

/// Where spilled pushes go.
#[derive(Debug, Clone)]
pub struct DiskSpill {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// The queue. Entries on disk are always older than entries in memory.
#[derive(Debug)]
pub struct Buffer {
    entries: VecDeque<Entry>,
    memory_bytes: u64,
    disk_bytes: u64,
    max_memory_bytes: u64,
    disk: Option<DiskSpill>,
    next_seq: u64,
    /// The last disk error, logged once until a write succeeds again.
    disk_failing: bool,
}

const EXT_PLAIN: &str = "pb";
const EXT_GZIP: &str = "pb.gz";

impl Buffer {
    /// An empty buffer; with `disk`, the directory is created and the pushes a previous run
    /// left there are queued first.
    pub fn new(max_memory_bytes: u64, disk: Option<DiskSpill>) -> io::Result<Self> {
        let mut buffer = Self {
            entries: VecDeque::new(),
            memory_bytes: 0,
            disk_bytes: 0,
            max_memory_bytes,
            disk,
            next_seq: 0,
            disk_failing: false,
        };
        if let Some(d) = &buffer.disk {
            std::fs::create_dir_all(&d.dir)?;
            let mut found: Vec<(u64, PathBuf, u64, bool)> = Vec::new();
            for entry in std::fs::read_dir(&d.dir)? {
                let entry = entry?;
                let path = entry.path();
                let Some((seq, gzip)) = parse_name(&path) else {
                    continue;
                };
                found.push((seq, path, entry.metadata()?.len(), gzip));
            }
            found.sort_by_key(|f| f.0);
            for (seq, path, len, gzip) in found {
                buffer.next_seq = buffer.next_seq.max(seq + 1);
                buffer.disk_bytes += len;
                buffer.entries.push_back(Entry::Disk { path, len, gzip });
            }
            buffer.trim_disk();
        }
        Ok(buffer)
    }

    /// Queues `payload`; returns how many older pushes were discarded to make room.
    pub fn push(&mut self, payload: Payload) -> u64 {
        self.memory_bytes += payload.body.len() as u64;
        self.entries.push_back(Entry::Memory(payload));
        let mut dropped = 0;
        while self.memory_bytes > self.max_memory_bytes {
            let Some(idx) = self
                .entries
                .iter()
                .position(|e| matches!(e, Entry::Memory(_)))
            else {
                break;
            };
            let Entry::Memory(oldest) = self.entries.remove(idx).expect("index found") else {
                unreachable!("position matched a memory entry")
            };
            self.memory_bytes -= oldest.body.len() as u64;
            match self.spill(&oldest) {
                Some(entry) => {
                    self.disk_bytes += entry.len();
                    self.entries.insert(idx, entry);
                    dropped += self.trim_disk();
                }
                None => dropped += 1,
            }
        }
        dropped
    }

    /// The oldest push, read from disk if it was spilled. A spilled file that cannot be read is
    /// discarded (and counted in the returned number) and the next one tried.
    pub fn front(&mut self) -> (Option<Payload>, u64) {
        let mut dropped = 0;
        loop {
            match self.entries.front() {
                None => return (None, dropped),
                Some(Entry::Memory(p)) => return (Some(p.clone()), dropped),
                Some(Entry::Disk { path, gzip, .. }) => match std::fs::read(path) {
                    Ok(body) => {
                        return (
                            Some(Payload {
                                body: Bytes::from(body),
                                gzip: *gzip,
                            }),
                            dropped,
                        )
                    }
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "Discarding an unreadable buffered OTLP push.");
                        self.pop_front();
                        dropped += 1;
                    }
                },
            }
        }
    }

    /// Removes the oldest push (after it was sent or refused).
    pub fn pop_front(&mut self) {
        match self.entries.pop_front() {
            Some(Entry::Memory(p)) => self.memory_bytes -= p.body.len() as u64,
            Some(Entry::Disk { path, len, .. }) => {
                self.disk_bytes -= len;
                let _ = std::fs::remove_file(path);
            }
            None => {}
        }
    }

    /// At shutdown: writes every push still in memory to disk, when a directory is configured.
    /// Returns how many pushes are lost (no directory, or writing failed).
    pub fn persist_memory(&mut self) -> u64 {
        let mut lost = 0;
        let entries = std::mem::take(&mut self.entries);
        for entry in entries {
            match entry {
                Entry::Memory(payload) => {
                    self.memory_bytes -= payload.body.len() as u64;
                    match self.spill(&payload) {
                        Some(on_disk) => {
                            self.disk_bytes += on_disk.len();
                            self.entries.push_back(on_disk);
                        }
                        None => lost += 1,
                    }
                }
                on_disk => self.entries.push_back(on_disk),
            }
        }
        lost + self.trim_disk()
    }

    /// Bytes queued, memory and disk.
    pub fn bytes(&self) -> u64 {
        self.memory_bytes + self.disk_bytes
    }

    /// Bytes queued in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Pushes queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn spill(&mut self, payload: &Payload) -> Option<Entry> {
        let disk = self.disk.as_ref()?;
        if payload.body.len() as u64 > disk.max_bytes {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let ext = if payload.gzip { EXT_GZIP } else { EXT_PLAIN };
        let path = disk.dir.join(format!("{seq:020}.{ext}"));
        match write_atomically(&path, &payload.body) {
            Ok(()) => {
                if self.disk_failing {
                    tracing::info!(dir = %disk.dir.display(), "Writing buffered OTLP pushes to disk works again.");
                    self.disk_failing = false;
                }
                Some(Entry::Disk {
                    path,
                    len: payload.body.len() as u64,
                    gzip: payload.gzip,
                })
            }
            Err(error) => {
                if !self.disk_failing {
                    tracing::warn!(%error, dir = %disk.dir.display(), "Cannot spill OTLP pushes to disk; dropping the oldest instead.");
                    self.disk_failing = true;
                }
                None
            }
        }
    }

    /// Deletes the oldest files while the disk holds more than its cap; returns how many.
    fn trim_disk(&mut self) -> u64 {
        let Some(max) = self.disk.as_ref().map(|d| d.max_bytes) else {
            return 0;
        };
        let mut dropped = 0;
        while self.disk_bytes > max {
            match self.entries.front() {
                Some(Entry::Disk { .. }) => {
                    self.pop_front();
                    dropped += 1;
                }
                _ => break,
            }
        }
        dropped
    }
}

fn parse_name(path: &Path) -> Option<(u64, bool)> {
    let name = path.file_name()?.to_str()?;
    let (stem, gzip) = match name.strip_suffix(&format!(".{EXT_GZIP}")) {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(&format!(".{EXT_PLAIN}"))?, false),
    };
    Some((stem.parse().ok()?, gzip))
}

/// Writes via a temporary file and a rename, so a crash never leaves a truncated push behind.
fn write_atomically(path: &Path, body: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8, len: usize) -> Payload {
        Payload {
            body: Bytes::from(vec![n; len]),
            gzip: false,
        }
    }

    fn drain(b: &mut Buffer) -> Vec<u8> {
        let mut out = Vec::new();
        while let (Some(front), _) = b.front() {
            out.push(front.body[0]);
            b.pop_front();
        }
        out
    }

    #[test]
    fn memory_only_drops_oldest_first() {
        let mut b = Buffer::new(300, None).unwrap();
        let dropped: u64 = (0..5).map(|n| b.push(p(n, 100))).sum();
        assert_eq!(dropped, 2);
        assert!(b.bytes() <= 300);
        assert_eq!(drain(&mut b), [2, 3, 4]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn spills_to_disk_in_order_and_caps_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskSpill {
            dir: dir.path().join("otlp"),
            max_bytes: 250,
        };
        let mut b = Buffer::new(200, Some(disk.clone())).unwrap();
        let dropped: u64 = (0..7).map(|n| b.push(p(n, 100))).sum();
        // 2 in memory, 2 on disk (250 bytes cap), 3 dropped.
        assert_eq!(dropped, 3);
        assert_eq!(b.memory_bytes(), 200);
        assert_eq!(b.bytes(), 400);
        assert_eq!(std::fs::read_dir(&disk.dir).unwrap().count(), 2);
        assert_eq!(drain(&mut b), [3, 4, 5, 6]);
        assert_eq!(std::fs::read_dir(&disk.dir).unwrap().count(), 0);
    }

    #[test]
    fn a_restart_resends_what_was_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskSpill {
            dir: dir.path().to_owned(),
            max_bytes: 10_000,
        };
        let mut b = Buffer::new(100, Some(disk.clone())).unwrap();
        for n in 0..4 {
            b.push(p(n, 100));
        }
        // Shutdown writes what is still in memory too.
        assert_eq!(b.persist_memory(), 0);
        drop(b);
        let mut b = Buffer::new(100, Some(disk)).unwrap();
        b.push(p(9, 100));
        assert_eq!(drain(&mut b), [0, 1, 2, 3, 9]);
    }
}
