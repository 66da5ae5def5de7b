//! `POST /api/v1/enroll`: a host trades an enrollment token and its facts for an agent id, an
//! agent secret and the OpAMP URL. No other authentication; rate-limited per source address.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ClientIp, Json};
use super::validate;
use crate::secrets;
use crate::store::enrollment::{self, EnrollError, HostFacts};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enroll))
}

/// Body of `POST /enroll`. Unknown fields are ignored, so newer agents can send more facts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnrollRequest {
    /// The enrollment token (`rmm_et_...`).
    pub token: String,
    /// The host's stable id (e.g. /etc/machine-id). The same host id enrolling again in the
    /// same client gets the same agent id with new credentials.
    pub host_id: String,
    pub hostname: String,
    /// e.g. `linux`, `windows`, `darwin`.
    pub os: String,
    /// e.g. `x86_64`, `aarch64`.
    pub arch: String,
    pub agent_version: String,
    /// `host:port` the agent serves `/metrics` on, for Prometheus service discovery.
    pub metrics_address: Option<String>,
    /// Labels the host asks for; the token's labels win on conflicts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The new agent identity. The secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollResponse {
    /// UUIDv7, the agent's id and OpAMP instance uid.
    pub agent_id: String,
    /// `rmm_as_...`: the agent's credential for OpAMP (`Authorization: Bearer`).
    pub agent_secret: String,
    /// Where to connect for OpAMP.
    pub opamp_url: String,
    pub client_id: String,
    pub site_id: String,
    /// Public keys (`rmm-ed25519-public:<base64>`) agent builds are signed with; the agent
    /// pins them. Empty when none are configured.
    pub signing_keys: Vec<String>,
}

fn facts(body: &EnrollRequest) -> Result<HostFacts, ApiError> {
    Ok(HostFacts {
        host_id: validate::text("host_id", &body.host_id, 256)?,
        hostname: validate::text("hostname", &body.hostname, 255)?,
        os: validate::text("os", &body.os, 64)?,
        arch: validate::text("arch", &body.arch, 64)?,
        agent_version: validate::text("agent_version", &body.agent_version, 64)?,
        metrics_address: body
            .metrics_address
            .as_deref()
            .map(validate::host_port)
            .transpose()?,
        labels: {
            validate::labels("labels", &body.labels)?;
            body.labels.clone()
        },
    })
}

/// Enroll a host.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "enroll", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse),
        (status = 401, description = "`token_invalid`, `token_expired` or `token_revoked`", body = ErrorBody),
        (status = 403, description = "`token_exhausted`: the token has no uses left", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn enroll(
    State(st): State<AppState>,
    ip: ClientIp,
    body: Result<Json<EnrollRequest>, ApiError>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    if let Some(addr) = ip.0 {
        if let Err(wait) = st.enroll_limiter.check(addr) {
            st.metrics.enrollment("rate_limited");
            return Err(ApiError::too_many(wait));
        }
    }
    let Json(body) = body.inspect_err(|_| st.metrics.enrollment("bad_request"))?;
    let facts = facts(&body).inspect_err(|_| st.metrics.enrollment("bad_request"))?;
    let secret = secrets::new_token(secrets::AGENT_SECRET_PREFIX);
    let result = enrollment::enroll(
        &st.db,
        &secrets::token_hash(body.token.trim()),
        &secrets::token_hash(&secret),
        &facts,
        ip.to_string_opt(),
    )
    .await;
    let (result_label, err) = match result {
        Ok(e) => {
            st.metrics.enrollment("success");
            tracing::info!(agent = %e.agent_id, new = e.new_agent, hostname = %facts.hostname, "agent enrolled");
            return Ok((
                StatusCode::CREATED,
                Json(EnrollResponse {
                    agent_id: e.agent_id,
                    agent_secret: secret,
                    opamp_url: format!("{}/v1/opamp", st.public_base),
                    client_id: e.client_id,
                    site_id: e.site_id,
                    signing_keys: st.config.releases.signing_keys.clone(),
                }),
            ));
        }
        Err(EnrollError::Invalid) => (
            "token_invalid",
            ApiError::unauthorized(
                "token_invalid",
                "the enrollment token is not valid (unknown or mistyped)",
            ),
        ),
        Err(EnrollError::Expired) => (
            "token_expired",
            ApiError::unauthorized("token_expired", "the enrollment token has expired"),
        ),
        Err(EnrollError::Revoked) => (
            "token_revoked",
            ApiError::unauthorized("token_revoked", "the enrollment token has been revoked"),
        ),
        Err(EnrollError::Exhausted) => (
            "token_exhausted",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "token_exhausted",
                "the enrollment token has been used up (it reached its maximum number of uses)",
            ),
        ),
        Err(EnrollError::Store(e)) => return Err(e.into()),
    };
    st.metrics.enrollment(result_label);
    tracing::info!(source = ?ip.0, result = result_label, "enrollment refused");
    Err(err)
}
