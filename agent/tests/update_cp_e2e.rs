//! Self-update end to end with real binaries only: the real `rmm-control-plane` (SQLite in a
//! temp dir, release keys made and builds signed with its own `release keygen` / `release
//! sign`) and a stamped copy of the real `rmm-agent` at version A, installed in a temp dir and
//! enrolled with `rmm-agent enroll`, so it pins the keys of the enroll response.
//!
//! (a) a 100 % rollout of B (uploaded through `POST /api/v1/releases`) ends with B running in
//! the same process, `installed` and B in the API; (b) the control plane restarted trusting
//! only another key (a compromised server) forces a B signed with that key: refused
//! (`signature verification failed`), A untouched, `failed`; (c) the stored build altered in
//! the releases storage dir: refused (`sha256 mismatch`), A untouched, `failed`; (d) a signed
//! `/bin/false` forced: rolled back, A runs again in the same process, `rolled_back` with the
//! agent's reason (the control plane keeps what follows the agent's `rolled back: ` prefix). Every case checks the agent process (PID, `/proc/PID/exe` bytes, `/metrics`) and
//! the control plane (`GET agents/{id}/update`, `GET agents/{id}`, `/metrics`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::control_plane::{control_plane_bin, Api, ControlPlane};
use common::update::{build_info_version, proc_exe, stamped};
use common::{free_port, parse_metrics, ChildGuard};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const VERSION_A: &str = "1.0.0-a";
const VERSION_B: &str = "1.0.1-b";
const WAIT: Duration = Duration::from_secs(30);
const KEYS_ENV: &str = "RMM_CP_RELEASES__SIGNING_KEYS";

/// A release key pair made by `rmm-control-plane release keygen`.
struct Key {
    dir: PathBuf,
    public: String,
}

