//! Plain-HTTP OpAMP: `POST` of a bare protobuf `AgentToServer` (optionally gzip), answered
//! with status 200, `Content-Type: application/x-protobuf` (exactly, as the Elastic client
//! demands) and a bare `ServerToAgent`, gzip when `Accept-Encoding` allows.
//!
//! A body over the size limit is 413; an unknown `Content-Encoding` 415; a body that does
//! not decode is answered 200 with a `BAD_REQUEST` error response, which clients do not retry.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rmm_opamp::http::{self as wire, HttpError};
use rmm_opamp::proto::ServerToAgent;
use rmm_opamp::Limits;

use super::auth::Credential;
use super::registry::Transport;
use super::session;
use crate::api::error::ApiError;
use crate::AppState;

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "message_too_large",
        format!("the OpAMP message exceeds the limit of {limit} bytes (setting opamp_max_message_bytes)"),
    )
    .into_response()
}

/// One plain-HTTP exchange (the caller checked credentials and content type).
pub async fn exchange(
    st: AppState,
    cred: Credential,
    ip: Option<String>,
    req: Request,
) -> Response {
    let limit = st.config.opamp_max_message_bytes;
    let limits = Limits::new(limit);
    let (parts, body) = req.into_parts();
    let header_str = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let gzip_reply = wire::accepts_gzip(header_str(header::ACCEPT_ENCODING));
    let content_encoding = header_str(header::CONTENT_ENCODING).map(str::to_owned);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(limit),
    };
    st.metrics.opamp.received();
    let msg = match wire::decode_agent_to_server(&bytes, content_encoding.as_deref(), &limits) {
        Ok(m) => m,
        Err(HttpError::TooLarge { limit }) => return too_large(limit),
        Err(e @ HttpError::UnsupportedEncoding(_)) => {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                e.to_string(),
            )
            .into_response()
        }
        Err(e) => {
            tracing::info!(error = %e, "OpAMP/HTTP: malformed message");
            return reply(
                &st,
                ServerToAgent::bad_request(Vec::<u8>::new(), e.to_string()),
                gzip_reply,
            );
        }
    };
    let uid = match msg.uid() {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(error = %e, "OpAMP/HTTP: malformed message");
            return reply(
                &st,
                ServerToAgent::bad_request(&msg.instance_uid, e.to_string()),
                gzip_reply,
            );
        }
    };
    let who = match session::resolve(&st, &cred, &msg, uid, ip).await {
        Ok(w) => w,
        Err(answer) => return reply(&st, answer.reply, gzip_reply),
    };
    let answer = session::process(&st, &who, Transport::Http, None, msg).await;
    reply(&st, answer.reply, gzip_reply)
}

fn reply(st: &AppState, msg: ServerToAgent, gzip: bool) -> Response {
    st.metrics.opamp.sent();
    let body = wire::encode_body(&msg, gzip);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::CONTENT_TYPE_PROTOBUF),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}
