//! Install reports: what the agent install script says happened on a host. A report is
//! authenticated by the enrollment token the script was given; the token decides the report's
//! client and site, so a host cannot file a report into another client's list.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{new_id, now_ms, ser, Db, Result, Scope, Sql};

/// How long after its expiry a token still authenticates reports: an install that failed
/// *because* the token expired must still be able to say so.
pub const EXPIRED_TOKEN_GRACE_MS: i64 = 7 * 24 * 3600 * 1000;

/// One report, as listed.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct InstallReport {
    pub id: String,
    pub client_id: String,
    pub site_id: String,
    /// The enrollment token that authenticated the report.
    pub enrollment_token_id: String,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    /// The installed agent's version; absent when the script failed before it had one.
    pub agent_version: Option<String>,
    /// `success` or `failed`.
    pub status: String,
    /// The step that failed, or the last step run (`complete`) on success.
    pub step: String,
    pub message: String,
    pub source_ip: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// The validated fields of a new report.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub status: String,
    pub step: String,
    pub message: String,
}

/// Why a token cannot authenticate a report.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("unknown enrollment token")]
    Invalid,
    #[error("the enrollment token has been revoked")]
    Revoked,
    #[error("the enrollment token expired too long ago")]
    Expired,
    #[error(transparent)]
    Store(#[from] super::Error),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Store(super::Error::Db(e))
    }
}

#[derive(FromRow)]
struct TokenRow {
    id: String,
    client_id: String,
    site_id: String,
    expires_at: i64,
    revoked_at: Option<i64>,
}

/// Store a report authenticated by the enrollment token whose hash is `token_hash`. Used-up
/// tokens are accepted (the success report comes after the enrollment spent the last use),
/// revoked ones are not, expired ones for [`EXPIRED_TOKEN_GRACE_MS`].
pub async fn create(
    db: &Db,
    token_hash: &str,
    report: &NewReport,
    source_ip: Option<String>,
) -> Result<InstallReport, TokenError> {
    let mut sel = Sql::new(
        "SELECT id, client_id, site_id, expires_at, revoked_at FROM enrollment_tokens \
         WHERE token_hash = ",
    );
    sel.bind(token_hash);
    let token = sel
        .query_as::<TokenRow>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(TokenError::Invalid)?;
    let now = now_ms();
    if token.revoked_at.is_some() {
        return Err(TokenError::Revoked);
    }
    if token.expires_at + EXPIRED_TOKEN_GRACE_MS <= now {
        return Err(TokenError::Expired);
    }
    let id = new_id();
    let mut ins = Sql::new(
        "INSERT INTO install_reports (id, client_id, site_id, enrollment_token_id, hostname, os, \
         arch, agent_version, status, step, message, source_ip, created_at) VALUES (",
    );
    ins.bind(&id)
        .push(", ")
        .bind(&token.client_id)
        .push(", ")
        .bind(&token.site_id)
        .push(", ")
        .bind(&token.id)
        .push(", ")
        .bind(&report.hostname)
        .push(", ")
        .bind(&report.os)
        .push(", ")
        .bind(&report.arch)
        .push(", ")
        .bind(report.agent_version.clone())
        .push(", ")
        .bind(&report.status)
        .push(", ")
        .bind(&report.step)
        .push(", ")
        .bind(&report.message)
        .push(", ")
        .bind(source_ip.clone())
        .push(", ")
        .bind(now)
        .push(")");
    ins.query().execute(db.pool()).await?;
    Ok(InstallReport {
        id,
        client_id: token.client_id,
        site_id: token.site_id,
        enrollment_token_id: token.id,
        hostname: report.hostname.clone(),
        os: report.os.clone(),
        arch: report.arch.clone(),
        agent_version: report.agent_version.clone(),
        status: report.status.clone(),
        step: report.step.clone(),
        message: report.message.clone(),
        source_ip,
        created_at: now,
    })
}

/// Filters of [`list`].
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub client_id: Option<&'a str>,
    pub site_id: Option<&'a str>,
    pub limit: i64,
}

/// Reports visible in `scope`, newest first.
pub async fn list(db: &Db, scope: &Scope, f: &Filter<'_>) -> Result<Vec<InstallReport>> {
    let mut sql = Sql::new(
        "SELECT id, client_id, site_id, enrollment_token_id, hostname, os, arch, agent_version, \
         status, step, message, source_ip, created_at FROM install_reports WHERE 1 = 1",
    );
    scope.restrict(&mut sql, "client_id");
    if let Some(c) = f.client_id {
        sql.push(" AND client_id = ").bind(c);
    }
    if let Some(s) = f.site_id {
        sql.push(" AND site_id = ").bind(s);
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .bind(f.limit);
    Ok(sql.query_as::<InstallReport>().fetch_all(db.pool()).await?)
}
