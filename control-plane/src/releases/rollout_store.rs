//! Rollouts and per-agent update state in the database (migration 0008). Thin: the decisions
//! are in [`super::rollout`]; this module validates input, stores, and audits.

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::rollout::{self, parse_version, Outcomes, UpdateStatus};
use super::store::CHANNELS;
use crate::store::audit::{self, Actor, Change};
use crate::store::{now_ms, ser, Db, Error, Result, Scope, Sql};

/// One channel's rollout as stored.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct RolloutRow {
    pub channel: String,
    pub target_version: String,
    /// The target before the last change of target.
    pub previous_version: Option<String>,
    /// Share of the channel's agents offered the target, 0–100 (a stable hash decides who).
    pub percent: i64,
    /// Updates under way (offered or downloading) at once.
    pub max_concurrent: i64,
    /// Pause when more than this percentage of finished updates failed or rolled back …
    pub failure_percent: i64,
    /// … once at least this many finished.
    pub min_attempts: i64,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub allow_downgrade: i64,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub paused: i64,
    pub pause_reason: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

fn ser_bool<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

impl RolloutRow {
    /// The planner's view; `None` when the stored version no longer parses.
    pub fn rollout(&self) -> Option<rollout::Rollout> {
        Some(rollout::Rollout {
            channel: self.channel.clone(),
            target: parse_version(&self.target_version).ok()?,
            percent: self.percent.clamp(0, 100) as u8,
            max_concurrent: self.max_concurrent.clamp(0, u32::MAX as i64) as u32,
            paused: self.paused != 0,
            allow_downgrade: self.allow_downgrade != 0,
        })
    }

    pub fn pause_policy(&self) -> rollout::PausePolicy {
        rollout::PausePolicy {
            max_bad_share: self.failure_percent.clamp(0, 100) as f64 / 100.0,
            min_attempts: self.min_attempts.clamp(0, u32::MAX as i64) as u32,
        }
    }
}

/// What `PUT /rollouts/{channel}` sets.
#[derive(Debug, Clone)]
pub struct RolloutSpec {
    pub target_version: String,
    pub percent: i64,
    pub max_concurrent: i64,
    pub failure_percent: i64,
    pub min_attempts: i64,
    pub allow_downgrade: bool,
}

const ROLLOUT_COLUMNS: &str = "SELECT channel, target_version, previous_version, percent, \
     max_concurrent, failure_percent, min_attempts, allow_downgrade, paused, pause_reason, \
     created_at, updated_at FROM rollouts";

fn invalid(m: impl Into<String>) -> Error {
    Error::invalid("invalid_rollout", m)
}

/// Check a channel name.
pub fn check_channel(channel: &str) -> Result<()> {
    if CHANNELS.contains(&channel) {
        Ok(())
    } else {
        Err(Error::invalid(
            "unknown_channel",
            format!(
                "channel: unknown channel {channel:?}; expected one of {}",
                CHANNELS.join(", ")
            ),
        ))
    }
}

