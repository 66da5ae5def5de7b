//! Agents: the inventory of enrolled hosts, their labels, service-discovery targets and the
//! lookup of an agent by its secret.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::audit::{self, Actor, Change};
use super::{like_escape, now_ms, ser, Db, Error, Result, Scope, Sql, Tx};

/// An enrolled host.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Agent {
    /// UUIDv7; also the OpAMP instance uid and the Prometheus `instance`/`agent` label.
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub site_id: String,
    pub site_name: String,
    /// The host's stable id (e.g. /etc/machine-id), unique per client.
    pub host_id: String,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub labels: String,
    /// `host:port` the agent serves `/metrics` on, if it reported one.
    pub metrics_address: Option<String>,
    /// `pending` (enrolled, never connected), `online` or `offline`.
    pub status: String,
    #[serde(serialize_with = "ser::opt_ts")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<i64>,
    /// Agent description reported over OpAMP.
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub description: String,
    /// Health reported over OpAMP.
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub health: String,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

const AGENT_SELECT: &str =
    "SELECT a.id, a.client_id, c.name AS client_name, a.site_id, s.name AS site_name, \
     a.host_id, a.hostname, a.os, a.arch, a.agent_version, a.labels, a.metrics_address, a.status, \
     a.last_seen, a.description, a.health, a.enrolled_at, a.created_at, a.updated_at";
const AGENT_FROM: &str =
    " FROM agents a JOIN sites s ON s.id = a.site_id JOIN clients c ON c.id = a.client_id WHERE 1 = 1";

/// Filters and paging for [`list`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub client_id: Option<String>,
    pub site_id: Option<String>,
    pub status: Option<String>,
    pub agent_version: Option<String>,
    /// Every `(key, value)` must match.
    pub labels: Vec<(String, String)>,
    /// Case-insensitive substring of the host name.
    pub hostname: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Agents visible in `scope` matching `f`, by host name, and the total number matching.
pub async fn list(db: &Db, scope: &Scope, f: &Filter) -> Result<(Vec<Agent>, i64)> {
    let mut cond = Sql::new(AGENT_FROM);
    scope.restrict(&mut cond, "a.client_id");
    if let Some(v) = &f.client_id {
        cond.push(" AND a.client_id = ").bind(v);
    }
    if let Some(v) = &f.site_id {
        cond.push(" AND a.site_id = ").bind(v);
    }
    if let Some(v) = &f.status {
        cond.push(" AND a.status = ").bind(v);
    }
    if let Some(v) = &f.agent_version {
        cond.push(" AND a.agent_version = ").bind(v);
    }
    for (k, v) in &f.labels {
        cond.push(" AND EXISTS (SELECT 1 FROM agent_labels l WHERE l.agent_id = a.id AND l.key = ")
            .bind(k)
            .push(" AND l.value = ")
            .bind(v)
            .push(")");
    }
    if let Some(q) = &f.hostname {
        cond.push(" AND lower(a.hostname) LIKE ")
            .bind(format!("%{}%", like_escape(&q.to_lowercase())))
            .push(" ESCAPE '\\'");
    }
    let total = cond
        .prefixed("SELECT COUNT(*)")
        .fetch_i64(db.pool())
        .await?;
    let mut page = cond.prefixed(AGENT_SELECT);
    page.push(" ORDER BY lower(a.hostname), a.id LIMIT ")
        .bind(f.limit)
        .push(" OFFSET ")
        .bind(f.offset);
    let items = page.query_as::<Agent>().fetch_all(db.pool()).await?;
    Ok((items, total))
}

/// One agent, if visible in `scope`.
pub async fn get(db: &Db, scope: &Scope, id: &str) -> Result<Agent> {
    let mut sql = Sql::new(AGENT_SELECT);
    sql.push(AGENT_FROM).push(" AND a.id = ").bind(id);
    scope.restrict(&mut sql, "a.client_id");
    sql.query_as::<Agent>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("agent"))
}

