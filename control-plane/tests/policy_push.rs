//! Live push of effective configurations over OpAMP, with a raw WebSocket client: on
//! connect, after an assignment, after a move, after a reported hash differs (drift); and
//! across two control-plane processes sharing one PostgreSQL database.

#[path = "api/common.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use rmm_opamp::capabilities::agent as cap;
use rmm_opamp::proto::{
    AgentDescription, AgentToServer, RemoteConfigStatus, RemoteConfigStatuses, ServerToAgent,
};
use rmm_opamp::{InstanceUid, Limits};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::{id, Backend, Server};

backend_tests!(push_on_change_and_drift);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CAPS: u64 = cap::REPORTS_STATUS
    | cap::ACCEPTS_REMOTE_CONFIG
    | cap::REPORTS_REMOTE_CONFIG
    | cap::REPORTS_HEARTBEAT;

/// A raw OpAMP agent: its socket, uid and next sequence number.
struct RawAgent {
    ws: Ws,
    uid: InstanceUid,
    seq: u64,
}

impl RawAgent {
    async fn connect(base: &str, secret: &str, agent_id: &str) -> RawAgent {
        let url = format!("{}/v1/opamp", base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        RawAgent {
            ws,
            uid: agent_id.parse().unwrap(),
            seq: 0,
        }
    }

    fn message(&mut self) -> AgentToServer {
        self.seq += 1;
        AgentToServer {
            instance_uid: self.uid.to_vec(),
            sequence_num: self.seq,
            capabilities: CAPS,
            ..Default::default()
        }
    }

    async fn send(&mut self, msg: AgentToServer) {
        self.ws
            .send(Message::Binary(rmm_opamp::ws::encode(&msg).into()))
            .await
            .unwrap();
    }

    /// The next `ServerToAgent` within `secs`, or `None`.
    async fn next(&mut self, secs: f64) -> Option<ServerToAgent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            if let Ok(Message::Binary(b)) = next {
                return Some(
                    rmm_opamp::ws::decode_server_to_agent(&b, &Limits::default()).unwrap(),
                );
            }
        }
    }

    /// Send and return the reply.
    async fn exchange(&mut self, msg: AgentToServer) -> ServerToAgent {
        self.send(msg).await;
        self.next(5.0).await.expect("a reply within 5 s")
    }

    async fn hello(&mut self, host: &str) -> ServerToAgent {
        let mut m = self.message();
        m.agent_description = Some(
            AgentDescription::default()
                .with_identifying("service.name", "io.rmm.policy-test")
                .with_non_identifying("host.name", host),
        );
        self.exchange(m).await
    }

    /// Report the status of the remote config with `hash`; returns the reply.
    async fn report(&mut self, hash: &[u8], status: RemoteConfigStatuses) -> ServerToAgent {
        let mut m = self.message();
        m.remote_config_status = Some(RemoteConfigStatus::new(hash.to_vec(), status));
        self.exchange(m).await
    }

    /// Wait for a pushed remote config (skipping other messages) for at most `secs`.
    async fn pushed(&mut self, secs: f64) -> Option<(Vec<u8>, String)> {
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < secs {
            let left = secs - start.elapsed().as_secs_f64();
            let m = self.next(left).await?;
            if let Some(rc) = m.remote_config {
                return Some(config_of(&rc));
            }
        }
        None
    }
}

/// (config_hash, agent.toml text) of a remote config.
fn config_of(rc: &rmm_opamp::proto::AgentRemoteConfig) -> (Vec<u8>, String) {
    let map = rc.config.as_ref().expect("config map");
    let file = &map.config_map["agent.toml"];
    assert_eq!(file.content_type, "application/toml");
    (
        rc.config_hash.clone(),
        String::from_utf8(file.body.clone()).unwrap(),
    )
}

async fn effective_hash(s: &Server, agent: &str) -> String {
    s.get(
        &format!("/api/v1/agents/{agent}/effective-config"),
        &s.admin,
    )
    .await["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn config_status(s: &Server, agent: &str) -> Value {
    let v = s.get("/api/v1/agents/config-status", &s.admin).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["agent_id"] == agent)
        .cloned()
        .unwrap()
}