/// Create or change the rollout of `channel`. The target must be in the catalog for that
/// channel; a target older than the current one is refused unless `allow_downgrade`.
pub async fn put(db: &Db, actor: &Actor, channel: &str, spec: &RolloutSpec) -> Result<RolloutRow> {
    check_channel(channel)?;
    let target =
        parse_version(&spec.target_version).map_err(|e| invalid(format!("target_version: {e}")))?;
    if !(0..=100).contains(&spec.percent) {
        return Err(invalid("percent: must be between 0 and 100"));
    }
    if !(0..=1_000_000).contains(&spec.max_concurrent) {
        return Err(invalid("max_concurrent: must be between 0 and 1000000"));
    }
    if !(0..=100).contains(&spec.failure_percent) {
        return Err(invalid("failure_percent: must be between 0 and 100"));
    }
    if !(1..=1_000_000).contains(&spec.min_attempts) {
        return Err(invalid("min_attempts: must be between 1 and 1000000"));
    }
    let version = target.to_string();
    let mut sql = Sql::new("SELECT COUNT(*) FROM releases WHERE channel = ");
    sql.bind(channel).push(" AND version = ").bind(&version);
    if sql.fetch_i64(db.pool()).await? == 0 {
        return Err(Error::invalid(
            "unknown_release",
            format!("target_version: no release {version} in channel {channel} in the catalog"),
        ));
    }
    let existing = get(db, channel).await.ok();
    let now = now_ms();
    let previous = match &existing {
        Some(old) if old.target_version != version => {
            if let Ok(old_v) = parse_version(&old.target_version) {
                rollout::check_version_change(&old_v, &target, spec.allow_downgrade).map_err(
                    |e| {
                        Error::invalid(
                            "downgrade",
                            format!("{e} (the channel's current target is {old_v}; set allow_downgrade to roll back)"),
                        )
                    },
                )?;
            }
            Some(old.target_version.clone())
        }
        Some(old) => old.previous_version.clone(),
        None => None,
    };
    let mut tx = db.begin().await?;
    let mut sql;
    if existing.is_some() {
        sql = Sql::new("UPDATE rollouts SET target_version = ");
        sql.bind(&version)
            .push(", previous_version = ")
            .bind(previous.clone())
            .push(", percent = ")
            .bind(spec.percent)
            .push(", max_concurrent = ")
            .bind(spec.max_concurrent)
            .push(", failure_percent = ")
            .bind(spec.failure_percent)
            .push(", min_attempts = ")
            .bind(spec.min_attempts)
            .push(", allow_downgrade = ")
            .bind(spec.allow_downgrade as i64)
            .push(", updated_at = ")
            .bind(now)
            .push(" WHERE channel = ")
            .bind(channel);
    } else {
        sql = Sql::new(
            "INSERT INTO rollouts (channel, target_version, previous_version, percent, \
             max_concurrent, failure_percent, min_attempts, allow_downgrade, paused, \
             pause_reason, created_at, updated_at) VALUES (",
        );
        sql.bind(channel)
            .push(", ")
            .bind(&version)
            .push(", NULL, ")
            .bind(spec.percent)
            .push(", ")
            .bind(spec.max_concurrent)
            .push(", ")
            .bind(spec.failure_percent)
            .push(", ")
            .bind(spec.min_attempts)
            .push(", ")
            .bind(spec.allow_downgrade as i64)
            .push(", 0, NULL, ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(")");
    }
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "rollout.put",
            target_type: "rollout",
            target_id: Some(channel),
            client_id: None,
            details: json!({
                "target_version": version, "previous_version": previous, "percent": spec.percent,
                "max_concurrent": spec.max_concurrent, "failure_percent": spec.failure_percent,
                "min_attempts": spec.min_attempts, "allow_downgrade": spec.allow_downgrade,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, channel).await
}

pub async fn list(db: &Db) -> Result<Vec<RolloutRow>> {
    let sql = Sql::new(&format!("{ROLLOUT_COLUMNS} ORDER BY channel"));
    Ok(sql.query_as().fetch_all(db.pool()).await?)
}

pub async fn get(db: &Db, channel: &str) -> Result<RolloutRow> {
    let mut sql = Sql::new(&format!("{ROLLOUT_COLUMNS} WHERE channel = "));
    sql.bind(channel);
    sql.query_as()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("rollout"))
}

/// Pause (with a reason) or resume a rollout; audited.
pub async fn set_paused(
    db: &Db,
    actor: &Actor,
    channel: &str,
    paused: bool,
    reason: Option<&str>,
) -> Result<RolloutRow> {
    get(db, channel).await?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("UPDATE rollouts SET paused = ");
    sql.bind(paused as i64)
        .push(", pause_reason = ")
        .bind(reason.filter(|_| paused));
    if !paused {
        sql.push(", counted_since = ").bind(now_ms());
    }
    sql.push(", updated_at = ")
        .bind(now_ms())
        .push(" WHERE channel = ")
        .bind(channel);
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: if paused {
                "rollout.pause"
            } else {
                "rollout.resume"
            },
            target_type: "rollout",
            target_id: Some(channel),
            client_id: None,
            details: json!({ "reason": reason }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, channel).await
}

/// Whether a rollout targets this release's channel and version (then it cannot be deleted).
pub async fn targets(db: &Db, channel: &str, version: &str) -> Result<bool> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM rollouts WHERE channel = ");
    sql.bind(channel)
        .push(" AND target_version = ")
        .bind(version);
    Ok(sql.fetch_i64(db.pool()).await? > 0)
}

