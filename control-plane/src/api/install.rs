//! Agent installation: the install script the control plane hands out
//! (`GET /install/agent.sh`, public), and the reports that script files about each run
//! (`POST /install-reports` with the enrollment token as bearer; `GET /install-reports` for
//! viewers, scoped by client).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, ClientIp, Json, Query};
use super::validate;
use crate::authz::Role;
use crate::secrets;
use crate::store::install_reports::{self, Filter, InstallReport, NewReport, TokenError};
use crate::AppState;

/// The script, embedded at build time. `@RMM_SERVER_URL@` becomes this server's public URL.
pub const AGENT_SCRIPT: &str = include_str!("../../../deploy/install/install-agent.sh");
const SERVER_PLACEHOLDER: &str = "@RMM_SERVER_URL@";

/// The steps of the install script, in order; `complete` is the step of a success report.
pub const STEPS: &[&str] = &[
    "preflight",
    "download",
    "verify",
    "user",
    "install",
    "config",
    "enroll",
    "service",
    "complete",
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(agent_script))
        .routes(routes!(list_reports, create_report))
}

/// The script with `base` as its default server, when `base` is safe to put between single
/// quotes in sh; otherwise with no default (the script then asks for `--server`).
pub fn render_script(base: &str) -> String {
    let safe = !base.is_empty()
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._-[]%@~+".contains(c));
    AGENT_SCRIPT.replacen(SERVER_PLACEHOLDER, if safe { base } else { "" }, 1)
}

/// The agent install script (POSIX sh), with this control plane's public URL filled in. It
/// holds no secret: the enrollment token is given when running it.
#[utoipa::path(get, path = "/api/v1/install/agent.sh", tag = "install",
    responses((status = 200, description = "the script", content_type = "text/x-shellscript", body = String)))]
async fn agent_script(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        render_script(&st.public_base),
    )
}

/// Body of `POST /install-reports`. Client and site come from the enrollment token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstallReport {
    pub hostname: String,
    /// Operating system, lower case (`linux`).
    pub os: String,
    /// Machine architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Version of the installed agent, when the script got that far.
    pub agent_version: Option<String>,
    /// `success` or `failed`.
    pub status: String,
    /// `preflight`, `download`, `verify`, `user`, `install`, `config`, `enroll`, `service`, or
    /// `complete` (only with `success`): the step that failed, or `complete`.
    pub step: String,
    /// What happened, up to 2000 characters (no control characters).
    pub message: String,
}

/// A list of install reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstallReportList {
    pub items: Vec<InstallReport>,
}

/// Filters of `GET /install-reports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    pub client_id: Option<String>,
    pub site_id: Option<String>,
    /// At most this many reports, newest first: 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

/// A short lower-case identifier (`os`, `arch`): 1 to 32 of `[a-z0-9_-]`.
fn ident(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 32 {
        return Err(ApiError::invalid(format!(
            "{field}: must be 1 to 32 characters"
        )));
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(ApiError::invalid(format!(
            "{field}: only lower-case letters, digits, '_' and '-' are allowed (got {v:?})"
        )));
    }
    Ok(v.to_owned())
}

fn validate_report(b: &NewInstallReport) -> Result<NewReport, ApiError> {
    let status = match b.status.as_str() {
        s @ ("success" | "failed") => s.to_owned(),
        other => {
            return Err(ApiError::invalid(format!(
                "status: must be \"success\" or \"failed\" (got {other:?})"
            )))
        }
    };
    if !STEPS.contains(&b.step.as_str()) {
        return Err(ApiError::invalid(format!(
            "step: must be one of {} (got {:?})",
            STEPS.join(", "),
            b.step
        )));
    }
    if (status == "success") != (b.step == "complete") {
        return Err(ApiError::invalid(
            "step: a success report has step \"complete\"; a failed one names the step that failed",
        ));
    }
    let agent_version = match b.agent_version.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(v) => {
            if v.len() > 64
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+-_".contains(c))
            {
                return Err(ApiError::invalid(
                    "agent_version: up to 64 letters, digits, '.', '+', '-' and '_'",
                ));
            }
            Some(v.to_owned())
        }
    };
    Ok(NewReport {
        hostname: validate::text("hostname", &b.hostname, 255)?,
        os: ident("os", &b.os)?,
        arch: ident("arch", &b.arch)?,
        agent_version,
        status,
        step: b.step.clone(),
        message: validate::text("message", &b.message, 2000)?,
    })
}

/// The enrollment token from `Authorization: Bearer rmm_et_...`.
fn enrollment_bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "unauthenticated",
                "send the enrollment token as Authorization: Bearer rmm_et_...",
            )
        })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer")
                && token.trim().starts_with(secrets::ENROLLMENT_TOKEN_PREFIX) =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthorized(
            "token_invalid",
            "install reports are authenticated by an enrollment token (Bearer rmm_et_...)",
        )),
    }
}

