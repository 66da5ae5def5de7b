//! `/api/v1/auth`: log in for a short-lived JWT, and see who you are.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, ClientIp, Json};
use crate::authz::{PrincipalKind, Role};
use crate::secrets::{self, Claims};
use crate::store::{self, users};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(me))
}

/// Body of `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// A login token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// JWT to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `user` or `api_token`.
    pub kind: String,
    pub id: String,
    /// Email or token name.
    pub name: String,
    pub role: Role,
    /// `null` = all clients.
    pub client_id: Option<String>,
}

/// Log in with email and password. Rate-limited per source address.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "wrong email or password", body = ErrorBody),
        (status = 429, description = "too many attempts from this address", body = ErrorBody)))]
async fn login(
    State(st): State<AppState>,
    ip: ClientIp,
    Json(body): Json<LoginBody>,
) -> ApiResult<Json<LoginResponse>> {
    if let Some(addr) = ip.0 {
        st.login_limiter.check(addr).map_err(ApiError::too_many)?;
    }
    let user = users::find_login(&st.db, body.email.trim()).await?;
    let (hash, id) = match &user {
        Some(u) => (u.password_hash.clone(), Some(u.id.clone())),
        None => (secrets::dummy_password_hash().to_owned(), None),
    };
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let Some(id) = id.filter(|_| ok) else {
        tracing::info!(source = ?ip.0, "login failed");
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "wrong email or password",
        ));
    };
    let now = store::now_ms() / 1000;
    let exp = now + st.config.jwt_ttl_seconds as i64;
    let token = st.jwt.sign(&Claims {
        sub: id,
        iat: now,
        exp,
        typ: "user".into(),
    });
    Ok(Json(LoginResponse {
        token,
        expires_at: store::ser::rfc3339(exp * 1000),
    }))
}

/// The authenticated caller: user or API token, role and scope.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn me(auth: Auth) -> Json<Me> {
    let p = auth.principal;
    Json(Me {
        kind: match p.kind {
            PrincipalKind::User => "user".into(),
            PrincipalKind::ApiToken => "api_token".into(),
        },
        id: p.id,
        name: p.name,
        role: p.role,
        client_id: p.scope.client_id().map(str::to_owned),
    })
}
