//! Users (people who log in) and API tokens (automation).

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::audit::{self, Actor, Change};
use super::{new_id, now_ms, on_unique, ser, Db, Error, Result, Scope, Sql, Tx};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// The one client this user may see; `null` = all clients.
    pub client_id: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// What login needs about a user.
#[derive(Debug, Clone, FromRow)]
pub struct LoginUser {
    pub id: String,
    pub password_hash: String,
}

const USER_COLUMNS: &str = "id, email, role, client_id, created_at, updated_at";

/// The user with this email (stored lower-case), with its password hash.
pub async fn find_login(db: &Db, email: &str) -> Result<Option<LoginUser>> {
    let mut sql = Sql::new("SELECT id, password_hash FROM users WHERE email = ");
    sql.bind(email.to_lowercase());
    Ok(sql
        .query_as::<LoginUser>()
        .fetch_optional(db.pool())
        .await?)
}

/// Users visible in `scope`, by email.
pub async fn list_users(db: &Db, scope: &Scope) -> Result<Vec<User>> {
    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
    scope.restrict(&mut sql, "client_id");
    sql.push(" ORDER BY email");
    Ok(sql.query_as::<User>().fetch_all(db.pool()).await?)
}

/// One user, if visible in `scope`.
pub async fn get_user(db: &Db, scope: &Scope, id: &str) -> Result<User> {
    let mut sql = Sql::new(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "));
    sql.bind(id);
    scope.restrict(&mut sql, "client_id");
    sql.query_as::<User>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("user"))
}

/// Audit scope of a user or token: its client, or none for all-clients credentials.
fn audit_client(client_id: Option<&str>) -> Option<&str> {
    client_id
}

/// Create a user. `client_id` must name an existing client visible in `scope`.
pub async fn create_user(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    email: &str,
    password_hash: &str,
    role: &str,
    client_id: Option<&str>,
) -> Result<User> {
    if let Some(c) = client_id {
        super::clients::get_client(db, scope, c).await?;
    }
    let email = email.to_lowercase();
    let now = now_ms();
    let id = new_id();
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO users (id, email, password_hash, role, client_id, created_at, updated_at) VALUES (",
    );
    sql.bind(&id)
        .push(", ")
        .bind(&email)
        .push(", ")
        .bind(password_hash)
        .push(", ")
        .bind(role)
        .push(", ")
        .bind(client_id)
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(")");
    sql.query().execute(&mut *tx).await.map_err(|e| {
        on_unique(e, "duplicate_email", || {
            format!("a user with email {email:?} already exists")
        })
    })?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "user.create",
            target_type: "user",
            target_id: Some(&id),
            client_id: audit_client(client_id),
            details: json!({ "email": email, "role": role, "client_id": client_id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(User {
        id,
        email,
        role: role.to_owned(),
        client_id: client_id.map(str::to_owned),
        created_at: now,
        updated_at: now,
    })
}

/// Changes to a user; `None` leaves a field as it is. `client_id: Some(None)` = all clients.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub role: Option<String>,
    pub client_id: Option<Option<String>>,
    pub password_hash: Option<String>,
}

async fn global_admins_other_than(tx: &mut Tx, id: &str) -> sqlx::Result<i64> {
    let mut c = Sql::new(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND client_id IS NULL AND id <> ",
    );
    c.bind(id);
    c.fetch_i64(&mut **tx).await
}

/// Update a user visible in `scope`. Refuses to take away the last all-clients admin.
pub async fn update_user(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    id: &str,
    up: UserUpdate,
) -> Result<User> {
    let user = get_user(db, scope, id).await?;
    if let Some(Some(c)) = &up.client_id {
        super::clients::get_client(db, scope, c).await?;
    }
    let mut tx = db.begin().await?;
    let was_global_admin = user.role == "admin" && user.client_id.is_none();
    let new_role = up.role.clone().unwrap_or_else(|| user.role.clone());
    let new_client = up
        .client_id
        .clone()
        .unwrap_or_else(|| user.client_id.clone());
    if was_global_admin
        && (new_role != "admin" || new_client.is_some())
        && global_admins_other_than(&mut tx, id).await? == 0
    {
        return Err(Error::conflict(
            "last_admin",
            "this is the last admin for all clients; create another first",
        ));
    }
    let mut sql = Sql::new("UPDATE users SET updated_at = ");
    sql.bind(now_ms());
    let mut details = serde_json::Map::new();
    if let Some(r) = &up.role {
        sql.push(", role = ").bind(r);
        details.insert("role".into(), json!({ "old": user.role, "new": r }));
    }
    if let Some(c) = &up.client_id {
        sql.push(", client_id = ").bind(c.clone());
        details.insert(
            "client_id".into(),
            json!({ "old": user.client_id, "new": c }),
        );
    }
    if let Some(h) = &up.password_hash {
        sql.push(", password_hash = ").bind(h);
        details.insert("password".into(), json!("changed"));
    }
    sql.push(" WHERE id = ").bind(id);
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "user.update",
            target_type: "user",
            target_id: Some(id),
            client_id: audit_client(user.client_id.as_deref()),
            details: serde_json::Value::Object(details),
        },
    )
    .await?;
    tx.commit().await?;
    get_user(db, &Scope::All, id).await
}

