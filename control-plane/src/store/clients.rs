//! Clients (tenants) and their sites.

use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::audit::{self, Actor, Change};
use super::{new_id, now_ms, on_unique, ser, Db, Error, Result, Scope, Sql};

/// A client of the managed-service provider.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Client {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// A site of a client.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Site {
    pub id: String,
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    pub name: String,
    /// Agents enrolled in the site.
    pub agent_count: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser::ts")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

const SITE_SELECT: &str = "SELECT s.id, s.client_id, c.name AS client_name, s.name, \
     (SELECT COUNT(*) FROM agents a WHERE a.site_id = s.id) AS agent_count, \
     s.created_at, s.updated_at FROM sites s JOIN clients c ON c.id = s.client_id WHERE 1 = 1";

/// Clients visible in `scope`, by name.
pub async fn list_clients(db: &Db, scope: &Scope) -> Result<Vec<Client>> {
    let mut sql = Sql::new("SELECT id, name, created_at, updated_at FROM clients WHERE 1 = 1");
    scope.restrict(&mut sql, "id");
    sql.push(" ORDER BY lower(name), id");
    Ok(sql.query_as::<Client>().fetch_all(db.pool()).await?)
}

/// One client, if visible in `scope`.
pub async fn get_client(db: &Db, scope: &Scope, id: &str) -> Result<Client> {
    let mut sql = Sql::new("SELECT id, name, created_at, updated_at FROM clients WHERE id = ");
    sql.bind(id);
    scope.restrict(&mut sql, "id");
    sql.query_as::<Client>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("client"))
}

fn duplicate_client(name: &str) -> String {
    format!("a client named {name:?} already exists")
}

/// Create a client. Names are unique, ignoring case.
pub async fn create_client(db: &Db, actor: &Actor, name: &str) -> Result<Client> {
    let now = now_ms();
    let client = Client {
        id: new_id(),
        name: name.to_owned(),
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("INSERT INTO clients (id, name, created_at, updated_at) VALUES (");
    sql.bind(&client.id)
        .push(", ")
        .bind(name)
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(")");
    sql.query()
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, "duplicate_name", || duplicate_client(name)))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "client.create",
            target_type: "client",
            target_id: Some(&client.id),
            client_id: Some(&client.id),
            details: json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(client)
}

/// Rename a client visible in `scope`.
pub async fn rename_client(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    id: &str,
    name: &str,
) -> Result<Client> {
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("SELECT name FROM clients WHERE id = ");
    sql.bind(id);
    scope.restrict(&mut sql, "id");
    let old: String = sql
        .query()
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| sqlx::Row::try_get(&r, 0))
        .transpose()?
        .ok_or(Error::NotFound("client"))?;
    let mut up = Sql::new("UPDATE clients SET name = ");
    up.bind(name)
        .push(", updated_at = ")
        .bind(now_ms())
        .push(" WHERE id = ")
        .bind(id);
    up.query()
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, "duplicate_name", || duplicate_client(name)))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "client.update",
            target_type: "client",
            target_id: Some(id),
            client_id: Some(id),
            details: json!({ "name": { "old": old, "new": name } }),
        },
    )
    .await?;
    tx.commit().await?;
    get_client(db, scope, id).await
}

