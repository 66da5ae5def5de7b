//! WebSocket OpAMP: binary messages of a varint header (0) and a protobuf. The session task
//! answers each `AgentToServer` with one `ServerToAgent` and forwards pushes from the
//! registry at once.
//!
//! Endings, each logged and counted: `agent_disconnect` (after the reply), the socket
//! closing, a malformed message (close 1002 after a `BAD_REQUEST` reply, or 1003 for a text
//! message), an oversized one (close 1009), no first message within the offline timeout, a
//! newer connection of the same agent, the sweeper's heartbeat timeout, server shutdown.
//! None of them touches another session.
//!
//! Memory per connection is kept small for large fleets: a 2 KiB read buffer that grows
//! only for large messages, eager writes (no write buffer), and a mailbox of a few slots.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use rmm_opamp::limits::WS_CLOSE_MESSAGE_TOO_BIG;
use rmm_opamp::proto::ServerToAgent;
use rmm_opamp::ws::{self as wire, FrameError};
use rmm_opamp::Limits;
use tokio::sync::mpsc;

use super::auth::Credential;
use super::metrics::CloseReason;
use super::registry::{Push, SessionHandle, Transport};
use super::session::{self, Resolved};
use crate::AppState;

/// Close codes (RFC 6455).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_POLICY: u16 = 1008;

/// Accept the upgrade (the caller checked credentials).
pub async fn upgrade(st: AppState, cred: Credential, ip: Option<String>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &st).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let limit = st.config.opamp_max_message_bytes;
    // Messages up to twice the limit are read whole and refused by us with 1009; beyond
    // that the WebSocket layer stops reading them.
    let transport_cap = limit.saturating_mul(2).max(limit + 16);
    upgrade
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_message_size(transport_cap)
        .max_frame_size(transport_cap)
        .on_upgrade(move |socket| run(st, cred, ip, socket))
}

/// The session's binding to an agent, after its first message.
struct Bound {
    who: Resolved,
    handle: SessionHandle,
    mailbox: mpsc::Receiver<Push>,
}

