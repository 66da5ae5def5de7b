//! Offering updates to connected agents: the thin layer between the pure planner
//! ([`super::rollout::plan`]) and the database and OpAMP registry.
//!
//! A round runs on a timer (`releases.offer_interval_seconds`) and whenever an agent comes
//! online or reports a package status ([`Releases::kick`]). For every rollout it gathers the
//! online agents that accept packages, follow the channel (`updates.channel`, default
//! `stable`) with `updates.auto` not false and have a build of the target for their platform,
//! asks the planner who to offer now (percentage, maintenance window, concurrency cap,
//! versions) and sends those agents `PackagesAvailable` (see the update contract). Reported
//! package statuses are mapped back to per-agent update statuses, and a rollout whose
//! failures cross its threshold is paused (audited).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rmm_opamp::capabilities::{agent, has};
use rmm_opamp::proto::{
    DownloadableFile, PackageAvailable, PackageStatus, PackageType, PackagesAvailable,
    ServerToAgent,
};
use rmm_opamp::typed::PackageState;
use tokio::sync::Notify;

use super::rollout::{self, parse_version, AgentState, Schedule, UpdateStatus};
use super::rollout_store::{self, UpdateRow};
use super::signing::ReleaseSignature;
use super::store::{self, Release};
use crate::opamp::registry::UpdateView;
use crate::policy::merge;
use crate::store::audit::Actor;
use crate::store::{now_ms, policies};
use crate::AppState;

/// The OpAMP package name of the agent itself.
pub const PACKAGE: &str = "rmm-agent";

