//! The audit log: one row per change, written in the same transaction as the change.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{new_id, now_ms, ser, Db, Result, Scope, Sql, Tx};

/// Who is making a change, and from where.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `user`, `api_token`, `enrollment_token`, `cli` or `system`.
    pub actor_type: String,
    pub id: Option<String>,
    /// Email, token name or token prefix; never a secret.
    pub name: Option<String>,
    pub source_ip: Option<String>,
}

impl Actor {
    /// The command-line tool, run by whoever has the server's database.
    pub fn cli() -> Self {
        Actor {
            actor_type: "cli".into(),
            id: None,
            name: None,
            source_ip: None,
        }
    }

    /// The server itself (`name` says which part: `watch_dir`, `rollout`).
    pub fn system(name: &str) -> Self {
        Actor {
            actor_type: "system".into(),
            id: None,
            name: Some(name.to_owned()),
            source_ip: None,
        }
    }
}

/// What changed.
pub struct Change<'a> {
    /// Dotted verb, e.g. `client.create`, `agent.enroll`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    /// The client the target belongs to (decides who may read the entry); `None` for
    /// changes outside any client (all-clients users and tokens).
    pub client_id: Option<&'a str>,
    pub details: serde_json::Value,
}

/// Write one audit entry inside `tx`.
pub async fn record(tx: &mut Tx, actor: &Actor, change: Change<'_>) -> sqlx::Result<()> {
    let mut sql = Sql::new(
        "INSERT INTO audit_log (id, created_at, actor_type, actor_id, actor_name, action, \
         target_type, target_id, client_id, details, source_ip) VALUES (",
    );
    sql.bind(new_id())
        .push(", ")
        .bind(now_ms())
        .push(", ")
        .bind(actor.actor_type.clone())
        .push(", ")
        .bind(actor.id.clone())
        .push(", ")
        .bind(actor.name.clone())
        .push(", ")
        .bind(change.action)
        .push(", ")
        .bind(change.target_type)
        .push(", ")
        .bind(change.target_id)
        .push(", ")
        .bind(change.client_id)
        .push(", ")
        .bind(change.details.to_string())
        .push(", ")
        .bind(actor.source_ip.clone())
        .push(")");
    sql.query().execute(&mut **tx).await?;
    Ok(())
}

/// One audit entry as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// When (RFC 3339).
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// `user`, `api_token`, `enrollment_token`, `cli` or `system`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub details: String,
    pub source_ip: Option<String>,
}

/// Filters for [`list`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Entries visible in `scope`, newest first, and the total count.
pub async fn list(db: &Db, scope: &Scope, f: &Filter) -> Result<(Vec<AuditEntry>, i64)> {
    let mut cond = Sql::new(" FROM audit_log WHERE 1 = 1");
    scope.restrict(&mut cond, "client_id");
    if let Some(a) = &f.action {
        cond.push(" AND action = ").bind(a);
    }
    if let Some(t) = &f.target_type {
        cond.push(" AND target_type = ").bind(t);
    }
    if let Some(t) = &f.target_id {
        cond.push(" AND target_id = ").bind(t);
    }
    let total = cond
        .prefixed("SELECT COUNT(*)")
        .fetch_i64(db.pool())
        .await?;
    let mut q = cond.prefixed("SELECT *");
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .bind(f.limit)
        .push(" OFFSET ")
        .bind(f.offset);
    let items = q.query_as::<AuditEntry>().fetch_all(db.pool()).await?;
    Ok((items, total))
}
