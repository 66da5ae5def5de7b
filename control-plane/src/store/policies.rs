//! Policies, their assignments, and the effective configuration computed for each agent.
//!
//! Tenancy: a policy belongs to one client or is global (`client_id` NULL). A client-scoped
//! caller sees and changes only its client's policies and assignments; global policies and
//! global assignments are for all-clients callers. A client's policy applies only inside that
//! client (its client, sites and agents).

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::FromRow;
use utoipa::ToSchema;

use super::audit::{self, Actor, Change};
use super::{new_id, now_ms, on_unique, ser, Db, Error, Result, Scope, Sql};
use crate::policy::merge::{AssignScope, Layer, Source};

/// A policy.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Policy {
    pub id: String,
    /// Owning client; `null` for a global (MSP-wide) policy.
    pub client_id: Option<String>,
    pub name: String,
    /// The policy document (schema v1).
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub document: String,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// Where a policy applies.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Assignment {
    pub id: String,
    pub policy_id: String,
    /// `global`, `client`, `site` or `agent`.
    pub scope: String,
    /// Client, site or agent id; `null` for global.
    #[serde(serialize_with = "ser_target")]
    #[schema(value_type = Option<String>)]
    pub target_id: String,
    /// The target's client (`null` for global).
    pub client_id: Option<String>,
    /// Within one scope, the higher priority wins.
    pub priority: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

fn ser_target<S: serde::Serializer>(t: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    if t.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(t)
    }
}

const POLICY_SELECT: &str =
    "SELECT id, client_id, name, document, created_at, updated_at FROM policies WHERE 1 = 1";
const ASSIGN_SELECT: &str = "SELECT id, policy_id, scope, target_id, client_id, priority, created_at FROM policy_assignments WHERE 1 = 1";

/// Restrict to `scope`: a client-scoped caller sees its own client's rows, never global ones.
fn restrict(scope: &Scope, sql: &mut Sql, column: &str) {
    if let Scope::Client(id) = scope {
        sql.push(" AND ")
            .push(column)
            .push(" IS NOT NULL AND ")
            .push(column)
            .push(" = ")
            .bind(id.clone());
    }
}

/// Policies visible in `scope`, by name.
pub async fn list(db: &Db, scope: &Scope, client_id: Option<&str>) -> Result<Vec<Policy>> {
    let mut sql = Sql::new(POLICY_SELECT);
    restrict(scope, &mut sql, "client_id");
    if let Some(c) = client_id {
        sql.push(" AND client_id = ").bind(c);
    }
    sql.push(" ORDER BY lower(name), id");
    Ok(sql.query_as::<Policy>().fetch_all(db.pool()).await?)
}

/// One policy, if visible in `scope`.
pub async fn get(db: &Db, scope: &Scope, id: &str) -> Result<Policy> {
    let mut sql = Sql::new(POLICY_SELECT);
    sql.push(" AND id = ").bind(id);
    restrict(scope, &mut sql, "client_id");
    sql.query_as::<Policy>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("policy"))
}

fn duplicate_name(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("a policy named {name:?} already exists for this owner")
}

/// Create a policy owned by `client_id` (`None`: global). The caller checked that the scope
/// allows it and that the document is valid.
pub async fn create(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    client_id: Option<&str>,
    name: &str,
    document: &Value,
) -> Result<Policy> {
    if let Some(c) = client_id {
        super::clients::get_client(db, scope, c)
            .await
            .map_err(|_| Error::NotFound("client"))?;
    }
    let id = new_id();
    let now = now_ms();
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO policies (id, client_id, name, document, created_at, updated_at) VALUES (",
    );
    sql.bind(&id)
        .push(", ")
        .bind(client_id)
        .push(", ")
        .bind(name)
        .push(", ")
        .bind(document.to_string())
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(")");
    sql.query()
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, "duplicate_name", duplicate_name(name)))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "policy.create",
            target_type: "policy",
            target_id: Some(&id),
            client_id,
            details: json!({ "name": name, "document": document }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &Scope::All, &id).await
}

/// Replace a policy's name and/or document.
pub async fn update(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    id: &str,
    name: Option<&str>,
    document: Option<&Value>,
) -> Result<Policy> {
    let old = get(db, scope, id).await?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("UPDATE policies SET updated_at = ");
    sql.bind(now_ms());
    if let Some(n) = name {
        sql.push(", name = ").bind(n);
    }
    if let Some(d) = document {
        sql.push(", document = ").bind(d.to_string());
    }
    sql.push(" WHERE id = ").bind(id);
    sql.query().execute(&mut *tx).await.map_err(|e| {
        on_unique(
            e,
            "duplicate_name",
            duplicate_name(name.unwrap_or(&old.name)),
        )
    })?;
    let old_doc: Value = serde_json::from_str(&old.document).unwrap_or(Value::Null);
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "policy.update",
            target_type: "policy",
            target_id: Some(id),
            client_id: old.client_id.as_deref(),
            details: json!({
                "name": { "old": old.name, "new": name.unwrap_or(&old.name) },
                "document": { "old": old_doc, "new": document.unwrap_or(&old_doc) },
            }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &Scope::All, id).await
}