/// The planner's clock; tests replace it to control time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            DateTime::<Utc>::from(std::time::SystemTime::now())
        }))
    }

    pub fn new(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Per-process state of the offer loop.
#[derive(Debug)]
pub struct Releases {
    pub clock: Clock,
    wake: Notify,
}

impl Releases {
    pub fn new(clock: Clock) -> Releases {
        Releases {
            clock,
            wake: Notify::new(),
        }
    }

    /// Ask for a planning round soon (coalesced).
    pub fn kick(&self) {
        self.wake.notify_one();
    }
}

/// Canonical OS name of a reported `os.type` (OpenTelemetry names).
pub fn canonical_os(os: &str) -> &str {
    match os {
        "darwin" => "macos",
        other => other,
    }
}

/// Canonical (Rust target) architecture of a reported `host.arch` (OpenTelemetry names).
pub fn canonical_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// Where a release is downloaded from.
pub fn download_url(st: &AppState, release_id: &str) -> String {
    format!("{}/api/v1/releases/{release_id}/build", st.public_base)
}

/// The `PackagesAvailable` offering `r` (per the update contract).
pub fn packages_available(st: &AppState, r: &Release) -> Option<PackagesAvailable> {
    let content_hash = hex::decode(&r.sha256).ok()?;
    let signature = ReleaseSignature::parse(&r.signature)
        .ok()?
        .to_bytes()
        .to_vec();
    let file = DownloadableFile {
        signature,
        ..DownloadableFile::new(download_url(st, &r.id), content_hash)
    };
    Some(PackagesAvailable::new([(
        PACKAGE,
        PackageAvailable::new(PackageType::TopLevel, r.version.clone(), file),
    )]))
}

/// Push the offer of `r` to `agent_id`'s WebSocket session; false if it has none here.
pub fn push_offer(st: &AppState, agent_id: &str, r: &Release) -> bool {
    let Some(uid) = st.opamp.instance_uid(agent_id) else {
        return false;
    };
    let Some(p) = packages_available(st, r) else {
        return false;
    };
    let msg = ServerToAgent::builder(uid)
        .capabilities(crate::opamp::session::SERVER_CAPABILITIES)
        .packages_available(p)
        .build();
    st.opamp.push(agent_id, msg)
}

/// The offer to put in a reply to `agent_id`: its update is still `offered` or under way
/// and it just came online (it may have restarted), or it polls over plain HTTP.
pub async fn pending_offer(st: &AppState, agent_id: &str) -> Option<PackagesAvailable> {
    let rows = rollout_store::for_agents(&st.db, &[agent_id.to_owned()])
        .await
        .ok()?;
    let row = rows.into_iter().next()?;
    if !row.status().is_some_and(UpdateStatus::in_flight) {
        return None;
    }
    let r = store::by_id(&st.db, &row.release_id).await.ok()?;
    packages_available(st, &r)
}

/// An agent's update preferences from its effective policy.
#[derive(Debug, Clone)]
pub struct Prefs {
    pub channel: String,
    pub auto: bool,
    pub schedule: Result<Schedule, String>,
}

/// `updates.*` of an effective configuration.
pub fn prefs(config: &serde_json::Map<String, serde_json::Value>) -> Prefs {
    let updates = config.get("updates");
    let field = |k: &str| updates.and_then(|u| u.get(k));
    Prefs {
        channel: field("channel")
            .and_then(|v| v.as_str())
            .unwrap_or("stable")
            .to_owned(),
        auto: field("auto").and_then(|v| v.as_bool()).unwrap_or(true),
        schedule: Schedule::from_policy(field("maintenance_window")).map_err(|e| e.to_string()),
    }
}

/// One planning round at `now`; returns the agents offered an update.
pub async fn round(st: &AppState, now: DateTime<Utc>) -> crate::store::Result<Vec<String>> {
    // Updates that went silent give their slot back (and count as failed).
    let timeout = st.config.releases.update_timeout_seconds;
    let cutoff = now_ms().saturating_sub((timeout as i64).saturating_mul(1000));
    let reason = format!("no status from the agent within {timeout} s of the last change");
    let expired = rollout_store::expire_in_flight(&st.db, cutoff, &reason).await?;
    if expired > 0 {
        tracing::warn!(updates = expired, "updates timed out");
    }
    let rollouts = rollout_store::list(&st.db).await?;
    if rollouts.is_empty() {
        return Ok(Vec::new());
    }
    let live: Vec<UpdateView> = st
        .opamp
        .update_views()
        .into_iter()
        .filter(|v| has(v.capabilities, agent::ACCEPTS_PACKAGES))
        .collect();
    let mut offered = Vec::new();
    if !live.is_empty() {
        let ids: Vec<String> = live.iter().map(|v| v.agent_id.clone()).collect();
        let places = policies::places(&st.db, Some(&ids)).await?;
        let layers = policies::all_layers(&st.db).await?;
        let prefs: HashMap<String, Prefs> = places
            .iter()
            .map(|p| {
                let merged = merge::merge(&policies::layers_for(&layers, p));
                (p.id.clone(), prefs(&merged.config))
            })
            .collect();
        let rows: HashMap<String, UpdateRow> = rollout_store::for_agents(&st.db, &ids)
            .await?
            .into_iter()
            .map(|r| (r.agent_id.clone(), r))
            .collect();
        let releases = store::list(&st.db, &store::Filter::default()).await?;
        for ro in &rollouts {
            offered.extend(plan_rollout(st, ro, &live, &prefs, &rows, &releases, now).await?);
        }
    }
    for ro in &rollouts {
        if ro.paused == 0 {
            check_pause(st, &ro.channel).await?;
        }
    }
    Ok(offered)
}

async fn plan_rollout(
    st: &AppState,
    ro: &rollout_store::RolloutRow,
    live: &[UpdateView],
    prefs: &HashMap<String, Prefs>,
    rows: &HashMap<String, UpdateRow>,
    releases: &[Release],
    now: DateTime<Utc>,
) -> crate::store::Result<Vec<String>> {
    let Some(plan_ro) = ro.rollout() else {
        return Ok(Vec::new());
    };
    let target = plan_ro.target.to_string();
    // The build of the target for each platform.
    let build_for = |os: &str, arch: &str| {
        releases.iter().find(|r| {
            r.channel == ro.channel && r.version == target && r.os == os && r.arch == arch
        })
    };
    let mut candidates: Vec<(&UpdateView, &Prefs, &Release)> = Vec::new();
    for v in live {
        let Some(p) = prefs.get(&v.agent_id) else {
            continue;
        };
        if p.channel != ro.channel || !p.auto {
            continue;
        }
        if p.schedule.is_err() {
            continue; // an invalid window never opens
        }
        let (Some(os), Some(arch)) = (v.os.as_deref(), v.arch.as_deref()) else {
            continue;
        };
        let Some(r) = build_for(canonical_os(os), canonical_arch(arch)) else {
            continue;
        };
        // An update of another version under way (forced, or an older target) finishes first.
        if let Some(row) = rows.get(&v.agent_id) {
            if row.version != target && row.status().is_some_and(UpdateStatus::in_flight) {
                continue;
            }
        }
        candidates.push((v, p, r));
    }
    let mut states: Vec<AgentState<'_>> = candidates
        .iter()
        .map(|(v, p, _)| AgentState {
            id: &v.agent_id,
            current_version: v.version.as_deref(),
            schedule: p.schedule.as_ref().expect("filtered above"),
            status: rows
                .get(&v.agent_id)
                .filter(|r| r.version == target)
                .and_then(UpdateRow::status),
            forced: false,
        })
        .collect();
    // Updates under way on agents that are not candidates here (restarting, connected to
    // another replica, another channel's forced update) count against the cap too.
    let elsewhere: Vec<String> = rollout_store::in_flight_ids(&st.db, &target)
        .await?
        .into_iter()
        .filter(|id| !candidates.iter().any(|(v, _, _)| &v.agent_id == id))
        .collect();
    for id in &elsewhere {
        states.push(AgentState {
            id,
            current_version: None,
            schedule: &Schedule::Anytime,
            status: Some(UpdateStatus::Offered),
            forced: false,
        });
    }
    let plan = rollout::plan(&plan_ro, &states, now);
    let mut sent = Vec::new();
    for id in plan.offers {
        let Some((v, _, r)) = candidates.iter().find(|(v, _, _)| v.agent_id == id) else {
            continue;
        };
        // WebSocket agents get the offer now; plain-HTTP agents in their next poll's reply
        // (`pending_offer`). A WebSocket session whose mailbox is full is tried next round.
        let http = st.opamp.transport(id) == Some(crate::opamp::Transport::Http);
        if !push_offer(st, id, r) && !http {
            continue;
        }
        let now_ms = now_ms();
        rollout_store::record_offer(
            &st.db,
            &UpdateRow {
                agent_id: id.to_owned(),
                release_id: r.id.clone(),
                channel: Some(ro.channel.clone()),
                version: r.version.clone(),
                sha256: r.sha256.clone(),
                status: UpdateStatus::Offered.as_str().into(),
                reason: None,
                forced: 0,
                allow_downgrade: ro.allow_downgrade,
                from_version: v.version.clone(),
                offered_at: now_ms,
                updated_at: now_ms,
            },
        )
        .await?;
        tracing::info!(agent = id, version = %r.version, channel = %ro.channel, "update offered");
        sent.push(id.to_owned());
    }
    Ok(sent)
}

/// Pause the rollout of `channel` if its failures cross the threshold.
pub async fn check_pause(st: &AppState, channel: &str) -> crate::store::Result<bool> {
    let ro = rollout_store::get(&st.db, channel).await?;
    if ro.paused != 0 {
        return Ok(false);
    }
    let o = rollout_store::outcomes(&st.db, channel, &ro.target_version).await?;
    if !rollout::should_pause(&o, &ro.pause_policy()) {
        return Ok(false);
    }
    let reason = format!(
        "automatic: {} of {} finished updates to {} failed or rolled back (threshold {}% after at least {})",
        o.bad(),
        o.attempted(),
        ro.target_version,
        ro.failure_percent,
        ro.min_attempts
    );
    tracing::warn!(channel, reason = %reason, "rollout paused");
    rollout_store::set_paused(
        &st.db,
        &Actor::system("rollout"),
        channel,
        true,
        Some(&reason),
    )
    .await?;
    Ok(true)
}

/// The update status a reported package status means for an update to `row.version`;
/// `None` when it says nothing about that update.
pub fn map_status(ps: &PackageStatus, row_version: &str) -> Option<(UpdateStatus, Option<String>)> {
    let same = |v: &str| match (parse_version(v), parse_version(row_version)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).is_eq(),
        _ => v == row_version,
    };
    // A status about another offer (an earlier one) is not about this update.
    if !ps.server_offered_version.is_empty() && !same(&ps.server_offered_version) {
        return None;
    }
    match ps.state() {
        PackageState::Downloading | PackageState::Installing | PackageState::InstallPending => {
            Some((UpdateStatus::Downloading, None))
        }
        PackageState::Installed if same(&ps.agent_has_version) => {
            Some((UpdateStatus::Installed, None))
        }
        PackageState::InstallFailed => {
            let msg = ps.error_message.trim();
            let msg: String = msg.chars().take(1000).collect();
            if let Some(rest) = msg.strip_prefix("rolled back:") {
                Some((UpdateStatus::RolledBack, Some(rest.trim().to_owned())))
            } else {
                Some((UpdateStatus::Failed, Some(msg)))
            }
        }
        _ => None,
    }
}

