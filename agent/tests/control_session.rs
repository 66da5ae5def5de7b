//! The OpAMP session (`control::session`) against a small OpAMP WebSocket server built in the
//! test from tokio-tungstenite and `rmm_opamp`: framing, first full report, heartbeats,
//! ReportFullState, status updates, disconnect on shutdown, reconnects and backoff. A check of
//! the client's behaviour at unit level; the end-to-end proof against the real control plane
//! is `control_e2e.rs`.
// tungstenite's handshake callback returns `Result<Response, ErrorResponse>` by design.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use rmm_agent::config::AgentConfig;
use rmm_agent::control::describe;
use rmm_agent::control::identity::Secret;
use rmm_agent::control::session::{self, SessionHandle, SessionSettings, StatusUpdate};
use rmm_agent::host::{HostFacts, HostPaths};
use rmm_opamp::capabilities::server;
use rmm_opamp::proto::{
    AgentToServer, ComponentHealth, ConnectionSettingsOffers, OpAmpConnectionSettings,
    ServerErrorResponseType, ServerToAgent,
};
use rmm_opamp::{ws, ClientState, InstanceUid, Limits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use futures_util::{SinkExt, StreamExt};

const SECRET: &str = "rmm_as_test-secret";
const UID: &str = "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01";
const WAIT: Duration = Duration::from_secs(5);
const SERVER_CAPS: u64 = server::ACCEPTS_STATUS | server::ACCEPTS_EFFECTIVE_CONFIG;

fn uid() -> InstanceUid {
    UID.parse().unwrap()
}

/// The agent's initial state, as `Control::start` builds it.
fn client_state() -> ClientState {
    let mut s = ClientState::new(uid(), describe::CAPABILITIES);
    let facts = HostFacts::detect(&HostPaths::default());
    s.set_agent_description(describe::agent_description(uid(), &facts));
    s.set_health(describe::health(std::time::SystemTime::now()));
    s.set_effective_config(describe::effective_config(&AgentConfig::default()));
    s
}

fn settings(addr: std::net::SocketAddr) -> SessionSettings {
    let mut s = SessionSettings::new(
        format!("ws://{addr}/v1/opamp"),
        Secret::new(SECRET).unwrap(),
        Duration::from_millis(300),
        Duration::from_millis(50),
        Duration::from_millis(200),
    );
    s.io_timeout = Duration::from_secs(2);
    s
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    authorization: Option<String>,
}

/// Accepts one WebSocket connection, recording its `Authorization` header.
async fn accept(listener: &TcpListener) -> Conn {
    let (tcp, _) = timeout(WAIT, listener.accept())
        .await
        .expect("the agent connects")
        .unwrap();
    let mut authorization = None;
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        authorization = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(resp)
    })
    .await
    .unwrap();
    Conn { ws, authorization }
}

/// Accepts one connection attempt and refuses the upgrade with `status`.
async fn refuse(listener: &TcpListener, status: StatusCode) {
    let (tcp, _) = timeout(WAIT, listener.accept())
        .await
        .expect("the agent connects")
        .unwrap();
    let _ = tokio_tungstenite::accept_hdr_async(tcp, |_: &Request, _: Response| {
        let mut e = ErrorResponse::new(Some("refused".into()));
        *e.status_mut() = status;
        Err(e)
    })
    .await;
}

