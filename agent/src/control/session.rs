//! The OpAMP session over WebSocket, kept up for the life of the agent.
//!
//! One task owns the [`ClientState`] (sequence numbers, status compression) and the socket:
//!
//! ```text
//!             StatusUpdate (health, effective config, later: remote config / package status)
//! agent ───────────────────────────────────────────────▶ session task ──AgentToServer──▶ server
//! agent ◀─────────────────────────────────────────────── session task ◀─ServerToAgent── server
//!             ServerEvent (later: remote config, package offers, custom messages)
//! ```
//!
//! Per connection: the first message is a full status report; then a heartbeat every
//! interval (any other message resets the timer); every `ServerToAgent` is applied to the
//! state and what it asks of the agent is forwarded as [`ServerEvent`]s without ever waiting on
//! the agent (a full channel drops the event with a warning). On shutdown: `agent_disconnect`,
//! then a Close frame. Any failure ends the connection and the loop reconnects after an
//! exponential backoff with full jitter ([`super::backoff`]); a refused credential (HTTP 401)
//! is retried near the cap. Nothing here touches collection or `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rmm_opamp::proto::{
    AgentRemoteConfig, AgentToServer, ComponentHealth, ConnectionSettingsOffers,
    CustomCapabilities, CustomMessage, EffectiveConfig, PackageStatuses, PackagesAvailable,
    RemoteConfigStatus, ServerToAgent,
};
use rmm_opamp::typed::{Command, ServerErrorKind};
use rmm_opamp::{ws, ClientState, InstanceUid, Limits};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::backoff::Backoff;
use super::identity::Secret;
use super::stats::Stats;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Shortest and longest heartbeat interval taken from a server offer.
const OFFERED_HEARTBEAT_MIN: Duration = Duration::from_secs(1);
const OFFERED_HEARTBEAT_MAX: Duration = Duration::from_secs(86_400);
/// Capacity of the channels to and from the agent.
const CHANNEL_CAPACITY: usize = 32;
/// How long the goodbye (`agent_disconnect` + Close) may take on shutdown.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the session connects and paces itself.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `ws://` or `wss://` URL of the OpAMP endpoint.
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub secret: Secret,
    pub heartbeat_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// TCP + TLS + upgrade must finish within this.
    pub connect_timeout: Duration,
    /// A send must complete within this, and the server must answer a message within
    /// `max(this, heartbeat interval)`, or the connection is considered dead.
    pub io_timeout: Duration,
    /// A connection that lasted this long (and was answered) resets the backoff.
    pub healthy_after: Duration,
    pub limits: Limits,
}

impl SessionSettings {
    /// Settings with the usual timeouts.
    pub fn new(
        url: String,
        secret: Secret,
        heartbeat_interval: Duration,
        reconnect_min: Duration,
        reconnect_max: Duration,
    ) -> Self {
        Self {
            url,
            secret,
            heartbeat_interval,
            reconnect_min,
            reconnect_max,
            connect_timeout: Duration::from_secs(15),
            io_timeout: Duration::from_secs(15),
            healthy_after: Duration::from_secs(10),
            limits: Limits::default(),
        }
    }
}

/// A change of the agent's status, sent to the server with the next message (status
/// compression drops values equal to the last one sent).
#[derive(Debug, Clone, PartialEq)]
pub enum StatusUpdate {
    Health(ComponentHealth),
    EffectiveConfig(EffectiveConfig),
    RemoteConfigStatus(RemoteConfigStatus),
    PackageStatuses(PackageStatuses),
    /// New capability bits (e.g. once remote config is implemented and enabled).
    Capabilities(u64),
    CustomCapabilities(CustomCapabilities),
    /// Sent once, with the next message.
    CustomMessage(CustomMessage),
}

/// Something the server asked of the agent (already gated by the agent's capabilities).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    RemoteConfig(AgentRemoteConfig),
    PackagesAvailable(PackagesAvailable),
    ConnectionSettings(Box<ConnectionSettingsOffers>),
    CustomMessage(CustomMessage),
    CustomCapabilities(CustomCapabilities),
    Command(Command),
    /// The server assigned a new instance uid; the session already uses it.
    NewInstanceUid(InstanceUid),
}

