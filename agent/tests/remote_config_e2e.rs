//! End to end with the real control plane: an operator lowers `collect.top_processes` for one
//! site through the policies API; within 2 s that site's agent serves the new number of
//! process series on `/metrics` while another site's agent keeps the default, the
//! effective-config API names the policy that set it, and the agent's reported hash is the
//! one the control plane expects (`config_status` = `applied`).
//!
//! The control-plane binary is the workspace's own build (`cargo test --workspace` / nextest
//! builds it); `RMM_TEST_CONTROL_PLANE` names another one.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::control_plane::{Api, ControlPlane};
use common::{agent_command, free_port, http_get, parse_metrics, ChildGuard};
use rmm_agent::control::identity::{Identity, Secret, StateDir};
use serde_json::{json, Value};

/// Distinct top processes (pids) on an agent's `/metrics`; `None` before the first cycle.
fn top_processes(addr: SocketAddr) -> Option<usize> {
    let (_, body) = http_get(addr, "/metrics").ok()?;
    let samples: Vec<_> = parse_metrics(&body)
        .into_iter()
        .filter(|s| s.name == "process_memory_usage_bytes")
        .collect();
    if samples.is_empty() {
        return None;
    }
    let pids: BTreeSet<&str> = samples
        .iter()
        .map(|s| s.label("process_pid"))
        .filter(|p| !p.is_empty())
        .collect();
    Some(pids.len())
}

struct SiteAgent {
    id: String,
    log: PathBuf,
    metrics: SocketAddr,
    _child: ChildGuard,
}

async fn enroll_and_run(
    api: &Api,
    cp: &ControlPlane,
    dir: &Path,
    site_id: &str,
    host_id: Option<&str>,
) -> SiteAgent {
    let token = api
        .post("/api/v1/enrollment-tokens", json!({"site_id": site_id}))
        .await;
    let token = token["token"].as_str().unwrap();
    let state = dir.join(format!("state-{site_id}"));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let agent_id = match host_id {
        // This host, through the real `rmm-agent enroll`.
        None => {
            let out = agent_command()
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
                serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap())
                    .unwrap();
            identity["agent_id"].as_str().unwrap().to_owned()
        }
        // A second "host" on the same machine: the control plane keys agents by host id
        // (/etc/machine-id), so this one enrolls over the API with its own id.
        Some(host_id) => {
            let r = api
                .http
                .post(format!("{}/api/v1/enroll", cp.base))
                .json(
                    &json!({"token": token, "host_id": host_id, "hostname": host_id,
                    "os": "linux", "arch": "amd64", "agent_version": env!("CARGO_PKG_VERSION"),
                    "metrics_address": metrics.to_string()}),
                )
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            let agent_id = v["agent_id"].as_str().unwrap_or_else(|| panic!("{v}"));
            StateDir::new(&state)
                .save(
                    &Identity {
                        agent_id: agent_id.to_owned(),
                        server: cp.base.clone(),
                        opamp_url: v["opamp_url"]
                            .as_str()
                            .map_or_else(|| format!("{}/v1/opamp", cp.base), str::to_owned),
                        enrolled_at: "2026-11-27T00:00:00Z".into(),
                        client_id: None,
                        site_id: Some(site_id.to_owned()),
                        signing_keys: Vec::new(),
                    },
                    &Secret::new(v["agent_secret"].as_str().unwrap()).unwrap(),
                )
                .unwrap();
            agent_id.to_owned()
        }
    };
    let log = dir.join(format!("agent-{site_id}.log"));
    let child = ChildGuard::spawn(
        agent_command()
            .args(["run", "--state-dir"])
            .arg(&state)
            .env("RMM_AGENT_PROMETHEUS_LISTEN", metrics.to_string())
            .env("RMM_AGENT_COLLECT_INTERVAL", "250ms")
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    SiteAgent {
        id: agent_id,
        log,
        metrics,
        _child: child,
    }
}