impl Key {
    fn new(dir: &Path) -> Self {
        let out = Command::new(control_plane_bin())
            .args(["release", "keygen", "--out"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {out:?}");
        let public = std::fs::read_to_string(dir.join("release-signing.pub"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            dir: dir.to_owned(),
            public,
        }
    }

    /// `release sign`: the signature text (`rmm-ed25519-sig:...`).
    fn sign(&self, build: &Path) -> String {
        let sig = build.with_extension("sig");
        let out = Command::new(control_plane_bin())
            .args(["release", "sign", "--key"])
            .arg(self.dir.join("release-signing.key"))
            .arg("--file")
            .arg(build)
            .arg("--out")
            .arg(&sig)
            .output()
            .unwrap();
        assert!(out.status.success(), "sign: {out:?}");
        std::fs::read_to_string(sig).unwrap().trim().to_owned()
    }
}

/// The agent under test: build A installed at `<tmp>/bin/rmm-agent`, enrolled and running.
struct Agent {
    exe: PathBuf,
    a_bytes: Vec<u8>,
    id: String,
    child: ChildGuard,
    metrics: SocketAddr,
    log: PathBuf,
    identity: Value,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn previous(&self) -> PathBuf {
        let mut p = self.exe.as_os_str().to_owned();
        p.push(".previous");
        PathBuf::from(p)
    }

    /// Alive, in the process the test started, running `bytes` from the executable path.
    fn assert_runs(&mut self, pid: u32, bytes: &[u8], what: &str) {
        assert!(
            self.child.0.try_wait().unwrap().is_none(),
            "the agent process exited; log:\n{}",
            self.log()
        );
        assert_eq!(self.child.pid(), pid, "the same process");
        assert_eq!(proc_exe(pid), self.exe, "runs from the executable path");
        let running = std::fs::read(format!("/proc/{pid}/exe")).unwrap();
        assert!(running == bytes, "/proc/{pid}/exe is {what}");
        assert!(
            std::fs::read(&self.exe).unwrap() == bytes,
            "{what} installed"
        );
    }

    /// Waits until `/metrics` reports `version`.
    fn wait_metrics_version(&self, version: &str) {
        let got = common::poll(WAIT, Duration::from_millis(100), || {
            build_info_version(self.metrics).filter(|v| v == version)
        });
        assert!(
            got.is_some(),
            "/metrics never reported {version} (last {:?}); log:\n{}",
            build_info_version(self.metrics),
            self.log()
        );
    }
}

struct Case {
    tmp: tempfile::TempDir,
    cp: ControlPlane,
    api: Api,
    k1: Key,
    agent: Agent,
}

impl Case {
    /// A control plane trusting a fresh key K1 and an agent at A enrolled into it, online.
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let k1 = Key::new(&tmp.path().join("k1"));
        let cp = ControlPlane::with_env(
            tmp.path(),
            &[
                (KEYS_ENV, &k1.public),
                ("RMM_CP_RELEASES__OFFER_INTERVAL_SECONDS", "1"),
            ],
        );
        let api = Api::login(&cp.base).await;
        let client = api.post("/api/v1/clients", json!({"name": "Acme"})).await;
        let site = api
            .post(
                &format!("/api/v1/clients/{}/sites", client["id"].as_str().unwrap()),
                json!({"name": "HQ"}),
            )
            .await;
        let token = api
            .post("/api/v1/enrollment-tokens", json!({"site_id": site["id"]}))
            .await;
        let agent = Self::enroll_and_run(tmp.path(), &cp, token["token"].as_str().unwrap());
        let case = Self {
            tmp,
            cp,
            api,
            k1,
            agent,
        };
        assert_eq!(
            case.agent.identity["signing_keys"],
            json!([case.k1.public]),
            "the enroll response's key is pinned"
        );
        case.wait_agent("online at A", |a| {
            a["status"] == "online" && a["agent_version"] == VERSION_A
        })
        .await;
        case
    }

    fn enroll_and_run(dir: &Path, cp: &ControlPlane, token: &str) -> Agent {
        std::fs::create_dir(dir.join("bin")).unwrap();
        let exe = stamped(&dir.join("bin"), "rmm-agent", VERSION_A);
        let a_bytes = std::fs::read(&exe).unwrap();
        let state = dir.join("state");
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let clean = |cmd: &mut Command| {
            for (k, _) in std::env::vars() {
                if k.starts_with("RMM_AGENT_") {
                    cmd.env_remove(k);
                }
            }
        };
        let mut enroll = Command::new(&exe);
        clean(&mut enroll);
        let out = enroll
            .args(["enroll", "--server", &cp.base, "--token", token])
            .arg("--state-dir")
            .arg(&state)
            .args(["--metrics-address", &metrics.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let identity: Value =
            serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
        let log = dir.join("agent.log");
        let mut run = Command::new(&exe);
        clean(&mut run);
        run.arg("run")
            .arg("--state-dir")
            .arg(&state)
            .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
            .env("RMM_AGENT_PROMETHEUS_LISTEN", metrics.to_string())
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s")
            .env("RMM_AGENT_CONTROL_RECONNECT_MIN", "100ms")
            .env("RMM_AGENT_CONTROL_RECONNECT_MAX", "500ms")
            .env("RMM_AGENT_UPDATES_HEALTH_TIMEOUT_SECONDS", "15")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        Agent {
            child: ChildGuard::spawn(&mut run),
            id: identity["agent_id"].as_str().unwrap().to_owned(),
            exe,
            a_bytes,
            metrics,
            log,
            identity,
        }
    }

    fn diag(&self) -> String {
        format!(
            "agent log:\n{}\ncontrol plane log:\n{}",
            self.agent.log(),
            self.cp.log()
        )
    }

    /// `GET /api/v1/agents/{id}` until `f` holds.
    async fn wait_agent(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        let path = format!("/api/v1/agents/{}", self.agent.id);
        let mut last = Value::Null;
        while t.elapsed() < WAIT {
            let (status, v) = self.api.send(Method::GET, &path, None).await;
            if status == StatusCode::OK && f(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("agent not {what}; last: {last}\n{}", self.diag());
    }

    /// `GET /api/v1/agents/{id}/update` until the update has `status`; returns the update.
    async fn wait_update(&self, status: &str) -> Value {
        let t = Instant::now();
        let path = format!("/api/v1/agents/{}/update", self.agent.id);
        let mut last = Value::Null;
        while t.elapsed() < WAIT {
            let (code, v) = self.api.send(Method::GET, &path, None).await;
            assert_eq!(code, StatusCode::OK, "{v}");
            if v["update"]["status"] == status {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("update not {status}; last: {last}\n{}", self.diag());
    }

    /// The `status` label of `rmm_cp_agent_update_status` for the agent.
    fn cp_metric_status(&self) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.cp.port).parse().unwrap();
        let (_, body) = common::http_get(addr, "/metrics").unwrap();
        parse_metrics(&body)
            .into_iter()
            .find(|s| s.name == "rmm_cp_agent_update_status" && s.label("agent") == self.agent.id)
            .map(|s| s.label("status").to_owned())
    }

    /// Uploads `build` as `version` signed with `key`; returns the release.
    async fn upload(&self, build: &Path, version: &str, key: &Key) -> Value {
        let (status, v) = self
            .api
            .upload_release(
                std::fs::read(build).unwrap(),
                version,
                "stable",
                &key.sign(build),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "upload: {v}");
        v
    }

    /// `POST /api/v1/agents/{id}/update` for `version`.
    async fn force(&self, version: &str) {
        let (status, v) = self
            .api
            .send(
                Method::POST,
                &format!("/api/v1/agents/{}/update", self.agent.id),
                Some(json!({"version": version})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "force: {v}");
    }

    /// Build B: a stamped copy of the agent.
    fn build_b(&self) -> PathBuf {
        let dir = self.tmp.path().join("builds");
        std::fs::create_dir_all(&dir).unwrap();
        stamped(&dir, "rmm-agent-b", VERSION_B)
    }

    /// After a refused build: A untouched and running, `failed` with `reason_prefix`
    /// everywhere.
    async fn assert_refused(&mut self, pid: u32, reason_prefix: &str) {
        let u = self.wait_update("failed").await;
        let reason = u["update"]["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with(reason_prefix), "{u}");
        assert_eq!(u["running_version"], VERSION_A, "{u}");
        let a = self.agent.a_bytes.clone();
        self.agent.assert_runs(pid, &a, "A, byte-identical");
        assert!(!self.agent.previous().exists(), "nothing was staged");
        self.agent.wait_metrics_version(VERSION_A);
        let row = self.wait_agent("at A", |a| a["status"] == "online").await;
        assert_eq!(row["agent_version"], VERSION_A);
        assert_eq!(self.cp_metric_status().as_deref(), Some("failed"));
    }
}

#[tokio::test]
async fn a_rollout_of_b_ends_with_b_running_in_the_same_process() {
    let mut c = Case::start().await;
    let pid = c.agent.child.pid();
    c.agent.wait_metrics_version(VERSION_A);
    let b = c.build_b();
    let b_bytes = std::fs::read(&b).unwrap();
    c.upload(&b, VERSION_B, &c.k1).await;
    let (status, v) = c
        .api
        .send(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(json!({"target_version": VERSION_B, "percent": 100})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "rollout: {v}");

    let u = c.wait_update("installed").await;
    assert_eq!(u["update"]["version"], VERSION_B, "{u}");
    assert_eq!(u["update"]["channel"], "stable", "{u}");
    assert_eq!(u["update"]["reason"], Value::Null, "{u}");
    let row = c
        .wait_agent("at B", |a| a["agent_version"] == VERSION_B)
        .await;
    assert_eq!(row["status"], "online");
    assert_eq!(c.cp_metric_status().as_deref(), Some("installed"));

    c.agent.assert_runs(pid, &b_bytes, "B");
    c.agent.wait_metrics_version(VERSION_B);
    let shown = Command::new(&c.agent.exe)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        format!("rmm-agent {VERSION_B}")
    );
    assert!(
        std::fs::read(c.agent.previous()).unwrap() == c.agent.a_bytes,
        "A is kept at <exe>.previous"
    );
}

#[tokio::test]
async fn a_build_signed_with_a_key_the_agent_did_not_pin_is_refused() {
    let mut c = Case::start().await;
    let pid = c.agent.child.pid();
    // The server's keys change after enrollment (an attacker's key on a compromised control
    // plane): restarted on the same database trusting only K2.
    let k2 = Key::new(&c.tmp.path().join("k2"));
    c.cp.stop();
    c.cp.env.retain(|(k, _)| k != KEYS_ENV);
    c.cp.env.push((KEYS_ENV.into(), k2.public.clone()));
    c.cp.start();
    c.api = Api::login(&c.cp.base).await;
    // Reconnected to the new process (the agent counts its reconnects).
    let reconnected = common::poll(WAIT, Duration::from_millis(100), || {
        let (_, body) = common::http_get(c.agent.metrics, "/metrics").ok()?;
        let s = parse_metrics(&body);
        let get = |n: &str| s.iter().find(|s| s.name == n).map(|s| s.value);
        (get("rmm_agent_opamp_connected") == Some(1.0)
            && get("rmm_agent_opamp_reconnects_total").unwrap_or(0.0) >= 1.0)
            .then_some(())
    });
    assert!(reconnected.is_some(), "no reconnect\n{}", c.diag());

    let b = c.build_b();
    // The server accepts it: it trusts K2 now.
    c.upload(&b, VERSION_B, &k2).await;
    c.force(VERSION_B).await;
    c.assert_refused(pid, "signature verification failed").await;
    assert_eq!(
        c.agent.identity["signing_keys"],
        json!([c.k1.public]),
        "still pinned to K1"
    );
}

#[tokio::test]
async fn a_build_altered_in_storage_is_refused() {
    let mut c = Case::start().await;
    let pid = c.agent.child.pid();
    let b = c.build_b();
    let release = c.upload(&b, VERSION_B, &c.k1).await;
    // Tampered storage: one byte of the stored build changed, same length.
    let stored = c
        .tmp
        .path()
        .join("releases")
        .join(release["sha256"].as_str().unwrap());
    let mut bytes = std::fs::read(&stored).unwrap_or_else(|e| panic!("{stored:?}: {e}"));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&stored, &bytes).unwrap();
    c.force(VERSION_B).await;
    c.assert_refused(pid, "sha256 mismatch").await;
}

/// ELF `e_machine` of the running architecture.
fn elf_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        _ => None,
    }
}

#[tokio::test]
async fn a_build_that_exits_at_start_is_rolled_back() {
    let bad = std::fs::read("/bin/false").unwrap();
    let machine = bad.get(18..20).map(|m| u16::from_le_bytes([m[0], m[1]]));
    if !bad.starts_with(b"\x7fELF") || machine != elf_machine() {
        println!(
            "SKIPPED: /bin/false is not an ELF executable of {}",
            std::env::consts::ARCH
        );
        return;
    }
    let mut c = Case::start().await;
    let pid = c.agent.child.pid();
    let dir = c.tmp.path().join("builds");
    std::fs::create_dir_all(&dir).unwrap();
    let build = dir.join("false");
    std::fs::write(&build, &bad).unwrap();
    c.upload(&build, VERSION_B, &c.k1).await;
    c.force(VERSION_B).await;

    let u = c.wait_update("rolled_back").await;
    // The agent reports `rolled back: <reason>`; the control plane records the status
    // `rolled_back` and keeps <reason> (the prefix is the status, see offers::map_status).
    let reason = u["update"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("new version exited with status 1 after "),
        "{u}"
    );
    assert_eq!(u["update"]["version"], VERSION_B, "{u}");
    let a = c.agent.a_bytes.clone();
    c.agent.assert_runs(pid, &a, "A again");
    c.agent.wait_metrics_version(VERSION_A);
    let row = c
        .wait_agent("online at A", |a| {
            a["status"] == "online" && a["agent_version"] == VERSION_A
        })
        .await;
    assert_eq!(row["agent_version"], VERSION_A);
    let u = c.wait_update("rolled_back").await;
    assert_eq!(u["running_version"], VERSION_A, "{u}");
    assert_eq!(c.cp_metric_status().as_deref(), Some("rolled_back"));
}