/// Report the outcome of an agent installation (the install script does this). Authenticated
/// by the enrollment token the script was run with (revoked tokens are refused, expired ones
/// accepted for 7 days, used-up ones accepted); the report lands in the token's client and site.
#[utoipa::path(post, path = "/api/v1/install-reports", tag = "install", request_body = NewInstallReport,
    responses((status = 201, body = InstallReport),
        (status = 401, description = "`unauthenticated`, `token_invalid`, `token_revoked` or `token_expired`", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("enrollment_token" = [])))]
async fn create_report(
    State(st): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Json<NewInstallReport>, ApiError>,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    let token = enrollment_bearer(&headers);
    let token = match token {
        Ok(t) => t,
        Err(e) => return Err(refused(&st, ip, e)),
    };
    let Json(body) = body?;
    let report = validate_report(&body)?;
    match install_reports::create(
        &st.db,
        &secrets::token_hash(&token),
        &report,
        ip.to_string_opt(),
    )
    .await
    {
        Ok(r) => {
            tracing::info!(report = %r.id, client = %r.client_id, site = %r.site_id,
                status = %r.status, step = %r.step, hostname = %r.hostname, "install report");
            Ok((StatusCode::CREATED, Json(r)))
        }
        Err(TokenError::Invalid) => Err(refused(
            &st,
            ip,
            ApiError::unauthorized("token_invalid", "the enrollment token is not valid"),
        )),
        Err(TokenError::Revoked) => Err(refused(
            &st,
            ip,
            ApiError::unauthorized("token_revoked", "the enrollment token has been revoked"),
        )),
        Err(TokenError::Expired) => Err(refused(
            &st,
            ip,
            ApiError::unauthorized(
                "token_expired",
                "the enrollment token expired more than 7 days ago",
            ),
        )),
        Err(TokenError::Store(e)) => Err(e.into()),
    }
}

/// A refused credential costs the source address one unit of the enrollment rate limit, so
/// this route cannot be used to guess tokens faster than `POST /enroll`.
fn refused(st: &AppState, ip: ClientIp, err: ApiError) -> ApiError {
    if let Some(addr) = ip.0 {
        if let Err(wait) = st.enroll_limiter.check(addr) {
            return ApiError::too_many(wait);
        }
    }
    tracing::info!(source = ?ip.0, code = %err.code, "install report refused");
    err
}

/// Install reports the caller can see, newest first.
#[utoipa::path(get, path = "/api/v1/install-reports", tag = "install", params(ReportQuery),
    responses((status = 200, body = InstallReportList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_reports(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<InstallReportList>> {
    auth.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    let items = install_reports::list(
        &st.db,
        auth.scope(),
        &Filter {
            client_id: q.client_id.as_deref(),
            site_id: q.site_id.as_deref(),
            limit,
        },
    )
    .await?;
    Ok(Json(InstallReportList { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: &str, step: &str) -> NewInstallReport {
        NewInstallReport {
            hostname: "web-1".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: Some("0.1.0".into()),
            status: status.into(),
            step: step.into(),
            message: "ok".into(),
        }
    }

    #[test]
    fn script_gets_the_server_url_only_when_safe() {
        assert!(AGENT_SCRIPT.contains(SERVER_PLACEHOLDER));
        let s = render_script("https://rmm.example.com:8443");
        assert!(s.contains("'https://rmm.example.com:8443'"));
        assert!(!s.contains(SERVER_PLACEHOLDER));
        let s = render_script("http://x'; touch /tmp/pwned-by-url #");
        assert!(!s.contains("pwned-by-url"));
        assert!(s.contains("default_server=''\n"));
    }

    #[test]
    fn reports_are_validated() {
        assert!(validate_report(&body("success", "complete")).is_ok());
        assert!(validate_report(&body("failed", "enroll")).is_ok());
        for (status, step) in [
            ("success", "enroll"),
            ("failed", "complete"),
            ("ok", "complete"),
            ("failed", "reboot"),
        ] {
            assert!(
                validate_report(&body(status, step)).is_err(),
                "{status}/{step}"
            );
        }
        let mut b = body("failed", "download");
        b.os = "Linux; DROP".into();
        assert!(validate_report(&b).unwrap_err().message.starts_with("os:"));
        let mut b = body("failed", "download");
        b.message = "x".repeat(2001);
        assert!(validate_report(&b)
            .unwrap_err()
            .message
            .starts_with("message:"));
        let mut b = body("failed", "download");
        b.agent_version = Some("1.0 beta".into());
        assert!(validate_report(&b)
            .unwrap_err()
            .message
            .starts_with("agent_version:"));
    }
}
