//! What the OpAMP server writes about agents: liveness (status, last seen), the reported
//! status (description, capabilities, health, effective config, remote config status,
//! package statuses), and the lookups it needs to authenticate a session.

use sqlx::FromRow;

use super::agents::AgentIdentity;
use super::{Db, Result, Sql};

/// An enrollment token presented as an OpAMP bearer credential.
#[derive(Debug, Clone, FromRow)]
pub struct OpampToken {
    pub id: String,
    pub client_id: String,
    pub site_id: String,
    pub revoked_at: Option<i64>,
}

/// The enrollment token whose hash is `token_hash`, if any.
pub async fn enrollment_token(db: &Db, token_hash: &str) -> Result<Option<OpampToken>> {
    let mut sql = Sql::new(
        "SELECT id, client_id, site_id, revoked_at FROM enrollment_tokens WHERE token_hash = ",
    );
    sql.bind(token_hash);
    Ok(sql
        .query_as::<OpampToken>()
        .fetch_optional(db.pool())
        .await?)
}

/// The agent enrolled with token `token_id` that keeps the token as its OpAMP credential
/// (because it cannot apply offered ones): with a description, the agent of host `host_id`
/// (a clone reusing another host's instance uid is a new host); without one, the agent that
/// is the instance `instance_uid` (its id, or the instance uid it reported).
pub async fn enrolled_with_token(
    db: &Db,
    token_id: &str,
    instance_uid: &str,
    host_id: Option<&str>,
) -> Result<Option<AgentIdentity>> {
    let mut sql =
        Sql::new("SELECT id, client_id, site_id FROM agents WHERE enrollment_token_id = ");
    sql.bind(token_id);
    match host_id {
        Some(h) => sql.push(" AND host_id = ").bind(h),
        None => sql
            .push(" AND (id = ")
            .bind(instance_uid)
            .push(" OR instance_uid = ")
            .bind(instance_uid)
            .push(")"),
    };
    sql.push(" LIMIT 1");
    Ok(sql
        .query_as::<AgentIdentity>()
        .fetch_optional(db.pool())
        .await?)
}

/// Columns to change after an OpAMP message; `None` leaves a column as it is.
#[derive(Debug, Default, Clone)]
pub struct StatusWrite {
    /// Mark online, seen at this time, over this transport with this instance uid.
    pub online: Option<Online>,
    pub capabilities: Option<u64>,
    /// Agent description as JSON, and the facts taken from it.
    pub description: Option<String>,
    pub agent_version: Option<String>,
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub health: Option<String>,
    /// Effective config as JSON, and the hex SHA-256 of the reported message.
    pub effective_config: Option<(String, String)>,
    pub remote_config_status: Option<String>,
    pub package_statuses: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Online {
    pub at_ms: i64,
    pub instance_uid: String,
    pub transport: &'static str,
}

impl StatusWrite {
    pub fn is_empty(&self) -> bool {
        self.online.is_none()
            && self.capabilities.is_none()
            && self.description.is_none()
            && self.health.is_none()
            && self.effective_config.is_none()
            && self.remote_config_status.is_none()
            && self.package_statuses.is_none()
    }
}

/// Apply `w` to agent `id`. Returns false when the agent no longer exists (deleted).
pub async fn write(db: &Db, id: &str, w: &StatusWrite, now_ms: i64) -> Result<bool> {
    let mut sql = Sql::new("UPDATE agents SET updated_at = ");
    sql.bind(now_ms);
    if let Some(o) = &w.online {
        sql.push(", status = 'online', last_seen = ").bind(o.at_ms);
        sql.push(", instance_uid = ").bind(&o.instance_uid);
        sql.push(", opamp_transport = ").bind(o.transport);
    }
    if let Some(c) = w.capabilities {
        // Capabilities are a u64 bit mask; the bits defined so far fit an i64 many times over.
        sql.push(", capabilities = ").bind(c as i64);
    }
    for (column, value) in [
        ("description", &w.description),
        ("agent_version", &w.agent_version),
        ("hostname", &w.hostname),
        ("os", &w.os),
        ("arch", &w.arch),
        ("health", &w.health),
        ("remote_config_status", &w.remote_config_status),
        ("package_statuses", &w.package_statuses),
    ] {
        if let Some(v) = value {
            sql.push(", ").push(column).push(" = ").bind(v);
        }
    }
    if let Some((body, hash)) = &w.effective_config {
        sql.push(", effective_config = ")
            .bind(body)
            .push(", effective_config_hash = ")
            .bind(hash);
    }
    sql.push(" WHERE id = ").bind(id);
    Ok(sql.query().execute(db.pool()).await?.rows_affected() == 1)
}

/// Record that agents were seen (a batch of heartbeats).
pub async fn touch(db: &Db, seen: &[(String, i64)]) -> Result<()> {
    if seen.is_empty() {
        return Ok(());
    }
    // Heartbeats arrive spread over time; one statement per distinct second keeps the batch
    // small without losing more than a second of precision. The second is rounded up: a
    // last_seen rounded down would look up to a second older than it is, and the stale sweep
    // (which compares milliseconds) would mark a live agent offline early.
    let mut by_second: std::collections::BTreeMap<i64, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (id, at) in seen {
        by_second.entry((at + 999) / 1000).or_default().push(id);
    }
    let mut tx = db.begin().await?;
    for (second, ids) in by_second {
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("UPDATE agents SET last_seen = ");
            sql.bind(second * 1000)
                .push(" WHERE status = 'online' AND id IN (")
                .bind_list(chunk.iter().copied())
                .push(")");
            sql.query().execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Mark agents offline (disconnected, or gone quiet).
pub async fn mark_offline(db: &Db, ids: &[String], now_ms: i64) -> Result<()> {
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new("UPDATE agents SET status = 'offline', updated_at = ");
        sql.bind(now_ms)
            .push(" WHERE status = 'online' AND id IN (")
            .bind_list(chunk.iter().map(String::as_str))
            .push(")");
        sql.query().execute(db.pool()).await?;
    }
    Ok(())
}

/// Mark offline every agent the database shows online but last seen before `cutoff_ms`:
/// agents of a process that crashed or was restarted, or of another replica that died.
/// Returns how many were changed.
pub async fn mark_stale_offline(db: &Db, cutoff_ms: i64, now_ms: i64) -> Result<u64> {
    let mut sql = Sql::new("UPDATE agents SET status = 'offline', updated_at = ");
    sql.bind(now_ms)
        .push(" WHERE status = 'online' AND (last_seen IS NULL OR last_seen < ")
        .bind(cutoff_ms)
        .push(")");
    Ok(sql.query().execute(db.pool()).await?.rows_affected())
}

/// Every agent that authenticates by `secret_hash`, with the agent id; re-exported here so
/// the OpAMP module reads its lookups from one place.
pub use super::agents::authenticate as agent_by_secret;
