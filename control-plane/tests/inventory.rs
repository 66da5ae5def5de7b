//! The user inventory over OpAMP against the real control-plane binary: an agent's custom
//! message `io.rmm.inventory`/`users` is stored and shown by `GET agents/{id}/users` (only to
//! callers of the agent's client); an invalid report is refused and the last good one stays;
//! unknown custom messages are ignored; deleting the agent deletes its inventory.
//!
//! Also here: deleting an agent, site or client removes the policy assignments that target
//! it (nothing is left to re-apply to a recreated object).

#[path = "api/common.rs"]
mod common;
#[path = "thirdparty/support.rs"]
mod support;

use common::Backend;
use reqwest::Method;
use rmm_opamp::capabilities::agent as cap;
use rmm_opamp::proto::{CustomCapabilities, CustomMessage};
use rmm_opamp::InstanceUid;
use serde_json::{json, Value};
use support::*;

const CAPS: u64 = cap::REPORTS_STATUS | cap::REPORTS_HEARTBEAT;

fn users_message(collected_at: u64, users: Value) -> CustomMessage {
    CustomMessage {
        capability: "io.rmm.inventory".into(),
        r#type: "users".into(),
        data: serde_json::to_vec(&json!({
            "collected_at_unix": collected_at,
            "users": users,
            "sessions": [{"user": "alice", "line": "pts/0", "host": "10.0.0.5",
                          "login_time_unix": collected_at - 60, "pid": 4242}],
        }))
        .unwrap(),
    }
}

fn alice() -> Value {
    json!([{"name": "alice", "uid": 1000, "gid": 1000, "home": "/home/alice",
            "shell": "/bin/bash", "login_shell": true},
           {"name": "daemon", "uid": 1, "gid": 1, "home": "/usr/sbin",
            "shell": "/usr/sbin/nologin", "login_shell": false}])
}

async fn counted(s: &common::Server, result: &str) -> f64 {
    let series = format!("rmm_cp_opamp_custom_messages_total{{result=\"{result}\"}}");
    common::metric(&s.metrics_text().await, &series)
}

async fn inventory_over_opamp(backend: Backend) {
    let s = start(&backend).await;
    let site = site(&s, "Inventory Corp").await;
    let (agent_id, secret) = s.new_agent(&site, "inv-host", json!({})).await;
    let uid: InstanceUid = agent_id.parse().unwrap();
    let mut ws = ws_connect(&s, Some(&secret)).await.unwrap();
    let mut first = hello(uid, 0, CAPS, "inv-host");
    first.custom_capabilities = Some(CustomCapabilities {
        capabilities: vec!["io.rmm.inventory".into()],
    });
    let reply = ws_exchange(&mut ws, &first).await;
    assert_eq!(
        reply.custom_capabilities.map(|c| c.capabilities),
        Some(vec!["io.rmm.inventory".to_owned()]),
        "the server announces the inventory capability"
    );
    let path = format!("/api/v1/agents/{agent_id}/users");
    let none = s.get(&path, &s.admin).await;
    assert_eq!(none["reported"], false, "{none}");
    assert_eq!(none["users"], json!([]), "{none}");

    // A report is stored and shown.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut msg = heartbeat(uid, 1, CAPS);
    msg.custom_message = Some(users_message(now, alice()));
    ws_exchange(&mut ws, &msg).await;
    let got = wait_for(3.0, "the inventory", || async {
        let v = s.get(&path, &s.admin).await;
        (v["reported"] == true).then_some(v)
    })
    .await;
    assert_eq!(got["agent_id"], agent_id.as_str());
    assert_eq!(got["users"], alice(), "{got}");
    assert_eq!(got["sessions"][0]["user"], "alice", "{got}");
    assert_eq!(got["sessions"][0]["pid"], 4242, "{got}");
    assert!(
        got["collected_at"].as_str().unwrap().starts_with("20"),
        "{got}"
    );
    assert_eq!(counted(&s, "stored").await, 1.0);

    // Invalid reports are refused; the session goes on and the last good report stays.
    let bad = [
        b"not json".to_vec(),
        serde_json::to_vec(
            &json!({"collected_at_unix": now, "users": [{"name": "x"}], "sessions": []}),
        )
        .unwrap(),
        serde_json::to_vec(&json!({"collected_at_unix": 0, "users": [], "sessions": []})).unwrap(),
    ];
    for (i, data) in bad.into_iter().enumerate() {
        let mut msg = heartbeat(uid, 2 + i as u64, CAPS);
        msg.custom_message = Some(CustomMessage {
            data,
            ..users_message(now, json!([]))
        });
        let reply = ws_exchange(&mut ws, &msg).await;
        assert!(reply.error_response.is_none(), "{reply:?}");
    }
    // Other capabilities or types are ignored.
    let mut msg = heartbeat(uid, 5, CAPS);
    msg.custom_message = Some(CustomMessage {
        capability: "com.example.other".into(),
        r#type: "users".into(),
        data: b"{}".to_vec(),
    });
    ws_exchange(&mut ws, &msg).await;
    assert_eq!(counted(&s, "rejected").await, 3.0);
    assert_eq!(counted(&s, "ignored").await, 1.0);
    let still = s.get(&path, &s.admin).await;
    assert_eq!(
        still["users"],
        alice(),
        "the last good report stays: {still}"
    );
    assert_eq!(still["collected_at"], got["collected_at"]);

    // Another client's caller cannot see it; this client's viewer can.
    let other = s.new_client("Elsewhere").await;
    let (_, outsider) = s
        .new_user("outsider@example.com", "viewer", Some(&other))
        .await;
    let (st, body) = s.call(Method::GET, &path, Some(&outsider), None).await;
    assert_eq!(st.as_u16(), 404, "{body}");
    let client_id = s.get(&format!("/api/v1/sites/{site}"), &s.admin).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, insider) = s
        .new_user("insider@example.com", "viewer", Some(&client_id))
        .await;
    let (st, body) = s.call(Method::GET, &path, Some(&insider), None).await;
    assert_eq!(st.as_u16(), 200, "{body}");
    assert_eq!(body["users"], alice());

    // Deleting the agent deletes its inventory (a re-enrolled host starts empty) and ends
    // its live session at once.
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{agent_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st.as_u16(), 204);
    assert_eq!(
        ws_close_code(&mut ws).await,
        Some((1008, "refused".to_owned())),
        "the deleted agent's session is closed"
    );
    let db = s.db.connect().await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_inventory")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    s.finish().await;
}

