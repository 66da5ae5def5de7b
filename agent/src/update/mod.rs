//! Self-update from control-plane package offers (OpAMP `PackagesAvailable`, package
//! `rmm-agent`), following the update contract shared with the control plane.
//!
//! # Flow
//!
//! 1. [`offer`]: the offer is checked (version, hash and signature sizes, a pinned key exists,
//!    not the running version, not a build that failed before) before anything is fetched.
//! 2. [`download`]: streamed into `update-download.tmp` in the state directory (0600), hashed
//!    on the way, size-capped; the agent secret only goes to the control plane's origin.
//! 3. [`verify`]: SHA-256 equals the offer's `content_hash`, and the Ed25519 signature over
//!    `"rmm-agent-release-v1\0" || sha256` verifies (strictly) with a key pinned at enrollment.
//!    Nothing has touched the installed binary yet; any refusal is reported as InstallFailed
//!    with the reason, and the agent carries on.
//! 4. [`install`](mod@install): the running image is copied to `<exe>.previous`; the build is copied next to
//!    the executable (re-hashed while copying) and fsynced. Still nothing replaced.
//! 5. The agent stops its work (OpAMP goodbye, exporters, `/metrics`, collection), writes the
//!    `trial` record ([`status::Record`]), renames the build over the executable, and runs it
//!    as a child on [`trial`]: it must collect and connect to the control plane within
//!    `updates.health_timeout_seconds`.
//! 6. Healthy: the child is stopped, the record says `installed`, and the agent `exec`s the new
//!    executable with its original arguments — same PID, so this works under a systemd
//!    `Type=simple` unit whose main process never exits. The new version reports Installed.
//!    Not healthy: the child is killed, `<exe>.previous` is put back, the record says
//!    `rolled_back` with the reason, the pair `(version, sha256)` is remembered as failed, and
//!    the agent `exec`s the restored executable, which reports InstallFailed `rolled back: ...`.
//!
//! # Invariants (what a crash at any point leaves)
//!
//! - The executable path always holds a complete binary: it only ever changes by `rename(2)`
//!   of a complete, fsynced file from the same directory ([`install`](mod@install)), then a directory fsync.
//! - Before the rename, `<exe>.previous` holds a complete, fsynced copy of the running version
//!   and the `trial` record is on disk.
//! - Crash before the rename: the old binary is in place; the staged temporary file is removed
//!   at the next update ([`install::remove_leftovers`]).
//! - Crash after the rename (during the trial): the service manager restarts the executable
//!   path, the new build. At start it finds the `trial` record without being the trial child
//!   ([`recover_at_start`]), puts `<exe>.previous` back and `exec`s it; the old version then
//!   reports `rolled back: the agent restarted during the trial`. Limitation: a new build that
//!   cannot even run that start-up code (it dies before reading its state) stays in place until
//!   `<exe>.previous` is restored by hand — the one window where the previous version cannot
//!   save itself, since it no longer runs.
//! - Crash of the old process after a verdict but before `exec`: the record already holds the
//!   verdict (`installed` / `rolled_back`) and the right binary is in place.
//! - SIGTERM/SIGINT during the trial (e.g. `systemctl stop`): the child is stopped, the previous
//!   binary put back, the record says `rolled_back` (the build is not marked as failed), and the
//!   process exits normally.

pub mod download;
pub mod install;
pub mod offer;
pub mod status;
pub mod trial;
pub mod verify;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmm_opamp::proto::{PackageStatusEnum, PackageStatuses, PackagesAvailable};
use tokio::sync::mpsc;

use crate::control::identity::{Identity, Secret};
use crate::control::StatusUpdate;
use install::Paths;
use offer::Decision;
use status::{FailedList, Offered, Record};
use verify::ReleaseKey;

/// The agent's own package name in offers and statuses.
pub const PACKAGE: &str = "rmm-agent";
/// The trial child's health marker, in the state directory.
pub const TRIAL_MARKER: &str = "update-trial-healthy";

/// Handles offers for a running, enrolled agent.
pub struct Updater {
    state_dir: PathBuf,
    keys: Vec<ReleaseKey>,
    server: String,
    secret: Secret,
    max_bytes: u64,
    status: mpsc::Sender<StatusUpdate>,
}

/// A verified build staged next to the executable, ready for [`install`](mod@install).
#[derive(Debug)]
pub struct Staged {
    pub offered: Offered,
    staged: PathBuf,
    paths: Paths,
}