async fn run(st: AppState, cred: Credential, ip: Option<String>, mut socket: WebSocket) {
    let limits = Limits::new(st.config.opamp_max_message_bytes);
    let first_deadline =
        tokio::time::Instant::now() + Duration::from_secs(st.config.opamp_offline_timeout_seconds);
    let mut bound: Option<Bound> = None;
    let reason = loop {
        let incoming = match bound.as_mut() {
            Some(b) => tokio::select! {
                m = socket.recv() => m,
                push = b.mailbox.recv() => match push {
                    Some(Push::Message(msg)) => {
                        if send(&st, &mut socket, &msg).await.is_err() {
                            break CloseReason::ConnectionClosed;
                        }
                        continue;
                    }
                    Some(Push::Close(code, reason)) => {
                        close(&mut socket, code, reason.as_str()).await;
                        break reason;
                    }
                    None => break CloseReason::Shutdown,
                },
            },
            None => match tokio::time::timeout_at(first_deadline, socket.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    close(&mut socket, CLOSE_POLICY, "no status report received").await;
                    break CloseReason::Timeout;
                }
            },
        };
        let data = match incoming {
            None => break CloseReason::ConnectionClosed,
            Some(Err(e)) => {
                // The WebSocket layer refuses messages beyond its cap; say so, best effort.
                let text = e.to_string();
                if text.contains("too long")
                    || text.contains("too big")
                    || text.contains("Space limit")
                {
                    tracing::info!(error = %text, "OpAMP/WebSocket: oversized message");
                    close(&mut socket, WS_CLOSE_MESSAGE_TOO_BIG, "message too big").await;
                    break CloseReason::TooBig;
                }
                tracing::debug!(error = %text, "OpAMP/WebSocket: connection error");
                break CloseReason::ConnectionClosed;
            }
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(_))) => break CloseReason::ConnectionClosed,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                tracing::info!("OpAMP/WebSocket: text message refused");
                close(
                    &mut socket,
                    CLOSE_UNSUPPORTED_DATA,
                    "OpAMP messages are binary",
                )
                .await;
                break CloseReason::Malformed;
            }
        };
        st.metrics.opamp.received();
        let msg = match wire::decode_agent_to_server(&data, &limits) {
            Ok(m) => m,
            Err(e) => {
                let agent = bound
                    .as_ref()
                    .map(|b| b.who.agent.id.as_str())
                    .unwrap_or("-");
                tracing::info!(agent, error = %e, "OpAMP/WebSocket: malformed message, closing the session");
                let reason = if matches!(e, FrameError::TooLarge { .. }) {
                    CloseReason::TooBig
                } else {
                    CloseReason::Malformed
                };
                if reason == CloseReason::Malformed {
                    let _ = send(
                        &st,
                        &mut socket,
                        &ServerToAgent::bad_request(Vec::<u8>::new(), e.to_string()),
                    )
                    .await;
                }
                close(
                    &mut socket,
                    e.close_code(),
                    if reason == CloseReason::TooBig {
                        "message too big"
                    } else {
                        "malformed message"
                    },
                )
                .await;
                break reason;
            }
        };
        let uid = match msg.uid() {
            Ok(u) => u,
            Err(e) => {
                tracing::info!(error = %e, "OpAMP/WebSocket: malformed message, closing the session");
                let _ = send(
                    &st,
                    &mut socket,
                    &ServerToAgent::bad_request(&msg.instance_uid, e.to_string()),
                )
                .await;
                close(&mut socket, CLOSE_PROTOCOL_ERROR, "invalid instance_uid").await;
                break CloseReason::Malformed;
            }
        };
        if bound.is_none() {
            match Box::pin(session::resolve(&st, &cred, &msg, uid, ip.clone())).await {
                Ok(who) => {
                    let (handle, mailbox) = st.opamp.attach(&who.agent.id, uid);
                    bound = Some(Bound {
                        who,
                        handle,
                        mailbox,
                    });
                }
                Err(answer) => {
                    if send(&st, &mut socket, &answer.reply).await.is_err() {
                        break CloseReason::ConnectionClosed;
                    }
                    match answer.end {
                        Some(reason) => {
                            close(&mut socket, CLOSE_POLICY, reason.as_str()).await;
                            break reason;
                        }
                        None => continue,
                    }
                }
            }
        }
        let Some(b) = bound.as_mut() else { continue };
        // Boxed, like `resolve` above: the database calls make these futures large, and
        // keeping them out of the session task's own state saves memory per connection.
        let answer = Box::pin(session::process(
            &st,
            &b.who,
            Transport::WebSocket,
            Some(b.handle.id),
            msg,
        ))
        .await;
        // Offers (secret, instance uid) are made once, in the first reply.
        b.who.new_secret = None;
        b.who.new_uid = None;
        if send(&st, &mut socket, &answer.reply).await.is_err() {
            break CloseReason::ConnectionClosed;
        }
        if let Some(reason) = answer.end {
            let code = if reason == CloseReason::Disconnect {
                CLOSE_NORMAL
            } else {
                CLOSE_POLICY
            };
            close(&mut socket, code, reason.as_str()).await;
            break reason;
        }
    };
    if let Some(b) = bound {
        // Only if this session is still the agent's current one (not replaced or swept).
        if let Some(gone) = st.opamp.remove(&b.who.agent.id, Some(b.handle.id)) {
            Box::pin(super::mark_offline(&st, vec![gone], reason)).await;
        } else if reason == CloseReason::Replaced {
            st.metrics.opamp.closed(reason);
        }
    } else {
        st.metrics.opamp.closed(reason);
    }
}

async fn send(
    st: &AppState,
    socket: &mut WebSocket,
    msg: &ServerToAgent,
) -> Result<(), axum::Error> {
    st.metrics.opamp.sent();
    socket.send(Message::Binary(wire::encode(msg).into())).await
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