async fn assignments(s: &common::Server, policy: &str) -> Vec<Value> {
    s.get(&format!("/api/v1/policies/{policy}/assignments"), &s.admin)
        .await["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("assignment list"))
}

async fn deleting_targets_removes_their_assignments(backend: Backend) {
    let s = common::Server::start(&backend).await;
    let client = s.new_client("Gone Corp").await;
    let site = s.new_site(&client, "Branch").await;
    let (agent, _) = s.new_agent(&site, "gone-host", json!({})).await;
    let global = common::id(
        &s.create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "global", "document": {"schema_version": 1, "collect": {"top_processes": 5}}}),
        )
        .await,
    );
    for (i, (scope, target)) in [("client", &client), ("site", &site), ("agent", &agent)]
        .into_iter()
        .enumerate()
    {
        s.create(
            &format!("/api/v1/policies/{global}/assignments"),
            &s.admin,
            json!({"scope": scope, "target_id": target, "priority": i}),
        )
        .await;
    }
    assert_eq!(assignments(&s, &global).await.len(), 3);
    let delete = |path: String| {
        let s = &s;
        async move {
            let (st, body) = s.call(Method::DELETE, &path, Some(&s.admin), None).await;
            (st.as_u16(), body)
        }
    };
    assert_eq!(delete(format!("/api/v1/agents/{agent}")).await.0, 204);
    let left = assignments(&s, &global).await;
    assert_eq!(
        left.len(),
        2,
        "the agent's assignment went with it: {left:?}"
    );
    assert!(left.iter().all(|a| a["scope"] != "agent"));
    let db = s.db.connect().await;
    let configs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_configs WHERE agent_id = $1")
        .bind(&agent)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(configs, 0, "no stored config outlives its agent");

    assert_eq!(delete(format!("/api/v1/sites/{site}")).await.0, 204);
    let left = assignments(&s, &global).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["scope"], "client");

    // A client that still owns policies cannot be deleted; the answer says why, and nothing
    // changes.
    let own = common::id(
        &s.create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "own", "client_id": client, "document": {"schema_version": 1}}),
        )
        .await,
    );
    let (st, body) = delete(format!("/api/v1/clients/{client}")).await;
    assert_eq!(st, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 policy"),
        "{body}"
    );
    assert_eq!(assignments(&s, &global).await.len(), 1);
    assert_eq!(delete(format!("/api/v1/policies/{own}")).await.0, 204);
    assert_eq!(delete(format!("/api/v1/clients/{client}")).await.0, 204);
    assert!(assignments(&s, &global).await.is_empty());
    s.finish().await;
}

backend_tests!(
    inventory_over_opamp,
    deleting_targets_removes_their_assignments
);