/// Delete a client that has no sites, users or API tokens left.
pub async fn delete_client(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let mut sql = Sql::new("SELECT name FROM clients WHERE id = ");
    sql.bind(id);
    scope.restrict(&mut sql, "id");
    let name: String = sql
        .query()
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| sqlx::Row::try_get(&r, 0))
        .transpose()?
        .ok_or(Error::NotFound("client"))?;
    let mut left = Vec::new();
    for (table, one, many) in [
        ("sites", "site", "sites"),
        ("users", "user", "users"),
        ("api_tokens", "API token", "API tokens"),
        ("policies", "policy", "policies"),
    ] {
        let mut c = Sql::new(&format!("SELECT COUNT(*) FROM {table} WHERE client_id = "));
        c.bind(id);
        let n = c.fetch_i64(&mut *tx).await?;
        if n > 0 {
            left.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    if !left.is_empty() {
        return Err(Error::conflict(
            "client_not_empty",
            format!(
                "client {name:?} still has {}; delete them first",
                left.join(", ")
            ),
        ));
    }
    // Global policies assigned to this client go with it (the policies themselves stay).
    delete_assignments_to(&mut tx, "client", id).await?;
    let mut del = Sql::new("DELETE FROM clients WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "client.delete",
            target_type: "client",
            target_id: Some(id),
            client_id: Some(id),
            details: json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Delete the policy assignments whose target (`scope` `target_id`) is being deleted, so that
/// no assignment outlives its target.
pub(crate) async fn delete_assignments_to(
    tx: &mut super::Tx,
    scope: &str,
    target_id: &str,
) -> Result<()> {
    let mut del = Sql::new("DELETE FROM policy_assignments WHERE scope = ");
    del.bind(scope).push(" AND target_id = ").bind(target_id);
    del.query().execute(&mut **tx).await?;
    Ok(())
}

/// Sites visible in `scope`, optionally of one client, by client then site name.
pub async fn list_sites(db: &Db, scope: &Scope, client_id: Option<&str>) -> Result<Vec<Site>> {
    let mut sql = Sql::new(SITE_SELECT);
    scope.restrict(&mut sql, "s.client_id");
    if let Some(c) = client_id {
        sql.push(" AND s.client_id = ").bind(c);
    }
    sql.push(" ORDER BY lower(c.name), lower(s.name), s.id");
    Ok(sql.query_as::<Site>().fetch_all(db.pool()).await?)
}

/// One site, if visible in `scope`.
pub async fn get_site(db: &Db, scope: &Scope, id: &str) -> Result<Site> {
    let mut sql = Sql::new(SITE_SELECT);
    sql.push(" AND s.id = ").bind(id);
    scope.restrict(&mut sql, "s.client_id");
    sql.query_as::<Site>()
        .fetch_optional(db.pool())
        .await?
        .ok_or(Error::NotFound("site"))
}

fn duplicate_site(name: &str) -> String {
    format!("this client already has a site named {name:?}")
}

/// Create a site in a client visible in `scope`.
pub async fn create_site(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    client_id: &str,
    name: &str,
) -> Result<Site> {
    get_client(db, scope, client_id).await?;
    let now = now_ms();
    let id = new_id();
    let mut tx = db.begin().await?;
    let mut sql =
        Sql::new("INSERT INTO sites (id, client_id, name, created_at, updated_at) VALUES (");
    sql.bind(&id)
        .push(", ")
        .bind(client_id)
        .push(", ")
        .bind(name)
        .push(", ")
        .bind(now)
        .push(", ")
        .bind(now)
        .push(")");
    sql.query()
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, "duplicate_name", || duplicate_site(name)))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "site.create",
            target_type: "site",
            target_id: Some(&id),
            client_id: Some(client_id),
            details: json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    get_site(db, scope, &id).await
}

/// Rename a site visible in `scope`.
pub async fn rename_site(
    db: &Db,
    scope: &Scope,
    actor: &Actor,
    id: &str,
    name: &str,
) -> Result<Site> {
    let site = get_site(db, scope, id).await?;
    let mut tx = db.begin().await?;
    let mut up = Sql::new("UPDATE sites SET name = ");
    up.bind(name)
        .push(", updated_at = ")
        .bind(now_ms())
        .push(" WHERE id = ")
        .bind(id);
    up.query()
        .execute(&mut *tx)
        .await
        .map_err(|e| on_unique(e, "duplicate_name", || duplicate_site(name)))?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "site.update",
            target_type: "site",
            target_id: Some(id),
            client_id: Some(&site.client_id),
            details: json!({ "name": { "old": site.name, "new": name } }),
        },
    )
    .await?;
    tx.commit().await?;
    get_site(db, scope, id).await
}

/// Delete a site with no agents; its enrollment tokens and install reports go with it.
pub async fn delete_site(db: &Db, scope: &Scope, actor: &Actor, id: &str) -> Result<()> {
    let site = get_site(db, scope, id).await?;
    let mut tx = db.begin().await?;
    let mut c = Sql::new("SELECT COUNT(*) FROM agents WHERE site_id = ");
    c.bind(id);
    let n = c.fetch_i64(&mut *tx).await?;
    if n > 0 {
        return Err(Error::conflict(
            "site_not_empty",
            format!(
                "site {:?} still has {n} agent{}; move or delete them first",
                site.name,
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    // Its enrollment tokens and the install reports they authenticated go with it.
    for table in ["install_reports", "enrollment_tokens"] {
        let mut del = Sql::new(&format!("DELETE FROM {table} WHERE site_id = "));
        del.bind(id);
        del.query().execute(&mut *tx).await?;
    }
    delete_assignments_to(&mut tx, "site", id).await?;
    let mut del = Sql::new("DELETE FROM sites WHERE id = ");
    del.bind(id);
    del.query().execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        actor,
        Change {
            action: "site.delete",
            target_type: "site",
            target_id: Some(id),
            client_id: Some(&site.client_id),
            details: json!({ "name": site.name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
