//! Enrollment tokens, and enrollment itself: a token plus a host's facts become an agent.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::audit::{self, Actor, Change};
use super::{agents, new_id, now_ms, ser, Db, Error, Result, Scope, Sql};

/// An enrollment token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct EnrollmentToken {
    pub id: String,
    /// The first characters of the token, to recognise it.
    pub token_prefix: String,
    pub client_id: String,
    pub site_id: String,
    pub description: Option<String>,
    /// Labels every agent enrolled with this token gets.
    #[serde(serialize_with = "ser::json_text")]
    #[schema(value_type = Object)]
    pub labels: String,
    pub max_uses: i64,
    pub uses: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    #[serde(serialize_with = "ser::opt_ts")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    pub created_by: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// `active`, `expired`, `revoked` or `exhausted`.
    #[sqlx(skip)]
    pub state: String,
}

impl EnrollmentToken {
    fn with_state(mut self, now: i64) -> Self {
        self.state = if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else if self.uses >= self.max_uses {
            "exhausted"
        } else {
            "active"
        }
        .to_owned();
        self
    }
}

const COLUMNS: &str = "id, token_prefix, client_id, site_id, description, labels, max_uses, uses, \
                       expires_at, revoked_at, created_by, created_at";

/// Enrollment tokens visible in `scope`, optionally of one site, newest first.
pub async fn list(db: &Db, scope: &Scope, site_id: Option<&str>) -> Result<Vec<EnrollmentToken>> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE 1 = 1"
    ));
    scope.restrict(&mut sql, "client_id");
    if let Some(s) = site_id {
        sql.push(" AND site_id = ").bind(s);
    }
    sql.push(" ORDER BY created_at DESC, id DESC");
    let now = now_ms();
    Ok(sql
        .query_as::<EnrollmentToken>()
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(|t| t.with_state(now))
        .collect())
}

/// One enrollment token, if visible in `scope`.
pub async fn get(db: &Db, scope: &Scope, id: &str) -> Result<EnrollmentToken> {
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM enrollment_tokens WHERE id = "
    ));
    sql.bind(id);
    scope.restrict(&mut sql, "client_id");
    let t = sql
        .query_as::<EnrollmentToken>()
        .fetch_optional(db.pool())
        .await?;
    t.map(|t| t.with_state(now_ms()))
        .ok_or(Error::NotFound("enrollment token"))
}

/// A new enrollment token's stored fields.
pub struct NewToken<'a> {
    pub site_id: &'a str,
    pub token_hash: &'a str,
    pub token_prefix: &'a str,
    pub description: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub max_uses: i64,
    pub expires_at: i64,
}

