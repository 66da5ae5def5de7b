//! OpAMP authentication, before any message is read (and before a WebSocket upgrade):
//! `Authorization: Bearer <credential>` where the credential is an agent secret
//! (`rmm_as_...`) or an enrollment token (`rmm_et_...`). Failure is 401.

use axum::http::{header, HeaderMap, StatusCode};

use crate::api::error::ApiError;
use crate::secrets::{self, ENROLLMENT_TOKEN_PREFIX};
use crate::store::agent_status::{self, OpampToken};
use crate::store::agents::AgentIdentity;
use crate::AppState;

/// Who is on the other end.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An enrolled agent, by its secret.
    Agent(AgentIdentity),
    /// The holder of an enrollment token: enrolled at its first status report, or an agent
    /// enrolled earlier with this token that keeps it as its credential.
    Enrollment {
        token: OpampToken,
        token_hash: String,
    },
}

/// The bearer token of a request, if well formed.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Check the request's credential.
pub async fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized(
            "missing_credentials",
            "OpAMP needs `Authorization: Bearer <agent secret or enrollment token>`",
        ));
    };
    let hash = secrets::token_hash(token);
    if token.starts_with(ENROLLMENT_TOKEN_PREFIX) {
        return match agent_status::enrollment_token(&st.db, &hash).await? {
            Some(t) if t.revoked_at.is_none() => Ok(Credential::Enrollment {
                token: t,
                token_hash: hash,
            }),
            Some(_) => Err(ApiError::unauthorized(
                "token_revoked",
                "the enrollment token has been revoked",
            )),
            None => Err(ApiError::unauthorized(
                "token_invalid",
                "the enrollment token is not valid",
            )),
        };
    }
    match agent_status::agent_by_secret(&st.db, &hash).await? {
        Some(a) => Ok(Credential::Agent(a)),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "unknown agent secret (the agent may have been deleted or re-enrolled)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer  rmm_as_x ".parse().unwrap());
        assert_eq!(bearer(&h), Some("rmm_as_x"));
        h.insert(header::AUTHORIZATION, "bearer rmm_et_y".parse().unwrap());
        assert_eq!(bearer(&h), Some("rmm_et_y"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
