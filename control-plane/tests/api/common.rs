//! Test harness: a control plane on SQLite or PostgreSQL, in-process (`serve()` on a port-0
//! listener) or as the real binary, and an HTTP client with the API's conventions.
//!
//! PostgreSQL tests connect to `RMM_TEST_PG_URL` (set by `source deploy/test-env.sh`), create
//! a database of their own and drop it at the end. Without that variable they are skipped with
//! a message, unless `CI` or `RMM_TEST_REQUIRE_PG` is set, in which case they fail.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rmm_control_plane::config::Config;
use rmm_control_plane::releases::signing::{self, SecretKey};
use rmm_control_plane::store::{audit::Actor, Db, Scope};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "root-password-123";

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    /// The PostgreSQL backend, or `None` (skip) when no server is configured.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("RMM_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres { admin_url: url }),
            _ => {
                if std::env::var_os("CI").is_some()
                    || std::env::var_os("RMM_TEST_REQUIRE_PG").is_some()
                {
                    panic!("RMM_TEST_PG_URL is not set: run `source deploy/test-env.sh` first");
                }
                eprintln!("SKIPPED: RMM_TEST_PG_URL is not set (source deploy/test-env.sh to run on PostgreSQL)");
                None
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }
}

/// Run a test function once per backend: `backend_tests!(name);` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(b) = $crate::common::Backend::postgres() {
                        super::$name(b).await
                    }
                }
            }
        )*
    };
}

/// A database made for one test: a SQLite file in a temporary directory, or a fresh
/// PostgreSQL database.
pub struct TestDb {
    pub url: String,
    pub dir: PathBuf,
    pg: Option<(String, String)>, // (admin url, database name)
}