/// Replace an agent's label rows (the filterable copy of `agents.labels`).
pub(crate) async fn replace_labels(
    tx: &mut Tx,
    agent_id: &str,
    labels: &BTreeMap<String, String>,
) -> sqlx::Result<()> {
    let mut del = Sql::new("DELETE FROM agent_labels WHERE agent_id = ");
    del.bind(agent_id);
    del.query().execute(&mut **tx).await?;
    for (k, v) in labels {
        let mut ins = Sql::new("INSERT INTO agent_labels (agent_id, key, value) VALUES (");
        ins.bind(agent_id)
            .push(", ")
            .bind(k)
            .push(", ")
            .bind(v)
            .push(")");
        ins.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Changes to an agent; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct AgentUpdate {
    /// Move to this site (which may belong to another client, if visible in scope).
    pub site_id: Option<String>,
    /// Replace the labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Update an agent visible in `scope`.
pub async fn update(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    id: &str,
    up: AgentUpdate,
) -> Result<Agent> {
    let agent = get(db, scope, id).await?;
    let target = match &up.site_id {
        Some(s) => Some(super::clients::get_site(db, scope, s).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("UPDATE agents SET updated_at = ");
    sql.bind(now_ms());
    let mut details = serde_json::Map::new();
    if let Some(site) = &target {
        sql.push(", site_id = ")
            .bind(&site.id)
            .push(", client_id = ")
            .bind(&site.client_id);
        details.insert(
            "site_id".into(),
            json!({ "old": agent.site_id, "new": site.id }),
        );
        if site.client_id != agent.client_id {
            details.insert(
                "client_id".into(),
                json!({ "old": agent.client_id, "new": site.client_id }),
            );
        }
    }
    if let Some(labels) = &up.labels {
        sql.push(", labels = ")
            .bind(serde_json::to_string(labels).expect("labels serialize"));
        details.insert("labels".into(), json!(labels));
    }
    sql.push(" WHERE id = ").bind(id);
    sql.query().execute(&mut *tx).await.map_err(|e| {
        super::on_unique(e, "duplicate_host", || {
            "the target client already has an agent with this host id".to_owned()
        })
    })?;
    if let Some(labels) = &up.labels {
        replace_labels(&mut tx, id, labels).await?;
    }
    let action = if target.is_some() {
        "agent.move"
    } else {
        "agent.update"
    };
    audit::record(
        &mut tx,
        actor,
        Change {
            action,
            target_type: "agent",
            target_id: Some(id),
            client_id: Some(
                target
                    .as_ref()
                    .map(|s| s.client_id.as_str())
                    .unwrap_or(&agent.client_id),
            ),
            details: serde_json::Value::Object(details),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &Scope::All, id).await
}

/// Delete an agent visible in `scope`. Its secret stops working at once (the row is gone).
pub async fn delete(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<()> {
    let agent = get(db, scope, id).await?;
    let mut tx = db.begin().await?;
    let mut del = Sql::new("DELETE FROM agent_labels WHERE agent_id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    super::clients::delete_assignments_to(&mut tx, "agent", id).await?;
    for table in ["agent_configs", "agent_inventory"] {
        let mut del = Sql::new(&format!("DELETE FROM {table} WHERE agent_id = "));
        del.bind(id);
        del.query().execute(&mut *tx).await?;
    }
    let mut del = Sql::new("DELETE FROM agents WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "agent.delete",
            target_type: "agent",
            target_id: Some(id),
            client_id: Some(&agent.client_id),
            details: json!({ "hostname": agent.hostname, "host_id": agent.host_id, "site_id": agent.site_id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The identity behind an agent secret.
#[derive(Debug, Clone, FromRow)]
pub struct AgentIdentity {
    pub id: String,
    pub client_id: String,
    pub site_id: String,
}

/// The agent whose secret hashes to `secret_hash` (for the OpAMP server).
pub async fn authenticate(db: &Db, secret_hash: &str) -> Result<Option<AgentIdentity>> {
    let mut sql = Sql::new("SELECT id, client_id, site_id FROM agents WHERE secret_hash = ");
    sql.bind(secret_hash);
    Ok(sql
        .query_as::<AgentIdentity>()
        .fetch_optional(db.pool())
        .await?)
}

/// One Prometheus scrape target.
#[derive(Debug, Clone, FromRow)]
pub struct SdTarget {
    pub id: String,
    pub metrics_address: String,
    pub client_name: String,
    pub site_name: String,
    pub hostname: String,
}

/// Agents visible in `scope` that reported a metrics address.
pub async fn sd_targets(db: &Db, scope: &Scope) -> Result<Vec<SdTarget>> {
    let mut sql = Sql::new(
        "SELECT a.id, a.metrics_address, c.name AS client_name, s.name AS site_name, a.hostname \
         FROM agents a JOIN sites s ON s.id = a.site_id JOIN clients c ON c.id = a.client_id \
         WHERE a.metrics_address IS NOT NULL AND a.metrics_address <> ''",
    );
    scope.restrict(&mut sql, "a.client_id");
    sql.push(" ORDER BY a.id");
    Ok(sql.query_as::<SdTarget>().fetch_all(db.pool()).await?)
}

/// Agent facts for the control plane's own metrics.
#[derive(Debug, Clone, FromRow)]
pub struct AgentInfo {
    pub id: String,
    pub client_name: String,
    pub site_name: String,
    pub hostname: String,
    pub agent_version: String,
    pub os: String,
    pub arch: String,
    pub status: String,
}

/// Every agent, for `/metrics`.
pub async fn all_info(db: &Db) -> Result<Vec<AgentInfo>> {
    let sql = Sql::new(
        "SELECT a.id, c.name AS client_name, s.name AS site_name, a.hostname, a.agent_version, a.os, \
         a.arch, a.status FROM agents a JOIN sites s ON s.id = a.site_id JOIN clients c ON c.id = a.client_id \
         ORDER BY a.id",
    );
    Ok(sql.query_as::<AgentInfo>().fetch_all(db.pool()).await?)
}
