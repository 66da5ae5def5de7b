//! The trial of a new build: the running agent (its work stopped) starts the new executable as
//! a child with [`TRIAL_ENV`] naming a marker file, and waits for the child to write it. The
//! child writes the marker ([`mark_healthy`]) once it has collected and its OpAMP session is
//! connected; then it is stopped (SIGTERM, later SIGKILL) and the parent `exec`s the new build.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Set in the trial child's environment: where to write the health marker.
pub const TRIAL_ENV: &str = "RMM_UPDATE_TRIAL_MARKER";
/// How often the parent looks at the child.
const POLL: Duration = Duration::from_millis(100);
/// How long a stop signal may trail the child's exit and still count as the cause.
const STOP_SIGNAL_GRACE: Duration = Duration::from_millis(300);
/// How long the healthy child has to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The marker path when this process is a trial child.
pub fn marker_from_env() -> Option<PathBuf> {
    std::env::var_os(TRIAL_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Child side: reports health (the marker holds the child's pid, so a stale marker from
/// elsewhere never counts).
pub fn mark_healthy(marker: &Path) -> std::io::Result<()> {
    crate::control::identity::write_private(
        marker,
        format!("{}\n", std::process::id()).as_bytes(),
        0o600,
    )
    .map_err(std::io::Error::other)
}

/// How the trial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// The agent itself was told to stop (SIGTERM, SIGINT) during the trial.
    Interrupted,
    /// Why not (the text after `rolled back: `).
    Failed(String),
}

/// Runs `exe args...` as a trial child and waits up to `limit` for it to become healthy, or
/// until this process is told to stop.
pub async fn run(exe: &Path, args: &[OsString], marker: &Path, limit: Duration) -> Verdict {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let _ = std::fs::remove_file(marker);
    let started = Instant::now();
    let mut child = match Command::new(exe)
        .args(args)
        .env(TRIAL_ENV, marker)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Verdict::Failed(format!("the new version could not be started: {e}")),
    };
    tracing::info!(pid = child.id(), limit = %humantime::format_duration(limit), "Started the new version on trial.");
    // Completes when this process is told to stop.
    let mut stopped = std::pin::pin!(async move {
        match (term.as_mut(), int.as_mut()) {
            (Some(t), Some(i)) => tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            },
            _ => std::future::pending().await,
        }
    });
    let verdict = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let failed = Verdict::Failed(format!(
                    "new version exited with {} after {:.1} s",
                    describe(status),
                    started.elapsed().as_secs_f64()
                ));
                // `systemctl stop` signals the whole unit at once: a child that exited because
                // of it is no verdict on the build.
                tokio::select! {
                    () = &mut stopped => break Verdict::Interrupted,
                    () = tokio::time::sleep(STOP_SIGNAL_GRACE) => break failed,
                }
            }
            Ok(None) => {}
            Err(e) => break Verdict::Failed(format!("waiting for the new version: {e}")),
        }
        if healthy(marker, child.id()) {
            break Verdict::Healthy;
        }
        if started.elapsed() >= limit {
            break Verdict::Failed(format!(
                "new version did not become healthy (collecting and connected to the control plane) within {} s",
                limit.as_secs()
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = &mut stopped => break Verdict::Interrupted,
        }
    };
    stop(&mut child).await;
    let _ = std::fs::remove_file(marker);
    verdict
}

fn healthy(marker: &Path, pid: u32) -> bool {
    std::fs::read_to_string(marker)
        .map(|t| t.trim() == pid.to_string())
        .unwrap_or(false)
}

/// `status 1` or `signal 9`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

/// SIGTERM, a grace period, SIGKILL; always reaped.
async fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!("The trial child did not stop in time; killing it.");
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_child_that_exits_fails_with_its_status() {
        let tmp = tempfile::tempdir().unwrap();
        let v = rt().block_on(run(
            Path::new("/bin/false"),
            &[],
            &tmp.path().join("m"),
            Duration::from_secs(5),
        ));
        let Verdict::Failed(reason) = v else { panic!() };
        assert!(
            reason.starts_with("new version exited with status 1 after "),
            "{reason}"
        );
    }

    #[test]
    fn a_child_that_writes_its_marker_is_healthy_and_is_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("m");
        // A stand-in for the new build: writes its pid where TRIAL_ENV says, then waits.
        let script = format!("echo $$ > \"${TRIAL_ENV}\"; exec sleep 30");
        let t = Instant::now();
        let v = rt().block_on(run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &marker,
            Duration::from_secs(10),
        ));
        assert_eq!(v, Verdict::Healthy);
        assert!(t.elapsed() < Duration::from_secs(8), "stopped by SIGTERM");
        assert!(!marker.exists());
    }

    #[test]
    fn a_child_that_never_becomes_healthy_times_out() {
        let tmp = tempfile::tempdir().unwrap();
        let v = rt().block_on(run(
            Path::new("/bin/sleep"),
            &["30".into()],
            &tmp.path().join("m"),
            Duration::from_millis(500),
        ));
        let Verdict::Failed(reason) = v else { panic!() };
        assert!(reason.contains("did not become healthy"), "{reason}");
    }
}