fn pg_url_with_db(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        let dir =
            std::env::temp_dir().join(format!("rmm-cp-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/data/rmm.db", dir.display()),
                dir,
                pg: None,
            },
            Backend::Postgres { admin_url } => {
                let name = format!("rmm_test_{}", uuid::Uuid::new_v4().simple());
                pg_exec(admin_url, &format!("CREATE DATABASE {name}")).await;
                TestDb {
                    url: pg_url_with_db(admin_url, &name),
                    dir,
                    pg: Some((admin_url.clone(), name)),
                }
            }
        }
    }

    /// Drop the database and the temporary directory.
    pub async fn remove(self) {
        if let Some((admin, name)) = &self.pg {
            pg_exec(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A direct handle on the test's database.
    pub async fn connect(&self) -> Db {
        Db::connect(&self.url, 2)
            .await
            .expect("connect to test database")
    }
}

async fn pg_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to RMM_TEST_PG_URL");
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Settings for a test server: loopback, port 0, generous rate limits.
pub fn test_config(db_url: &str) -> Config {
    let mut c = Config::load_from(None, Vec::<(String, String)>::new()).unwrap();
    c.listen = "127.0.0.1:0".into();
    c.database_url = db_url.to_owned();
    c.database_max_connections = 5;
    c.login_rate_per_minute = 100_000;
    c.enroll_rate_per_minute = 100_000;
    c.log = "warn".into();
    c
}

/// A running control plane and a client for it.
pub struct Server {
    pub base: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    child: Option<tokio::process::Child>,
    /// The global admin's login token.
    pub admin: String,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// Create the bootstrap admin directly in the database (as `user create` does).
pub async fn create_admin(db_url: &str) {
    let mut c = test_config(db_url);
    c.database_max_connections = 1;
    let db = rmm_control_plane::open_db(&c).await.unwrap();
    let hash = rmm_control_plane::secrets::hash_password(ADMIN_PASSWORD).unwrap();
    rmm_control_plane::store::users::create_user(
        &db,
        &Scope::All,
        &Actor::cli(),
        ADMIN_EMAIL,
        &hash,
        "admin",
        None,
    )
    .await
    .unwrap();
    db.close().await;
}

impl Server {
    /// Start in-process with default test settings.
    pub async fn start(backend: &Backend) -> Server {
        Self::start_with(backend, |_| {}).await
    }

    /// Start in-process, with settings adjusted by `tweak`.
    pub async fn start_with(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Server {
        let db = TestDb::new(backend).await;
        create_admin(&db.url).await;
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(rmm_control_plane::serve(listener, config, async {
            let _ = rx.await;
        }));
        let mut s = Server {
            base,
            db,
            http: http_client(),
            stop: Some(tx),
            task: Some(task),
            child: None,
            admin: String::new(),
        };
        s.admin = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        s
    }

    /// Start in-process from an [`AppState`] that `edit` may change (e.g. the release
    /// planner's clock); returns the server and a handle on its state.
    pub async fn start_state(
        backend: &Backend,
        tweak: impl FnOnce(&mut Config),
        edit: impl FnOnce(&mut rmm_control_plane::AppState),
    ) -> (Server, rmm_control_plane::AppState) {
        let db = TestDb::new(backend).await;
        create_admin(&db.url).await;
        let mut config = test_config(&db.url);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut state = rmm_control_plane::AppState::new(config, addr)
            .await
            .unwrap();
        edit(&mut state);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(rmm_control_plane::serve_state(
            listener,
            state.clone(),
            async {
                let _ = rx.await;
            },
        ));
        let mut s = Server {
            base: format!("http://{addr}"),
            db,
            http: http_client(),
            stop: Some(tx),
            task: Some(task),
            child: None,
            admin: String::new(),
        };
        s.admin = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        (s, state)
    }

    /// Start the real binary (`serve`) with `RMM_CP_*` environment variables; the admin is
    /// created with the binary's `user create`.
    pub async fn start_binary(backend: &Backend, env: &[(&str, &str)]) -> Server {
        let db = TestDb::new(backend).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rmm-control-plane"))
            .args([
                "user",
                "create",
                "--email",
                ADMIN_EMAIL,
                "--role",
                "admin",
                "--password",
                ADMIN_PASSWORD,
            ])
            .env("RMM_CP_DATABASE_URL", &db.url)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (child, base) = spawn_binary(&db.url, env).await;
        let mut s = Server {
            base,
            db,
            http: http_client(),
            stop: None,
            task: None,
            child: Some(child),
            admin: String::new(),
        };
        s.admin = s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        s
    }

    /// Stop the server and drop its database.
    pub async fn finish(mut self) {
        self.shutdown().await;
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                dir: PathBuf::new(),
                pg: None,
            },
        );
        db.remove().await;
    }

    /// Stop the server, keeping the database.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Log in and return the JWT.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let (st, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "login {email}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// One JSON request; returns the status and the parsed body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let st = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (st, v)
    }

    /// A request with a raw body and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let st = resp.status();
        let text = resp.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /api/v1/releases` of `data` as `token` (`None`: no credential), signed with `key`.
    /// The query is linux/x86_64/stable plus `params`, which add keys (`version`, `sha256`) or
    /// replace these.
    pub async fn upload_release(
        &self,
        token: Option<&str>,
        key: &SecretKey,
        params: &[(&str, &str)],
        data: Vec<u8>,
    ) -> (StatusCode, Value) {
        let sig = sign_release(key, &data);
        let mut query: Vec<(&str, &str)> = vec![
            ("os", "linux"),
            ("arch", "x86_64"),
            ("channel", "stable"),
            ("signature", sig.as_str()),
        ];
        for (k, v) in params {
            query.retain(|(qk, _)| qk != k);
            query.push((k, v));
        }
        let mut req = self
            .http
            .post(self.url("/api/v1/releases"))
            .query(&query)
            .header("content-type", "application/octet-stream")
            .body(data);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let st = resp.status();
        let text = resp.text().await.unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The control plane's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (st, v) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(st, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// POST as `token`, expecting 201; returns the body.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let (st, v) = self
            .call(Method::POST, path, Some(token), Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::CREATED, "POST {path} {body}: {v}");
        v
    }

    pub async fn new_client(&self, name: &str) -> String {
        id(&self
            .create("/api/v1/clients", &self.admin, json!({"name": name}))
            .await)
    }

    pub async fn new_site(&self, client_id: &str, name: &str) -> String {
        id(&self
            .create(
                &format!("/api/v1/clients/{client_id}/sites"),
                &self.admin,
                json!({"name": name}),
            )
            .await)
    }

    /// A new enrollment token for `site_id`; returns (id, secret).
    pub async fn new_enrollment_token(&self, site_id: &str, extra: Value) -> (String, String) {
        let mut body = json!({"site_id": site_id});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let v = self
            .create("/api/v1/enrollment-tokens", &self.admin, body)
            .await;
        (id(&v), v["token"].as_str().unwrap().to_owned())
    }

    /// Enroll a host; returns the whole answer (status checked by the caller).
    pub async fn enroll(
        &self,
        token: &str,
        host_id: &str,
        hostname: &str,
        extra: Value,
    ) -> (StatusCode, Value) {
        let mut body = json!({
            "token": token, "host_id": host_id, "hostname": hostname,
            "os": "linux", "arch": "x86_64", "agent_version": "0.1.0",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.call(Method::POST, "/api/v1/enroll", None, Some(body))
            .await
    }

    /// Enroll a new host in `site_id` with a fresh token; returns (agent id, secret).
    pub async fn new_agent(&self, site_id: &str, hostname: &str, extra: Value) -> (String, String) {
        let (_, token) = self.new_enrollment_token(site_id, json!({})).await;
        let (st, v) = self
            .enroll(&token, &format!("host-{hostname}"), hostname, extra)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        (
            v["agent_id"].as_str().unwrap().to_owned(),
            v["agent_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Create a user and log in as them; returns (user id, JWT).
    pub async fn new_user(
        &self,
        email: &str,
        role: &str,
        client_id: Option<&str>,
    ) -> (String, String) {
        let v = self
            .create("/api/v1/users", &self.admin, json!({"email": email, "password": "password-123", "role": role, "client_id": client_id}))
            .await;
        (id(&v), self.login(email, "password-123").await)
    }

    /// Everything stored, as the global admin sees it: used to check a refused request changed
    /// nothing.
    pub async fn snapshot(&self) -> Value {
        let mut out = serde_json::Map::new();
        for p in [
            "/api/v1/clients",
            "/api/v1/sites",
            "/api/v1/agents?limit=1000",
            "/api/v1/enrollment-tokens",
            "/api/v1/users",
            "/api/v1/api-tokens",
            "/api/v1/audit-log?limit=1000",
        ] {
            let mut v = self.get(p, &self.admin).await;
            // Reading with an API token updates its last use; that is not a change.
            if let Some(items) = v["items"].as_array_mut() {
                for it in items {
                    if let Some(o) = it.as_object_mut() {
                        o.remove("last_used_at");
                    }
                }
            }
            out.insert(p.to_owned(), v);
        }
        Value::Object(out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Spawn `rmm-control-plane serve` on port 0 and wait for its `listening addr=...` log line.
pub async fn spawn_binary(db_url: &str, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rmm-control-plane"));
    cmd.arg("serve")
        .env("RMM_CP_LISTEN", "127.0.0.1:0")
        .env("RMM_CP_DATABASE_URL", db_url)
        .env("RMM_CP_LOGIN_RATE_PER_MINUTE", "100000")
        .env("RMM_CP_ENROLL_RATE_PER_MINUTE", "100000")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        let mut seen = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("listening addr=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening:\n{seen}");
    })
    .await
    .expect("server did not log its listen address in time");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{addr}"))
}

/// `rmm-ed25519-sig:...` of `data` signed with `key`, as `release sign` makes it.
pub fn sign_release(key: &SecretKey, data: &[u8]) -> String {
    key.sign_digest(&signing::sha256_reader(data).unwrap())
        .encode()
}

/// Serve `data` at `http://127.0.0.1:<port>/build` for the test's lifetime.
pub async fn serve_file(data: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/build",
        axum::routing::get(move || {
            let d = data.clone();
            async move { d }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/build")
}

/// The value of `series` (name and labels, exactly as exposed) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
}

pub fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// Assert an error answer: status, code, and that the message mentions `needle`.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, needle: &str) {
    let (st, v) = got;
    assert_eq!(st.as_u16(), status, "status of {v}");
    assert_eq!(v["error"]["code"], code, "code of {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message {msg:?} should mention {needle:?}"
    );
}

/// Path of a real tool from an environment variable or `.tools/bin`, if present.
pub fn tool(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/bin")
        .join(name);
    p.exists().then_some(p)
}

/// The tool, or `None` with a skip message (a failure when `CI` is set).
pub fn require_tool(env_var: &str, name: &str) -> Option<PathBuf> {
    let t = tool(env_var, name);
    if t.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} not found ({env_var} or .tools/bin/{name}); run deploy/install-test-tools.sh");
        }
        eprintln!("SKIPPED: {name} not found ({env_var} or .tools/bin/{name})");
    }
    t
}
