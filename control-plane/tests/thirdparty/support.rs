//! Helpers shared by the OpAMP tests (`tests/opamp_*.rs` include this file with `#[path]`):
//! a control-plane binary with short liveness settings, a tenant to enroll into, agent
//! lookups, polling, a raw OpAMP WebSocket client, and the third-party client runtimes.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use rmm_opamp::proto::{AgentDescription, AgentToServer, ServerToAgent};
use rmm_opamp::{InstanceUid, Limits};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{Backend, Server};

/// Offline timeout of the test servers, in seconds: an agent silent this long goes offline.
pub const OFFLINE_TIMEOUT_S: u64 = 3;

/// Start the real binary with short liveness settings and a 64 KiB message limit.
pub async fn start(backend: &Backend) -> Server {
    Server::start_binary(
        backend,
        &[
            (
                "RMM_CP_OPAMP_OFFLINE_TIMEOUT_SECONDS",
                &OFFLINE_TIMEOUT_S.to_string(),
            ),
            ("RMM_CP_OPAMP_HEARTBEAT_INTERVAL_SECONDS", "1"),
            ("RMM_CP_OPAMP_MAX_MESSAGE_BYTES", "65536"),
        ],
    )
    .await
}

/// A client and site; returns the site id.
pub async fn site(s: &Server, name: &str) -> String {
    let client = s.new_client(name).await;
    s.new_site(&client, "HQ").await
}

/// An agent as the API shows it (`Null` when not found).
pub async fn agent(s: &Server, id: &str) -> Value {
    let (st, v) = s
        .call(
            Method::GET,
            &format!("/api/v1/agents/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    if st.is_success() {
        v
    } else {
        Value::Null
    }
}

/// Poll `check` every 100 ms until it returns `Some`, or panic with `what` after `secs`.
pub async fn wait_for<T, F, Fut>(secs: f64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until agent `id` has `status`; returns the agent.
pub async fn wait_status(s: &Server, id: &str, status: &str, secs: f64) -> Value {
    wait_for(secs, &format!("agent {id} {status}"), || async {
        let a = agent(s, id).await;
        (a["status"] == status).then_some(a)
    })
    .await
}

pub fn opamp_http_url(s: &Server) -> String {
    format!("{}/v1/opamp", s.base)
}

pub fn opamp_ws_url(s: &Server) -> String {
    format!("{}/v1/opamp", s.base.replacen("http://", "ws://", 1))
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open an OpAMP WebSocket with `Authorization: Bearer <bearer>` (if given).
pub async fn ws_connect(
    s: &Server,
    bearer: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = opamp_ws_url(s).into_client_request().unwrap();
    if let Some(b) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Send one message (header 0 + protobuf).
pub async fn ws_send(ws: &mut Ws, msg: &AgentToServer) {
    ws.send(Message::Binary(rmm_opamp::ws::encode(msg).into()))
        .await
        .unwrap();
}

/// What the server sent next.
#[derive(Debug)]
pub enum Got {
    Reply(Box<ServerToAgent>),
    Closed(Option<(u16, String)>),
}

/// The next `ServerToAgent` or close, within 5 s.
pub async fn ws_next(ws: &mut Ws) -> Got {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("server answered within 5 s");
        match next {
            None => return Got::Closed(None),
            Some(Err(_)) => return Got::Closed(None),
            Some(Ok(Message::Binary(b))) => {
                return Got::Reply(Box::new(
                    rmm_opamp::ws::decode_server_to_agent(&b, &Limits::default())
                        .expect("valid reply"),
                ))
            }
            Some(Ok(Message::Close(f))) => {
                return Got::Closed(f.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Send and expect a reply.
pub async fn ws_exchange(ws: &mut Ws, msg: &AgentToServer) -> ServerToAgent {
    ws_send(ws, msg).await;
    match ws_next(ws).await {
        Got::Reply(r) => *r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The close code and reason the server ends with (skipping replies).
pub async fn ws_close_code(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match ws_next(ws).await {
            Got::Reply(_) => continue,
            Got::Closed(c) => return c,
        }
    }
}

pub fn close_code(c: CloseCode) -> u16 {
    u16::from(c)
}

/// A first status report: description with host facts.
pub fn hello(uid: InstanceUid, seq: u64, caps: u64, host: &str) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq,
        capabilities: caps,
        agent_description: Some(
            AgentDescription::default()
                .with_identifying("service.name", "io.rmm.test-agent")
                .with_identifying("service.version", "9.9.9")
                .with_non_identifying("host.name", host)
                .with_non_identifying("host.id", format!("id-{host}"))
                .with_non_identifying("os.type", "linux")
                .with_non_identifying("host.arch", "x86_64"),
        ),
        ..Default::default()
    }
}

pub fn heartbeat(uid: InstanceUid, seq: u64, caps: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq,
        capabilities: caps,
        ..Default::default()
    }
}

/// A tool from an environment variable or the repository's `.tools`, or a failure that
/// names the installer.
fn tool(env_var: &str, rel: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        if p.exists() {
            return p;
        }
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    assert!(
        p.exists(),
        "{rel} not found (set {env_var} or run deploy/install-test-tools.sh, which installs it into .tools/)"
    );
    p
}

/// The Python interpreter of the venv holding `opentelemetry-opamp-client`.
pub fn python() -> PathBuf {
    tool("RMM_TEST_PYTHON", ".tools/venv/bin/python")
}

/// The `node_modules` directory holding `@elastic/opamp-client-node`.
pub fn node_modules() -> PathBuf {
    let dir = tool("RMM_TEST_NODE_MODULES", ".tools/node/node_modules");
    assert!(
        dir.join("@elastic/opamp-client-node").exists(),
        "@elastic/opamp-client-node is missing from {}; run deploy/install-test-tools.sh",
        dir.display()
    );
    dir
}

/// The `node` executable (PATH, or `.tools/node/bin/node`).
pub fn node() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/node/bin/node");
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("node"))
                .find(|p| p.exists())
        })
        .expect("node not found on PATH; run deploy/install-test-tools.sh")
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/thirdparty")
        .join(name)
}

/// A running third-party client: its JSON event lines arrive on `events`.
pub struct ClientProcess {
    pub child: tokio::process::Child,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ClientProcess {
    pub fn spawn(program: &PathBuf, args: &[String]) -> ClientProcess {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "raw", "line": line}));
                let _ = tx.send(v);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        ClientProcess {
            child,
            events,
            stderr,
        }
    }

    /// The next event, within `secs`.
    pub async fn next_event(&mut self, secs: u64) -> Value {
        match tokio::time::timeout(Duration::from_secs(secs), self.events.recv()).await {
            Ok(Some(v)) => v,
            _ => panic!(
                "no event from the client within {secs} s; stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    /// Wait for exit (within `secs`) and return every remaining event.
    pub async fn finish(mut self, secs: u64) -> Vec<Value> {
        let status = tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .expect("client exited in time")
            .unwrap();
        // Let the reader drain.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            status.success(),
            "client failed ({status}); stderr:\n{}",
            self.stderr.lock().unwrap()
        );
        let mut out = Vec::new();
        while let Ok(v) = self.events.try_recv() {
            out.push(v);
        }
        out
    }
}