/// The latest update of one agent.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct UpdateRow {
    pub agent_id: String,
    pub release_id: String,
    /// The rollout's channel; null when an operator forced the update.
    pub channel: Option<String>,
    pub version: String,
    pub sha256: String,
    /// `offered`, `downloading`, `installed`, `failed` or `rolled_back`.
    pub status: String,
    /// Why it failed or rolled back, as the agent reported it.
    pub reason: Option<String>,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub forced: i64,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub allow_downgrade: i64,
    /// The version the agent ran when offered.
    pub from_version: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub offered_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl UpdateRow {
    pub fn status(&self) -> Option<UpdateStatus> {
        UpdateStatus::parse(&self.status)
    }
}

const UPDATE_COLUMNS: &str = "SELECT u.agent_id, u.release_id, u.channel, u.version, u.sha256, \
     u.status, u.reason, u.forced, u.allow_downgrade, u.from_version, u.offered_at, u.updated_at \
     FROM agent_updates u";

/// Record an offer (replacing the agent's previous update row).
pub async fn record_offer(db: &Db, row: &UpdateRow) -> Result<()> {
    let mut sql = Sql::new(
        "INSERT INTO agent_updates (agent_id, release_id, channel, version, sha256, status, \
         reason, forced, allow_downgrade, from_version, offered_at, updated_at) VALUES (",
    );
    sql.bind(&row.agent_id)
        .push(", ")
        .bind(&row.release_id)
        .push(", ")
        .bind(row.channel.clone())
        .push(", ")
        .bind(&row.version)
        .push(", ")
        .bind(&row.sha256)
        .push(", ")
        .bind(&row.status)
        .push(", ")
        .bind(row.reason.clone())
        .push(", ")
        .bind(row.forced)
        .push(", ")
        .bind(row.allow_downgrade)
        .push(", ")
        .bind(row.from_version.clone())
        .push(", ")
        .bind(row.offered_at)
        .push(", ")
        .bind(row.updated_at)
        .push(
            ") ON CONFLICT (agent_id) DO UPDATE SET release_id = excluded.release_id, \
             channel = excluded.channel, version = excluded.version, sha256 = excluded.sha256, \
             status = excluded.status, reason = excluded.reason, forced = excluded.forced, \
             allow_downgrade = excluded.allow_downgrade, from_version = excluded.from_version, \
             offered_at = excluded.offered_at, updated_at = excluded.updated_at",
        );
    sql.query().execute(db.pool()).await?;
    Ok(())
}

/// Set the status of an agent's update; every report also marks it as alive (`updated_at`),
/// so a long download is not timed out.
pub async fn set_status(
    db: &Db,
    agent_id: &str,
    status: UpdateStatus,
    reason: Option<&str>,
) -> Result<()> {
    let mut sql = Sql::new("UPDATE agent_updates SET status = ");
    sql.bind(status.as_str())
        .push(", reason = ")
        .bind(reason)
        .push(", updated_at = ")
        .bind(now_ms())
        .push(" WHERE agent_id = ")
        .bind(agent_id);
    sql.query().execute(db.pool()).await?;
    Ok(())
}

/// Mark updates still offered or downloading with no change since `cutoff_ms` as failed;
/// returns how many.
pub async fn expire_in_flight(db: &Db, cutoff_ms: i64, reason: &str) -> Result<u64> {
    let mut sql = Sql::new("UPDATE agent_updates SET status = ");
    sql.bind(UpdateStatus::Failed.as_str())
        .push(", reason = ")
        .bind(reason)
        .push(", updated_at = ")
        .bind(now_ms())
        .push(" WHERE status IN (")
        .bind(UpdateStatus::Offered.as_str())
        .push(", ")
        .bind(UpdateStatus::Downloading.as_str())
        .push(") AND updated_at < ")
        .bind(cutoff_ms);
    Ok(sql.query().execute(db.pool()).await?.rows_affected())
}

