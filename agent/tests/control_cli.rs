//! The real `rmm-agent` binary's control-plane commands against in-test servers: `enroll`
//! (request, stored files and modes, error display) and `run` when enrolled (OpAMP session
//! next to an unaffected `/metrics`, goodbye on SIGTERM). The run against the real control
//! plane is `control_e2e.rs`.
// tungstenite's handshake callback returns `Result<Response, ErrorResponse>` by design.
#![allow(clippy::result_large_err)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{agent_command, parse_metrics, poll, RunningAgent};
use rmm_agent::control::identity::{Identity, Secret, StateDir};

const AGENT_ID: &str = "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01";

/// Serves exactly one HTTP request with `status` and `body`; returns the request (head, body).
fn one_shot_http(
    status: &'static str,
    body: String,
) -> (String, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body_start) = loop {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "request ended early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&buf[..p]).into_owned(), p + 4);
            }
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < body_start + len {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let req_body = String::from_utf8_lossy(&buf[body_start..body_start + len]).into_owned();
        write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (head, req_body)
    });
    (base, t)
}

fn enroll(server: &str, state_dir: &Path, extra: &[&str]) -> Output {
    let mut cmd = agent_command();
    cmd.args([
        "enroll",
        "--server",
        server,
        "--token",
        "rmm_et_tok3n",
        "--state-dir",
    ])
    .arg(state_dir)
    .args(extra)
    .env_remove("RMM_ENROLL_TOKEN");
    cmd.output().expect("running rmm-agent enroll")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn enroll_stores_identity_and_a_0600_secret() {
    let answer = serde_json::json!({
        "agent_id": AGENT_ID,
        "agent_secret": "rmm_as_v3ry-s3cret",
        "opamp_url": "http://127.0.0.1:1/v1/opamp",
        "client_id": "c-1",
        "site_id": "s-1",
        "something_new": {"x": 1}
    });
    let (base, server) = one_shot_http("201 Created", answer.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let out = enroll(&base, &dir, &["--metrics-address", "10.0.0.5:9464"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "enroll failed: {stderr}");
    let (head, body) = server.join().unwrap();
    assert!(head.starts_with("POST /api/v1/enroll HTTP/1.1"), "{head}");
    let req: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(req["token"], "rmm_et_tok3n");
    assert_eq!(req["metrics_address"], "10.0.0.5:9464");
    assert_eq!(req["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(req["os"], std::env::consts::OS);
    assert_eq!(req["arch"], std::env::consts::ARCH);
    for k in ["host_id", "hostname"] {
        assert!(
            req[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} in {req}"
        );
    }
    assert!(stdout.contains(AGENT_ID), "{stdout}");
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "the secret must never be printed:\n{stdout}\n{stderr}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("secret")), 0o600);
    assert_eq!(
        std::fs::read_to_string(dir.join("secret")).unwrap(),
        "rmm_as_v3ry-s3cret"
    );
    let id: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).unwrap()).unwrap();
    assert_eq!(id["agent_id"], AGENT_ID);
    assert_eq!(id["server"], base.as_str());
    assert_eq!(id["opamp_url"], "http://127.0.0.1:1/v1/opamp");
    assert!(id["enrolled_at"].as_str().unwrap().ends_with('Z'));
}

/// A valid release public key (RFC 8032 test vector 1).
const RELEASE_KEY: &str = "rmm-ed25519-public:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

#[test]
fn enroll_pins_the_release_signing_keys() {
    let answer = serde_json::json!({
        "agent_id": AGENT_ID,
        "agent_secret": "rmm_as_x",
        "signing_keys": [RELEASE_KEY],
    });
    let (base, server) = one_shot_http("201 Created", answer.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let out = enroll(&base, tmp.path(), &[]);
    server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (identity, _) = StateDir::new(tmp.path()).load().unwrap().unwrap();
    assert_eq!(identity.signing_keys, [RELEASE_KEY]);
}

#[test]
fn enroll_refuses_an_invalid_signing_key_naming_it() {
    let answer = serde_json::json!({
        "agent_id": AGENT_ID,
        "agent_secret": "rmm_as_x",
        "signing_keys": [RELEASE_KEY, "rmm-ed25519-public:c2hvcnQ="],
    });
    let (base, server) = one_shot_http("201 Created", answer.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let out = enroll(&base, tmp.path(), &[]);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("signing_keys[1]")
            && stderr.contains("rmm-ed25519-public:c2hvcnQ=")
            && stderr.contains("expected 32 bytes, found 5"),
        "{stderr}"
    );
    assert!(!tmp.path().join("identity.json").exists(), "nothing stored");
}

#[test]
fn enroll_shows_the_servers_refusal_and_fails() {
    let (base, server) = one_shot_http(
        "401 Unauthorized",
        r#"{"error":{"code":"token_expired","message":"the enrollment token has expired"}}"#.into(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = enroll(&base, tmp.path(), &[]);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the enrollment token has expired")
            && stderr.contains("token_expired")
            && stderr.contains("401"),
        "{stderr}"
    );
    assert!(!tmp.path().join("identity.json").exists());
    assert!(!tmp.path().join("secret").exists());
}

#[test]
fn enroll_explains_an_unreachable_server() {
    let port = common::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let out = enroll(&format!("http://127.0.0.1:{port}"), tmp.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach the control plane") && stderr.contains("refused"),
        "{stderr}"
    );
}

fn enrolled_state(opamp_url: String) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    StateDir::new(tmp.path())
        .save(
            &Identity {
                agent_id: AGENT_ID.into(),
                server: "http://127.0.0.1".into(),
                opamp_url,
                enrolled_at: "2026-11-27T00:00:00Z".into(),
                client_id: None,
                site_id: None,
                signing_keys: Vec::new(),
            },
            &Secret::new("rmm_as_run-secret").unwrap(),
        )
        .unwrap();
    tmp
}

#[test]
fn metrics_keep_flowing_while_the_control_plane_does_not_answer() {
    // A control plane that accepts TCP connections and never says a word.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let state = enrolled_state(format!(
        "http://{}/v1/opamp",
        blackhole.local_addr().unwrap()
    ));
    let agent = RunningAgent::start(&[(
        "RMM_AGENT_CONTROL_STATE_DIR",
        state.path().to_str().unwrap(),
    )]);
    agent.wait_for_collections(3);
    let metrics = parse_metrics(&agent.metrics());
    let connected = metrics
        .iter()
        .find(|s| s.name == "rmm_agent_opamp_connected")
        .expect("rmm_agent_opamp_connected while enrolled");
    assert_eq!(connected.value, 0.0);
    assert!(metrics
        .iter()
        .any(|s| s.name == "rmm_agent_opamp_reconnects_total"));
}

#[test]
fn a_plain_exporter_has_no_opamp_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let agent =
        RunningAgent::start(&[("RMM_AGENT_CONTROL_STATE_DIR", tmp.path().to_str().unwrap())]);
    assert!(!agent.metrics().contains("rmm_agent_opamp_"));
}

