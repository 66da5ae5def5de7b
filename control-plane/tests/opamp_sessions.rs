//! Raw OpAMP sessions against the real control-plane binary: WebSocket (framing, full-state
//! requests, malformed and oversized messages ending only their own session, liveness,
//! enrollment over OpAMP with credentials handed out in connection settings) and plain HTTP
//! (content type, gzip both ways, 413, BAD_REQUEST, 401).

#[path = "api/common.rs"]
mod common;
#[path = "thirdparty/support.rs"]
mod support;

use std::io::{Read, Write};

use common::{metric, Backend};
use futures_util::SinkExt;
use rmm_opamp::capabilities::{agent as cap, server, server_flags};
use rmm_opamp::prost::Message as _;
use rmm_opamp::proto::{AgentToServer, ComponentHealth, ServerToAgent};
use rmm_opamp::InstanceUid;
use rmm_opamp::ServerErrorKind;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const CAPS: u64 = cap::REPORTS_STATUS | cap::REPORTS_HEALTH | cap::REPORTS_HEARTBEAT;

fn uid_of(id: &str) -> InstanceUid {
    id.parse().unwrap()
}

async fn websocket_sessions(backend: Backend) {
    let s = start(&backend).await;
    let site = site(&s, "WS Corp").await;
    let (a_id, a_secret) = s.new_agent(&site, "ws-a", json!({})).await;
    let (b_id, b_secret) = s.new_agent(&site, "ws-b", json!({})).await;
    let (c_id, c_secret) = s.new_agent(&site, "ws-c", json!({})).await;
    let (a, b, c) = (uid_of(&a_id), uid_of(&b_id), uid_of(&c_id));

    // Authentication happens before the upgrade: 401.
    for bearer in [None, Some("rmm_as_wrong"), Some("rmm_et_wrong")] {
        match ws_connect(&s, bearer).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{bearer:?}")
            }
            other => panic!("{bearer:?}: expected 401, got {other:?}"),
        }
    }

    // First message: capabilities in the reply, uid echoed, no full-state request (it
    // carried a description); the agent is online with its description.
    let mut wa = ws_connect(&s, Some(&a_secret)).await.unwrap();
    let reply = ws_exchange(&mut wa, &hello(a, 1, CAPS, "ws-a")).await;
    assert_eq!(reply.instance_uid, a.to_vec());
    assert!(
        reply.capabilities & server::ACCEPTS_STATUS != 0,
        "{reply:?}"
    );
    assert_eq!(reply.flags & server_flags::REPORT_FULL_STATE, 0);
    let agent_a = wait_status(&s, &a_id, "online", 2.0).await;
    assert_eq!(
        agent_a["description"]["identifying_attributes"]["service.name"],
        "io.rmm.test-agent"
    );
    assert_eq!(agent_a["agent_version"], "9.9.9");
    // Health is stored; a heartbeat in sequence needs nothing more.
    let mut with_health = heartbeat(a, 2, CAPS);
    with_health.health = Some(ComponentHealth::unhealthy("disk full"));
    let reply = ws_exchange(&mut wa, &with_health).await;
    assert_eq!(reply.flags & server_flags::REPORT_FULL_STATE, 0);
    wait_for(2.0, "health stored", || async {
        let v = agent(&s, &a_id).await;
        (v["health"]["last_error"] == "disk full" && v["health"]["healthy"] == false).then_some(())
    })
    .await;
    // A sequence gap asks for the full state.
    let reply = ws_exchange(&mut wa, &heartbeat(a, 7, CAPS)).await;
    assert_ne!(
        reply.flags & server_flags::REPORT_FULL_STATE,
        0,
        "gap → ReportFullState: {reply:?}"
    );
    let reply = ws_exchange(&mut wa, &heartbeat(a, 8, CAPS)).await;
    assert_eq!(reply.flags & server_flags::REPORT_FULL_STATE, 0);

    // A second agent, connected at the same time.
    let mut wb = ws_connect(&s, Some(&b_secret)).await.unwrap();
    // An unknown agent's first message without a description: asked for full state.
    let reply = ws_exchange(&mut wb, &heartbeat(b, 40, CAPS)).await;
    assert_ne!(reply.flags & server_flags::REPORT_FULL_STATE, 0);
    ws_exchange(&mut wb, &hello(b, 41, CAPS, "ws-b")).await;
    wait_status(&s, &b_id, "online", 2.0).await;

    // A malformed frame ends only A's session: BAD_REQUEST, then close 1002.
    wa.send(Message::Binary(vec![0x00, 0x0a, 0xff, 0xff].into()))
        .await
        .unwrap();
    match ws_next(&mut wa).await {
        Got::Reply(r) => assert_eq!(
            r.server_error().map(|e| e.kind),
            Some(ServerErrorKind::BadRequest)
        ),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    let (code, reason) = ws_close_code(&mut wa).await.expect("close frame");
    assert_eq!(code, 1002, "{reason}");
    wait_status(&s, &a_id, "offline", 2.0).await;
    let reply = ws_exchange(&mut wb, &heartbeat(b, 42, CAPS)).await;
    assert_eq!(reply.instance_uid, b.to_vec(), "B unaffected");

    // An oversized message (limit 64 KiB) closes with 1009; B unaffected again.
    let mut wc = ws_connect(&s, Some(&c_secret)).await.unwrap();
    ws_exchange(&mut wc, &hello(c, 1, CAPS, "ws-c")).await;
    let mut big = vec![0u8; 70_000];
    big[0] = 0x00;
    wc.send(Message::Binary(big.into())).await.unwrap();
    let (code, _) = ws_close_code(&mut wc).await.expect("close frame");
    assert_eq!(code, 1009);
    wait_status(&s, &c_id, "offline", 2.0).await;
    ws_exchange(&mut wb, &heartbeat(b, 43, CAPS)).await;

    // A text message is not OpAMP: close 1003.
    let mut wc = ws_connect(&s, Some(&c_secret)).await.unwrap();
    wc.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(ws_close_code(&mut wc).await.map(|c| c.0), Some(1003));

    // B stops sending heartbeats (socket open): offline after the timeout, socket closed.
    let started = std::time::Instant::now();
    wait_status(&s, &b_id, "offline", OFFLINE_TIMEOUT_S as f64 + 3.0).await;
    let waited = started.elapsed().as_secs_f64();
    assert!(
        waited >= OFFLINE_TIMEOUT_S as f64 - 0.5,
        "not before the timeout ({waited} s)"
    );
    assert!(
        ws_close_code(&mut wb).await.is_some(),
        "the server closed B's silent session"
    );

    // agent_disconnect: offline at once, the server closes normally.
    let mut wa = ws_connect(&s, Some(&a_secret)).await.unwrap();
    ws_exchange(&mut wa, &hello(a, 1, CAPS, "ws-a")).await;
    wait_status(&s, &a_id, "online", 2.0).await;
    ws_exchange(&mut wa, &AgentToServer::disconnect(a, 2, CAPS)).await;
    assert_eq!(ws_close_code(&mut wa).await.map(|c| c.0), Some(1000));
    wait_status(&s, &a_id, "offline", 1.0).await;

    let m = s.metrics_text().await;
    assert!(metric(&m, "rmm_cp_opamp_sessions_closed_total{reason=\"too_big\"}") >= 1.0);
    assert!(
        metric(
            &m,
            "rmm_cp_opamp_sessions_closed_total{reason=\"malformed\"}"
        ) >= 2.0
    );
    assert!(
        metric(
            &m,
            "rmm_cp_opamp_sessions_closed_total{reason=\"heartbeat_timeout\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &m,
            "rmm_cp_opamp_sessions_closed_total{reason=\"agent_disconnect\"}"
        ) >= 1.0
    );
    assert!(metric(&m, "rmm_cp_opamp_messages_total{direction=\"received\"}") >= 10.0);
    assert_eq!(
        metric(&m, "rmm_cp_agents_connected{transport=\"websocket\"}"),
        0.0
    );
    s.finish().await;
}