/// Delete a policy and its assignments; returns the assignments it had.
pub async fn delete(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<Vec<Assignment>> {
    let old = get(db, scope, id).await?;
    let assignments = list_assignments(db, &Scope::All, id).await?;
    let mut tx = db.begin().await?;
    let mut del = Sql::new("DELETE FROM policy_assignments WHERE policy_id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    let mut del = Sql::new("DELETE FROM policies WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "policy.delete",
            target_type: "policy",
            target_id: Some(id),
            client_id: old.client_id.as_deref(),
            details: json!({ "name": old.name, "document": serde_json::from_str::<Value>(&old.document).unwrap_or(Value::Null), "assignments": assignments.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(assignments)
}

/// Assignments of a policy visible in `scope`.
pub async fn list_assignments(db: &Db, scope: &Scope, policy_id: &str) -> Result<Vec<Assignment>> {
    let mut sql = Sql::new(ASSIGN_SELECT);
    sql.push(" AND policy_id = ").bind(policy_id);
    restrict(scope, &mut sql, "client_id");
    sql.push(" ORDER BY scope, target_id, priority");
    Ok(sql.query_as::<Assignment>().fetch_all(db.pool()).await?)
}

/// One assignment, if visible in `scope`.
pub async fn get_assignment(db: &Db, scope: &Scope, id: &str) -> Result<Assignment> {
    let mut sql = Sql::new(ASSIGN_SELECT);
    sql.push(" AND id = ").bind(id);
    restrict(scope, &mut sql, "client_id");
    sql.query_as::<Assignment>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("assignment"))
}

/// The client a target belongs to (`None` for global), checking it exists in `scope`.
async fn target_client(
    db: &Db,
    scope: &Scope,
    kind: AssignScope,
    target_id: &str,
) -> Result<Option<String>> {
    let missing = |what: &str| Error::Invalid {
        code: "target_not_found",
        message: format!("target_id: {what} {target_id:?} does not exist"),
    };
    Ok(match kind {
        AssignScope::Global => None,
        AssignScope::Client => Some(
            super::clients::get_client(db, scope, target_id)
                .await
                .map_err(|_| missing("client"))?
                .id,
        ),
        AssignScope::Site => Some(
            super::clients::get_site(db, scope, target_id)
                .await
                .map_err(|_| missing("site"))?
                .client_id,
        ),
        AssignScope::Agent => Some(
            super::agents::get(db, scope, target_id)
                .await
                .map_err(|_| missing("agent"))?
                .client_id,
        ),
    })
}

/// Assign a policy visible in `scope` at `kind`/`target_id` with `priority`.
pub async fn assign(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    policy_id: &str,
    kind: AssignScope,
    target_id: Option<&str>,
    priority: i64,
) -> Result<Assignment> {
    let policy = get(db, scope, policy_id).await?;
    let target_id = target_id.unwrap_or_default();
    if kind == AssignScope::Global && !target_id.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            "target_id: must be null for the global scope",
        ));
    }
    if kind != AssignScope::Global && target_id.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            format!("target_id: required for the {} scope", kind.as_str()),
        ));
    }
    let client_id = target_client(db, scope, kind, target_id).await?;
    match (&policy.client_id, &client_id) {
        (Some(owner), None) => {
            return Err(Error::invalid(
                "invalid_field",
                format!("scope: policy {:?} belongs to client {owner}; it cannot be assigned globally", policy.name),
            ))
        }
        (Some(owner), Some(target)) if owner != target => {
            return Err(Error::invalid(
                "invalid_field",
                format!("target_id: policy {:?} belongs to another client than the target; a client's policy applies only inside that client", policy.name),
            ))
        }
        _ => {}
    }
    let mut tx = db.begin().await?;
    // Name the holder of the slot in the error (the unique index is the real guard).
    let mut taken = Sql::new(
        "SELECT p.name FROM policy_assignments a JOIN policies p ON p.id = a.policy_id WHERE a.scope = ",
    );
    taken
        .bind(kind.as_str())
        .push(" AND a.target_id = ")
        .bind(target_id)
        .push(" AND a.priority = ")
        .bind(priority);
    if let Some(row) = taken.query().fetch_optional(&mut *tx).await? {
        let holder: String = sqlx::Row::try_get(&row, 0)?;
        return Err(Error::conflict(
            "priority_taken",
            format!(
                "priority {priority} at this {} target is already held by policy {holder:?}; choose another priority",
                kind.as_str()
            ),
        ));
    }
    let id = new_id();
    let mut sql = Sql::new("INSERT INTO policy_assignments (id, policy_id, scope, target_id, client_id, priority, created_at) VALUES (");
    sql.bind(&id)
        .push(", ")
        .bind(policy_id)
        .push(", ")
        .bind(kind.as_str())
        .push(", ")
        .bind(target_id)
        .push(", ")
        .bind(client_id.clone())
        .push(", ")
        .bind(priority)
        .push(", ")
        .bind(now_ms())
        .push(")");
    sql.query().execute(&mut *tx).await.map_err(|e| {
        on_unique(e, "already_assigned", || {
            format!(
                "policy {:?} is already assigned to this target, or the priority is taken",
                policy.name
            )
        })
    })?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "policy.assign",
            target_type: "policy",
            target_id: Some(policy_id),
            client_id: client_id.as_deref().or(policy.client_id.as_deref()),
            details: json!({ "assignment_id": id, "scope": kind.as_str(), "target_id": (!target_id.is_empty()).then_some(target_id), "priority": priority }),
        },
    )
    .await?;
    tx.commit().await?;
    get_assignment(db, &Scope::All, &id).await
}

