//! End to end: the real `rmm-agent` enrolls into the real `rmm-control-plane` (SQLite in a
//! temp dir) and keeps its OpAMP session through an agent pause, a control-plane restart on
//! the same port, and a kill:
//!
//! 1. `enroll` + `run` → `online` with its description in `GET /api/v1/agents` within 2 s;
//! 2. SIGSTOP (socket open, heartbeats stop) → `offline` after 3 missed heartbeats; SIGCONT →
//!    `online` again by itself;
//! 3. control plane killed and restarted on the same port → the agent reconnects by itself;
//! 4. SIGKILL → `offline` within 3 heartbeats.
//!
//! Heartbeats are 1 s here (agent `[control] heartbeat_interval`, control plane offline
//! timeout 3 s). The control-plane binary is the workspace's own build (`cargo test
//! --workspace` / nextest builds it); `RMM_TEST_CONTROL_PLANE` names another one.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::control_plane::{Api, ControlPlane};
use common::{agent_command, free_port, ChildGuard};
use serde_json::{json, Value};

const HEARTBEAT: Duration = Duration::from_secs(1);

fn status(a: &Value) -> &str {
    a["status"].as_str().unwrap_or_default()
}

fn signal(child: &ChildGuard, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, sig) }, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn agent_enrolls_shows_online_goes_offline_and_reconnects_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cp = ControlPlane::new(tmp.path());
    let api = Api::login(&cp.base).await;
    let client = api.post("/api/v1/clients", json!({"name": "Acme"})).await;
    let client_id = client["id"].as_str().unwrap();
    let site = api
        .post(
            &format!("/api/v1/clients/{client_id}/sites"),
            json!({"name": "HQ"}),
        )
        .await;
    let token = api
        .post("/api/v1/enrollment-tokens", json!({"site_id": site["id"]}))
        .await;
    let token = token["token"].as_str().unwrap();

    // enroll
    let state = tmp.path().join("agent-state");
    let metrics_port = free_port();
    let out = agent_command()
        .args(["enroll", "--server", &cp.base, "--token", token])
        .arg("--state-dir")
        .arg(&state)
        .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    let agent_id = identity["agent_id"].as_str().unwrap().to_owned();
    let (row, _) = api
        .wait_for(&agent_id, Duration::from_secs(2), "listed", |_| true)
        .await;
    assert_eq!(status(&row), "pending", "{row}");

    // run → online with its description within 2 s
    let agent_log = tmp.path().join("agent.log");
    let t = Instant::now();
    let mut agent = Some(ChildGuard::spawn(
        agent_command()
            .args(["run", "--state-dir"])
            .arg(&state)
            .env(
                "RMM_AGENT_PROMETHEUS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s")
            .env("RMM_AGENT_CONTROL_RECONNECT_MAX", "3s")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap()),
    ));
    let (row, _) = api
        .wait_for(&agent_id, Duration::from_secs(5), "online", |a| {
            status(a) == "online"
                && a["description"]["identifying_attributes"]["service.name"] == "rmm-agent"
        })
        .await;
    let online_after = t.elapsed();
    let d = &row["description"];
    assert_eq!(
        d["identifying_attributes"]["service.instance.id"], agent_id,
        "{row}"
    );
    assert_eq!(
        d["identifying_attributes"]["service.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        d["non_identifying_attributes"]["host.name"].is_string(),
        "{row}"
    );
    assert!(
        d["non_identifying_attributes"]["os.type"].is_string(),
        "{row}"
    );
    println!("online with description after {online_after:?} (goal: 2 s)");
    assert!(
        online_after <= Duration::from_secs(2),
        "online after {online_after:?}, goal 2 s"
    );

    // SIGSTOP: the socket stays open but heartbeats stop → offline after 3 missed ones.
    let child = agent.as_ref().unwrap();
    signal(child, libc::SIGSTOP);
    let (_, offline_after) = api
        .wait_for(&agent_id, Duration::from_secs(10), "offline", |a| {
            status(a) == "offline"
        })
        .await;
    println!("offline {offline_after:?} after heartbeats stopped (3 heartbeats = 3 s, swept every 0.75 s)");
    assert!(
        // 3 heartbeats, plus the sweep period and slack for a loaded machine.
        offline_after <= 3 * HEARTBEAT + Duration::from_secs(2),
        "offline after {offline_after:?}"
    );
    signal(child, libc::SIGCONT);
    let (_, back) = api
        .wait_for(&agent_id, Duration::from_secs(15), "online again", |a| {
            status(a) == "online"
        })
        .await;
    println!("online again {back:?} after SIGCONT");

    // Control plane restart on the same port: the agent comes back by itself.
    cp.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.start();
    let api = Api::login(&cp.base).await;
    // The database may still say `online` from before the restart: the proof is a live
    // session in the new process, and the agent's own count of reconnects.
    let t = Instant::now();
    let cp_addr = format!("127.0.0.1:{}", cp.port).parse().unwrap();
    let live = common::poll(Duration::from_secs(20), Duration::from_millis(50), || {
        let (_, body) = common::http_get(cp_addr, "/metrics").ok()?;
        body.lines()
            .any(|l| l == "rmm_cp_agents_connected{transport=\"websocket\"} 1")
            .then_some(())
    });
    assert!(
        live.is_some(),
        "no live OpAMP session in the restarted control plane after 20 s\ncontrol plane:\n{}",
        cp.log()
    );
    let reconnected = t.elapsed();
    println!("session live in the restarted control plane {reconnected:?} after it was up");
    let (row, _) = api
        .wait_for(
            &agent_id,
            Duration::from_secs(5),
            "online after restart",
            |a| status(a) == "online",
        )
        .await;
    assert!(row["last_seen"].is_string(), "{row}");
    let agent_addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let counted = common::poll(Duration::from_secs(5), Duration::from_millis(100), || {
        let (_, body) = common::http_get(agent_addr, "/metrics").ok()?;
        let samples = common::parse_metrics(&body);
        let get = |n: &str| samples.iter().find(|s| s.name == n).map(|s| s.value);
        (get("rmm_agent_opamp_connected") == Some(1.0)
            && get("rmm_agent_opamp_reconnects_total").unwrap_or(0.0) >= 1.0)
            .then_some(())
    });
    assert!(
        counted.is_some(),
        "the agent's /metrics should show the session up again after reconnecting"
    );

    // SIGKILL → offline within 3 heartbeats.
    drop(agent.take());
    let (_, offline_after) = api
        .wait_for(&agent_id, 3 * HEARTBEAT, "offline after kill", |a| {
            status(a) == "offline"
        })
        .await;
    println!("offline {offline_after:?} after the agent was killed (goal: 3 heartbeats = 3 s)");
    let agent_log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    let secret = std::fs::read_to_string(state.join("secret")).unwrap();
    assert!(
        !agent_log.contains(secret.trim()),
        "the agent logged its secret"
    );
    assert!(
        !cp.log().contains(secret.trim()),
        "the control plane logged the agent secret"
    );
}
