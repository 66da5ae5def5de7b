//! Keeping agents on their effective configuration.
//!
//! After any change that can alter effective configurations (a policy edited or deleted, an
//! assignment added or removed, an agent moved), [`recompute`] merges the affected agents'
//! policies again, stores each result (`agent_configs`) and, for every agent whose result
//! changed, sends an `AgentRemoteConfig` at once to its WebSocket session if it is connected
//! to this process. On PostgreSQL it also sends `NOTIFY rmm_config_changed` with the agent
//! ids, so the replica an agent is connected to pushes it too ([`spawn_listener`]).
//! Plain-HTTP agents, and agents that connect later or report another hash, get the
//! configuration in their next reply ([`remote_config_for`]).

use std::collections::HashMap;
use std::time::Duration;

use rmm_opamp::capabilities::{agent, has};
use rmm_opamp::proto::{AgentRemoteConfig, ServerToAgent};
use serde_json::Value;

use super::merge::{self, Merged};
use super::render::{self, Rendered};
use crate::store::policies::{self, AgentPlace, StoredConfig};
use crate::store::{self, Db, DbKind};
use crate::AppState;

/// The PostgreSQL notification channel; payload `<replica id>|<agent id>,<agent id>,...`.
pub const CHANNEL: &str = "rmm_config_changed";

/// Per-process state of the push machinery.
#[derive(Debug)]
pub struct Hub {
    /// Identifies this process in notifications, so it skips its own.
    pub replica: String,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            replica: store::new_id(),
        }
    }
}

/// The effective configuration of one agent: merged, with provenance, and rendered.
pub fn compute(layers: &[merge::Layer]) -> (Merged, Rendered) {
    let merged = merge::merge(layers);
    let rendered = render::render(&merged.config);
    (merged, rendered)
}

/// Compute the effective configuration of the agent at `place` from the database.
pub async fn effective(db: &Db, place: &AgentPlace) -> store::Result<(Merged, Rendered)> {
    let layers = policies::layers_for_agent(db, place).await?;
    Ok(compute(&layers))
}

/// Recompute the agents `ids` (`None`: every agent), store the results, push the changed
/// ones. Returns the ids whose configuration changed.
pub async fn recompute(st: &AppState, ids: Option<&[String]>) -> store::Result<Vec<String>> {
    let places = policies::places(&st.db, ids).await?;
    if places.is_empty() {
        return Ok(Vec::new());
    }
    let layers = policies::all_layers(&st.db).await?;
    let ids: Vec<String> = places.iter().map(|p| p.id.clone()).collect();
    let stored: HashMap<String, String> = policies::stored_configs(&st.db, &ids)
        .await?
        .into_iter()
        .map(|c| (c.agent_id, c.config_hash))
        .collect();
    let mut changed = Vec::new();
    for place in &places {
        let (_, rendered) = compute(&policies::layers_for(&layers, place));
        if stored.get(&place.id) == Some(&rendered.hash) {
            continue;
        }
        policies::store_config(&st.db, &place.id, &rendered.hash, &rendered.toml).await?;
        push_local(st, &place.id, &rendered);
        changed.push(place.id.clone());
    }
    if !changed.is_empty() {
        tracing::info!(agents = changed.len(), "effective configurations changed");
        notify(st, &changed).await;
    }
    Ok(changed)
}

/// Recompute after a change, logging instead of failing: the change itself is committed, and
/// agents still converge when they next connect or report.
pub async fn after_change(st: &AppState, ids: Option<&[String]>) {
    if let Err(e) = recompute(st, ids).await {
        tracing::warn!(error = %e, "cannot recompute effective configurations");
    }
}

/// The `ServerToAgent` carrying `rc` for an agent with instance uid `uid`.
fn message(uid: &[u8], rc: AgentRemoteConfig) -> Option<ServerToAgent> {
    let uid = rmm_opamp::InstanceUid::from_bytes(uid).ok()?;
    Some(
        ServerToAgent::builder(uid)
            .capabilities(crate::opamp::session::SERVER_CAPABILITIES)
            .remote_config(rc)
            .build(),
    )
}

/// Send `rendered` to `agent_id` if it has a WebSocket session here and accepts remote config.
pub fn push_local(st: &AppState, agent_id: &str, rendered: &Rendered) -> bool {
    let Some(caps) = st.opamp.capabilities(agent_id) else {
        return false;
    };
    if !has(caps, agent::ACCEPTS_REMOTE_CONFIG) {
        return false;
    }
    let Some(uid) = st.opamp.instance_uid(agent_id) else {
        return false;
    };
    let Some(msg) = message(uid.as_bytes(), rendered.remote_config()) else {
        return false;
    };
    let sent = st.opamp.push(agent_id, msg);
    if sent {
        tracing::debug!(agent = agent_id, hash = %rendered.hash, "remote config pushed");
    }
    sent
}

/// Tell other replicas (PostgreSQL only) which agents have a new configuration.
async fn notify(st: &AppState, ids: &[String]) {
    if st.db.kind() != DbKind::Postgres {
        return;
    }
    // NOTIFY payloads are limited to 8000 bytes.
    for chunk in ids.chunks(150) {
        let payload = format!("{}|{}", st.policy.replica, chunk.join(","));
        let mut sql = store::Sql::new("SELECT pg_notify(");
        sql.bind(CHANNEL).push(", ").bind(payload).push(")");
        if let Err(e) = sql.query().execute(st.db.pool()).await {
            tracing::warn!(error = %e, "cannot notify other replicas of configuration changes");
        }
    }
}

