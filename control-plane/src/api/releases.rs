//! `/api/v1/releases`: the catalog of signed agent builds. Builds are uploaded as the raw
//! request body, registered by URL (the control plane downloads them), or imported from the
//! watched directory (`releases.watch_dir`); each is verified against the configured signing
//! keys before it is stored. `GET /releases/{id}/build` serves the bytes to agents;
//! `GET /releases/latest/build` serves the current build of a channel to install scripts.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use crate::authz::Role;
use crate::releases::builds::{self, BuildMeta};
use crate::releases::rollout::parse_version;
use crate::releases::rollout_store;
use crate::releases::store::{self, Filter, Release};
use crate::secrets::{AGENT_SECRET_PREFIX, ENROLLMENT_TOKEN_PREFIX};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_releases, upload_release))
        .routes(routes!(register_release))
        .routes(routes!(get_release, delete_release))
        .routes(routes!(download_build))
        .routes(routes!(download_latest_build))
}

/// Filters of `GET /releases`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReleaseQuery {
    pub channel: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
}

/// Releases, newest version first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseList {
    pub items: Vec<Release>,
}

/// What an uploaded build is (query parameters of `POST /releases`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Semantic version, e.g. `1.4.0`.
    pub version: String,
    /// `linux`, `windows` or `macos`.
    pub os: String,
    /// `x86_64` or `aarch64`; a Linux build must be an ELF executable of that architecture.
    pub arch: String,
    /// `stable`, `beta` or `edge`.
    pub channel: String,
    /// `rmm-ed25519-sig:<base64>` as written by `rmm-control-plane release sign` (URL-encoded).
    pub signature: String,
    /// Hex SHA-256 the build must have (optional).
    pub sha256: Option<String>,
}

/// Body of `POST /releases/from-url`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRelease {
    pub version: String,
    pub os: String,
    pub arch: String,
    pub channel: String,
    /// `http://` or `https://` URL the control plane downloads the build from.
    pub url: String,
    /// Hex SHA-256 the downloaded build must have.
    pub sha256: String,
    /// `rmm-ed25519-sig:<base64>`.
    pub signature: String,
}

