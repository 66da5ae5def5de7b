//! The release catalog: agent builds by version, OS, architecture and channel, each with its
//! SHA-256 and signature. A release whose signature does not verify against one of the
//! configured public keys is refused at insert, so the catalog only ever holds builds that
//! agents will accept.

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::rollout::parse_version;
use super::signing::{self, PublicKey, ReleaseSignature};
use crate::store::audit::{self, Actor, Change};
use crate::store::{new_id, now_ms, on_unique, Db, Error, Result, Sql};

/// Operating systems agents are built for.
pub const OSES: &[&str] = &["linux", "windows", "macos"];
/// CPU architectures agents are built for (Rust target names).
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];
/// Release channels (the same names as `updates.channel` in policies).
pub const CHANNELS: &[&str] = &["stable", "beta", "edge"];

/// A release to add to the catalog.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub version: String,
    pub os: String,
    pub arch: String,
    pub channel: String,
    /// Hex SHA-256 of the build.
    pub sha256: String,
    pub size_bytes: i64,
    /// `rmm-ed25519-sig:…` over the build (see [`signing`]).
    pub signature: String,
    /// Where the build is downloaded from when registered by URL; `None` when the control
    /// plane stores it.
    pub source_url: Option<String>,
}

/// One release of the catalog.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq, ToSchema)]
pub struct Release {
    pub id: String,
    pub version: String,
    pub os: String,
    pub arch: String,
    pub channel: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub signature: String,
    /// The trusted key the signature verified with.
    pub key_id: String,
    pub source_url: Option<String>,
    pub created_at: i64,
}

fn one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_release",
            format!(
                "{field}: unknown {field} {value:?}; expected one of {}",
                allowed.join(", ")
            ),
        ))
    }
}

/// Check a new release, including its signature against `trusted` keys. Returns the
/// normalised version text and the id of the key that verified it.
pub fn validate(new: &NewRelease, trusted: &[PublicKey]) -> Result<(String, String)> {
    let invalid = |m: String| Error::invalid("invalid_release", m);
    let version = parse_version(&new.version).map_err(|e| invalid(format!("version: {e}")))?;
    one_of("os", &new.os, OSES)?;
    one_of("arch", &new.arch, ARCHES)?;
    one_of("channel", &new.channel, CHANNELS)?;
    let digest: signing::Sha256Digest = hex::decode(&new.sha256)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("sha256: expected 64 hex characters".into()))?;
    if new.size_bytes <= 0 {
        return Err(invalid("size_bytes: must be positive".into()));
    }
    if let Some(url) = &new.source_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("source_url: expected an http(s) URL".into()));
        }
    }
    if trusted.is_empty() {
        return Err(Error::invalid(
            "no_release_keys",
            "no release public keys are configured; releases cannot be verified",
        ));
    }
    let sig = ReleaseSignature::parse(&new.signature)
        .map_err(|e| Error::invalid("bad_signature", e.to_string()))?;
    let key = signing::verify_with_any(trusted, &digest, &sig)
        .map_err(|e| Error::invalid("bad_signature", e.to_string()))?;
    Ok((version.to_string(), key.key_id()))
}

/// Add a release after verifying it; (version, os, arch, channel) is unique.
pub async fn insert(
    db: &Db,
    actor: &Actor,
    new: &NewRelease,
    trusted: &[PublicKey],
) -> Result<Release> {
    let (version, key_id) = validate(new, trusted)?;
    let r = Release {
        id: new_id(),
        version,
        os: new.os.clone(),
        arch: new.arch.clone(),
        channel: new.channel.clone(),
        sha256: new.sha256.to_ascii_lowercase(),
        size_bytes: new.size_bytes,
        signature: new.signature.trim().to_owned(),
        key_id,
        source_url: new.source_url.clone(),
        created_at: now_ms(),
    };
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO releases (id, version, os, arch, channel, sha256, size_bytes, signature, \
         key_id, source_url, created_at) VALUES (",
    );
    sql.bind(&r.id)
        .push(", ")
        .bind(&r.version)
        .push(", ")
        .bind(&r.os)
        .push(", ")
        .bind(&r.arch)
        .push(", ")
        .bind(&r.channel)
        .push(", ")
        .bind(&r.sha256)
        .push(", ")
        .bind(r.size_bytes)
        .push(", ")
        .bind(&r.signature)
        .push(", ")
        .bind(&r.key_id)
        .push(", ")
        .bind(r.source_url.clone())
        .push(", ")
        .bind(r.created_at)
        .push(")");
    sql.query().execute(&mut *tx).await.map_err(|e| {
        on_unique(e, "duplicate_release", || {
            format!(
                "release {} for {}/{} is already in channel {}",
                r.version, r.os, r.arch, r.channel
            )
        })
    })?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "release.create",
            target_type: "release",
            target_id: Some(&r.id),
            client_id: None,
            details: json!({
                "version": r.version, "os": r.os, "arch": r.arch, "channel": r.channel,
                "sha256": r.sha256, "key_id": r.key_id,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(r)
}

const COLUMNS: &str = "SELECT id, version, os, arch, channel, sha256, size_bytes, signature, \
                       key_id, source_url, created_at FROM releases WHERE 1 = 1";

/// Filters for [`list`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub channel: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
}

/// Releases matching `f`, newest version first (semver precedence).
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<Release>> {
    let mut sql = Sql::new(COLUMNS);
    for (col, v) in [("channel", &f.channel), ("os", &f.os), ("arch", &f.arch)] {
        if let Some(v) = v {
            sql.push(" AND ").push(col).push(" = ").bind(v);
        }
    }
    let mut rows: Vec<Release> = sql.query_as().fetch_all(db.pool()).await?;
    // Versions were normalised at insert, so they parse; precedence is not text order.
    rows.sort_by(
        |a, b| match (parse_version(&a.version), parse_version(&b.version)) {
            (Ok(x), Ok(y)) => y
                .cmp_precedence(&x)
                .then_with(|| b.created_at.cmp(&a.created_at)),
            _ => b.version.cmp(&a.version),
        },
    );
    Ok(rows)
}

/// One release by its identifying quadruple.
pub async fn get(db: &Db, channel: &str, version: &str, os: &str, arch: &str) -> Result<Release> {
    let version = parse_version(version)
        .map_err(|e| Error::invalid("invalid_release", format!("version: {e}")))?
        .to_string();
    let mut sql = Sql::new(COLUMNS);
    sql.push(" AND channel = ")
        .bind(channel)
        .push(" AND version = ")
        .bind(version)
        .push(" AND os = ")
        .bind(os)
        .push(" AND arch = ")
        .bind(arch);
    sql.query_as()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("release"))
}

/// One release by id.
pub async fn by_id(db: &Db, id: &str) -> Result<Release> {
    let mut sql = Sql::new(COLUMNS);
    sql.push(" AND id = ").bind(id);
    sql.query_as()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("release"))
}

/// Remove a release from the catalog (the caller checks no rollout targets it).
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<Release> {
    let r = by_id(db, id).await?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("DELETE FROM releases WHERE id = ");
    sql.bind(id);
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "release.delete",
            target_type: "release",
            target_id: Some(id),
            client_id: None,
            details: json!({
                "version": r.version, "os": r.os, "arch": r.arch, "channel": r.channel,
                "sha256": r.sha256,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(r)
}