#[test]
fn run_reports_to_the_control_plane_and_says_goodbye_on_sigterm() {
    use futures_util::{SinkExt, StreamExt};
    use rmm_opamp::{proto::ServerToAgent, ws, Limits};
    use tokio_tungstenite::tungstenite::Message;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = enrolled_state(format!(
            "http://{}/v1/opamp",
            listener.local_addr().unwrap()
        ));
        let port = common::free_port();
        let mut child = common::ChildGuard::spawn(
            Command::new(common::agent_bin())
                .args(["run", "--state-dir"])
                .arg(state.path())
                .env("RMM_AGENT_PROMETHEUS_LISTEN", format!("127.0.0.1:{port}"))
                .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "500ms")
                .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the agent connects")
            .unwrap();
        let mut auth = None;
        let mut socket = tokio_tungstenite::accept_hdr_async(
            tcp,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                Ok(resp)
            },
        )
        .await
        .unwrap();
        assert_eq!(auth.as_deref(), Some("Bearer rmm_as_run-secret"));
        let first = recv(&mut socket).await.unwrap();
        let d = first.agent_description.expect("description");
        assert_eq!(d.string_attribute("service.instance.id"), Some(AGENT_ID));
        assert_eq!(
            d.string_attribute("service.version"),
            Some(env!("CARGO_PKG_VERSION"))
        );
        socket
            .send(Message::Binary(
                ws::encode(&ServerToAgent::ack(first.instance_uid.clone())).into(),
            ))
            .await
            .unwrap();
        // /metrics soon shows the session as up.
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = poll(Duration::from_secs(20), Duration::from_millis(200), || {
            let (_, body) = common::http_get(addr, "/metrics").ok()?;
            body.lines()
                .any(|l| l == "rmm_agent_opamp_connected 1")
                .then_some(())
        });
        assert!(up.is_some(), "rmm_agent_opamp_connected never became 1");

        // SIGTERM: the last message is agent_disconnect, then the agent exits cleanly.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.pid() as i32, libc::SIGTERM) };
        let mut saw_disconnect = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("the agent's goodbye in time")
            {
                Some(Ok(Message::Binary(b))) => {
                    let m = ws::decode_agent_to_server(&b, &Limits::default()).unwrap();
                    saw_disconnect |= m.is_disconnect();
                    let reply = ws::encode(&ServerToAgent::ack(m.instance_uid));
                    let _ = socket.send(Message::Binary(reply.into())).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
        assert!(saw_disconnect, "agent_disconnect before Close");
        let status = poll(Duration::from_secs(10), Duration::from_millis(50), || {
            child.0.try_wait().unwrap()
        })
        .expect("the agent exits after SIGTERM");
        let mut stderr = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "exit {status:?}\n{stderr}");
        assert!(
            !stderr.contains("run-secret"),
            "secret in the log:\n{stderr}"
        );
        assert!(
            stderr.contains("Connected to the control plane"),
            "{stderr}"
        );
    });
}

/// The next `AgentToServer` on `socket`; `None` once the agent closed it.
async fn recv(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<rmm_opamp::proto::AgentToServer> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Binary(b))) => {
                return Some(
                    rmm_opamp::ws::decode_agent_to_server(&b, &rmm_opamp::Limits::default())
                        .unwrap(),
                )
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            _ => continue,
        }
    }
}
