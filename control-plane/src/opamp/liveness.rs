//! Liveness: an agent is online from its first message until it disconnects, its
//! WebSocket closes, or it stays silent longer than `opamp_offline_timeout_seconds`
//! (default 90 s: three heartbeats, or three polls of a plain-HTTP client at its default
//! 30 s interval).
//!
//! The sweeper runs a few times per timeout. Each pass it
//! 1. takes the silent agents out of the registry, closes their WebSocket sessions and marks
//!    them offline;
//! 2. writes `last_seen` of every agent heard from since the previous pass, in one
//!    transaction, so a heartbeat costs no database write of its own;
//! 3. marks offline any agent the database still shows online but whose `last_seen` is past
//!    the timeout: agents of a previous run of this process, or of a replica that died.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::metrics::CloseReason;
use crate::store::{agent_status, now_ms};
use crate::AppState;

/// How often the sweeper runs for a given offline timeout: a quarter of it, between 100 ms
/// and 5 s, so an agent is marked offline at most a quarter-timeout late.
pub fn sweep_interval(offline_timeout: Duration) -> Duration {
    (offline_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Start the sweeper; abort the handle to stop it.
pub fn spawn(st: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let timeout = Duration::from_secs(st.config.opamp_offline_timeout_seconds);
        let mut tick = tokio::time::interval(sweep_interval(timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep(&st, timeout).await;
        }
    })
}

/// One pass (see the module docs).
pub async fn sweep(st: &AppState, timeout: Duration) {
    let now = now_ms();
    let cutoff = now - timeout.as_millis() as i64;
    let stale = st.opamp.take_stale(cutoff);
    for g in &stale {
        if let Some(s) = &g.session {
            s.close(1000, CloseReason::Timeout);
        }
    }
    super::mark_offline(st, stale, CloseReason::Timeout).await;
    let seen = st.opamp.take_unflushed();
    if let Err(e) = agent_status::touch(&st.db, &seen).await {
        tracing::warn!(error = %e, agents = seen.len(), "OpAMP: cannot record last_seen");
    }
    match agent_status::mark_stale_offline(&st.db, cutoff, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            agents = n,
            "agents silent past the offline timeout marked offline"
        ),
        Err(e) => tracing::warn!(error = %e, "OpAMP: cannot sweep stale agents"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_quarter_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(90)),
            Duration::from_secs(5)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(200)),
            Duration::from_millis(100)
        );
    }
}