impl Updater {
    /// # Errors
    /// Invalid pinned keys (the identity loader already refuses those).
    pub fn new(
        state_dir: &Path,
        identity: &Identity,
        secret: Secret,
        max_bytes: u64,
        status: mpsc::Sender<StatusUpdate>,
    ) -> Result<Self, String> {
        Ok(Self {
            state_dir: state_dir.to_path_buf(),
            keys: verify::parse_keys(&identity.signing_keys)?,
            server: identity.server.clone(),
            secret,
            max_bytes,
            status,
        })
    }

    async fn report(&self, offered: &Offered, state: PackageStatusEnum, error: &str) {
        let s: PackageStatuses = status::statuses(Some(offered), state, error);
        let _ = self.status.send(StatusUpdate::PackageStatuses(s)).await;
    }

    async fn refuse(&self, offered: &Offered, reason: &str, remember: bool) -> Option<Staged> {
        tracing::warn!(version = %offered.version, %reason, "Update refused.");
        if remember {
            FailedList::remember(&self.state_dir, offered, reason);
        }
        self.report(offered, PackageStatusEnum::InstallFailed, reason)
            .await;
        None
    }

    /// Takes an offer as far as a verified, staged build (reporting each step), or to a
    /// reported refusal (`None`).
    pub async fn prepare(self: Arc<Self>, offer: PackagesAvailable) -> Option<Staged> {
        let failed = FailedList::load(&self.state_dir);
        let offer = match offer::decide(&offer, &self.keys, &failed) {
            Decision::NotForUs => return None,
            Decision::Running(o) => {
                self.report(&o, PackageStatusEnum::Installed, "").await;
                return None;
            }
            Decision::FailedBefore(o, reason) => {
                tracing::info!(version = %o.version, "This build failed before; not trying it again.");
                self.report(&o, PackageStatusEnum::InstallFailed, &reason)
                    .await;
                return None;
            }
            Decision::Refuse(o, reason) => return self.refuse(&o, &reason, false).await,
            Decision::Fetch(f) => f,
        };
        let o = &offer.offered;
        tracing::info!(version = %o.version, url = %offer.url, "Downloading an update.");
        self.report(o, PackageStatusEnum::Downloading, "").await;
        let downloaded = match download::fetch(&download::Request {
            url: &offer.url,
            server: &self.server,
            secret: &self.secret,
            max_bytes: self.max_bytes,
            state_dir: &self.state_dir,
        })
        .await
        {
            Ok(d) => d,
            Err(reason) => return self.refuse(o, &reason, false).await,
        };
        self.report(o, PackageStatusEnum::Installing, "").await;
        if let Err(e) = verify::verify(
            &downloaded.sha256,
            &offer.content_hash,
            &offer.signature,
            &self.keys,
        ) {
            let _ = std::fs::remove_file(&downloaded.path);
            return self.refuse(o, &e.to_string(), true).await;
        }
        tracing::info!(version = %o.version, bytes = downloaded.bytes, "The update's hash and signature verify.");
        let digest = downloaded.sha256;
        let path = downloaded.path.clone();
        let staged = tokio::task::spawn_blocking(move || -> Result<(Paths, PathBuf), String> {
            let paths = Paths::current().map_err(|e| e.to_string())?;
            install::remove_leftovers(&paths);
            install::keep_previous(Path::new("/proc/self/exe"), &paths).map_err(|e| {
                format!(
                    "keeping the previous binary at {}: {e}",
                    paths.previous.display()
                )
            })?;
            let staged = install::stage(&path, &digest, &paths)
                .map_err(|e| format!("staging next to {}: {e}", paths.exe.display()))?;
            Ok((paths, staged))
        })
        .await
        .unwrap_or_else(|e| Err(format!("staging panicked: {e}")));
        let _ = std::fs::remove_file(&downloaded.path);
        match staged {
            Ok((paths, staged)) => Some(Staged {
                offered: o.clone(),
                staged,
                paths,
            }),
            Err(e) => self.refuse(o, &format!("install failed: {e}"), false).await,
        }
    }
}

