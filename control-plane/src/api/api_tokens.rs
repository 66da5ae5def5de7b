//! `/api/v1/api-tokens`: credentials for automation, e.g. Prometheus service discovery
//! (admin). The token is returned once, at creation; only its SHA-256 is stored.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::validate;
use crate::authz::Role;
use crate::secrets;
use crate::store::users::{self, ApiToken, NewApiToken};
use crate::store::{self, Scope};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, revoke_token))
}

/// Body of `POST /api-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, 1 to 200 characters.
    pub name: String,
    /// Default `viewer`.
    pub role: Option<Role>,
    /// The one client the token may see; omit or `null` for all clients (a client-scoped
    /// admin's tokens are always limited to that client).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Lifetime in seconds; omit for a token that does not expire.
    pub expires_in_seconds: Option<u64>,
}

/// A new API token, with the secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret: `rmm_at_...`. Store it now; it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: ApiToken,
}

/// A list of API tokens (without secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<ApiToken>,
}

/// API tokens the caller can see (admin).
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "api-tokens",
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_tokens(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<TokenList>> {
    auth.require(Role::Admin)?;
    Ok(Json(TokenList {
        items: users::list_api_tokens(&st.db, auth.scope()).await?,
    }))
}

/// Create an API token (admin). The answer carries the token; it is never shown again.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "api-tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown client_id", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_token(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    auth.require(Role::Admin)?;
    let name = validate::name("name", &body.name)?;
    // A client-scoped admin's tokens are limited to their client.
    let client_id = match (auth.scope(), body.client_id) {
        (Scope::All, c) => c,
        (Scope::Client(own), None) => Some(own.clone()),
        (Scope::Client(_), Some(c)) => Some(c),
    };
    let expires_at = match body.expires_in_seconds {
        Some(0) => return Err(ApiError::invalid("expires_in_seconds: must be positive")),
        Some(s) if s > 10 * 365 * 24 * 3600 => {
            return Err(ApiError::invalid("expires_in_seconds: at most ten years"))
        }
        Some(s) => Some(store::now_ms() + s as i64 * 1000),
        None => None,
    };
    let token = secrets::new_token(secrets::API_TOKEN_PREFIX);
    let hash = secrets::token_hash(&token);
    let prefix = secrets::token_display_prefix(&token);
    let role = body.role.unwrap_or(Role::Viewer);
    let info = users::create_api_token(
        &st.db,
        auth.scope(),
        &auth.actor(),
        NewApiToken {
            name: &name,
            token_hash: &hash,
            token_prefix: &prefix,
            role: role.as_str(),
            client_id: client_id.as_deref(),
            expires_at,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info })))
}

/// One API token (admin).
#[utoipa::path(get, path = "/api/v1/api-tokens/{id}", tag = "api-tokens", params(("id" = String, Path)),
    responses((status = 200, body = ApiToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiToken>> {
    auth.require(Role::Admin)?;
    Ok(Json(users::get_api_token(&st.db, auth.scope(), &id).await?))
}

/// Revoke an API token (admin); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "api-tokens", params(("id" = String, Path)),
    responses((status = 200, body = ApiToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already revoked", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiToken>> {
    auth.require(Role::Admin)?;
    Ok(Json(
        users::revoke_api_token(&st.db, auth.scope(), &auth.actor(), &id).await?,
    ))
}