/// Remove an assignment visible in `scope`; returns it.
pub async fn unassign(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<Assignment> {
    let a = get_assignment(db, scope, id).await?;
    // A global assignment is visible only to all-clients callers (restrict above).
    let mut tx = db.begin().await?;
    let mut del = Sql::new("DELETE FROM policy_assignments WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "policy.unassign",
            target_type: "policy",
            target_id: Some(&a.policy_id),
            client_id: a.client_id.as_deref(),
            details: json!({ "assignment_id": id, "scope": a.scope, "target_id": (!a.target_id.is_empty()).then_some(&a.target_id), "priority": a.priority }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(a)
}

/// Where an agent sits: what decides which assignments reach it.
#[derive(Debug, Clone, FromRow)]
pub struct AgentPlace {
    pub id: String,
    pub client_id: String,
    pub site_id: String,
}

#[derive(Debug, Clone, FromRow)]
struct LayerRow {
    scope: String,
    target_id: String,
    priority: i64,
    policy_id: String,
    name: String,
    document: String,
}

impl LayerRow {
    fn layer(self) -> Option<Layer> {
        let scope = AssignScope::parse(&self.scope)?;
        Some(Layer {
            source: Source {
                policy_id: self.policy_id,
                policy_name: self.name,
                scope,
                target_id: (!self.target_id.is_empty()).then_some(self.target_id),
                priority: self.priority,
            },
            document: serde_json::from_str(&self.document).unwrap_or(Value::Null),
        })
    }
}

/// Where agents sit; `None` ids = every agent.
pub async fn places(db: &Db, ids: Option<&[String]>) -> Result<Vec<AgentPlace>> {
    let mut out = Vec::new();
    match ids {
        None => {
            let sql = Sql::new("SELECT id, client_id, site_id FROM agents ORDER BY id");
            out = sql.query_as::<AgentPlace>().fetch_all(db.pool()).await?;
        }
        Some(ids) => {
            for chunk in ids.chunks(500) {
                let mut sql = Sql::new("SELECT id, client_id, site_id FROM agents WHERE id IN (");
                sql.bind_list(chunk.iter().map(String::as_str)).push(")");
                out.extend(sql.query_as::<AgentPlace>().fetch_all(db.pool()).await?);
            }
        }
    }
    Ok(out)
}

/// The agents an assignment reaches.
pub async fn agents_reached(db: &Db, a: &Assignment) -> Result<Vec<String>> {
    let mut sql = Sql::new("SELECT id FROM agents WHERE 1 = 1");
    match AssignScope::parse(&a.scope) {
        Some(AssignScope::Global) | None => {}
        Some(AssignScope::Client) => {
            sql.push(" AND client_id = ").bind(&a.target_id);
        }
        Some(AssignScope::Site) => {
            sql.push(" AND site_id = ").bind(&a.target_id);
        }
        Some(AssignScope::Agent) => {
            sql.push(" AND id = ").bind(&a.target_id);
        }
    }
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| sqlx::Row::try_get::<String, _>(r, 0).map_err(Error::Db))
        .collect()
}

/// Every assignment with its policy, as merge layers with their target.
pub async fn all_layers(db: &Db) -> Result<Vec<Layer>> {
    let sql = Sql::new(
        "SELECT a.scope, a.target_id, a.priority, p.id AS policy_id, p.name, p.document \
         FROM policy_assignments a JOIN policies p ON p.id = a.policy_id",
    );
    Ok(sql
        .query_as::<LayerRow>()
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .filter_map(LayerRow::layer)
        .collect())
}

/// The layers of `layers` that reach an agent at `place`.
pub fn layers_for(layers: &[Layer], place: &AgentPlace) -> Vec<Layer> {
    layers
        .iter()
        .filter(|l| reaches(&l.source, place))
        .cloned()
        .collect()
}

/// Whether an assignment at `source`'s scope and target reaches an agent at `place`.
pub fn reaches(source: &Source, place: &AgentPlace) -> bool {
    let t = source.target_id.as_deref();
    match source.scope {
        AssignScope::Global => true,
        AssignScope::Client => t == Some(place.client_id.as_str()),
        AssignScope::Site => t == Some(place.site_id.as_str()),
        AssignScope::Agent => t == Some(place.id.as_str()),
    }
}

/// The layers reaching one agent.
pub async fn layers_for_agent(db: &Db, place: &AgentPlace) -> Result<Vec<Layer>> {
    let mut sql = Sql::new(
        "SELECT a.scope, a.target_id, a.priority, p.id AS policy_id, p.name, p.document \
         FROM policy_assignments a JOIN policies p ON p.id = a.policy_id WHERE a.scope = 'global' OR (a.scope = 'client' AND a.target_id = ",
    );
    sql.bind(&place.client_id)
        .push(") OR (a.scope = 'site' AND a.target_id = ")
        .bind(&place.site_id)
        .push(") OR (a.scope = 'agent' AND a.target_id = ")
        .bind(&place.id)
        .push(")");
    Ok(sql
        .query_as::<LayerRow>()
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .filter_map(LayerRow::layer)
        .collect())
}

/// The stored effective configuration of an agent.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct StoredConfig {
    pub agent_id: String,
    pub config_hash: String,
    pub config: String,
}

/// Stored configurations of `ids`.
pub async fn stored_configs(db: &Db, ids: &[String]) -> Result<Vec<StoredConfig>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut sql =
            Sql::new("SELECT agent_id, config_hash, config FROM agent_configs WHERE agent_id IN (");
        sql.bind_list(chunk.iter().map(String::as_str)).push(")");
        out.extend(sql.query_as::<StoredConfig>().fetch_all(db.pool()).await?);
    }
    Ok(out)
}

