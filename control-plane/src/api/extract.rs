//! Extractors: JSON and query strings with errors in the API's shape, the caller's source
//! address, and authentication (`Authorization: Bearer` with a login JWT or an API token).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::authz::{Principal, PrincipalKind, Role};
use crate::secrets::{self, JwtError};
use crate::store::audit::Actor;
use crate::store::{self, users, Scope};
use crate::AppState;

/// A JSON request body (always an object) or response. Rejections (wrong content type,
/// oversized body, malformed JSON, a non-object, wrong types, missing or unknown fields) are
/// answered as [`ApiError`]s naming the problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this server accepts (setting max_body_bytes)",
                )
            } else {
                ApiError::bad_request("bad_body", r.body_text())
            }
        })?;
        // Syntax first: a document that is not well-formed JSON is a 400 whatever it holds.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(ApiError::bad_request(
                "malformed_json",
                format!("Failed to parse the request body as JSON: {e}"),
            ));
        }
        // serde accepts a JSON array for a struct (fields by position); the API does not.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "the request body must be a JSON object, not an array",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            // Well-formed by now: serde_json reports some wrong types (a number for an enum)
            // as syntax errors; they are 422 like every other type error.
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!(
                    "Failed to deserialize the JSON body into the target type: {}",
                    e.body_text()
                        .split_once(": ")
                        .map(|x| x.1)
                        .unwrap_or_default()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with errors in the API's shape.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with errors in the API's shape.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The caller's address: the TCP peer, or the first `X-Forwarded-For` entry when the server
/// is configured to trust it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub fn to_string_opt(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

fn client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    if state.config.trust_forwarded_for {
        if let Some(ip) = forwarded_for(&parts.headers) {
            return Some(ip);
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state)))
    }
}

/// An authenticated caller, with the address the request came from.
#[derive(Debug, Clone)]
pub struct Auth {
    pub principal: Principal,
    pub ip: Option<IpAddr>,
}

impl Auth {
    /// The caller as an audit-log actor.
    pub fn actor(&self) -> Actor {
        Actor {
            actor_type: self.principal.actor_type().to_owned(),
            id: Some(self.principal.id.clone()),
            name: Some(self.principal.name.clone()),
            source_ip: self.ip.map(|i| i.to_string()),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.principal.scope
    }

    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        self.principal.require(role)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts, state);
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "missing Authorization header; send `Authorization: Bearer <token>`",
            )
        })?;
        let value = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthorized",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let principal = authenticate(state, value).await?;
        Ok(Auth { principal, ip })
    }
}

async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if token.starts_with(secrets::API_TOKEN_PREFIX) {
        let found = users::authenticate_api_token(&state.db, &secrets::token_hash(token)).await?;
        let t = found.ok_or_else(|| {
            ApiError::unauthorized(
                "token_invalid",
                "the API token is unknown, revoked or expired",
            )
        })?;
        let role =
            Role::parse(&t.role).ok_or_else(|| ApiError::internal("bad role in database"))?;
        return Ok(Principal {
            kind: PrincipalKind::ApiToken,
            id: t.id,
            name: t.name,
            role,
            scope: Scope::from_client_id(t.client_id),
        });
    }
    let claims = state
        .jwt
        .verify(token, store::now_ms() / 1000)
        .map_err(|e| match e {
            JwtError::Expired => {
                ApiError::unauthorized("token_expired", "the login token has expired; log in again")
            }
            JwtError::Malformed | JwtError::BadSignature => ApiError::unauthorized(
                "token_invalid",
                "the bearer token is not a valid login token or API token",
            ),
        })?;
    if claims.typ != "user" {
        return Err(ApiError::unauthorized(
            "token_invalid",
            "the bearer token is not a login token",
        ));
    }
    let user = match users::get_user(&state.db, &Scope::All, &claims.sub).await {
        Ok(u) => u,
        Err(store::Error::NotFound(_)) => {
            return Err(ApiError::unauthorized(
                "token_invalid",
                "the user of this login token no longer exists",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let role = Role::parse(&user.role).ok_or_else(|| ApiError::internal("bad role in database"))?;
    Ok(Principal {
        kind: PrincipalKind::User,
        id: user.id,
        name: user.email,
        role,
        scope: Scope::from_client_id(user.client_id),
    })
}
