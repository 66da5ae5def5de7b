//! Putting a verified build in place, keeping the previous one, and putting it back.
//!
//! Every change of the executable path is one `rename(2)` of a complete, fsynced file created
//! in the same directory (so on the same filesystem), followed by an fsync of the directory:
//! at every instant the path holds either the old or the new binary, never a partial one.
//! Temporary files are named `.<exe name>.<purpose>-<pid>`; leftovers of a crash are removed by
//! [`remove_leftovers`] and never run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Where the agent's executable and its previous version live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The executable path (what systemd starts).
    pub exe: PathBuf,
    /// `<exe>.previous`: the version before the last update.
    pub previous: PathBuf,
}

impl Paths {
    pub fn for_exe(exe: &Path) -> Self {
        let mut previous = exe.as_os_str().to_owned();
        previous.push(".previous");
        Self {
            exe: exe.to_path_buf(),
            previous: PathBuf::from(previous),
        }
    }

    /// The running executable's path; refused when the file was replaced or deleted under the
    /// running process (a package manager did it: the agent should be restarted instead).
    pub fn current() -> io::Result<Self> {
        let exe = std::env::current_exe()?;
        if exe.to_string_lossy().ends_with(" (deleted)") || !exe.is_file() {
            return Err(io::Error::other(format!(
                "the running binary {} was replaced or deleted on disk; restart the agent before updating it",
                exe.display()
            )));
        }
        Ok(Self::for_exe(&exe))
    }

    fn temp(&self, purpose: &str) -> PathBuf {
        let name = self
            .exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rmm-agent".into());
        self.exe
            .with_file_name(format!(".{name}.{purpose}-{}", std::process::id()))
    }

    fn dir(&self) -> &Path {
        self.exe.parent().unwrap_or(Path::new("/"))
    }
}

/// Copies the running image (`running`, normally `/proc/self/exe`) to `<exe>.previous`.
pub fn keep_previous(running: &Path, paths: &Paths) -> io::Result<()> {
    let tmp = paths.temp("previous");
    let mode = exe_mode(paths);
    copy_into(&mut File::open(running)?, &tmp, mode)?;
    finish(&tmp, &paths.previous, paths.dir())
}

/// Copies a downloaded build next to the executable, checking while copying that it still has
/// the verified digest. Returns the staged file (not yet in place).
pub fn stage(build: &Path, verified: &[u8; 32], paths: &Paths) -> io::Result<PathBuf> {
    let tmp = paths.temp("staged");
    let digest = copy_into(&mut File::open(build)?, &tmp, exe_mode(paths))?;
    if &digest != verified {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::other(
            "the downloaded build changed on disk after it was verified",
        ));
    }
    Ok(tmp)
}

/// Puts the staged build at the executable path (one rename).
pub fn swap(staged: &Path, paths: &Paths) -> io::Result<()> {
    finish(staged, &paths.exe, paths.dir())
}

/// Puts `<exe>.previous` back at the executable path (copy, then one rename); the previous
/// copy stays.
pub fn restore(paths: &Paths) -> io::Result<()> {
    let tmp = paths.temp("restore");
    copy_into(&mut File::open(&paths.previous)?, &tmp, exe_mode(paths))?;
    finish(&tmp, &paths.exe, paths.dir())
}

/// Removes temporary files a crashed update left next to the executable.
pub fn remove_leftovers(paths: &Paths) {
    let Some(name) = paths
        .exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return;
    };
    let Ok(entries) = fs::read_dir(paths.dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let ours = ["staged", "previous", "restore"]
            .iter()
            .any(|p| file.starts_with(&format!(".{name}.{p}-")));
        if ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// SHA-256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// The executable's permission bits (0755 when unknown).
fn exe_mode(paths: &Paths) -> u32 {
    fs::metadata(&paths.exe)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o755)
}

/// Writes `from` into a fresh `tmp` with `mode`, fsynced; returns the SHA-256 written.
fn copy_into(from: &mut impl Read, tmp: &Path, mode: u32) -> io::Result<[u8; 32]> {
    let _ = fs::remove_file(tmp);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        // The umask may have taken bits away.
        out.set_permissions(fs::Permissions::from_mode(mode))?;
        out.sync_all()?;
        Ok(h.finalize().into())
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// `rename(tmp, dest)`, then fsync of the directory so the rename survives a power loss.
fn finish(tmp: &Path, dest: &Path, dir: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths) {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("rmm-agent");
        fs::write(&exe, b"build A").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o750)).unwrap();
        let paths = Paths::for_exe(&exe);
        (tmp, paths)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn swap_keeps_the_previous_and_restore_puts_it_back() {
        let (tmp, paths) = setup();
        assert_eq!(
            paths.previous.file_name().unwrap().to_str(),
            Some("rmm-agent.previous")
        );
        let build = tmp.path().join("download");
        fs::write(&build, b"build B").unwrap();
        let digest = sha256_file(&build).unwrap();
        keep_previous(&paths.exe, &paths).unwrap();
        let staged = stage(&build, &digest, &paths).unwrap();
        assert_eq!(
            fs::read(&paths.exe).unwrap(),
            b"build A",
            "staging does not touch it"
        );
        swap(&staged, &paths).unwrap();
        assert_eq!(fs::read(&paths.exe).unwrap(), b"build B");
        assert_eq!(fs::read(&paths.previous).unwrap(), b"build A");
        let mode = fs::metadata(&paths.exe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750, "the new build keeps the executable's mode");
        restore(&paths).unwrap();
        assert_eq!(fs::read(&paths.exe).unwrap(), b"build A");
        assert_eq!(fs::read(&paths.previous).unwrap(), b"build A", "kept");
        assert_eq!(
            names(tmp.path()),
            ["download", "rmm-agent", "rmm-agent.previous"],
            "no temporary files left"
        );
    }

    #[test]
    fn a_build_changed_after_verification_is_not_staged() {
        let (tmp, paths) = setup();
        let build = tmp.path().join("download");
        fs::write(&build, b"build B").unwrap();
        let e = stage(&build, &[0; 32], &paths).unwrap_err();
        assert!(e.to_string().contains("changed on disk"), "{e}");
        assert_eq!(fs::read(&paths.exe).unwrap(), b"build A");
        assert_eq!(names(tmp.path()), ["download", "rmm-agent"]);
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_binary_and_leftovers_are_removed() {
        let (tmp, paths) = setup();
        let build = tmp.path().join("download");
        fs::write(&build, b"build B").unwrap();
        // "Crash" after staging: the staged file exists, the rename never happened.
        let staged = stage(&build, &sha256_file(&build).unwrap(), &paths).unwrap();
        assert!(staged.exists());
        assert_eq!(fs::read(&paths.exe).unwrap(), b"build A");
        remove_leftovers(&paths);
        assert!(!staged.exists());
        assert_eq!(names(tmp.path()), ["download", "rmm-agent"]);
    }

    #[test]
    fn restore_without_a_previous_copy_changes_nothing() {
        let (_tmp, paths) = setup();
        assert!(restore(&paths).is_err());
        assert_eq!(fs::read(&paths.exe).unwrap(), b"build A");
    }
}
