//! `/api/v1/enrollment-tokens`: tokens that let hosts enroll into a site (operator). The
//! token is returned once, at creation; only its SHA-256 is stored.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::validate;
use crate::authz::Role;
use crate::secrets;
use crate::store;
use crate::store::enrollment::{self, EnrollmentToken, NewToken};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, revoke_token))
}

/// Body of `POST /enrollment-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    /// The site hosts enroll into.
    pub site_id: String,
    /// Lifetime in seconds (default from the server settings, 7 days unless changed; at
    /// most one year).
    pub expires_in_seconds: Option<u64>,
    /// How many enrollments the token allows (default from the server settings, 1 unless
    /// changed; at most 1,000,000).
    pub max_uses: Option<u64>,
    /// Labels every agent enrolled with this token gets (they override labels the host sends).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free text, up to 500 characters.
    pub description: Option<String>,
}

/// A new enrollment token, with the secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    /// The secret: `rmm_et_...`. Hand it to the hosts' installer; it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: EnrollmentToken,
}

/// A list of enrollment tokens (without secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentTokenList {
    pub items: Vec<EnrollmentToken>,
}

/// Filters of `GET /enrollment-tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenFilter {
    /// Only tokens of this site.
    pub site_id: Option<String>,
}

/// Enrollment tokens the caller can see, newest first.
#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "enrollment-tokens", params(TokenFilter),
    responses((status = 200, body = EnrollmentTokenList)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(st): State<AppState>,
    auth: Auth,
    Query(f): Query<TokenFilter>,
) -> ApiResult<Json<EnrollmentTokenList>> {
    auth.require(Role::Viewer)?;
    Ok(Json(EnrollmentTokenList {
        items: enrollment::list(&st.db, auth.scope(), f.site_id.as_deref()).await?,
    }))
}

/// Create an enrollment token for a site (operator).
#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "enrollment-tokens", request_body = NewEnrollmentToken,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown site_id", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_token(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<NewEnrollmentToken>,
) -> ApiResult<(StatusCode, Json<CreatedEnrollmentToken>)> {
    auth.require(Role::Operator)?;
    let ttl = body
        .expires_in_seconds
        .unwrap_or(st.config.enrollment_token_ttl_seconds);
    if ttl == 0 || ttl > 366 * 24 * 3600 {
        return Err(ApiError::invalid(
            "expires_in_seconds: must be between 1 and 31622400 (one year)",
        ));
    }
    let max_uses = body
        .max_uses
        .unwrap_or(st.config.enrollment_token_max_uses as u64);
    if max_uses == 0 || max_uses > 1_000_000 {
        return Err(ApiError::invalid("max_uses: must be between 1 and 1000000"));
    }
    validate::labels("labels", &body.labels)?;
    let description = body
        .description
        .as_deref()
        .map(|d| validate::text("description", d, 500))
        .transpose()?;
    let token = secrets::new_token(secrets::ENROLLMENT_TOKEN_PREFIX);
    let hash = secrets::token_hash(&token);
    let prefix = secrets::token_display_prefix(&token);
    let info = enrollment::create(
        &st.db,
        auth.scope(),
        &auth.actor(),
        NewToken {
            site_id: &body.site_id,
            token_hash: &hash,
            token_prefix: &prefix,
            description: description.as_deref(),
            labels: &body.labels,
            max_uses: max_uses as i64,
            expires_at: store::now_ms() + ttl as i64 * 1000,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentToken { token, info }),
    ))
}

/// One enrollment token.
#[utoipa::path(get, path = "/api/v1/enrollment-tokens/{id}", tag = "enrollment-tokens", params(("id" = String, Path)),
    responses((status = 200, body = EnrollmentToken), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrollmentToken>> {
    auth.require(Role::Viewer)?;
    Ok(Json(enrollment::get(&st.db, auth.scope(), &id).await?))
}

/// Revoke an enrollment token (operator). Agents it enrolled keep working.
#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{id}", tag = "enrollment-tokens", params(("id" = String, Path)),
    responses((status = 200, body = EnrollmentToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already revoked", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_token(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrollmentToken>> {
    auth.require(Role::Operator)?;
    Ok(Json(
        enrollment::revoke(&st.db, auth.scope(), &auth.actor(), &id).await?,
    ))
}