impl Conn {
    /// The next `AgentToServer`; `None` when the agent closed the connection.
    async fn recv(&mut self) -> Option<AgentToServer> {
        loop {
            let frame = timeout(WAIT, self.ws.next())
                .await
                .expect("a message from the agent in time");
            match frame {
                Some(Ok(Message::Binary(b))) => {
                    return Some(ws::decode_agent_to_server(&b, &Limits::default()).unwrap())
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn reply(&mut self, msg: ServerToAgent) {
        self.ws
            .send(Message::Binary(ws::encode(&msg).into()))
            .await
            .unwrap();
    }

    async fn ack(&mut self) {
        self.reply(
            ServerToAgent::builder(uid())
                .capabilities(SERVER_CAPS)
                .build(),
        )
        .await;
    }
}

async fn wait_connected(handle: &SessionHandle, want: bool) {
    timeout(WAIT, async {
        while handle.stats().values().connected != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("connected gauge never became {want}"));
}

#[tokio::test]
async fn full_report_heartbeats_full_state_updates_and_disconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut s = settings(listener.local_addr().unwrap());
    // Long enough that "sent at once" and "sent with the next heartbeat" differ clearly.
    s.heartbeat_interval = Duration::from_secs(1);
    let (handle, _events) = session::spawn(s, client_state(), stop_rx);
    let mut conn = accept(&listener).await;
    assert_eq!(
        conn.authorization.as_deref(),
        Some("Bearer rmm_as_test-secret")
    );

    // First message: a full status report.
    let first = conn.recv().await.unwrap();
    assert_eq!(first.instance_uid, uid().to_vec());
    assert_eq!(first.sequence_num, 1);
    assert_eq!(first.capabilities, describe::CAPABILITIES);
    let d = first.agent_description.as_ref().expect("agent_description");
    assert_eq!(d.string_attribute("service.name"), Some("rmm-agent"));
    assert_eq!(d.string_attribute("service.instance.id"), Some(UID));
    assert!(d.string_attribute("host.name").is_some());
    assert!(first.health.as_ref().expect("health").healthy);
    let config = first.effective_config.as_ref().expect("effective_config");
    let file = &config.config_map.as_ref().unwrap().config_map["agent.toml"];
    assert_eq!(file.content_type, "application/toml");
    assert!(String::from_utf8_lossy(&file.body).contains("[control]"));
    assert!(!first.is_disconnect());
    conn.ack().await;
    wait_connected(&handle, true).await;

    // Then heartbeats at the interval.
    let t = Instant::now();
    let hb = conn.recv().await.unwrap();
    let gap = t.elapsed();
    assert!(hb.is_heartbeat(), "{hb:?}");
    assert_eq!(hb.sequence_num, 2);
    assert_eq!(hb.capabilities, describe::CAPABILITIES);
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(3000),
        "heartbeat after {gap:?} (interval 1 s)"
    );

    // ReportFullState: the next message (sent at once) carries everything again.
    conn.reply(
        ServerToAgent::builder(uid())
            .capabilities(SERVER_CAPS)
            .report_full_state()
            .build(),
    )
    .await;
    let t = Instant::now();
    let full = conn.recv().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "full state sent promptly"
    );
    assert_eq!(full.sequence_num, 3);
    assert!(full.agent_description.is_some() && full.health.is_some());
    assert!(full.effective_config.is_some());
    conn.ack().await;

    // A status update goes out with only what changed.
    handle
        .updates()
        .send(StatusUpdate::Health(ComponentHealth::unhealthy(
            "disk full",
        )))
        .await
        .unwrap();
    let changed = conn.recv().await.unwrap();
    assert_eq!(changed.sequence_num, 4);
    assert_eq!(changed.health.as_ref().unwrap().last_error, "disk full");
    assert!(changed.agent_description.is_none() && changed.effective_config.is_none());
    conn.ack().await;

    // Shutdown: agent_disconnect, then Close.
    stop_tx.send(true).unwrap();
    let bye = conn
        .recv()
        .await
        .expect("a disconnect message before Close");
    assert!(bye.is_disconnect(), "{bye:?}");
    assert_eq!(bye.sequence_num, 5);
    conn.ack().await;
    assert!(conn.recv().await.is_none(), "Close follows the disconnect");
    timeout(WAIT, handle.join(WAIT))
        .await
        .expect("session ends");
}

#[tokio::test]
async fn reconnects_after_the_server_drops_and_reports_full_state_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (handle, _events) = session::spawn(
        settings(listener.local_addr().unwrap()),
        client_state(),
        stop_rx,
    );
    let mut conn = accept(&listener).await;
    let first = conn.recv().await.unwrap();
    conn.ack().await;
    wait_connected(&handle, true).await;
    drop(conn); // the control plane goes away

    wait_connected(&handle, false).await;
    let mut conn = accept(&listener).await;
    let again = conn.recv().await.unwrap();
    assert!(
        again.agent_description.is_some() && again.health.is_some(),
        "a new connection starts with a full report"
    );
    assert!(
        again.sequence_num > first.sequence_num,
        "sequence numbers continue"
    );
    conn.ack().await;
    wait_connected(&handle, true).await;
    assert_eq!(handle.stats().values().reconnects, 1);
}

#[tokio::test]
async fn refused_credentials_are_retried_near_the_cap() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut s = settings(listener.local_addr().unwrap());
    s.reconnect_min = Duration::from_millis(10);
    s.reconnect_max = Duration::from_millis(400);
    let (handle, _events) = session::spawn(s, client_state(), stop_rx);
    let mut times = Vec::new();
    for _ in 0..4 {
        refuse(&listener, StatusCode::UNAUTHORIZED).await;
        times.push(Instant::now());
    }
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        // Not the 10 ms base: [cap/2, cap) plus connect time.
        assert!(
            gap >= Duration::from_millis(190) && gap < Duration::from_millis(900),
            "401 retry gap {gap:?} (cap 400 ms)"
        );
    }
    assert!(!handle.stats().values().connected);
    assert_eq!(handle.stats().values().reconnects, 3);
    // Shutdown during the wait ends the loop at once.
    stop_tx.send(true).unwrap();
    timeout(Duration::from_millis(500), handle.join(WAIT))
        .await
        .expect("stops during backoff");
}

