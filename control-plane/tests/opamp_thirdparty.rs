//! Real third-party OpAMP clients against the real control-plane binary, over plain HTTP:
//! the OpenTelemetry project's Python client (`opentelemetry-opamp-client`) and Elastic's
//! Node.js client (`@elastic/opamp-client-node`), installed by deploy/install-test-tools.sh.
//!
//! Each one joins with an enrollment token as its bearer credential (neither client can
//! apply offered connection settings, so the token keeps naming the agent it enrolled), and
//! again with an agent secret from REST enrollment; it must appear in `GET /api/v1/agents`
//! with the description it sent and stay online across several polls.
//!
//! Remote config: with a site policy in force, each client that declares AcceptsRemoteConfig
//! receives the agent's effective configuration (the hash the effective-config API names),
//! answers it APPLIED or FAILED, and that answer is what `GET /agents/config-status` shows;
//! a client without the capability receives none and is listed as `unsupported`.

#[path = "api/common.rs"]
mod common;
#[path = "thirdparty/support.rs"]
mod support;

use common::Backend;
use serde_json::{json, Value};
use support::*;

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// The agent is online with the description the client sent and stays online while the
/// client polls; `last_seen` moves forward.
async fn assert_online_and_polling(
    s: &common::Server,
    id: &str,
    service: &str,
    host: &str,
    version: &str,
) {
    let a = wait_status(s, id, "online", 5.0).await;
    let a = if a["description"]["identifying_attributes"]["service.name"] == service {
        a
    } else {
        wait_for(3.0, "description", || async {
            let a = agent(s, id).await;
            (a["description"]["identifying_attributes"]["service.name"] == service).then_some(a)
        })
        .await
    };
    assert_eq!(
        a["description"]["non_identifying_attributes"]["host.name"], host,
        "{a}"
    );
    assert_eq!(a["hostname"], host, "{a}");
    assert_eq!(a["os"], "linux", "{a}");
    assert_eq!(a["agent_version"], version, "{a}");
    let first_seen = a["last_seen"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let later = agent(s, id).await;
    assert_eq!(
        later["status"], "online",
        "still online after several polls: {later}"
    );
    assert!(
        later["last_seen"].as_str().unwrap() > first_seen.as_str(),
        "last_seen advances: {first_seen} → {later}"
    );
}

async fn python_client(backend: Backend) {
    let python = python();
    let s = start(&backend).await;
    let site = site(&s, "Py Corp").await;
    let (token_id, token) = s.new_enrollment_token(&site, json!({"max_uses": 1})).await;

    // 1. Enrollment token as the credential: the server enrolls the client at its first
    //    status report and keeps recognising it by instance uid on every poll.
    let args = |bearer: &str, seconds: &str, host: &str| -> Vec<String> {
        [
            script("python_client.py").display().to_string(),
            "--endpoint".into(),
            opamp_http_url(&s),
            "--bearer".into(),
            bearer.into(),
            "--interval".into(),
            "0.4".into(),
            "--seconds".into(),
            seconds.into(),
            "--host-name".into(),
            host.into(),
        ]
        .to_vec()
    };
    let mut client = ClientProcess::spawn(&python, &args(&token, "6", "py-host"));
    let start = client.next_event(30).await;
    assert_eq!(start["event"], "start", "{start}");
    let uid = start["instance_uid"].as_str().unwrap().to_owned();
    // The client's own instance uid became the agent id.
    assert_online_and_polling(&s, &uid, "python-opamp-test", "py-host", "0.5b0-test").await;
    let events = client.finish(20).await;
    let connects = events_named(&events, "connect").len();
    assert!(
        connects >= 5,
        "several answered polls, got {connects}: {events:?}"
    );
    assert!(
        events_named(&events, "error").is_empty(),
        "no error responses: {events:?}"
    );
    assert!(
        events_named(&events, "connect_failed").is_empty(),
        "no failed requests: {events:?}"
    );
    // stop() sends agent_disconnect: offline at once.
    wait_status(&s, &uid, "offline", 2.0).await;
    let token = s
        .get(&format!("/api/v1/enrollment-tokens/{token_id}"), &s.admin)
        .await;
    assert_eq!(
        token["uses"], 1,
        "one enrollment, however many polls: {token}"
    );
    let listed = s
        .get(&format!("/api/v1/agents?site_id={site}"), &s.admin)
        .await;
    assert_eq!(listed["total"], 1, "{listed}");

    // 2. An agent secret from REST enrollment as the credential.
    let (agent_id, secret) = s.new_agent(&site, "py-rest", json!({})).await;
    let mut client = ClientProcess::spawn(&python, &args(&secret, "4", "py-rest"));
    assert_eq!(client.next_event(30).await["event"], "start");
    assert_online_and_polling(&s, &agent_id, "python-opamp-test", "py-rest", "0.5b0-test").await;
    let events = client.finish(20).await;
    assert!(events_named(&events, "error").is_empty(), "{events:?}");
    wait_status(&s, &agent_id, "offline", 2.0).await;

    // 3. A wrong credential is refused (the client sees HTTP 401 as a failed request).
    let mut client = ClientProcess::spawn(&python, &args("rmm_as_not-a-secret", "1", "py-bad"));
    assert_eq!(client.next_event(30).await["event"], "start");
    let events = client.finish(60).await;
    let failed = events_named(&events, "connect_failed");
    assert!(
        !failed.is_empty() && failed[0]["error"].as_str().unwrap().contains("401"),
        "{events:?}"
    );
    assert!(events_named(&events, "connect").is_empty(), "{events:?}");
    s.finish().await;
}

async fn node_client(backend: Backend) {
    let (node, modules) = (node(), node_modules());
    let s = start(&backend).await;
    let site = site(&s, "Node Corp").await;
    let (token_id, token) = s.new_enrollment_token(&site, json!({"max_uses": 1})).await;
    let args = |bearer: &str, seconds: &str, host: &str| -> Vec<String> {
        [
            script("node_client.js").display().to_string(),
            "--modules".into(),
            modules.display().to_string(),
            "--endpoint".into(),
            opamp_http_url(&s),
            "--bearer".into(),
            bearer.into(),
            "--interval".into(),
            "0.4".into(),
            "--seconds".into(),
            seconds.into(),
            "--host-name".into(),
            host.into(),
        ]
        .to_vec()
    };

    // 1. Enrollment token as the credential.
    let mut client = ClientProcess::spawn(&node, &args(&token, "6", "node-host"));
    let start = client.next_event(30).await;
    assert_eq!(start["event"], "start", "{start}");
    let uid = start["instance_uid"].as_str().unwrap().to_owned();
    assert_online_and_polling(&s, &uid, "node-opamp-test", "node-host", "0.5.0-test").await;
    let events = client.finish(20).await;
    let ok = events_named(&events, "success");
    assert!(
        ok.len() >= 5,
        "several answered polls, got {}: {events:?}",
        ok.len()
    );
    // The client drops replies whose instance uid is not its own; every reply echoes it.
    assert!(
        ok.iter()
            .all(|e| e["instance_uid"] == uid.as_str() && e["error"].is_null()),
        "{events:?}"
    );
    assert!(
        events_named(&events, "fail").is_empty(),
        "no failed requests: {events:?}"
    );
    // shutdown() sends no agent_disconnect: offline once its polls stop for the timeout.
    wait_status(&s, &uid, "offline", OFFLINE_TIMEOUT_S as f64 + 3.0).await;
    let token = s
        .get(&format!("/api/v1/enrollment-tokens/{token_id}"), &s.admin)
        .await;
    assert_eq!(token["uses"], 1, "{token}");

    // 2. An agent secret from REST enrollment.
    let (agent_id, secret) = s.new_agent(&site, "node-rest", json!({})).await;
    let mut client = ClientProcess::spawn(&node, &args(&secret, "4", "node-rest"));
    assert_eq!(client.next_event(30).await["event"], "start");
    assert_online_and_polling(&s, &agent_id, "node-opamp-test", "node-rest", "0.5.0-test").await;
    let events = client.finish(20).await;
    assert!(events_named(&events, "fail").is_empty(), "{events:?}");
    s.finish().await;
}

/// The configuration status the API shows for `id`.
async fn config_status(s: &common::Server, id: &str) -> Value {
    let list = s.get("/api/v1/agents/config-status", &s.admin).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["agent_id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_config_status(s: &common::Server, id: &str, want: &str) -> Value {
    wait_for(5.0, &format!("config status {want}"), || async {
        let st = config_status(s, id).await;
        (st["config_status"] == want).then_some(st)
    })
    .await
}

/// The one `remote_config` event of a finished client, checked against the effective
/// configuration the API computes for `id`.
async fn assert_received_effective_config(s: &common::Server, id: &str, events: &[Value]) {
    let got = events_named(events, "remote_config");
    assert!(!got.is_empty(), "a remote config was offered: {events:?}");
    let effective = s
        .get(&format!("/api/v1/agents/{id}/effective-config"), &s.admin)
        .await;
    assert_eq!(got[0]["hash"], effective["hash"], "{effective}");
    let file = &got[0]["files"]["agent.toml"];
    assert_eq!(file["body"], effective["toml"], "{file}");
    assert!(
        file["body"].as_str().unwrap().contains("top_processes = 3"),
        "{file}"
    );
}

async fn remote_config_to_third_party_clients(backend: Backend) {
    let (python, node, modules) = (python(), node(), node_modules());
    let s = start(&backend).await;
    let site = site(&s, "Config Corp").await;
    let client_id = s.get(&format!("/api/v1/sites/{site}"), &s.admin).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = common::id(
        &s.create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "three processes", "client_id": client_id,
                   "document": {"schema_version": 1, "collect": {"top_processes": 3}}}),
        )
        .await,
    );
    s.create(
        &format!("/api/v1/policies/{policy}/assignments"),
        &s.admin,
        json!({"scope": "site", "target_id": site}),
    )
    .await;
    let endpoint = opamp_http_url(&s);
    let common_args = |bearer: &str, host: &str| -> Vec<String> {
        [
            "--endpoint",
            &endpoint,
            "--bearer",
            bearer,
            "--interval",
            "0.3",
            "--seconds",
            "3",
            "--host-name",
            host,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Python, enrolled by its token: receives the config and applies it.
    let (token_id, token) = s.new_enrollment_token(&site, json!({"max_uses": 2})).await;
    let mut args = vec![script("python_client.py").display().to_string()];
    args.extend(common_args(&token, "py-config"));
    let mut client = ClientProcess::spawn(&python, &args);
    let start_event = client.next_event(30).await;
    let py_id = start_event["instance_uid"].as_str().unwrap().to_owned();
    let events = client.finish(30).await;
    assert_received_effective_config(&s, &py_id, &events).await;
    let st = wait_config_status(&s, &py_id, "applied").await;
    assert_eq!(st["reported"]["status"], "applied", "{st}");

    // Node, with an agent secret: receives it and refuses it; the API shows why.
    let (node_id, secret) = s.new_agent(&site, "node-config", json!({})).await;
    let mut args = vec![
        script("node_client.js").display().to_string(),
        "--modules".into(),
        modules.display().to_string(),
        "--remote-config".into(),
        "failed".into(),
    ];
    args.extend(common_args(&secret, "node-config"));
    let mut client = ClientProcess::spawn(&node, &args);
    assert_eq!(client.next_event(30).await["event"], "start");
    let events = client.finish(30).await;
    assert_received_effective_config(&s, &node_id, &events).await;
    let st = wait_config_status(&s, &node_id, "failed").await;
    assert_eq!(
        st["reported"]["error_message"], "node test client refuses this config",
        "{st}"
    );

    // Python without AcceptsRemoteConfig: nothing is offered; listed as unsupported.
    let mut args = vec![
        script("python_client.py").display().to_string(),
        "--no-remote-config".into(),
    ];
    args.extend(common_args(&token, "py-plain"));
    let mut client = ClientProcess::spawn(&python, &args);
    let plain_id = client.next_event(30).await["instance_uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = client.finish(30).await;
    assert!(
        events_named(&events, "remote_config").is_empty(),
        "no remote config without the capability: {events:?}"
    );
    assert!(
        !events_named(&events, "connect").is_empty(),
        "it was answered: {events:?}"
    );
    wait_config_status(&s, &plain_id, "unsupported").await;
    let token = s
        .get(&format!("/api/v1/enrollment-tokens/{token_id}"), &s.admin)
        .await;
    assert_eq!(token["uses"], 2, "{token}");
    s.finish().await;
}

backend_tests!(
    python_client,
    node_client,
    remote_config_to_third_party_clients
);