/// Apply a reported status of the `rmm-agent` package to the agent's update.
pub async fn on_status(st: &AppState, agent_id: &str, ps: &PackageStatus) {
    let rows = match rollout_store::for_agents(&st.db, &[agent_id.to_owned()]).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(agent = agent_id, error = %e, "cannot read the agent's update");
            return;
        }
    };
    let Some(row) = rows.into_iter().next() else {
        return;
    };
    let Some((status, reason)) = map_status(ps, &row.version) else {
        return;
    };
    let changed = row.status != status.as_str() || row.reason.as_deref() != reason.as_deref();
    match rollout_store::set_status(&st.db, agent_id, status, reason.as_deref()).await {
        Ok(()) if !changed => {}
        Ok(()) => {
            tracing::info!(agent = agent_id, version = %row.version, status = status.as_str(), reason = reason.as_deref().unwrap_or(""), "update status");
            if let (Some(channel), 0) = (&row.channel, row.forced) {
                if let Err(e) = check_pause(st, channel).await {
                    tracing::warn!(error = %e, "cannot check the rollout for auto-pause");
                }
            }
            // A finished update frees a slot of the concurrency cap.
            st.releases.kick();
        }
        Err(e) => tracing::warn!(agent = agent_id, error = %e, "cannot store the update status"),
    }
}