/// The catalog, optionally filtered.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseQuery),
    responses((status = 200, body = ReleaseList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_releases(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<ReleaseQuery>,
) -> ApiResult<Json<ReleaseList>> {
    auth.require(Role::Viewer)?;
    let items = store::list(
        &st.db,
        &Filter {
            channel: q.channel,
            os: q.os,
            arch: q.arch,
        },
    )
    .await?;
    Ok(Json(ReleaseList { items }))
}

/// Upload a build: the raw bytes as the body (`Content-Type: application/octet-stream`), what
/// it is as query parameters. Streamed to storage while hashed; refused (nothing stored) when
/// truncated, too large (`releases.max_build_bytes`), of the wrong architecture, in an
/// unknown channel, or when the signature does not verify with a configured signing key.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the build"),
    responses((status = 201, body = Release),
        (status = 400, description = "`truncated_upload`, `invalid_query`", body = ErrorBody),
        (status = 409, description = "`duplicate_release`: this version/os/arch is already in the channel", body = ErrorBody),
        (status = 413, description = "`build_too_large`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "`bad_signature`, `wrong_architecture`, `unknown_channel`, `invalid_release`, `sha256_mismatch`, `no_release_keys`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_release(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Release>)> {
    auth.principal.require_all_clients(Role::Operator)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.trim().eq_ignore_ascii_case("application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "upload the build as the raw body with Content-Type: application/octet-stream",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let meta = BuildMeta {
        version: q.version,
        os: q.os,
        arch: q.arch,
        channel: q.channel,
        signature: q.signature,
        expected_sha256: q.sha256,
        source_url: None,
    };
    let r = builds::ingest(&st, &auth.actor(), &meta, declared, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Register a build by URL: the control plane downloads it (size cap, time limit), checks
/// its SHA-256 and signature, and stores it.
#[utoipa::path(post, path = "/api/v1/releases/from-url", tag = "releases",
    request_body = RegisterRelease,
    responses((status = 201, body = Release),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "`download_failed`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn register_release(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<RegisterRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    auth.principal.require_all_clients(Role::Operator)?;
    let meta = BuildMeta {
        version: body.version,
        os: body.os,
        arch: body.arch,
        channel: body.channel,
        signature: body.signature,
        expected_sha256: Some(body.sha256),
        source_url: Some(body.url.clone()),
    };
    let r = builds::ingest_url(&st, &auth.actor(), &meta, &body.url).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// One release.
#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "releases",
    responses((status = 200, body = Release), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_release(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Release>> {
    auth.require(Role::Viewer)?;
    Ok(Json(store::by_id(&st.db, &id).await?))
}

/// Remove a release and its stored build; refused while a rollout targets it.
#[utoipa::path(delete, path = "/api/v1/releases/{id}", tag = "releases",
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`release_in_use`: a rollout targets it", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_release(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require_all_clients(Role::Operator)?;
    let r = store::by_id(&st.db, &id).await?;
    if rollout_store::targets(&st.db, &r.channel, &r.version).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "release_in_use",
            format!(
                "the rollout of channel {} targets {}; change or remove it first",
                r.channel, r.version
            ),
        ));
    }
    let r = store::delete(&st.db, &auth.actor(), &id).await?;
    builds::remove_if_unused(&st, &r.sha256).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Who may download a build: an enrolled agent (its secret), the holder of an enrollment
/// token that is neither revoked nor expired (install scripts), or an API user with the
/// viewer role or above.
async fn may_download(st: &AppState, req: Request) -> Result<(), ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    if let Some(t) = &token {
        if t.starts_with(AGENT_SECRET_PREFIX) || t.starts_with(ENROLLMENT_TOKEN_PREFIX) {
            let cred = crate::opamp::auth::authenticate(st, req.headers()).await?;
            if let crate::opamp::auth::Credential::Enrollment { token, .. } = cred {
                // An install script's token must still be able to enroll: not expired.
                let mut sql = crate::store::Sql::new(
                    "SELECT COUNT(*) FROM enrollment_tokens WHERE expires_at > ",
                );
                sql.bind(crate::store::now_ms())
                    .push(" AND id = ")
                    .bind(&token.id);
                if sql.fetch_i64(st.db.pool()).await? == 0 {
                    return Err(ApiError::unauthorized(
                        "token_expired",
                        "the enrollment token has expired",
                    ));
                }
            }
            return Ok(());
        }
    }
    let (mut parts, _) = req.into_parts();
    let auth = Auth::from_request_parts(&mut parts, st).await?;
    auth.require(Role::Viewer)
}

/// Headers naming what a build response carries, so a downloader can verify it.
pub const VERSION_HEADER: &str = "x-rmm-release-version";
pub const SHA256_HEADER: &str = "x-rmm-release-sha256";
pub const SIGNATURE_HEADER: &str = "x-rmm-release-signature";
pub const ID_HEADER: &str = "x-rmm-release-id";

/// Stream the stored build of `r` with its version, SHA-256 and signature as headers.
async fn serve_build(st: &AppState, r: &Release) -> Result<Response, ApiError> {
    let path = builds::build_path(st, &r.sha256);
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::internal(format!(
            "build of release {} missing at {}: {e}",
            r.id,
            path.display()
        ))
    })?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let body = Body::from_stream(builds::file_chunks(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        [
            (VERSION_HEADER, r.version.clone()),
            (SHA256_HEADER, r.sha256.clone()),
            (SIGNATURE_HEADER, r.signature.clone()),
            (ID_HEADER, r.id.clone()),
        ],
        body,
    )
        .into_response())
}

/// The build's bytes (`application/octet-stream`), for agents (`Authorization: Bearer
/// <agent secret>`), install scripts (an enrollment token) and API users (viewer or above).
#[utoipa::path(get, path = "/api/v1/releases/{id}/build", tag = "releases",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
            headers(("x-rmm-release-version" = String), ("x-rmm-release-sha256" = String),
                ("x-rmm-release-signature" = String), ("x-rmm-release-id" = String))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn download_build(
    State(st): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    may_download(&st, req).await?;
    let r = store::by_id(&st.db, &id).await?;
    serve_build(&st, &r).await
}

/// Which build `GET /releases/latest/build` serves.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// `linux`, `windows` or `macos`.
    pub os: String,
    /// `x86_64` or `aarch64`.
    pub arch: String,
    /// `stable`, `beta` or `edge`.
    pub channel: String,
}

fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    let code = if field == "channel" {
        "unknown_channel"
    } else {
        "invalid_query"
    };
    Err(ApiError::bad_request(
        code,
        format!(
            "{field}: unknown {field} {value:?}; expected one of {}",
            allowed.join(", ")
        ),
    ))
}

/// The release a new install of `q` gets: with a rollout for the channel, the newest build
/// not newer than its target (while the rollout is paused, not newer than the target it
/// replaced, when there was one), so installs never run ahead of what the operator approved;
/// without a rollout, the newest build of the channel (semver precedence).
pub async fn latest_release(st: &AppState, q: &LatestQuery) -> Result<Option<Release>, ApiError> {
    let rows = store::list(
        &st.db,
        &Filter {
            channel: Some(q.channel.clone()),
            os: Some(q.os.clone()),
            arch: Some(q.arch.clone()),
        },
    )
    .await?;
    let cap = match rollout_store::get(&st.db, &q.channel).await {
        Ok(r) => {
            let version = match (&r.previous_version, r.paused != 0) {
                (Some(prev), true) => prev.clone(),
                _ => r.target_version.clone(),
            };
            parse_version(&version).ok()
        }
        Err(crate::store::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    // `list` is newest first.
    Ok(rows
        .into_iter()
        .find(|r| match (&cap, parse_version(&r.version)) {
            (None, _) => true,
            (Some(cap), Ok(v)) => v.cmp_precedence(cap) != std::cmp::Ordering::Greater,
            (Some(_), Err(_)) => false,
        }))
}

/// The current build of a channel for an OS and architecture, for install scripts: the
/// rollout's target when the channel has a rollout (see the description of
/// `latest_release`), else the newest release. The same credentials as
/// `GET /releases/{id}/build`; headers give the version, SHA-256 and signature to verify it.
#[utoipa::path(get, path = "/api/v1/releases/latest/build", tag = "releases",
    params(LatestQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
            headers(("x-rmm-release-version" = String), ("x-rmm-release-sha256" = String),
                ("x-rmm-release-signature" = String), ("x-rmm-release-id" = String))),
        (status = 400, description = "`invalid_query`, `unknown_channel`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`no_release`: no build for this os/arch/channel", body = ErrorBody)),
    security(("bearer" = [])))]
async fn download_latest_build(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    // Credentials first: an unauthenticated caller learns nothing about the query.
    let uri = req.uri().clone();
    may_download(&st, req).await?;
    let axum::extract::Query(q) = axum::extract::Query::<LatestQuery>::try_from_uri(&uri)?;
    check_one_of("os", &q.os, store::OSES)?;
    check_one_of("arch", &q.arch, store::ARCHES)?;
    check_one_of("channel", &q.channel, store::CHANNELS)?;
    let Some(r) = latest_release(&st, &q).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_release",
            format!(
                "no release for {}/{} in channel {}",
                q.os, q.arch, q.channel
            ),
        ));
    };
    serve_build(&st, &r).await
}