#[tokio::test]
async fn failed_connects_back_off_with_growing_jittered_delays() {
    // Nobody listens: every attempt fails at once, so the attempts' spacing is the backoff.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut s = settings(addr);
    s.reconnect_min = Duration::from_millis(20);
    s.reconnect_max = Duration::from_millis(160);
    let (handle, _events) = session::spawn(s, client_state(), stop_rx);
    // Ceilings 20, 40, 80, 160, 160, ...: after 1.5 s the sum of delays drawn is bounded
    // from below by the number of attempts made, which must be far from a tight loop and
    // far from a fixed 160 ms sleep.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = handle.stats().values().reconnects;
    // Mean delay at the cap is 80 ms: about 1500/80 ≈ 19 attempts; a tight loop would make
    // thousands, a fixed cap sleep at most 10.
    assert!(
        (10..=60).contains(&attempts),
        "{attempts} reconnect attempts in 1.5 s"
    );
    stop_tx.send(true).unwrap();
    handle.join(WAIT).await;
}

#[tokio::test]
async fn unavailable_with_retry_after_delays_the_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (handle, _events) = session::spawn(
        settings(listener.local_addr().unwrap()),
        client_state(),
        stop_rx,
    );
    let mut conn = accept(&listener).await;
    conn.recv().await.unwrap();
    conn.reply(ServerToAgent::unavailable(
        uid(),
        "busy",
        Some(Duration::from_millis(800)),
    ))
    .await;
    let t = Instant::now();
    let _conn = accept(&listener).await;
    let gap = t.elapsed();
    assert!(
        gap >= Duration::from_millis(750),
        "reconnected after {gap:?}, server asked for 800 ms"
    );
    drop(handle);
}

#[tokio::test]
async fn a_silent_server_is_abandoned_and_the_agent_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut s = settings(listener.local_addr().unwrap());
    s.io_timeout = Duration::from_millis(300);
    let (handle, _events) = session::spawn(s, client_state(), stop_rx);
    let mut conn = accept(&listener).await;
    conn.recv().await.unwrap(); // never answered
    let t = Instant::now();
    let mut second = accept(&listener).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "gave up on the silent server after {:?}",
        t.elapsed()
    );
    assert!(second.recv().await.unwrap().agent_description.is_some());
    assert!(!handle.stats().values().connected);
}

#[tokio::test]
async fn a_server_offered_heartbeat_interval_is_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (_handle, _events) = session::spawn(
        settings(listener.local_addr().unwrap()),
        client_state(),
        stop_rx,
    );
    let mut conn = accept(&listener).await;
    conn.recv().await.unwrap();
    let offer = OpAmpConnectionSettings::new("").with_heartbeat_interval(Duration::from_secs(1));
    conn.reply(
        ServerToAgent::builder(uid())
            .capabilities(SERVER_CAPS)
            .connection_settings(ConnectionSettingsOffers::new(offer))
            .build(),
    )
    .await;
    let t = Instant::now();
    let hb = conn.recv().await.unwrap();
    assert!(hb.is_heartbeat());
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "heartbeat after {:?}; server offered 1 s, local setting 300 ms",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_deleted_agent_is_retried_rarely() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let mut s = settings(listener.local_addr().unwrap());
    s.reconnect_min = Duration::from_millis(10);
    s.reconnect_max = Duration::from_millis(600);
    let (_handle, _events) = session::spawn(s, client_state(), stop_rx);
    let mut conn = accept(&listener).await;
    conn.recv().await.unwrap();
    conn.reply(ServerToAgent::error_response(
        uid(),
        ServerErrorResponseType::Unknown,
        "this agent has been deleted",
        None,
    ))
    .await;
    let t = Instant::now();
    let _next = accept(&listener).await;
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "retried after {:?}; expected near the 600 ms cap",
        t.elapsed()
    );
}