/// Delete a user visible in `scope`. Refuses to delete the last all-clients admin.
pub async fn delete_user(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<()> {
    let user = get_user(db, scope, id).await?;
    let mut tx = db.begin().await?;
    if user.role == "admin"
        && user.client_id.is_none()
        && global_admins_other_than(&mut tx, id).await? == 0
    {
        return Err(Error::conflict(
            "last_admin",
            "this is the last admin for all clients; create another first",
        ));
    }
    let mut del = Sql::new("DELETE FROM users WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "user.delete",
            target_type: "user",
            target_id: Some(id),
            client_id: audit_client(user.client_id.as_deref()),
            details: json!({ "email": user.email }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub token_prefix: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// The one client this token may see; `null` = all clients.
    pub client_id: Option<String>,
    /// Id of the user or token that created it.
    pub created_by: Option<String>,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::opt_ts")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(serialize_with = "ser::opt_ts")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "ser::opt_ts")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

const TOKEN_COLUMNS: &str =
    "id, name, token_prefix, role, client_id, created_by, created_at, expires_at, last_used_at, revoked_at";

/// API tokens visible in `scope`, newest first.
pub async fn list_api_tokens(db: &Db, scope: &Scope) -> Result<Vec<ApiToken>> {
    let mut sql = Sql::new(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE 1 = 1"
    ));
    scope.restrict(&mut sql, "client_id");
    sql.push(" ORDER BY created_at DESC, id DESC");
    Ok(sql.query_as::<ApiToken>().fetch_all(db.pool()).await?)
}

/// One API token, if visible in `scope`.
pub async fn get_api_token(db: &Db, scope: &Scope, id: &str) -> Result<ApiToken> {
    let mut sql = Sql::new(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = "
    ));
    sql.bind(id);
    scope.restrict(&mut sql, "client_id");
    sql.query_as::<ApiToken>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("API token"))
}

/// A new API token's stored fields.
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub token_hash: &'a str,
    pub token_prefix: &'a str,
    pub role: &'a str,
    pub client_id: Option<&'a str>,
    pub expires_at: Option<i64>,
}

/// Store a new API token (its hash). `client_id` must be visible in `scope`.
pub async fn create_api_token(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    t: NewApiToken<'_>,
) -> Result<ApiToken> {
    if let Some(c) = t.client_id {
        super::clients::get_client(db, scope, c).await?;
    }
    let id = new_id();
    let now = now_ms();
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "INSERT INTO api_tokens (id, name, token_hash, token_prefix, role, client_id, created_by, \
         created_at, expires_at) VALUES (",
    );
    sql.bind(&id)
        .push(", ")
        .bind(t.name)
        .push(", ")
        .bind(t.token_hash)
        .push(", ")
        .bind(t.token_prefix)
        .push(", ")
        .bind(t.role)
        .push(", ")
        .bind(t.client_id)
        .push(", ")
        .bind(actor.id.clone())
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(t.expires_at)
        .push(")");
    sql.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "api_token.create",
            target_type: "api_token",
            target_id: Some(&id),
            client_id: audit_client(t.client_id),
            details: json!({ "name": t.name, "role": t.role, "client_id": t.client_id, "token_prefix": t.token_prefix }),
        },
    )
    .await?;
    tx.commit().await?;
    get_api_token(db, &Scope::All, &id).await
}

/// Revoke an API token visible in `scope`; it stops working at once.
pub async fn revoke_api_token(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<ApiToken> {
    let token = get_api_token(db, scope, id).await?;
    if token.revoked_at.is_some() {
        return Err(Error::conflict(
            "already_revoked",
            "this API token is already revoked",
        ));
    }
    let mut tx = db.begin().await?;
    let mut up = Sql::new("UPDATE api_tokens SET revoked_at = ");
    up.bind(now_ms()).push(" WHERE id = ").bind(id);
    up.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "api_token.revoke",
            target_type: "api_token",
            target_id: Some(id),
            client_id: audit_client(token.client_id.as_deref()),
            details: json!({ "name": token.name }),
        },
    )
    .await?;
    tx.commit().await?;
    get_api_token(db, &Scope::All, id).await
}

/// A live API token found by its hash.
#[derive(Debug, Clone, FromRow)]
pub struct TokenAuth {
    pub id: String,
    pub name: String,
    pub role: String,
    pub client_id: Option<String>,
    pub last_used_at: Option<i64>,
}

/// Look up a token that is neither revoked nor expired, by hash; note its use (at most once a
/// minute, to keep reads from turning into writes).
pub async fn authenticate_api_token(db: &Db, hash: &str) -> Result<Option<TokenAuth>> {
    let now = now_ms();
    let mut sql = Sql::new(
        "SELECT id, name, role, client_id, last_used_at FROM api_tokens WHERE token_hash = ",
    );
    sql.bind(hash)
        .push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
        .bind(now)
        .push(")");
    let found = sql
        .query_as::<TokenAuth>()
        .fetch_optional(db.pool())
        .await?;
    if let Some(t) = &found {
        if t.last_used_at.map(|l| now - l > 60_000).unwrap_or(true) {
            let mut up = Sql::new("UPDATE api_tokens SET last_used_at = ");
            up.bind(now).push(" WHERE id = ").bind(&t.id);
            // Best effort: a busy database must not fail the request.
            let _ = up.query().execute(db.pool()).await;
        }
    }
    Ok(found)
}