/// Store a new enrollment token for a site visible in `scope`.
pub async fn create(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    t: NewToken<'_>,
) -> Result<EnrollmentToken> {
    let site = super::clients::get_site(db, scope, t.site_id).await?;
    let id = new_id();
    let now = now_ms();
    let labels = serde_json::to_string(t.labels).expect("labels serialize");
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO enrollment_tokens (id, token_hash, token_prefix, client_id, site_id, description, \
         labels, max_uses, uses, expires_at, created_by, created_at) VALUES (",
    );
    sql.bind(&id)
        .push(", ")
        .bind(t.token_hash)
        .push(", ")
        .bind(t.token_prefix)
        .push(", ")
        .bind(&site.client_id)
        .push(", ")
        .bind(t.site_id)
        .push(", ")
        .bind(t.description)
        .push(", ")
        .bind(labels)
        .push(", ")
        .bind(t.max_uses)
        .push(", 0, ")
        .bind(t.expires_at)
        .push(", ")
        .bind(actor.id.clone())
        .push(", ")
        .bind(now)
        .push(")");
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "enrollment_token.create",
            target_type: "enrollment_token",
            target_id: Some(&id),
            client_id: Some(&site.client_id),
            details: json!({
                "site_id": t.site_id, "max_uses": t.max_uses, "expires_at": ser::rfc3339(t.expires_at),
                "labels": t.labels, "token_prefix": t.token_prefix,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &Scope::All, &id).await
}

/// Revoke an enrollment token visible in `scope`. Agents it enrolled keep working.
pub async fn revoke(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<EnrollmentToken> {
    let token = get(db, scope, id).await?;
    if token.revoked_at.is_some() {
        return Err(Error::conflict(
            "already_revoked",
            "this enrollment token is already revoked",
        ));
    }
    let mut tx = db.begin().await?;
    let mut up = Sql::new("UPDATE enrollment_tokens SET revoked_at = ");
    up.bind(now_ms()).push(" WHERE id = ").bind(id);
    up.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "enrollment_token.revoke",
            target_type: "enrollment_token",
            target_id: Some(id),
            client_id: Some(&token.client_id),
            details: json!({ "site_id": token.site_id, "token_prefix": token.token_prefix }),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, &Scope::All, id).await
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not valid")]
    Invalid,
    #[error("the enrollment token has expired")]
    Expired,
    #[error("the enrollment token has been revoked")]
    Revoked,
    #[error("the enrollment token has been used the maximum number of times")]
    Exhausted,
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for EnrollError {
    fn from(e: sqlx::Error) -> Self {
        EnrollError::Store(Error::Db(e))
    }
}

/// The facts a host presents when enrolling.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub host_id: String,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
    pub metrics_address: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A successful enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub agent_id: String,
    /// False when the host was already enrolled in this client and got new credentials.
    pub new_agent: bool,
    pub client_id: String,
    pub site_id: String,
}

#[derive(FromRow)]
struct TokenRow {
    id: String,
    token_prefix: String,
    client_id: String,
    site_id: String,
    labels: String,
    max_uses: i64,
    uses: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

/// Enroll a host with the token whose hash is `token_hash`: one use of the token, and an
/// agent created, or, when the same host id already enrolled in the token's client, the
/// same agent updated with the new secret (the old secret stops working).
///
/// Labels: the host's own labels, overridden by the token's labels.
pub async fn enroll(
    db: &Db,
    token_hash: &str,
    secret_hash: &str,
    facts: &HostFacts,
    source_ip: Option<String>,
) -> Result<Enrolled, EnrollError> {
    enroll_as(db, token_hash, secret_hash, facts, source_ip, None).await
}

/// [`enroll`], giving a new agent the id `preferred_id` when no agent has it yet (the OpAMP
/// server passes the client's instance uid, so a third-party client keeps its own id).
pub async fn enroll_as(
    db: &Db,
    token_hash: &str,
    secret_hash: &str,
    facts: &HostFacts,
    source_ip: Option<String>,
    preferred_id: Option<&str>,
) -> Result<Enrolled, EnrollError> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let mut sel = Sql::new(
        "SELECT id, token_prefix, client_id, site_id, labels, max_uses, uses, expires_at, revoked_at \
         FROM enrollment_tokens WHERE token_hash = ",
    );
    sel.bind(token_hash);
    let token = sel
        .query_as::<TokenRow>()
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(EnrollError::Invalid)?;
    if token.revoked_at.is_some() {
        return Err(EnrollError::Revoked);
    }
    if token.expires_at <= now {
        return Err(EnrollError::Expired);
    }
    if token.uses >= token.max_uses {
        return Err(EnrollError::Exhausted);
    }
    // The guard in the WHERE clause makes concurrent enrollments unable to overspend.
    let mut spend = Sql::new("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ");
    spend
        .bind(&token.id)
        .push(" AND uses < max_uses AND revoked_at IS NULL");
    if spend.query().execute(&mut *tx).await?.rows_affected() != 1 {
        return Err(EnrollError::Exhausted);
    }

    let mut labels = facts.labels.clone();
    let token_labels: BTreeMap<String, String> =
        serde_json::from_str(&token.labels).unwrap_or_default();
    labels.extend(token_labels);

    let candidate_id = match preferred_id {
        Some(id) => {
            let mut taken = Sql::new("SELECT COUNT(*) FROM agents WHERE id = ");
            taken.bind(id);
            if taken.fetch_i64(&mut *tx).await? == 0 {
                id.to_owned()
            } else {
                new_id()
            }
        }
        None => new_id(),
    };
    let mut up = Sql::new(
        "INSERT INTO agents (id, client_id, site_id, host_id, hostname, os, arch, agent_version, labels, \
         metrics_address, status, secret_hash, enrollment_token_id, enrolled_at, created_at, updated_at) VALUES (",
    );
    up.bind(&candidate_id)
        .push(", ")
        .bind(&token.client_id)
        .push(", ")
        .bind(&token.site_id)
        .push(", ")
        .bind(&facts.host_id)
        .push(", ")
        .bind(&facts.hostname)
        .push(", ")
        .bind(&facts.os)
        .push(", ")
        .bind(&facts.arch)
        .push(", ")
        .bind(&facts.agent_version)
        .push(", ")
        .bind(serde_json::to_string(&labels).expect("labels serialize"))
        .push(", ")
        .bind(facts.metrics_address.clone())
        .push(", 'pending', ")
        .bind(secret_hash)
        .push(", ")
        .bind(&token.id)
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(
            ") ON CONFLICT (client_id, host_id) DO UPDATE SET site_id = excluded.site_id, \
             hostname = excluded.hostname, os = excluded.os, arch = excluded.arch, \
             agent_version = excluded.agent_version, labels = excluded.labels, \
             metrics_address = COALESCE(excluded.metrics_address, agents.metrics_address), \
             secret_hash = excluded.secret_hash, enrollment_token_id = excluded.enrollment_token_id, \
             enrolled_at = excluded.enrolled_at, updated_at = excluded.updated_at RETURNING id",
        );
    let row = up.query().fetch_one(&mut *tx).await?;
    let agent_id: String = sqlx::Row::try_get(&row, 0)?;
    let new_agent = agent_id == candidate_id;
    agents::replace_labels(&mut tx, &agent_id, &labels).await?;

    let actor = Actor {
        actor_type: "enrollment_token".into(),
        id: Some(token.id.clone()),
        name: Some(token.token_prefix.clone()),
        source_ip,
    };
    audit::record(
        &mut tx,
        &actor,
        Change {
            action: if new_agent {
                "agent.enroll"
            } else {
                "agent.reenroll"
            },
            target_type: "agent",
            target_id: Some(&agent_id),
            client_id: Some(&token.client_id),
            details: json!({
                "host_id": facts.host_id, "hostname": facts.hostname, "site_id": token.site_id,
                "os": facts.os, "arch": facts.arch, "agent_version": facts.agent_version,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        agent_id,
        new_agent,
        client_id: token.client_id,
        site_id: token.site_id,
    })
}
