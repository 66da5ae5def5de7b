//! Database access. One [`Db`] wraps an `sqlx::AnyPool` that talks to SQLite or PostgreSQL,
//! chosen by the URL. Every query is written once, in SQL both dialects accept: ids are UUID
//! text, timestamps are BIGINT unix milliseconds, JSON is TEXT, flags are integers, and
//! placeholders are `$1`-style (SQLite accepts them as numbered parameters).
//!
//! Tenancy is enforced here, not in the handlers: every function that reads, lists or changes
//! client-owned data takes a [`Scope`] and puts it in its `WHERE` clause, so an object outside
//! the caller's scope is simply not found.
//!
//! Every change writes its audit entry in the same transaction as the change ([`audit`]).

pub mod agent_status;
pub mod agents;
pub mod audit;
pub mod clients;
pub mod enrollment;
pub mod install_reports;
pub mod inventory;
pub mod policies;
pub mod settings;
pub mod users;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Executor, Transaction};

/// Migrations shared by both dialects, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which database the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// The data a caller may see: everything, or one client's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// All clients (users and tokens with no `client_id`).
    All,
    /// One client, by id.
    Client(String),
}

impl Scope {
    /// Build a scope from an optional client id (`None` = all clients).
    pub fn from_client_id(client_id: Option<String>) -> Self {
        match client_id {
            None => Scope::All,
            Some(id) => Scope::Client(id),
        }
    }

    /// The client id, if the scope is restricted to one client.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Client(id) => Some(id),
        }
    }

    /// Whether objects owned by `client_id` are inside this scope.
    pub fn covers(&self, client_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Client(id) => id == client_id,
        }
    }

    /// Append ` AND <column> = $n` when restricted to one client.
    pub fn restrict(&self, sql: &mut Sql, column: &str) {
        if let Scope::Client(id) = self {
            sql.push(" AND ").push(column).push(" = ").bind(id.clone());
        }
    }
}

/// Errors the store reports; the API turns them into HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist, or is outside the caller's scope.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a dependency stops the change.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request names something invalid (for example a site of another client).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Error {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Map a unique-constraint violation to a 409 conflict, pass other errors through.
pub(crate) fn on_unique(
    err: sqlx::Error,
    code: &'static str,
    message: impl FnOnce() -> String,
) -> Error {
    let unique = err
        .as_database_error()
        .map(|e| e.is_unique_violation())
        .unwrap_or(false);
    if unique {
        Error::conflict(code, message())
    } else {
        Error::Db(err)
    }
}

/// A bound parameter of a [`Sql`] statement.
#[derive(Clone, Debug)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(v)
    }
}
impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_owned())
    }
}
impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Text(v.clone())
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::OptText(v)
    }
}
impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Bind::OptText(v.map(str::to_owned))
    }
}
impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::OptInt(v)
    }
}

/// A statement assembled piece by piece with `$n` placeholders. sqlx's own `QueryBuilder`
/// writes `?` for the Any driver, which PostgreSQL refuses, hence this small builder.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// Append raw SQL text (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append a placeholder and bind `value` to it.
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.binds.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    /// Append a comma-separated list of placeholders, one per value.
    pub fn bind_list<I, V>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Bind>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// A new statement: `prefix` followed by this one's text, with the same binds. Used to
    /// run one `WHERE` clause both as `SELECT COUNT(*)` and as the page query.
    pub fn prefixed(&self, prefix: &str) -> Sql {
        Sql {
            text: format!("{prefix}{}", self.text),
            binds: self.binds.clone(),
        }
    }

    /// Fetch a single `COUNT(*)`-like integer.
    pub async fn fetch_i64<'e, E>(&self, executor: E) -> sqlx::Result<i64>
    where
        E: sqlx::Executor<'e, Database = Any>,
    {
        let row = self.query().fetch_one(executor).await?;
        sqlx::Row::try_get(&row, 0)
    }

    /// The sqlx query, ready to execute or fetch.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind(v.clone()),
                Bind::OptText(v) => q.bind(v.clone()),
                Bind::Int(v) => q.bind(*v),
                Bind::OptInt(v) => q.bind(*v),
            };
        }
        q
    }

    /// A typed query (`FromRow`).
    pub fn query_as<T>(&self) -> sqlx::query::QueryAs<'_, Any, T, AnyArguments<'_>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as::<Any, T>(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Text(v) => q.bind(v.clone()),
                Bind::OptText(v) => q.bind(v.clone()),
                Bind::Int(v) => q.bind(*v),
                Bind::OptInt(v) => q.bind(*v),
            };
        }
        q
    }
}

/// The database handle shared by the whole server.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    kind: DbKind,
}

/// A transaction on either database.
pub type Tx = Transaction<'static, Any>;

impl Db {
    /// Connect to `url` (`sqlite://...` or `postgres://...`), creating the SQLite file and its
    /// directory if needed. Does not run migrations; see [`Db::migrate`].
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (kind, url) = prepare_url(url)?;
        let mut opts = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10));
        if kind == DbKind::Sqlite {
            if url.contains(":memory:") || url.contains("mode=memory") {
                // Every connection to an in-memory database is a database of its own.
                opts = opts
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        Ok(Db { pool, kind })
    }

    /// Run the embedded migrations. Safe to run again, and on PostgreSQL safe for several
    /// replicas starting together (sqlx holds an advisory lock while migrating).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begin a transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`) so
    /// two writers queue on the busy timeout instead of failing on a lock upgrade.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.pool.begin().await,
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Work out the dialect and, for SQLite, create the file's directory and ask for the file to
/// be created (`mode=rwc`).
fn prepare_url(url: &str) -> anyhow::Result<(DbKind, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((DbKind::Postgres, url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        anyhow::bail!("database_url must start with sqlite:// or postgres:// (got {url:?})");
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create the database directory {}: {e}",
                        dir.display()
                    )
                })?;
            }
        }
    }
    let url = match params {
        Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => format!("sqlite://{path}?{q}"),
        Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    };
    Ok((DbKind::Sqlite, url))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new UUIDv7 as text: time-ordered, so ids sort by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Escape `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_numbers_placeholders() {
        let mut s = Sql::new("SELECT 1 WHERE a = ");
        s.bind("x")
            .push(" AND b IN (")
            .bind_list([1i64, 2])
            .push(")");
        assert_eq!(s.text(), "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
    }

    #[test]
    fn sqlite_url_gets_create_mode() {
        let dir = std::env::temp_dir().join(format!("rmm-url-{}", new_id()));
        let url = format!("sqlite://{}/x/rmm.db", dir.display());
        let (kind, out) = prepare_url(&url).unwrap();
        assert_eq!(kind, DbKind::Sqlite);
        assert!(out.ends_with("rmm.db?mode=rwc"));
        assert!(dir.join("x").is_dir());
        let _ = std::fs::remove_dir_all(dir);
        assert!(prepare_url("mysql://x").is_err());
    }

    #[test]
    fn like_escape_escapes() {
        assert_eq!(like_escape("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}

/// Serde helpers that present stored values in API form: timestamps (unix ms) as RFC 3339
/// strings, JSON kept as TEXT as JSON values.
pub mod ser {
    use serde::Serializer;

    /// RFC 3339 text (UTC, milliseconds) of a unix-milliseconds timestamp.
    pub fn rfc3339(ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let t = t
            .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
            .unwrap_or(t);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    pub fn ts<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*ms))
    }

    pub fn opt_ts<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn json_text<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        serde::Serialize::serialize(&v, s)
    }
}
