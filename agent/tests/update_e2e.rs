//! Self-update end to end with the real agent binary: builds A and B are stamped copies of the
//! one compiled `rmm-agent` (`rmm-agent stamp-version`), signed in the test with a key pinned in
//! the agent's identity. The offers come from a small OpAMP WebSocket server built here from
//! `rmm_opamp`, the builds from an HTTP file server on the control plane's origin, so that the
//! server can misbehave on purpose (a truncated build, a bad offer). The same cases against the
//! real control plane (release API, rollouts, forced updates) are in `update_cp_e2e.rs`.
//!
//! (a) A offered B ends up running B: same PID, `/metrics` and OpAMP report B, Installed;
//! (b) a bad signature and (c) a hash mismatch are refused, the binary is byte-identical and A
//! keeps running, InstallFailed with the reason; (d) a build that exits at start (a signed
//! `/bin/false`) is rolled back: A runs again in the same PID, InstallFailed `rolled back: ...`,
//! and the same build is not tried again when offered again. Also: an agent without pinned
//! keys downloads nothing; a crash during the trial (B at the executable path, the `trial`
//! record on disk) is recovered at start by putting A back.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::update::{sha256, stamped, ReleaseKey};
use common::{free_port, ChildGuard};
use futures_util::{SinkExt, StreamExt};
use rmm_agent::control::identity::{Identity, Secret, StateDir};
use rmm_opamp::capabilities::{agent as agent_caps, server as server_caps};
use rmm_opamp::proto::{
    AgentToServer, DownloadableFile, PackageAvailable, PackageStatus, PackageStatusEnum,
    PackageType, PackagesAvailable, ServerToAgent,
};
use rmm_opamp::{ws, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const UID: &str = "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e77";
const SECRET: &str = "rmm_as_update-test-secret";
const VERSION_A: &str = "1.0.0-a";
const VERSION_B: &str = "1.0.1-b";
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Builds and keys
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The offer source
// ---------------------------------------------------------------------------------------------

/// One offered build: what the file server serves and what the offer claims.
#[derive(Clone)]
struct Release {
    version: String,
    /// Served at `/api/v1/releases/<version>/build`.
    served: Vec<u8>,
    /// `content_hash` in the offer.
    content_hash: [u8; 32],
    signature: Vec<u8>,
}

/// The offer for an agent that reported `running`: the release, unless it already runs it.
fn offer_for(running: &str, release: &Release, base_url: &str) -> Option<PackagesAvailable> {
    if running == release.version {
        return None;
    }
    let mut file = DownloadableFile::new(
        format!("{base_url}/api/v1/releases/{}/build", release.version),
        release.content_hash.to_vec(),
    );
    file.signature = release.signature.clone();
    Some(PackagesAvailable::new([(
        "rmm-agent",
        PackageAvailable::new(PackageType::TopLevel, release.version.clone(), file),
    )]))
}

// ---------------------------------------------------------------------------------------------
// In-test control plane: OpAMP over WebSocket + build downloads
// ---------------------------------------------------------------------------------------------

/// One message an agent sent, with its connection number.
#[derive(Clone)]
struct Received {
    conn: usize,
    msg: AgentToServer,
}

#[derive(Default)]
struct Seen {
    messages: Vec<Received>,
    /// `(path, Authorization header)` of every download request.
    downloads: Vec<(String, Option<String>)>,
    /// The connections an offer was sent on.
    offers: Vec<usize>,
}

struct Server {
    opamp: SocketAddr,
    http: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Server {
    async fn start(release: Release) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let files: HashMap<String, Vec<u8>> = [(
            format!("/api/v1/releases/{}/build", release.version),
            release.served.clone(),
        )]
        .into();
        tokio::spawn(serve_files(http_listener, files, seen.clone()));
        let opamp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opamp = opamp_listener.local_addr().unwrap();
        tokio::spawn(serve_opamp(
            opamp_listener,
            release,
            format!("http://{http}"),
            seen.clone(),
        ));
        Self { opamp, http, seen }
    }

    /// Waits for a message matching `f`; returns what `f` extracted.
    async fn wait_for<T>(&self, what: &str, f: impl Fn(&Received) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.seen.lock().unwrap().messages.iter().find_map(&f) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn downloads(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().downloads.clone()
    }
}

async fn serve_opamp(
    listener: TcpListener,
    release: Release,
    base_url: String,
    seen: Arc<Mutex<Seen>>,
) {
    let mut conn = 0;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        conn += 1;
        let (release, base_url, seen) = (release.clone(), base_url.clone(), seen.clone());
        tokio::spawn(async move {
            let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let mut version: Option<String> = None;
            let mut offered = false;
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Binary(bytes) = frame else {
                    continue;
                };
                let msg = ws::decode_agent_to_server(&bytes, &Limits::default()).unwrap();
                if let Some(d) = &msg.agent_description {
                    version = d.string_attribute("service.version").map(str::to_owned);
                }
                let accepts = msg.capabilities & agent_caps::ACCEPTS_PACKAGES != 0;
                let disconnect = msg.agent_disconnect.is_some();
                seen.lock().unwrap().messages.push(Received {
                    conn,
                    msg: msg.clone(),
                });
                if disconnect {
                    break;
                }
                let mut reply = ServerToAgent::builder(msg.instance_uid.clone()).capabilities(
                    server_caps::ACCEPTS_STATUS
                        | server_caps::OFFERS_PACKAGES
                        | server_caps::ACCEPTS_PACKAGES_STATUS,
                );
                if let (false, true, Some(v)) = (offered, accepts, &version) {
                    if let Some(offer) = offer_for(v, &release, &base_url) {
                        reply = reply.packages_available(offer);
                        offered = true;
                        seen.lock().unwrap().offers.push(conn);
                    }
                }
                let reply: ServerToAgent = reply.build();
                if socket
                    .send(Message::Binary(ws::encode(&reply).into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
}

/// A minimal HTTP/1.1 file server (GET only, one request per connection).
async fn serve_files(
    listener: TcpListener,
    files: HashMap<String, Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let auth = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_owned())
        });
        seen.lock().unwrap().downloads.push((path.clone(), auth));
        let response = match files.get(&path) {
            // Under /stream/ without a length: the body ends when the connection closes.
            Some(body) if path.starts_with("/stream/") => {
                let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n".to_vec();
                r.extend_from_slice(body);
                r
            }
            Some(body) => {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            }
            None => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            }
        };
        let _ = tcp.write_all(&response).await;
        let _ = tcp.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The agent under test
// ---------------------------------------------------------------------------------------------

struct Agent {
    _dir: tempfile::TempDir,
    exe: PathBuf,
    a_bytes: Vec<u8>,
    child: ChildGuard,
    metrics: SocketAddr,
    log: PathBuf,
}

/// What is on disk when the agent starts.
enum Setup {
    /// Build A, never updated.
    Fresh,
    /// What a crash of A during the trial of B leaves: B at the executable path, A at
    /// `<exe>.previous`, the `trial` record.
    InterruptedTrial,
}

impl Agent {
    /// Build A in its own directory, enrolled (identity written directly) with `pinned` keys.
    fn start(server: &Server, pinned: &[&ReleaseKey]) -> Self {
        Self::start_with(server, pinned, Setup::Fresh, &[])
    }

    fn start_with(
        server: &Server,
        pinned: &[&ReleaseKey],
        setup: Setup,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let exe = stamped(&dir.path().join("bin"), "rmm-agent", VERSION_A);
        let a_bytes = std::fs::read(&exe).unwrap();
        let state = dir.path().join("state");
        if let Setup::InterruptedTrial = setup {
            std::fs::rename(&exe, dir.path().join("bin/rmm-agent.previous")).unwrap();
            let b = stamped(&dir.path().join("bin"), "rmm-agent", VERSION_B);
            std::fs::create_dir(&state).unwrap();
            use rmm_agent::update::status::{offered, Record};
            Record::Trial {
                offered: offered(VERSION_B, &sha256(&std::fs::read(b).unwrap()), &[], &[]),
                previous_version: VERSION_A.into(),
            }
            .save(&state)
            .unwrap();
        }
        StateDir::new(&state)
            .save(
                &Identity {
                    agent_id: UID.into(),
                    server: format!("http://{}", server.http),
                    opamp_url: format!("ws://{}/v1/opamp", server.opamp),
                    enrolled_at: "2026-11-27T00:00:00Z".into(),
                    client_id: None,
                    site_id: None,
                    signing_keys: pinned.iter().map(|k| k.public_text()).collect(),
                },
                &Secret::new(SECRET).unwrap(),
            )
            .unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.path().join("agent.log");
        let mut cmd = Command::new(&exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("RMM_AGENT_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .arg("--state-dir")
            .arg(&state)
            .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
            .env("RMM_AGENT_PROMETHEUS_LISTEN", metrics.to_string())
            .env("RMM_AGENT_UPDATES_HEALTH_TIMEOUT_SECONDS", "30")
            .env("RMM_AGENT_CONTROL_RECONNECT_MIN", "100ms")
            .env("RMM_AGENT_CONTROL_RECONNECT_MAX", "500ms")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        Self {
            child: ChildGuard::spawn(&mut cmd),
            _dir: dir,
            exe,
            a_bytes,
            metrics,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process started by the test is still alive.
    fn assert_running(&mut self) {
        assert!(
            self.child.0.try_wait().unwrap().is_none(),
            "the agent process exited; log:\n{}",
            self.log()
        );
    }

    /// `rmm_agent_build_info{version}` on `/metrics`, once it answers.
    async fn metrics_version(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let addr = self.metrics;
            let got = tokio::task::spawn_blocking(move || common::update::build_info_version(addr))
                .await
                .unwrap();
            if let Some(v) = got {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no /metrics; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `/proc/<pid>/exe` of the agent process.
    fn proc_exe(&self) -> String {
        common::update::proc_exe(self.child.pid())
            .to_string_lossy()
            .into_owned()
    }

    /// The files in the executable's directory.
    fn bin_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.exe.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn previous(&self) -> PathBuf {
        let mut p = self.exe.as_os_str().to_owned();
        p.push(".previous");
        PathBuf::from(p)
    }
}

fn package(r: &Received) -> Option<&PackageStatus> {
    r.msg.package_statuses.as_ref()?.packages.get("rmm-agent")
}

/// The release's status, as a closure for `wait_for`.
fn status_of(
    state: PackageStatusEnum,
    offered: &str,
) -> impl Fn(&Received) -> Option<(usize, PackageStatus)> + '_ {
    move |r| {
        let p = package(r)?;
        (p.status == state as i32 && p.server_offered_version == offered)
            .then(|| (r.conn, p.clone()))
    }
}

/// An agent at A is connected, claims the package capabilities and reports A installed.
async fn connected_at_a(server: &Server) {
    let (_, p) = server
        .wait_for("A reporting its package", |r| {
            let p = package(r)?;
            let caps = agent_caps::ACCEPTS_PACKAGES | agent_caps::REPORTS_PACKAGE_STATUSES;
            (r.msg.capabilities & caps == caps).then(|| (r.conn, p.clone()))
        })
        .await;
    assert_eq!(p.agent_has_version, VERSION_A);
    assert_eq!(p.status, PackageStatusEnum::Installed as i32);
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_offered_b_ends_up_running_b_in_the_same_process() {
    let key = ReleaseKey::new(7);
    let build_dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(stamped(build_dir.path(), "b", VERSION_B)).unwrap();
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&b),
        signature: key.sign(&sha256(&b)),
        served: b.clone(),
    };
    let server = Server::start(release).await;
    let mut agent = Agent::start(&server, &[&key]);
    let pid = agent.child.pid();
    connected_at_a(&server).await;
    assert_eq!(agent.metrics_version().await, VERSION_A);

    let (conn, installed) = server
        .wait_for(
            "B reporting Installed",
            status_of(PackageStatusEnum::Installed, VERSION_B),
        )
        .await;
    assert_eq!(installed.agent_has_version, VERSION_B);
    assert_eq!(installed.error_message, "");
    // Reported by a session describing itself as B.
    let described = server
        .wait_for("B's description", |r| {
            let d = r
                .msg
                .agent_description
                .as_ref()
                .filter(|_| r.conn == conn)?;
            Some(d).and_then(|d| d.string_attribute("service.version").map(str::to_owned))
        })
        .await;
    assert_eq!(described, VERSION_B);
    // Earlier, the steps in between (the trial child reports Installing).
    for state in [
        PackageStatusEnum::Downloading,
        PackageStatusEnum::Installing,
    ] {
        server
            .wait_for(&format!("{state:?}"), status_of(state, VERSION_B))
            .await;
    }

    // The same process, now running B from the executable path.
    agent.assert_running();
    assert_eq!(agent.child.pid(), pid);
    assert_eq!(agent.proc_exe(), agent.exe.to_string_lossy());
    assert_eq!(agent.metrics_version().await, VERSION_B);
    assert!(std::fs::read(&agent.exe).unwrap() == b, "B is installed");
    assert!(
        std::fs::read(agent.previous()).unwrap() == agent.a_bytes,
        "A is kept at <exe>.previous"
    );
    assert_eq!(
        agent.bin_files(),
        ["rmm-agent", "rmm-agent.previous"],
        "no temporary files left"
    );
    assert!(!installed.agent_has_hash.is_empty());
    // The build was fetched once, with the agent secret (same origin as the control plane).
    let downloads = server.downloads();
    assert_eq!(downloads.len(), 1, "{downloads:?}");
    assert_eq!(
        downloads[0].1.as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
}

/// (b) and (c): a refused build leaves A untouched and running.
async fn refused(release: Release, pinned: &[&ReleaseKey], reason_prefix: &str) -> Server {
    let server = Server::start(release).await;
    let mut agent = Agent::start(&server, pinned);
    let pid = agent.child.pid();
    connected_at_a(&server).await;
    let (conn, failed) = server
        .wait_for(
            "InstallFailed",
            status_of(PackageStatusEnum::InstallFailed, VERSION_B),
        )
        .await;
    assert!(
        failed.error_message.starts_with(reason_prefix),
        "{:?}",
        failed.error_message
    );
    assert_eq!(failed.agent_has_version, VERSION_A);
    // Reported on the first connection: the agent never restarted.
    assert_eq!(conn, 1);
    agent.assert_running();
    assert_eq!(agent.child.pid(), pid);
    assert!(
        std::fs::read(&agent.exe).unwrap() == agent.a_bytes,
        "the installed binary is byte-identical"
    );
    assert!(!agent.previous().exists(), "nothing was staged");
    assert_eq!(agent.metrics_version().await, VERSION_A);
    let state = agent.exe.parent().unwrap().parent().unwrap().join("state");
    assert!(
        !state.join("update-download.tmp").exists(),
        "the refused download is removed"
    );
    server
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_a_keeps_running() {
    let pinned = ReleaseKey::new(7);
    let other = ReleaseKey::new(8);
    let build_dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(stamped(build_dir.path(), "b", VERSION_B)).unwrap();
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&b),
        // Signed, but not with the pinned key.
        signature: other.sign(&sha256(&b)),
        served: b,
    };
    refused(release, &[&pinned], "signature verification failed: ").await;
}

#[tokio::test]
async fn a_hash_mismatch_is_refused_and_a_keeps_running() {
    let key = ReleaseKey::new(7);
    let build_dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(stamped(build_dir.path(), "b", VERSION_B)).unwrap();
    // The offer describes B correctly, but the server delivers a truncated build.
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&b),
        signature: key.sign(&sha256(&b)),
        served: b[..b.len() / 2].to_vec(),
    };
    refused(release, &[&key], "sha256 mismatch: ").await;
}

#[tokio::test]
async fn without_pinned_keys_nothing_is_even_downloaded() {
    let key = ReleaseKey::new(7);
    let build_dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(stamped(build_dir.path(), "b", VERSION_B)).unwrap();
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&b),
        signature: key.sign(&sha256(&b)),
        served: b,
    };
    let server = refused(release, &[], "no pinned release keys").await;
    assert!(server.downloads().is_empty());
}

#[tokio::test]
async fn a_build_that_exits_at_start_is_rolled_back() {
    let key = ReleaseKey::new(7);
    let bad = std::fs::read("/bin/false").unwrap();
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&bad),
        signature: key.sign(&sha256(&bad)),
        served: bad,
    };
    let server = Server::start(release).await;
    let mut agent = Agent::start(&server, &[&key]);
    let pid = agent.child.pid();
    connected_at_a(&server).await;

    let (conn, failed) = server
        .wait_for(
            "rolled back",
            status_of(PackageStatusEnum::InstallFailed, VERSION_B),
        )
        .await;
    assert!(
        failed
            .error_message
            .starts_with("rolled back: new version exited with status 1 after "),
        "{:?}",
        failed.error_message
    );
    assert_eq!(failed.agent_has_version, VERSION_A);
    assert!(conn > 1, "reported by the restarted (exec'd) A");

    agent.assert_running();
    assert_eq!(agent.child.pid(), pid, "A runs again in the same process");
    assert_eq!(agent.proc_exe(), agent.exe.to_string_lossy());
    assert!(
        std::fs::read(&agent.exe).unwrap() == agent.a_bytes,
        "A is back at the executable path"
    );
    assert_eq!(agent.bin_files(), ["rmm-agent", "rmm-agent.previous"]);
    assert_eq!(agent.metrics_version().await, VERSION_A);

    // The server offers the same build again on the new connection: it is not tried again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let offers = server.seen.lock().unwrap().offers.clone();
    assert!(offers.contains(&conn), "offered again: {offers:?}");
    assert_eq!(server.downloads().len(), 1, "downloaded once only");
    agent.assert_running();
}

#[tokio::test]
async fn a_crash_during_the_trial_is_recovered_at_start() {
    let key = ReleaseKey::new(7);
    let build_dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(stamped(build_dir.path(), "b", VERSION_B)).unwrap();
    let release = Release {
        version: VERSION_B.into(),
        content_hash: sha256(&b),
        signature: key.sign(&sha256(&b)),
        served: b,
    };
    let server = Server::start(release).await;
    // The service manager restarts the executable path: B, outside a trial.
    let mut agent = Agent::start_with(&server, &[&key], Setup::InterruptedTrial, &[]);
    let pid = agent.child.pid();
    let (_, failed) = server
        .wait_for(
            "rolled back",
            status_of(PackageStatusEnum::InstallFailed, VERSION_B),
        )
        .await;
    assert_eq!(
        failed.error_message,
        "rolled back: the agent restarted during the trial of version 1.0.1-b"
    );
    assert_eq!(failed.agent_has_version, VERSION_A);
    agent.assert_running();
    assert_eq!(agent.child.pid(), pid);
    assert!(
        std::fs::read(&agent.exe).unwrap() == agent.a_bytes,
        "A is back at the executable path"
    );
    assert_eq!(agent.metrics_version().await, VERSION_A);
    // Offered B again, A does not retry the build that was interrupted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!server.seen.lock().unwrap().offers.is_empty());
    assert!(server.downloads().is_empty());
    let b_ever_connected = server.seen.lock().unwrap().messages.iter().any(|r| {
        r.msg
            .agent_description
            .as_ref()
            .and_then(|d| d.string_attribute("service.version"))
            == Some(VERSION_B)
    });
    assert!(!b_ever_connected, "B restored A before connecting");
}

/// A signed build that starts but never becomes healthy: a shell script that just waits.
fn hanging_release(key: &ReleaseKey) -> Release {
    let script = b"#!/bin/sh\nexec sleep 120\n".to_vec();
    Release {
        version: VERSION_B.into(),
        content_hash: sha256(&script),
        signature: key.sign(&sha256(&script)),
        served: script,
    }
}

#[tokio::test]
async fn a_build_that_never_becomes_healthy_is_rolled_back_after_the_timeout() {
    let key = ReleaseKey::new(7);
    let server = Server::start(hanging_release(&key)).await;
    let mut agent = Agent::start_with(
        &server,
        &[&key],
        Setup::Fresh,
        &[("RMM_AGENT_UPDATES_HEALTH_TIMEOUT_SECONDS", "3")],
    );
    let pid = agent.child.pid();
    connected_at_a(&server).await;
    let (_, failed) = server
        .wait_for(
            "rolled back",
            status_of(PackageStatusEnum::InstallFailed, VERSION_B),
        )
        .await;
    assert!(
        failed
            .error_message
            .starts_with("rolled back: new version did not become healthy")
            && failed.error_message.ends_with("within 3 s"),
        "{:?}",
        failed.error_message
    );
    assert_eq!(failed.agent_has_version, VERSION_A);
    agent.assert_running();
    assert_eq!(agent.child.pid(), pid);
    assert!(std::fs::read(&agent.exe).unwrap() == agent.a_bytes);
    assert_eq!(agent.metrics_version().await, VERSION_A);
}

#[tokio::test]
async fn stopping_the_agent_during_the_trial_puts_the_previous_version_back() {
    let key = ReleaseKey::new(7);
    let server = Server::start(hanging_release(&key)).await;
    let mut agent = Agent::start(&server, &[&key]);
    connected_at_a(&server).await;
    // The trial child (the script) connects nowhere; wait until it runs.
    let deadline = Instant::now() + WAIT;
    while !agent.log().contains("Started the new version on trial") {
        assert!(Instant::now() < deadline, "no trial; log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Like `systemctl stop`: the whole unit is signalled. Here the trial child first and the
    // agent a little later, so the agent sees the child's exit before its own signal: that exit
    // must not count as a verdict on the build.
    let trial_child = children(agent.child.pid());
    assert_eq!(trial_child.len(), 1, "{trial_child:?}");
    // SAFETY: kill has no memory-safety preconditions; the pids are our processes.
    unsafe { libc::kill(trial_child[0] as i32, libc::SIGTERM) };
    tokio::time::sleep(Duration::from_millis(150)).await;
    unsafe { libc::kill(agent.child.pid() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = agent.child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}; log:\n{}", agent.log());
    assert!(
        std::fs::read(&agent.exe).unwrap() == agent.a_bytes,
        "A is back at the executable path"
    );
    let state = agent.exe.parent().unwrap().parent().unwrap().join("state");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("update-result.json")).unwrap()).unwrap();
    assert_eq!(record["phase"], "rolled_back");
    assert_eq!(record["reason"], "the agent was stopped during the trial");
    assert!(
        !state.join("update-failed.json").exists(),
        "a stop is no fault of the build"
    );
}

/// The direct children of `pid` (from `/proc/*/stat`).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

#[test]
fn stamp_version_refuses_bad_input_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = |input: &str, version: &str| {
        let o = Command::new(common::agent_bin())
            .args(["stamp-version", "--in", input, "--out"])
            .arg(&out)
            .args(["--version", version])
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(common::agent_bin(), "1.0 beta");
    assert!(e.contains("may only contain"), "{e}");
    let e = run(common::agent_bin(), &"1".repeat(64));
    assert!(e.contains("1 to 63 characters"), "{e}");
    let e = run("/bin/false", "1.0.0");
    assert!(e.contains("no version slot found"), "{e}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// The download step alone: the secret only to the control plane's origin, the size cap, HTTP
/// errors; nothing left behind on failure.
#[tokio::test]
async fn downloads_send_the_secret_only_to_the_control_plane_and_respect_the_cap() {
    use rmm_agent::update::download::{fetch, Request, DOWNLOAD_FILE};
    let body = vec![42u8; 3000];
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_files(
        listener,
        [
            ("/b".to_owned(), body.clone()),
            ("/stream/b".to_owned(), body.clone()),
        ]
        .into(),
        seen.clone(),
    ));
    let state = tempfile::tempdir().unwrap();
    let secret = Secret::new(SECRET).unwrap();
    let url = format!("http://{addr}/b");
    let request = |server: String, max_bytes: u64, url: String| {
        let (secret, state) = (secret.clone(), state.path().to_path_buf());
        async move {
            fetch(&Request {
                url: &url,
                server: &server,
                secret: &secret,
                max_bytes,
                state_dir: &state,
            })
            .await
        }
    };
    // The control plane's origin: the secret goes along.
    let d = request(format!("http://{addr}"), 1 << 20, url.clone())
        .await
        .unwrap();
    assert_eq!(d.sha256, sha256(&body));
    assert_eq!(std::fs::read(&d.path).unwrap(), body);
    // Another origin (same host, the control plane on another port): no secret.
    request("http://127.0.0.1:1".into(), 1 << 20, url.clone())
        .await
        .unwrap();
    let auth: Vec<Option<String>> = seen
        .lock()
        .unwrap()
        .downloads
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert_eq!(auth, [Some(format!("Bearer {SECRET}")), None]);
    // Too big, and not found: refused with the reason, no file left.
    let e = request(format!("http://{addr}"), 1000, url.clone())
        .await
        .unwrap_err();
    assert!(
        e.starts_with("download failed: ") && e.contains("max_download_bytes"),
        "{e}"
    );
    assert!(!state.path().join(DOWNLOAD_FILE).exists());
    // Without a Content-Length the cap holds while streaming.
    let streamed = format!("http://{addr}/stream/b");
    let d = request(format!("http://{addr}"), 1 << 20, streamed.clone())
        .await
        .unwrap();
    assert_eq!(d.sha256, sha256(&body));
    let e = request(format!("http://{addr}"), 1000, streamed)
        .await
        .unwrap_err();
    assert!(e.contains("more than updates.max_download_bytes"), "{e}");
    assert!(!state.path().join(DOWNLOAD_FILE).exists());
    let e = request(
        format!("http://{addr}"),
        1 << 20,
        format!("http://{addr}/nope"),
    )
    .await
    .unwrap_err();
    assert!(e.contains("HTTP 404"), "{e}");
    let e = request(format!("http://{addr}"), 1 << 20, "ftp://x/b".into())
        .await
        .unwrap_err();
    assert!(e.contains("unsupported URL scheme"), "{e}");
}