/// Installs a staged build once the agent's work is stopped: swap, trial, then `exec` of the
/// new or the restored executable. Returns `Err` if that `exec` fails, `Ok` when the agent was
/// told to stop during the trial (the previous version is put back, and the process ends).
pub async fn install(
    staged: Staged,
    state_dir: &Path,
    health_timeout: Duration,
) -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Staged {
        offered,
        staged,
        paths,
    } = staged;
    let trial = Record::Trial {
        offered: offered.clone(),
        previous_version: crate::version().to_owned(),
    };
    if let Err(e) = trial.save(state_dir) {
        let _ = std::fs::remove_file(&staged);
        let reason = format!("install failed: writing the update record: {e}");
        tracing::error!(%reason);
        return Err(exec(&paths.exe, &args));
    }
    if let Err(e) = install::swap(&staged, &paths) {
        let reason = format!("install failed: replacing {}: {e}", paths.exe.display());
        tracing::error!(%reason);
        FailedList::remember(state_dir, &offered, &reason);
        save(state_dir, &Record::Failed { offered, reason });
        return Err(exec(&paths.exe, &args));
    }
    tracing::info!(version = %offered.version, exe = %paths.exe.display(), previous = %paths.previous.display(), "Installed the new version; trying it.");
    let marker = state_dir.join(TRIAL_MARKER);
    let verdict = trial::run(&paths.exe, &args, &marker, health_timeout).await;
    let stopping = verdict == trial::Verdict::Interrupted;
    match verdict {
        trial::Verdict::Healthy => {
            tracing::info!(version = %offered.version, "The new version is healthy; switching to it.");
            save(state_dir, &Record::Installed { offered });
        }
        trial::Verdict::Interrupted | trial::Verdict::Failed(_) => {
            let mut reason = match verdict {
                trial::Verdict::Failed(r) => r,
                _ => "the agent was stopped during the trial".to_owned(),
            };
            tracing::error!(%reason, "The new version failed its trial; rolling back.");
            if let Err(e) = install::restore(&paths) {
                tracing::error!(error = %e, "Restoring the previous binary failed.");
                reason.push_str(&format!(
                    "; restoring {} failed: {e}",
                    paths.previous.display()
                ));
            }
            // Stopping the agent is no fault of the build: it may be offered and tried again.
            if !stopping {
                FailedList::remember(state_dir, &offered, &format!("rolled back: {reason}"));
            }
            save(state_dir, &Record::RolledBack { offered, reason });
        }
    }
    if stopping {
        tracing::info!("Stopped during the update; the previous version is back in place.");
        return Ok(());
    }
    Err(exec(&paths.exe, &args))
}

/// At start (not as a trial child): a `trial` record means the agent died during a trial. If
/// this is the new build, put the previous one back and `exec` it; either way the record
/// becomes `rolled_back`. Returns only when nothing had to be exec'd (or `exec` failed).
pub fn recover_at_start(state_dir: &Path) {
    let Some(Record::Trial {
        offered,
        previous_version,
    }) = Record::load(state_dir)
    else {
        return;
    };
    let reason = format!(
        "the agent restarted during the trial of version {}",
        offered.version
    );
    tracing::warn!(%reason, "Recovering from an interrupted update.");
    FailedList::remember(state_dir, &offered, &format!("rolled back: {reason}"));
    let paths = Paths::current();
    let restore = crate::version() != previous_version;
    save(state_dir, &Record::RolledBack { offered, reason });
    if restore {
        match paths {
            Ok(paths) if paths.previous.is_file() => match install::restore(&paths) {
                Ok(()) => {
                    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
                    let e = exec(&paths.exe, &args);
                    tracing::error!(error = %e, "Starting the restored version failed.");
                }
                Err(e) => tracing::error!(error = %e, "Restoring the previous version failed."),
            },
            Ok(paths) => {
                tracing::error!(previous = %paths.previous.display(), "No previous version to restore.")
            }
            Err(e) => tracing::error!(error = %e, "Cannot locate the executable to restore."),
        }
    }
}

fn save(state_dir: &Path, record: &Record) {
    if let Err(e) = record.save(state_dir) {
        tracing::error!(error = %e, "Could not write the update record.");
    }
}

/// Replaces this process with `exe args...` (same PID); returns only on failure.
fn exec(exe: &Path, args: &[OsString]) -> anyhow::Error {
    let e = std::process::Command::new(exe)
        .args(args)
        .env_remove(trial::TRIAL_ENV)
        .exec();
    anyhow::anyhow!("exec {}: {e}", exe.display())
}
