//! Usage per mounted filesystem: mounts from `/proc/self/mounts`, sizes from `statvfs(3)`.
//!
//! Pseudo and virtual filesystems are left out by type (`collect.filesystem_exclude_types`) and
//! by mount point glob (`collect.filesystem_exclude_mountpoints`). A mount point mounted more than
//! once reports its topmost mount only. A mount that cannot be `statvfs`ed (permission, a
//! vanished mount) is skipped without counting an error: that is the normal state of some
//! mounts (another user's FUSE mount), not a collector failure.

use std::ffi::CString;
use std::path::PathBuf;

use super::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::host::HostPaths;
use crate::snapshot::{Filesystem, Snapshot};
use crate::util::{matches_any, unescape_octal};

pub struct FilesystemCollector {
    mounts: PathBuf,
    exclude_types: Vec<String>,
    exclude_mountpoints: Vec<String>,
}

impl FilesystemCollector {
    pub fn new(paths: &HostPaths, config: &CollectConfig) -> Self {
        Self {
            mounts: paths.proc.join("self/mounts"),
            exclude_types: config.filesystem_exclude_types.clone(),
            exclude_mountpoints: config.filesystem_exclude_mountpoints.clone(),
        }
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let text =
            std::fs::read_to_string(&self.mounts).map_err(|e| CollectError::io(&self.mounts, e))?;
        let mut out: Vec<Filesystem> = Vec::new();
        for line in text.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(device), Some(mountpoint), Some(fs_type), Some(options)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let mountpoint = unescape_octal(mountpoint);
            if matches_any(&self.exclude_types, fs_type)
                || matches_any(&self.exclude_mountpoints, &mountpoint)
            {
                continue;
            }
            let Some(usage) = statvfs(&mountpoint) else {
                continue;
            };
            let mode = if options.split(',').any(|o| o == "ro") {
                "ro"
            } else {
                "rw"
            };
            let fs = Filesystem {
                device: unescape_octal(device),
                mountpoint,
                fs_type: fs_type.to_owned(),
                mode: mode.to_owned(),
                ..usage
            };
            // Later lines are mounted on top of earlier ones at the same point.
            match out.iter_mut().find(|o| o.mountpoint == fs.mountpoint) {
                Some(existing) => *existing = fs,
                None => out.push(fs),
            }
        }
        snapshot.filesystems = out;
        Ok(())
    }
}

/// Used, free and reserved bytes of the filesystem at `path`; `None` if it cannot be queried
/// or reports zero blocks (virtual filesystems that slipped through the filters).
fn statvfs(path: &str) -> Option<Filesystem> {
    let c_path = CString::new(path).ok()?;
    // SAFETY: `statvfs` is plain old data, so zeroed is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and st is a valid, writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
        return None;
    }
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    } as u64;
    let (blocks, bfree, bavail) = (st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64);
    let bfree = bfree.min(blocks);
    let bavail = bavail.min(bfree);
    Some(Filesystem {
        used: (blocks - bfree) * frsize,
        free: bavail * frsize,
        reserved: (bfree - bavail) * frsize,
        ..Filesystem::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_types_and_mountpoints_and_decodes_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(paths.proc.join("self")).unwrap();
        let spaced = dir.path().join("my disk");
        std::fs::create_dir_all(&spaced).unwrap();
        let spaced_escaped = spaced.to_str().unwrap().replace(' ', "\\040");
        let mounts = format!(
            "proc /proc proc rw 0 0\n\
             tmpfs /run tmpfs rw 0 0\n\
             /dev/vda / ext4 rw,relatime 0 0\n\
             /dev/vdb {spaced_escaped} xfs ro,relatime 0 0\n\
             /dev/loop0 /snap/core/1 squashfs ro 0 0\n\
             /dev/vdc /var/lib/docker/overlay2/x ext4 rw 0 0\n\
             /dev/gone /definitely/not/there ext4 rw 0 0\n\
             garbage\n"
        );
        std::fs::write(paths.proc.join("self/mounts"), mounts).unwrap();
        let mut c = FilesystemCollector::new(&paths, &CollectConfig::default());
        let mut s = Snapshot::default();
        c.collect(&mut s).unwrap();
        let points: Vec<&str> = s
            .filesystems
            .iter()
            .map(|f| f.mountpoint.as_str())
            .collect();
        assert_eq!(points, ["/", spaced.to_str().unwrap()]);
        let spaced_fs = &s.filesystems[1];
        assert_eq!(spaced_fs.device, "/dev/vdb");
        assert_eq!(spaced_fs.fs_type, "xfs");
        assert_eq!(spaced_fs.mode, "ro");
        assert_eq!(s.filesystems[0].mode, "rw");
        assert!(s.filesystems[0].size() > 0);
    }

    #[test]
    fn sizes_match_statvfs() {
        let fs = statvfs("/").unwrap();
        // SAFETY: as in `statvfs`.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let root = CString::new("/").unwrap();
        assert_eq!(unsafe { libc::statvfs(root.as_ptr(), &mut st) }, 0);
        assert_eq!(fs.size(), st.f_blocks as u64 * st.f_frsize as u64);
    }

    #[test]
    fn stacked_mounts_report_the_top_one() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::from_root(dir.path());
        std::fs::create_dir_all(paths.proc.join("self")).unwrap();
        std::fs::write(
            paths.proc.join("self/mounts"),
            "/dev/a / ext4 rw 0 0\n/dev/b / ext4 ro 0 0\n",
        )
        .unwrap();
        let mut s = Snapshot::default();
        FilesystemCollector::new(&paths, &CollectConfig::default())
            .collect(&mut s)
            .unwrap();
        assert_eq!(s.filesystems.len(), 1);
        assert_eq!(s.filesystems[0].device, "/dev/b");
    }
}