async fn websocket_enrollment(backend: Backend) {
    let s = start(&backend).await;
    let site = site(&s, "Enroll Corp").await;
    let (_, token) = s.new_enrollment_token(&site, json!({"max_uses": 2})).await;
    let caps = CAPS | cap::ACCEPTS_OPAMP_CONNECTION_SETTINGS;

    // An enrollment token as the bearer: enrolled from the first report; the client's uid
    // becomes the agent id; its own secret arrives in connection settings.
    let uid = InstanceUid::new_v7();
    let mut ws = ws_connect(&s, Some(&token)).await.unwrap();
    let reply = ws_exchange(&mut ws, &hello(uid, 1, caps, "enrolled-host")).await;
    assert_eq!(reply.instance_uid, uid.to_vec());
    assert!(
        reply.new_instance_uid().is_none(),
        "the client's uid was kept"
    );
    let offer = reply
        .connection_settings
        .as_ref()
        .and_then(|c| c.opamp.as_ref())
        .expect("OpAMP connection settings");
    assert_eq!(offer.destination_endpoint, opamp_ws_url(&s));
    assert_eq!(offer.heartbeat_interval_seconds, 1);
    let secret = offer
        .headers
        .as_ref()
        .and_then(|h| h.bearer_token())
        .expect("bearer header")
        .to_owned();
    assert!(secret.starts_with("rmm_as_"), "{secret}");
    let a = wait_status(&s, &uid.to_string(), "online", 2.0).await;
    assert_eq!(a["hostname"], "enrolled-host");
    assert_eq!(a["arch"], "x86_64");
    ws_exchange(&mut ws, &heartbeat(uid, 2, caps)).await;
    drop(ws);
    wait_status(&s, &uid.to_string(), "offline", 2.0).await;

    // The offered secret works.
    let mut ws = ws_connect(&s, Some(&secret)).await.unwrap();
    let reply = ws_exchange(&mut ws, &hello(uid, 1, caps, "enrolled-host")).await;
    assert!(
        reply.connection_settings.is_none(),
        "no new credentials for a secret holder"
    );
    wait_status(&s, &uid.to_string(), "online", 2.0).await;
    drop(ws);

    // A uid already owned by another agent is replaced through new_instance_uid.
    let mut ws = ws_connect(&s, Some(&token)).await.unwrap();
    let reply = ws_exchange(&mut ws, &hello(uid, 1, caps, "clone-host")).await;
    let new_uid = reply
        .new_instance_uid()
        .expect("a fresh uid for the clone")
        .unwrap();
    assert_ne!(new_uid, uid);
    let clone = wait_status(&s, &new_uid.to_string(), "online", 2.0).await;
    assert_eq!(clone["hostname"], "clone-host");
    // The client switches: the server follows without asking for full state again.
    let reply = ws_exchange(&mut ws, &heartbeat(new_uid, 2, caps)).await;
    assert_eq!(reply.instance_uid, new_uid.to_vec());
    assert_eq!(reply.flags & server_flags::REPORT_FULL_STATE, 0);
    drop(ws);

    // The token is used up now: a third host is refused, over OpAMP.
    let mut ws = ws_connect(&s, Some(&token)).await.unwrap();
    let reply = ws_exchange(
        &mut ws,
        &hello(InstanceUid::new_v7(), 1, caps, "third-host"),
    )
    .await;
    assert!(
        reply
            .server_error()
            .is_some_and(|e| e.message.contains("used up")),
        "{reply:?}"
    );
    assert!(ws_close_code(&mut ws).await.is_some());
    s.finish().await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn plain_http(backend: Backend) {
    let s = start(&backend).await;
    let site = site(&s, "HTTP Corp").await;
    let (id, secret) = s.new_agent(&site, "http-a", json!({})).await;
    let uid = uid_of(&id);
    let url = opamp_http_url(&s);
    let post = |body: Vec<u8>| {
        s.http
            .post(&url)
            .bearer_auth(&secret)
            .header("content-type", "application/x-protobuf")
            .body(body)
    };

    // gzip request body, gzip response: exact content type, status 200.
    let resp = post(gzip(&hello(uid, 0, CAPS, "http-a").encode_to_vec()))
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&resp.bytes().await.unwrap()[..])
        .read_to_end(&mut raw)
        .unwrap();
    let reply = ServerToAgent::decode(raw.as_slice()).unwrap();
    assert_eq!(reply.instance_uid, uid.to_vec());
    assert_ne!(reply.capabilities, 0);
    let a = wait_status(&s, &id, "online", 2.0).await;
    assert_eq!(
        a["description"]["non_identifying_attributes"]["host.name"],
        "http-a"
    );

    // Without Accept-Encoding: a bare protobuf; a gap asks for full state.
    let resp = post(heartbeat(uid, 5, CAPS).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    let reply = ServerToAgent::decode(resp.bytes().await.unwrap()).unwrap();
    assert_ne!(reply.flags & server_flags::REPORT_FULL_STATE, 0);

    // Malformed body: 200 with BAD_REQUEST.
    let resp = post(vec![0x0a, 0xff, 0xff]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let reply = ServerToAgent::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        reply.server_error().map(|e| e.kind),
        Some(ServerErrorKind::BadRequest)
    );

    // Over the 64 KiB limit: 413, plain or as a gzip bomb.
    let resp = post(vec![0u8; 70_000]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = post(gzip(&vec![0u8; 200_000]))
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Wrong content type on POST: 415; no credential: 401.
    let resp = s
        .http
        .post(&url)
        .bearer_auth(&secret)
        .header("content-type", "application/octet-stream")
        .body(vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = s
        .http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(vec![])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Still online (the refused requests did not disturb it); disconnect → offline.
    assert_eq!(agent(&s, &id).await["status"], "online");
    let resp = post(AgentToServer::disconnect(uid, 6, CAPS).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_status(&s, &id, "offline", 1.0).await;
    let m = s.metrics_text().await;
    assert_eq!(
        metric(&m, "rmm_cp_agents_connected{transport=\"http\"}"),
        0.0
    );
    s.finish().await;
}

backend_tests!(websocket_sessions, websocket_enrollment, plain_http);