/// Update rows of `ids`.
pub async fn for_agents(db: &Db, ids: &[String]) -> Result<Vec<UpdateRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut sql = Sql::new(&format!("{UPDATE_COLUMNS} WHERE u.agent_id IN ("));
        sql.bind_list(chunk.iter().map(String::as_str)).push(")");
        out.extend(sql.query_as::<UpdateRow>().fetch_all(db.pool()).await?);
    }
    Ok(out)
}

/// Agents with an update to `version` under way (offered or downloading), in any replica.
pub async fn in_flight_ids(db: &Db, version: &str) -> Result<Vec<String>> {
    let mut sql = Sql::new("SELECT agent_id FROM agent_updates WHERE version = ");
    sql.bind(version)
        .push(" AND status IN (")
        .bind(UpdateStatus::Offered.as_str())
        .push(", ")
        .bind(UpdateStatus::Downloading.as_str())
        .push(")");
    let rows: Vec<(String,)> = sql.query_as().fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// One agent's update row, within `scope` (404 for an agent of another client).
pub async fn for_agent(db: &Db, scope: &Scope, agent_id: &str) -> Result<Option<UpdateRow>> {
    let mut sql = Sql::new(&format!(
        "{UPDATE_COLUMNS} JOIN agents a ON a.id = u.agent_id WHERE u.agent_id = "
    ));
    sql.bind(agent_id);
    scope.restrict(&mut sql, "a.client_id");
    Ok(sql.query_as().fetch_optional(db.pool()).await?)
}

/// An agent's update with where the agent sits.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AgentUpdateRow {
    pub agent_id: String,
    pub hostname: String,
    pub client_id: String,
    pub site_id: String,
    pub version: String,
    pub status: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// Agents offered `version` by the rollout of `channel`, visible in `scope`.
pub async fn rollout_agents(
    db: &Db,
    scope: &Scope,
    channel: &str,
    version: &str,
) -> Result<Vec<AgentUpdateRow>> {
    let mut sql = Sql::new(
        "SELECT u.agent_id, a.hostname, a.client_id, a.site_id, u.version, u.status, u.reason, \
         u.updated_at FROM agent_updates u JOIN agents a ON a.id = u.agent_id WHERE u.channel = ",
    );
    sql.bind(channel).push(" AND u.version = ").bind(version);
    scope.restrict(&mut sql, "a.client_id");
    sql.push(" ORDER BY lower(a.hostname), u.agent_id");
    Ok(sql.query_as().fetch_all(db.pool()).await?)
}

/// Finished updates of a rollout's target (forced ones aside), for auto-pause.
pub async fn outcomes(db: &Db, channel: &str, version: &str) -> Result<Outcomes> {
    let mut sql = Sql::new(
        "SELECT u.status, COUNT(*) AS n FROM agent_updates u JOIN rollouts r ON r.channel = u.channel \
         WHERE u.forced = 0 AND u.offered_at >= r.counted_since AND u.channel = ",
    );
    sql.bind(channel)
        .push(" AND u.version = ")
        .bind(version)
        .push(" GROUP BY u.status");
    let rows: Vec<(String, i64)> = sql.query_as().fetch_all(db.pool()).await?;
    let mut o = Outcomes::default();
    for (status, n) in rows {
        let n = n.clamp(0, u32::MAX as i64) as u32;
        match UpdateStatus::parse(&status) {
            Some(UpdateStatus::Installed) => o.installed = n,
            Some(UpdateStatus::Failed) => o.failed = n,
            Some(UpdateStatus::RolledBack) => o.rolled_back = n,
            _ => {}
        }
    }
    Ok(o)
}

/// Every agent's update status with its place, for `/metrics`.
#[derive(Debug, Clone, FromRow)]
pub struct MetricRow {
    pub agent_id: String,
    pub client_name: String,
    pub site_name: String,
    pub hostname: String,
    pub status: String,
}

pub async fn metric_rows(db: &Db) -> Result<Vec<MetricRow>> {
    let sql = Sql::new(
        "SELECT u.agent_id, c.name AS client_name, s.name AS site_name, a.hostname, u.status \
         FROM agent_updates u JOIN agents a ON a.id = u.agent_id JOIN sites s ON s.id = a.site_id \
         JOIN clients c ON c.id = a.client_id ORDER BY u.agent_id",
    );
    Ok(sql.query_as().fetch_all(db.pool()).await?)
}