/// Push stored configurations of `ids` to those connected here (a notification from another
/// replica).
async fn push_stored(st: &AppState, ids: &[String]) -> store::Result<()> {
    let here: Vec<String> = ids
        .iter()
        .filter(|id| st.opamp.is_online(id))
        .cloned()
        .collect();
    if here.is_empty() {
        return Ok(());
    }
    for StoredConfig {
        agent_id,
        config_hash,
        config,
    } in policies::stored_configs(&st.db, &here).await?
    {
        let rendered = Rendered {
            toml: config,
            hash: config_hash,
        };
        push_local(st, &agent_id, &rendered);
    }
    Ok(())
}

/// On PostgreSQL, listen for other replicas' changes and push them to agents connected here.
pub fn spawn_listener(st: AppState) -> Option<tokio::task::JoinHandle<()>> {
    if st.db.kind() != DbKind::Postgres {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut first = true;
        loop {
            if let Err(e) = listen(&st, first).await {
                tracing::warn!(error = %e, "configuration change listener failed; reconnecting");
            }
            first = false;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

async fn listen(st: &AppState, first: bool) -> anyhow::Result<()> {
    let mut listener = sqlx::postgres::PgListener::connect(&st.config.database_url).await?;
    listener.listen(CHANNEL).await?;
    tracing::debug!(channel = CHANNEL, "listening for configuration changes");
    if !first {
        // Notifications sent while the listener was away are lost: resend the stored
        // configuration to every agent connected here (an unchanged hash is a no-op for it).
        push_stored(st, &st.opamp.online_ids()).await?;
    }
    loop {
        // try_recv reports a lost connection (None) instead of reconnecting silently, so
        // the resend above runs after every reconnection.
        let Some(n) = listener.try_recv().await? else {
            anyhow::bail!("connection to PostgreSQL lost");
        };
        let Some((replica, ids)) = n.payload().split_once('|') else {
            continue;
        };
        if replica == st.policy.replica {
            continue;
        }
        let ids: Vec<String> = ids
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Err(e) = push_stored(st, &ids).await {
            tracing::warn!(error = %e, "cannot push configurations changed by another replica");
        }
    }
}

/// The remote config to put in a reply to `agent_id`, when it accepts remote config and its
/// last reported hash (`reported`) is not the current one.
pub async fn remote_config_for(
    st: &AppState,
    agent_id: &str,
    capabilities: u64,
    reported: Option<&[u8]>,
) -> Option<AgentRemoteConfig> {
    if !has(capabilities, agent::ACCEPTS_REMOTE_CONFIG) {
        return None;
    }
    let current = match current(st, agent_id).await {
        Ok(c) => c?,
        Err(e) => {
            tracing::warn!(agent = agent_id, error = %e, "cannot read the effective configuration");
            return None;
        }
    };
    if reported.map(hex::encode).as_deref() == Some(current.hash.as_str()) {
        return None;
    }
    Some(current.remote_config())
}

/// The stored configuration of an agent, computed and stored first if there is none.
pub async fn current(st: &AppState, agent_id: &str) -> store::Result<Option<Rendered>> {
    let ids = [agent_id.to_owned()];
    if let Some(c) = policies::stored_configs(&st.db, &ids).await?.pop() {
        return Ok(Some(Rendered {
            toml: c.config,
            hash: c.config_hash,
        }));
    }
    let Some(place) = policies::places(&st.db, Some(&ids)).await?.pop() else {
        return Ok(None);
    };
    let (_, rendered) = effective(&st.db, &place).await?;
    policies::store_config(&st.db, agent_id, &rendered.hash, &rendered.toml).await?;
    Ok(Some(rendered))
}

/// How an agent stands with its configuration.
pub fn config_status(capabilities: i64, reported: &str, expected: Option<&str>) -> &'static str {
    let reported: Value = serde_json::from_str(reported).unwrap_or(Value::Null);
    let hash = reported["last_remote_config_hash"]
        .as_str()
        .filter(|h| !h.is_empty());
    let Some(hash) = hash else {
        if capabilities != 0 && !has(capabilities as u64, agent::ACCEPTS_REMOTE_CONFIG) {
            return "unsupported";
        }
        return "unknown";
    };
    if Some(hash) != expected {
        return "drifted";
    }
    match reported["status"].as_str() {
        Some("applied") => "applied",
        Some("failed") => "failed",
        _ => "applying",
    }
}

/// All configuration statuses, in the order of [`config_status`]'s answers.
pub const CONFIG_STATUSES: &[&str] = &[
    "applied",
    "applying",
    "failed",
    "drifted",
    "unknown",
    "unsupported",
];

/// `rmm_cp_agent_config_status{agent,client,site,host,status} 1` for every agent.
pub async fn render_metrics(db: &Db, out: &mut String) {
    use std::fmt::Write;
    let rows = match policies::config_status_rows(db, &crate::store::Scope::All, None).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read configuration statuses");
            return;
        }
    };
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    out.push_str("# HELP rmm_cp_agent_config_status Whether each agent runs its effective configuration (status applied, applying, failed, drifted, unknown or unsupported); the value is always 1.\n");
    out.push_str("# TYPE rmm_cp_agent_config_status gauge\n");
    for r in rows {
        let status = config_status(
            r.capabilities,
            &r.remote_config_status,
            r.expected_hash.as_deref(),
        );
        let _ = writeln!(
            out,
            "rmm_cp_agent_config_status{{agent=\"{}\",client=\"{}\",site=\"{}\",host=\"{}\",status=\"{status}\"}} 1",
            esc(&r.id),
            esc(&r.client_name),
            esc(&r.site_name),
            esc(&r.hostname)
        );
    }
}