/// Run rounds on a timer and when kicked, until the process ends.
pub fn spawn(st: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(st.config.releases.offer_interval_seconds);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = st.releases.wake.notified() => {
                    // Coalesce a burst of connects into one round.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let now = st.releases.clock.now();
            if let Err(e) = round(&st, now).await {
                tracing::warn!(error = %e, "update round failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ps(state: i32, has: &str, offered: &str, err: &str) -> PackageStatus {
        PackageStatus {
            name: PACKAGE.into(),
            agent_has_version: has.into(),
            server_offered_version: offered.into(),
            status: state,
            error_message: err.into(),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_map_per_contract() {
        assert_eq!(
            map_status(&ps(4, "1.0.0", "2.0.0", ""), "2.0.0"),
            Some((UpdateStatus::Downloading, None))
        );
        assert_eq!(
            map_status(&ps(2, "1.0.0", "2.0.0", ""), "2.0.0"),
            Some((UpdateStatus::Downloading, None))
        );
        assert_eq!(
            map_status(&ps(0, "2.0.0", "2.0.0", ""), "2.0.0"),
            Some((UpdateStatus::Installed, None))
        );
        assert_eq!(map_status(&ps(0, "1.0.0", "", ""), "2.0.0"), None);
        assert_eq!(
            map_status(
                &ps(3, "1.0.0", "2.0.0", "rolled back: not healthy in 60s"),
                "2.0.0"
            ),
            Some((UpdateStatus::RolledBack, Some("not healthy in 60s".into())))
        );
        assert_eq!(
            map_status(&ps(3, "1.0.0", "2.0.0", "sha256 mismatch: x"), "2.0.0"),
            Some((UpdateStatus::Failed, Some("sha256 mismatch: x".into())))
        );
        assert_eq!(map_status(&ps(3, "1.0.0", "1.5.0", "x"), "2.0.0"), None);
    }

    #[test]
    fn policy_prefs() {
        let c = serde_json::json!({"updates": {"channel": "beta", "auto": false}});
        let p = prefs(c.as_object().unwrap());
        assert_eq!((p.channel.as_str(), p.auto), ("beta", false));
        let p = prefs(&serde_json::Map::new());
        assert_eq!((p.channel.as_str(), p.auto), ("stable", true));
        assert_eq!(p.schedule, Ok(Schedule::Anytime));
    }
}