async fn push_on_change_and_drift(backend: Backend) {
    let s = Server::start(&backend).await;
    let c = s.new_client("Push Corp").await;
    let site_a = s.new_site(&c, "a").await;
    let site_b = s.new_site(&c, "b").await;
    let (agent, secret) = s.new_agent(&site_a, "push-1", json!({})).await;

    // On connect: the current configuration (no policy yet: an empty document).
    let mut ag = RawAgent::connect(&s.base, &secret, &agent).await;
    let reply = ag.hello("push-1").await;
    let (hash0, body0) = config_of(
        reply
            .remote_config
            .as_ref()
            .expect("remote config on connect"),
    );
    assert_eq!(body0, "");
    assert_eq!(hex(&hash0), effective_hash(&s, &agent).await);
    let reply = ag.report(&hash0, RemoteConfigStatuses::Applied).await;
    assert!(reply.remote_config.is_none(), "same hash: nothing to send");
    assert_eq!(config_status(&s, &agent).await["config_status"], "applied");

    // An assignment reaches the connected agent at once.
    let p = id(&s
        .create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "few procs", "document": {"collect": {"top_processes": 3}}, "client_id": c}),
        )
        .await);
    let t0 = Instant::now();
    s.create(
        &format!("/api/v1/policies/{p}/assignments"),
        &s.admin,
        json!({"scope": "site", "target_id": site_a, "priority": 0}),
    )
    .await;
    let (hash1, body1) = ag
        .pushed(2.0)
        .await
        .expect("pushed within 2 s of the assignment");
    eprintln!("assignment → remote config received in {:?}", t0.elapsed());
    let toml: toml::Table = body1.parse().unwrap();
    assert_eq!(toml["collect"]["top_processes"].as_integer(), Some(3));
    assert_eq!(hex(&hash1), effective_hash(&s, &agent).await);
    // Not applied yet: the agent still reports the old hash.
    assert_eq!(config_status(&s, &agent).await["config_status"], "drifted");
    ag.report(&hash1, RemoteConfigStatuses::Applying).await;
    assert_eq!(config_status(&s, &agent).await["config_status"], "applying");
    ag.report(&hash1, RemoteConfigStatuses::Applied).await;
    assert_eq!(config_status(&s, &agent).await["config_status"], "applied");

    // A policy edit is pushed too.
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/policies/{p}"),
            Some(&s.admin),
            Some(json!({"name": "few procs", "document": {"collect": {"top_processes": 4}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (hash2, body2) = ag.pushed(2.0).await.expect("pushed after the edit");
    assert!(body2.contains("top_processes = 4"), "{body2}");
    ag.report(&hash2, RemoteConfigStatuses::Applied).await;

    // Moving the agent to a site without the policy: pushed.
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{agent}"),
            Some(&s.admin),
            Some(json!({"site_id": site_b})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (hash3, body3) = ag.pushed(2.0).await.expect("pushed after the move");
    assert_eq!(body3, "");
    assert_eq!(hash3, hash0);
    let reply = ag.report(&hash3, RemoteConfigStatuses::Applied).await;
    assert!(reply.remote_config.is_none());

    // The agent reports another hash (it drifted): listed, counted, and sent the current one.
    let reply = ag.report(&hash2, RemoteConfigStatuses::Applied).await;
    let (again, _) = config_of(
        reply
            .remote_config
            .as_ref()
            .expect("current config resent on a differing hash"),
    );
    assert_eq!(again, hash3);
    let drifted = s
        .get("/api/v1/agents/config-status?status=drifted", &s.admin)
        .await;
    assert_eq!(drifted["items"].as_array().unwrap().len(), 1, "{drifted}");
    assert_eq!(drifted["items"][0]["agent_id"], agent.as_str());
    let metrics = s.metrics_text().await;
    let series = format!("rmm_cp_agent_config_status{{agent=\"{agent}\",client=\"Push Corp\",site=\"b\",host=\"push-1\",status=\"drifted\"}} 1");
    assert!(metrics.contains(&series), "{series} not in /metrics");
    // A failure to apply the current config is shown as failed.
    ag.report(&hash3, RemoteConfigStatuses::Failed).await;
    assert_eq!(config_status(&s, &agent).await["config_status"], "failed");
    let (st, _) = s
        .call(
            Method::GET,
            "/api/v1/agents/config-status?status=bogus",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    s.finish().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Two control-plane processes on one PostgreSQL database: an agent connected to B gets a
/// change made through A within 2 s (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_changes_over_postgres() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    // Replica A: the in-process server; replica B: the real binary on the same database.
    let a = Server::start(&backend).await;
    let (mut child, b_base) = common::spawn_binary(&a.db.url, &[]).await;
    let c = a.new_client("Replicated").await;
    let site = a.new_site(&c, "main").await;
    let (agent, secret) = a.new_agent(&site, "rep-1", json!({})).await;

    let mut ag = RawAgent::connect(&b_base, &secret, &agent).await;
    let reply = ag.hello("rep-1").await;
    let (hash0, _) = config_of(
        reply
            .remote_config
            .as_ref()
            .expect("config from B on connect"),
    );
    ag.report(&hash0, RemoteConfigStatuses::Applied).await;

    let p = id(&a
        .create(
            "/api/v1/policies",
            &a.admin,
            json!({"name": "fast", "document": {"collect": {"interval": "5s"}}}),
        )
        .await);
    let t0 = Instant::now();
    a.create(
        &format!("/api/v1/policies/{p}/assignments"),
        &a.admin,
        json!({"scope": "global"}),
    )
    .await;
    let (hash1, body) = ag
        .pushed(2.0)
        .await
        .expect("the agent on replica B got A's change within 2 s");
    eprintln!(
        "change through A → remote config from B in {:?}",
        t0.elapsed()
    );
    assert!(body.contains("interval = \"5s\""), "{body}");
    assert_eq!(hex(&hash1), effective_hash(&a, &agent).await);
    ag.report(&hash1, RemoteConfigStatuses::Applied).await;

    // The listeners lose their connection and a change is made meanwhile: its notification
    // is lost, and B resends the stored configuration once it listens again.
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&a.db.url).await.unwrap();
        let killed: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(killed.len(), 2, "one listener per replica");
        let _ = conn.close().await;
    }
    let t1 = Instant::now();
    let (st, v) = a
        .call(
            Method::PUT,
            &format!("/api/v1/policies/{p}"),
            Some(&a.admin),
            Some(json!({"name": "fast", "document": {"collect": {"interval": "7s"}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, body) = ag
        .pushed(4.0)
        .await
        .expect("B resent the configuration after its listener reconnected");
    eprintln!(
        "change during the listener outage → received in {:?}",
        t1.elapsed()
    );
    assert!(body.contains("interval = \"7s\""), "{body}");
    let _ = child.start_kill();
    let _ = child.wait().await;
    a.finish().await;
}
