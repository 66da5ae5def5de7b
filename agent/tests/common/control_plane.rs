//! The real control plane for the agent's end-to-end tests: `rmm-control-plane serve` on
//! SQLite in a temp dir with an admin login, and a small REST client for its API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, ChildGuard};

pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "e2e-password-123";

/// The control-plane binary: `RMM_TEST_CONTROL_PLANE`, else next to this test's own target dir.
pub fn control_plane_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RMM_TEST_CONTROL_PLANE") {
        return PathBuf::from(p);
    }
    // <target>/<profile>/deps/control_e2e-<hash> → <target>/<profile>/rmm-control-plane
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rmm-control-plane"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo build -p rmm-control-plane`; `cargo test --workspace` \
         and deploy/test.sh build it) or set RMM_TEST_CONTROL_PLANE",
        bin.display()
    );
    bin
}

pub struct ControlPlane {
    pub child: Option<ChildGuard>,
    pub db_url: String,
    pub port: u16,
    pub base: String,
    pub log: PathBuf,
    /// Extra environment of `serve` (e.g. `RMM_CP_RELEASES__SIGNING_KEYS`); change it between
    /// `stop` and `start` to restart with another configuration on the same database.
    pub env: Vec<(String, String)>,
}

impl ControlPlane {
    pub fn new(dir: &Path) -> Self {
        Self::with_env(dir, &[])
    }

    /// Like [`ControlPlane::new`], `serve` with `env` added.
    pub fn with_env(dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let db_url = format!("sqlite://{}/rmm.db", dir.display());
        let out = Command::new(control_plane_bin())
            .args(["user", "create", "--email", ADMIN, "--role", "admin"])
            .args(["--password", PASSWORD])
            .env("RMM_CP_DATABASE_URL", &db_url)
            .output()
            .expect("running rmm-control-plane user create");
        assert!(
            out.status.success(),
            "user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cp = Self {
            child: None,
            db_url,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log: dir.join("control-plane.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        cp.start();
        cp
    }

    /// Starts `serve` on the same port and database; waits until it answers.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(ChildGuard::spawn(
            Command::new(control_plane_bin())
                .arg("serve")
                .env("RMM_CP_LISTEN", format!("127.0.0.1:{}", self.port))
                .env("RMM_CP_DATABASE_URL", &self.db_url)
                .env(
                    "RMM_CP_JWT_SECRET",
                    "e2e-jwt-secret-0123456789abcdef0123456789",
                )
                .env("RMM_CP_LOGIN_RATE_PER_MINUTE", "100000")
                .env("RMM_CP_ENROLL_RATE_PER_MINUTE", "100000")
                .env("RMM_CP_OPAMP_HEARTBEAT_INTERVAL_SECONDS", "1")
                .env("RMM_CP_OPAMP_OFFLINE_TIMEOUT_SECONDS", "3")
                .env_remove("RUST_LOG")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log),
        ));
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let up = super::poll(Duration::from_secs(30), Duration::from_millis(50), || {
            matches!(super::http_get(addr, "/healthz"), Ok((200, _))).then_some(())
        });
        assert!(
            up.is_some(),
            "control plane did not come up:\n{}",
            self.log()
        );
    }

    pub fn stop(&mut self) {
        drop(self.child.take());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub jwt: String,
}

impl Api {
    pub async fn login(base: &str) -> Self {
        let http = reqwest::Client::new();
        let v: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": ADMIN, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwt = v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login: {v}"))
            .to_owned();
        Self {
            http,
            base: base.to_owned(),
            jwt,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// The agent's row in `GET /api/v1/agents`, if listed.
    pub async fn agent(&self, id: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/agents", self.base))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    }

    /// Polls until the agent's row satisfies `f`; returns the row and the time it took.
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let t = Instant::now();
        let mut last = None;
        while t.elapsed() < limit {
            if let Some(a) = self.agent(id).await {
                if f(&a) {
                    return (a, t.elapsed());
                }
                last = Some(a);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("agent not {what} within {limit:?}; last row: {last:?}");
    }
}

impl Api {
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {v}");
        v
    }
}

impl Api {
    /// `method path` with a JSON body; returns the status and the JSON answer (`null` if none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.jwt);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /api/v1/releases`: `build` as linux/<this machine's arch> `version` in `channel`,
    /// with its signature text (`rmm-ed25519-sig:...`).
    pub async fn upload_release(
        &self,
        build: Vec<u8>,
        version: &str,
        channel: &str,
        signature: &str,
    ) -> (reqwest::StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/releases", self.base))
            .query(&[
                ("version", version),
                ("os", "linux"),
                ("arch", std::env::consts::ARCH),
                ("channel", channel),
                ("signature", signature),
            ])
            .bearer_auth(&self.jwt)
            .header("content-type", "application/octet-stream")
            .body(build)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