/// Store an agent's effective configuration (insert or replace).
pub async fn store_config(db: &Db, agent_id: &str, hash: &str, toml: &str) -> Result<()> {
    let mut sql =
        Sql::new("INSERT INTO agent_configs (agent_id, config_hash, config, updated_at) VALUES (");
    sql.bind(agent_id)
        .push(", ")
        .bind(hash)
        .push(", ")
        .bind(toml)
        .push(", ")
        .bind(now_ms())
        .push(") ON CONFLICT (agent_id) DO UPDATE SET config_hash = excluded.config_hash, config = excluded.config, updated_at = excluded.updated_at");
    sql.query().execute(db.pool()).await?;
    Ok(())
}

/// An agent's expected and reported remote configuration, for drift.
#[derive(Debug, Clone, FromRow)]
pub struct ConfigStatusRow {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub site_name: String,
    pub hostname: String,
    pub capabilities: i64,
    pub remote_config_status: String,
    pub expected_hash: Option<String>,
}

/// Expected and reported configuration of agents visible in `scope` (or of one agent).
pub async fn config_status_rows(
    db: &Db,
    scope: &Scope,
    agent_id: Option<&str>,
) -> Result<Vec<ConfigStatusRow>> {
    let mut sql = Sql::new(
        "SELECT a.id, a.client_id, c.name AS client_name, s.name AS site_name, a.hostname, \
         a.capabilities, a.remote_config_status, g.config_hash AS expected_hash \
         FROM agents a JOIN sites s ON s.id = a.site_id JOIN clients c ON c.id = a.client_id \
         LEFT JOIN agent_configs g ON g.agent_id = a.id WHERE 1 = 1",
    );
    scope.restrict(&mut sql, "a.client_id");
    if let Some(id) = agent_id {
        sql.push(" AND a.id = ").bind(id);
    }
    sql.push(" ORDER BY lower(a.hostname), a.id");
    Ok(sql
        .query_as::<ConfigStatusRow>()
        .fetch_all(db.pool())
        .await?)
}