/// The running session task.
pub struct SessionHandle {
    updates: mpsc::Sender<StatusUpdate>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Where to send status changes. Sending never blocks on the network: the session
    /// applies updates while connected, reconnecting or waiting.
    pub fn updates(&self) -> mpsc::Sender<StatusUpdate> {
        self.updates.clone()
    }

    /// The session's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Waits for the task to end after shutdown was signalled (it says goodbye to the server
    /// first, bounded by a short timeout); aborts it if it takes longer than `limit`.
    pub async fn join(self, limit: Duration) {
        let mut task = self.task;
        if timeout(limit, &mut task).await.is_err() {
            tracing::warn!("The OpAMP session did not stop in time; aborting it.");
            task.abort();
        }
    }
}

/// Starts the session task on the current runtime. It runs until `shutdown` turns true (or
/// its sender is dropped). Returns the handle and the events from the server.
pub fn spawn(
    settings: SessionSettings,
    state: ClientState,
    shutdown: watch::Receiver<bool>,
) -> (SessionHandle, mpsc::Receiver<ServerEvent>) {
    let (updates_tx, updates_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stats = Arc::new(Stats::default());
    let session = Session {
        backoff: Backoff::new(settings.reconnect_min, settings.reconnect_max),
        heartbeat: settings.heartbeat_interval,
        settings,
        state,
        updates: updates_rx,
        updates_open: true,
        events: events_tx,
        stats: stats.clone(),
        shutdown,
    };
    let task = tokio::spawn(session.run());
    (
        SessionHandle {
            updates: updates_tx,
            stats,
            task,
        },
        events_rx,
    )
}

/// `http(s)://` → `ws(s)://`; `ws(s)://` unchanged.
pub fn websocket_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => return Err(format!("unsupported scheme {other:?} in {url:?}")),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("no host in {url:?}"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// HTTP 401/403: the credentials were refused (revoked agent, deleted agent).
    Unauthorized(u16),
    /// HTTP 429/503, with the server's `Retry-After` if it sent one.
    Throttled(Option<Duration>),
    Failed(String),
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    Shutdown,
    /// The server refused us for good (error response other than UNAVAILABLE).
    Refused(String),
    /// Lost, timed out, malformed, or UNAVAILABLE (with its retry delay).
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

struct Session {
    settings: SessionSettings,
    state: ClientState,
    backoff: Backoff,
    /// Current heartbeat interval (local setting, or the server's offer).
    heartbeat: Duration,
    updates: mpsc::Receiver<StatusUpdate>,
    updates_open: bool,
    events: mpsc::Sender<ServerEvent>,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
}

impl Session {
    async fn run(mut self) {
        let mut first = true;
        loop {
            if self.stopping() {
                return;
            }
            if !first {
                self.stats.reconnect();
            }
            first = false;
            let delay = match self.connect_and_drive().await {
                Ended::Shutdown => return,
                Ended::Refused(message) => {
                    tracing::error!(server = %self.settings.url, %message, "The control plane refused this agent; retrying rarely. Re-enroll the agent if it was deleted or its credentials revoked.");
                    self.backoff.at_cap()
                }
                Ended::Failed {
                    reason,
                    retry_after,
                } => {
                    let d = self.backoff.next_delay();
                    let d = retry_after.map_or(d, |r| r.max(d));
                    tracing::warn!(server = %self.settings.url, %reason, retry_in = %humantime::format_duration(round_ms(d)), "OpAMP connection failed.");
                    d
                }
            };
            if self.wait(delay).await {
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `delay`, applying status updates meanwhile; true if shutdown came first.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(until) => return false,
                r = self.shutdown.changed() => if r.is_err() || *self.shutdown.borrow() { return true },
                u = self.updates.recv(), if self.updates_open => self.take_update(u),
            }
        }
    }

    fn take_update(&mut self, update: Option<StatusUpdate>) {
        let Some(update) = update else {
            self.updates_open = false;
            return;
        };
        let s = &mut self.state;
        match update {
            StatusUpdate::Health(h) => drop(s.set_health(h)),
            StatusUpdate::EffectiveConfig(c) => drop(s.set_effective_config(c)),
            StatusUpdate::RemoteConfigStatus(r) => drop(s.set_remote_config_status(r)),
            StatusUpdate::PackageStatuses(p) => drop(s.set_package_statuses(p)),
            StatusUpdate::Capabilities(c) => s.set_capabilities(c),
            StatusUpdate::CustomCapabilities(c) => drop(s.set_custom_capabilities(c)),
            StatusUpdate::CustomMessage(m) => s.queue_custom_message(m),
        }
    }

    async fn connect_and_drive(&mut self) -> Ended {
        let connecting = connect(&self.settings);
        let socket = tokio::select! {
            r = connecting => r,
            _ = self.shutdown.changed() => return Ended::Shutdown,
        };
        match socket {
            Ok(socket) => self.drive(socket).await,
            Err(ConnectError::Unauthorized(status)) => {
                Ended::Refused(format!("HTTP {status}: the agent secret was not accepted"))
            }
            Err(ConnectError::Throttled(retry_after)) => Ended::Failed {
                reason: "the control plane is busy (throttled)".into(),
                retry_after,
            },
            Err(ConnectError::Failed(reason)) => Ended::Failed {
                reason,
                retry_after: None,
            },
        }
    }

    /// Runs one connection until it ends.
    async fn drive(&mut self, socket: Socket) -> Ended {
        let started = Instant::now();
        let (mut sink, mut stream) = socket.split();
        self.state.request_full_state();
        let mut answered = false;
        let mut reply_deadline: Option<Instant> = None;
        let mut last_sent = Instant::now();
        let mut next_heartbeat = last_sent;
        let mut send_now = true;
        let ended = loop {
            if send_now {
                send_now = false;
                let msg = self.state.next_message();
                if let Err(reason) = self.send(&mut sink, &msg).await {
                    break Ended::Failed {
                        reason,
                        retry_after: None,
                    };
                }
                last_sent = Instant::now();
                next_heartbeat = last_sent + self.heartbeat;
                reply_deadline.get_or_insert(last_sent + self.reply_timeout());
            }
            let deadline = reply_deadline.unwrap_or(next_heartbeat);
            tokio::select! {
                r = self.shutdown.changed() => if r.is_err() || *self.shutdown.borrow() {
                    self.goodbye(&mut sink, &mut stream).await;
                    break Ended::Shutdown;
                },
                () = sleep_until(next_heartbeat) => send_now = true,
                () = sleep_until(deadline), if reply_deadline.is_some() => break Ended::Failed {
                    reason: format!("no answer from the server within {}", humantime::format_duration(self.reply_timeout())),
                    retry_after: None,
                },
                u = self.updates.recv(), if self.updates_open => {
                    self.take_update(u);
                    send_now = self.state.has_pending();
                }
                frame = stream.next() => {
                    let msg = match frame {
                        None => break Ended::Failed { reason: "connection closed".into(), retry_after: None },
                        Some(Err(e)) => break Ended::Failed { reason: e.to_string(), retry_after: None },
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Close(frame))) => break Ended::Failed {
                            reason: match frame {
                                Some(f) => format!("closed by the server ({}: {})", u16::from(f.code), f.reason),
                                None => "closed by the server".into(),
                            },
                            retry_after: None,
                        },
                        Some(Ok(Message::Text(_))) => {
                            close(&mut sink, CloseCode::Unsupported, "OpAMP uses binary messages").await;
                            break Ended::Failed { reason: "the server sent a text message".into(), retry_after: None };
                        }
                        Some(Ok(_)) => continue, // ping/pong: tungstenite answers pings itself
                    };
                    reply_deadline = None;
                    let msg = match ws::decode_server_to_agent(&msg, &self.settings.limits) {
                        Ok(m) => m,
                        Err(e) => {
                            close(&mut sink, CloseCode::from(e.close_code()), "malformed message").await;
                            break Ended::Failed { reason: format!("malformed message from the server: {e}"), retry_after: None };
                        }
                    };
                    if !answered {
                        answered = true;
                        self.stats.set_connected(true);
                        tracing::info!(server = %self.settings.url, instance_uid = %self.state.instance_uid(), heartbeat = %humantime::format_duration(self.heartbeat), "Connected to the control plane (OpAMP).");
                    }
                    match self.receive(msg) {
                        Ok(()) => {
                            // The server may have changed the interval.
                            next_heartbeat = last_sent + self.heartbeat;
                            send_now = self.state.has_pending();
                        }
                        Err(ended) => {
                            close(&mut sink, CloseCode::Normal, "").await;
                            break ended;
                        }
                    }
                }
            }
        };
        self.stats.set_connected(false);
        if answered && started.elapsed() >= self.settings.healthy_after {
            self.backoff.reset();
        }
        ended
    }

    fn reply_timeout(&self) -> Duration {
        self.settings.io_timeout.max(self.heartbeat)
    }

    /// Applies one `ServerToAgent`; `Err` ends the connection.
    fn receive(&mut self, msg: ServerToAgent) -> Result<(), Ended> {
        // The interval is the one part of an OpAMP connection-settings offer honoured without
        // AcceptsOpAMPConnectionSettings (endpoints and credentials are not switched, so that
        // capability is not claimed). 0 is ignored: proto3 cannot tell "no heartbeats" from
        // "not set", and the server's liveness check needs them.
        if msg.error_response.is_none() && msg.command.is_none() {
            let offered = msg
                .connection_settings
                .as_ref()
                .and_then(|c| c.opamp.as_ref())
                .and_then(|o| o.heartbeat_interval());
            if let Some(offered) = offered {
                let offered = offered.clamp(OFFERED_HEARTBEAT_MIN, OFFERED_HEARTBEAT_MAX);
                if offered != self.heartbeat {
                    tracing::info!(heartbeat = %humantime::format_duration(offered), "Heartbeat interval set by the control plane.");
                    self.heartbeat = offered;
                }
            }
        }
        let effects = match self.state.apply(msg) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "Ignoring a message from the control plane.");
                return Ok(());
            }
        };
        if let Some(err) = effects.error {
            return match err.kind {
                ServerErrorKind::Unavailable => Err(Ended::Failed {
                    reason: format!("the control plane is unavailable: {}", err.message),
                    retry_after: err.retry_after,
                }),
                ServerErrorKind::BadRequest => {
                    // Not to be resent; the next message is a fresh one anyway.
                    tracing::warn!(message = %err.message, "The control plane rejected a message as malformed.");
                    Ok(())
                }
                ServerErrorKind::Unknown | ServerErrorKind::Other(_) => {
                    Err(Ended::Refused(err.message))
                }
            };
        }
        if let Some(uid) = effects.new_instance_uid {
            tracing::info!(instance_uid = %uid, "The control plane assigned a new instance uid.");
            self.forward(ServerEvent::NewInstanceUid(uid));
        }
        if !effects.ignored.is_empty() {
            tracing::debug!(ignored = ?effects.ignored, "Ignored offers this agent has no capability for.");
        }
        if let Some(c) = effects.command {
            self.forward(ServerEvent::Command(c));
        }
        if let Some(r) = effects.remote_config {
            self.forward(ServerEvent::RemoteConfig(r));
        }
        if let Some(p) = effects.packages_available {
            self.forward(ServerEvent::PackagesAvailable(p));
        }
        if let Some(c) = effects.connection_settings {
            self.forward(ServerEvent::ConnectionSettings(Box::new(c)));
        }
        if let Some(c) = effects.custom_capabilities {
            self.forward(ServerEvent::CustomCapabilities(c));
        }
        if let Some(m) = effects.custom_message {
            self.forward(ServerEvent::CustomMessage(m));
        }
        Ok(())
    }

    /// Hands an event to the agent without waiting on it.
    fn forward(&self, event: ServerEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                tracing::warn!(event = ?e, "The agent is not keeping up with control-plane events; dropped one.");
            }
            Err(mpsc::error::TrySendError::Closed(e)) => {
                tracing::debug!(event = ?e, "No part of the agent handles this control-plane event.");
            }
        }
    }

    async fn send<S>(&self, sink: &mut S, msg: &AgentToServer) -> Result<(), String>
    where
        S: SinkExt<Message, Error = tungstenite::Error> + Unpin,
    {
        let frame = match ws::encode_with_limit(msg, &self.settings.limits) {
            Ok(f) => f,
            Err(e) => {
                // The spec: do not send an oversized message; the session itself is fine.
                tracing::error!(error = %e, "Dropped an outgoing OpAMP message.");
                return Ok(());
            }
        };
        match timeout(
            self.settings.io_timeout,
            sink.send(Message::Binary(frame.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("sending: {e}")),
            Err(_) => Err("sending timed out".into()),
        }
    }

    /// `agent_disconnect`, then Close, then a short wait for the server's Close.
    async fn goodbye<S, R>(&mut self, sink: &mut S, stream: &mut R)
    where
        S: SinkExt<Message, Error = tungstenite::Error> + Unpin,
        R: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin,
    {
        let msg = self.state.disconnect_message();
        let bye = async {
            let _ = self.send(sink, &msg).await;
            close(sink, CloseCode::Away, "agent shutting down").await;
            // The server answers the disconnect, then closes; stop reading at its Close.
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = timeout(GOODBYE_TIMEOUT, bye).await;
        tracing::info!("Disconnected from the control plane.");
    }
}

async fn close<S>(sink: &mut S, code: CloseCode, reason: &str)
where
    S: SinkExt<Message, Error = tungstenite::Error> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

async fn connect(settings: &SessionSettings) -> Result<Socket, ConnectError> {
    let mut request = settings
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Failed(format!("invalid OpAMP URL: {e}")))?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.secret.expose()))
        .map_err(|_| ConnectError::Failed("the agent secret is not a valid header value".into()))?;
    auth.set_sensitive(true);
    request.headers_mut().insert(header::AUTHORIZATION, auth);
    request.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_str(&crate::user_agent())
            .unwrap_or_else(|_| HeaderValue::from_static("rmm-agent")),
    );
    let connector = if settings.url.starts_with("wss://") {
        let tls = super::tls::client_config().map_err(|e| ConnectError::Failed(e.to_string()))?;
        Connector::Rustls(tls)
    } else {
        Connector::Plain
    };
    // One byte of header plus the message; fragments may not exceed the message either.
    let max = settings.limits.max_message_size.saturating_add(16);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    match timeout(settings.connect_timeout, connecting).await {
        Err(_) => Err(ConnectError::Failed(format!(
            "connecting timed out after {}",
            humantime::format_duration(settings.connect_timeout)
        ))),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    ConnectError::Unauthorized(status.as_u16())
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    ConnectError::Throttled(retry_after(response.headers()))
                }
                _ => ConnectError::Failed(format!("the server answered HTTP {status}")),
            })
        }
        Ok(Err(e)) => Err(ConnectError::Failed(e.to_string())),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by OpAMP servers in practice).
fn retry_after(headers: &tokio_tungstenite::tungstenite::http::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("https://cp.example/v1/opamp").unwrap(),
            "wss://cp.example/v1/opamp"
        );
        assert_eq!(
            websocket_url("http://127.0.0.1:8080/v1/opamp").unwrap(),
            "ws://127.0.0.1:8080/v1/opamp"
        );
        assert_eq!(websocket_url("wss://x/y").unwrap(), "wss://x/y");
        assert_eq!(websocket_url("HTTPS://x/y").unwrap(), "wss://x/y");
        assert!(websocket_url("tcp://x").is_err());
        assert!(websocket_url("x/v1/opamp").is_err());
        assert!(websocket_url("http:///v1").is_err());
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = tokio_tungstenite::tungstenite::http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
    }
}
