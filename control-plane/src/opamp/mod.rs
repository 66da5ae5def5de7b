//! The OpAMP server on `/v1/opamp`, both transports on one route: a request whose
//! `Content-Type` is exactly `application/x-protobuf` is a plain-HTTP exchange ([`http`]);
//! anything else is a WebSocket upgrade ([`ws`]).
//!
//! - [`auth`]: bearer credential (agent secret or enrollment token), checked before the
//!   upgrade; 401 otherwise
//! - [`session`]: one message in, one reply out; enrollment over OpAMP
//! - [`registry`]: live sessions, their OpAMP state, and pushes to WebSocket agents
//! - [`liveness`]: the sweeper that marks silent agents offline and flushes `last_seen`
//! - [`describe`]: reported status as stored JSON
//! - [`custom`]: custom messages (the user inventory)
//! - [`metrics`]: `rmm_cp_agents_connected`, `rmm_cp_opamp_*`

pub mod auth;
pub mod custom;
pub mod describe;
pub mod http;
pub mod liveness;
pub mod metrics;
pub mod registry;
pub mod session;
pub mod ws;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

pub use registry::{Registry, Transport};

use crate::api::error::ApiError;
use crate::api::extract::ClientIp;
use crate::store::{agent_status, now_ms};
use crate::AppState;
use metrics::CloseReason;
use registry::Gone;

/// The OpAMP route (the spec's default path).
pub const PATH: &str = rmm_opamp::http::DEFAULT_PATH;

/// The route, to merge into the application router.
pub fn router() -> Router<AppState> {
    Router::new().route(PATH, any(opamp))
}

async fn opamp(State(st): State<AppState>, ip: ClientIp, req: Request) -> Response {
    let cred = match auth::authenticate(&st, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    match content_type {
        Some(ct) if rmm_opamp::http::is_protobuf_content_type(&ct) => {
            if req.method() != Method::POST {
                return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "plain-HTTP OpAMP uses POST")
                    .into_response();
            }
            http::exchange(st, cred, ip.to_string_opt(), req).await
        }
        _ if req.method() == Method::POST => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "plain-HTTP OpAMP needs Content-Type: application/x-protobuf (exactly); other requests must be WebSocket upgrades",
        )
        .into_response(),
        _ => ws::upgrade(st, cred, ip.to_string_opt(), req).await,
    }
}

/// Count sessions that ended for `reason`.
pub(crate) fn count_gone(st: &AppState, gone: &[Gone], reason: CloseReason) {
    for _ in gone {
        st.metrics.opamp.closed(reason);
    }
}

/// Record that agents went offline: count the reason, write the database, log.
pub(crate) async fn mark_offline(st: &AppState, gone: Vec<Gone>, reason: CloseReason) {
    if gone.is_empty() {
        return;
    }
    count_gone(st, &gone, reason);
    let ids: Vec<String> = gone
        .iter()
        .filter(|g| g.was_online)
        .map(|g| g.agent_id.clone())
        .collect();
    for id in &ids {
        tracing::info!(agent = %id, reason = reason.as_str(), "agent offline");
    }
    if let Err(e) = agent_status::mark_offline(&st.db, &ids, now_ms()).await {
        tracing::warn!(error = %e, "OpAMP: cannot mark agents offline");
    }
}

/// On server shutdown: close every WebSocket session (1001, going away) and mark the agents
/// of this process offline.
pub async fn shutdown(st: &AppState) {
    let gone = st.opamp.close_all();
    mark_offline(st, gone, CloseReason::Shutdown).await;
}
