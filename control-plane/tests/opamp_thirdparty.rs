//! Real third-party OpAMP clients against the real control-plane binary, over plain HTTP:
//! the OpenTelemetry project's Python client (`opentelemetry-opamp-client`) and Elastic's
//! Node.js client (`@elastic/opamp-client-node`), installed by deploy/install-test-tools.sh.
//!
//! Each one joins with an enrollment token as its bearer credential (neither client can
//! apply offered connection settings, so the token keeps naming the agent it enrolled), and
//! again with an agent secret from REST enrollment; it must appear in `GET /api/v1/agents`
//! with the description it sent and stay online across several polls.

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

backend_tests!(python_client, node_client);