impl SiteAgent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn lowering_top_processes_for_one_site_reaches_only_its_agent_within_2_s() {
    let tmp = tempfile::tempdir().unwrap();
    let cp = ControlPlane::new(tmp.path());
    let api = Api::login(&cp.base).await;
    let client = api.post("/api/v1/clients", json!({"name": "Acme"})).await;
    let client_id = client["id"].as_str().unwrap();
    let mut sites = Vec::new();
    for name in ["North", "South"] {
        let site = api
            .post(
                &format!("/api/v1/clients/{client_id}/sites"),
                json!({"name": name}),
            )
            .await;
        sites.push(site["id"].as_str().unwrap().to_owned());
    }
    let north = enroll_and_run(&api, &cp, tmp.path(), &sites[0], None).await;
    let south = enroll_and_run(&api, &cp, tmp.path(), &sites[1], Some("e2e-south-host")).await;
    for a in [&north, &south] {
        api.wait_for(&a.id, Duration::from_secs(10), "online", |row| {
            row["status"] == "online"
        })
        .await;
        let t = Instant::now();
        while top_processes(a.metrics).is_none_or(|n| n < 10) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "10 top processes by default on {}",
                a.metrics
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let policy = api
        .post(
            "/api/v1/policies",
            json!({"name": "fewer processes", "client_id": client_id,
                   "document": {"schema_version": 1, "collect": {"top_processes": 2}}}),
        )
        .await;
    let policy_id = policy["id"].as_str().unwrap();
    let t = Instant::now();
    api.post(
        &format!("/api/v1/policies/{policy_id}/assignments"),
        json!({"scope": "site", "target_id": sites[0]}),
    )
    .await;
    let mut north_now = None;
    while t.elapsed() < Duration::from_secs(2) {
        north_now = top_processes(north.metrics);
        if north_now.is_some_and(|n| (1..=4).contains(&n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = t.elapsed();
    assert!(
        north_now.is_some_and(|n| (1..=4).contains(&n)) && took <= Duration::from_secs(2),
        "the site's agent serves at most 2x2 top processes within 2 s (took {took:?}, serves {north_now:?})\nagent log:\n{}\ncontrol plane log:\n{}",
        north.log(),
        cp.log()
    );
    // The other site's agent keeps the default, past the same 2 s.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(t.elapsed()) + Duration::from_millis(500),
    )
    .await;
    let south_now = top_processes(south.metrics);
    assert!(
        south_now.is_some_and(|n| n >= 10),
        "other site unchanged: {south_now:?}"
    );

    // The API explains why, and the agent's reported hash is the expected one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ec = loop {
        let ec = api
            .get(&format!("/api/v1/agents/{}/effective-config", north.id))
            .await;
        if ec["config_status"] == "applied" || Instant::now() > deadline {
            break ec;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ec["config_status"], "applied", "{ec}");
    assert_eq!(ec["config"]["collect"]["top_processes"], 2, "{ec}");
    let why = &ec["provenance"]["collect.top_processes"];
    assert!(
        why.to_string().contains(policy_id),
        "provenance names the policy: {ec}"
    );
    let other = api
        .get(&format!("/api/v1/agents/{}/effective-config", south.id))
        .await;
    assert!(
        other["config"]["collect"]["top_processes"].is_null(),
        "{other}"
    );
}

/// The user inventory end to end: a client policy sets `inventory.interval_hours`; the agent
/// reads `/etc/passwd` and reports it over OpAMP; `GET agents/{id}/users` lists the host's
/// accounts (root among them) with the time they were read.
#[tokio::test(flavor = "current_thread")]
async fn a_policy_turns_on_the_user_inventory_shown_by_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let cp = ControlPlane::new(tmp.path());
    let api = Api::login(&cp.base).await;
    let client = api.post("/api/v1/clients", json!({"name": "Inv"})).await;
    let client_id = client["id"].as_str().unwrap();
    let site = api
        .post(
            &format!("/api/v1/clients/{client_id}/sites"),
            json!({"name": "HQ"}),
        )
        .await;
    let site_id = site["id"].as_str().unwrap();
    let agent = enroll_and_run(&api, &cp, tmp.path(), site_id, None).await;
    api.wait_for(&agent.id, Duration::from_secs(10), "online", |row| {
        row["status"] == "online"
    })
    .await;
    let before = api.get(&format!("/api/v1/agents/{}/users", agent.id)).await;
    assert_eq!(before["reported"], false, "off by default: {before}");

    let policy = api
        .post(
            "/api/v1/policies",
            json!({"name": "inventory", "client_id": client_id,
                   "document": {"schema_version": 1, "inventory": {"interval_hours": 24}}}),
        )
        .await;
    api.post(
        &format!(
            "/api/v1/policies/{}/assignments",
            policy["id"].as_str().unwrap()
        ),
        json!({"scope": "client", "target_id": client_id}),
    )
    .await;
    let t = Instant::now();
    let users = loop {
        let v = api.get(&format!("/api/v1/agents/{}/users", agent.id)).await;
        if v["reported"] == true {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "an inventory within 10 s of the policy: {v}\nagent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let expected: BTreeSet<&str> = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    let listed: BTreeSet<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, expected, "every account of /etc/passwd");
    let root = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "root")
        .unwrap();
    assert_eq!(root["uid"], 0, "{root}");
    assert!(users["sessions"].is_array(), "{users}");
    assert!(
        users["collected_at"].as_str().unwrap().starts_with("20"),
        "{users}"
    );
}
