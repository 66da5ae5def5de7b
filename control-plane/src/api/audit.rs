//! `GET /api/v1/audit-log`: who changed what, when, from where (admin; a client-scoped admin
//! sees their client's entries only).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Query};
use crate::authz::Role;
use crate::store::audit::{self, AuditEntry, Filter};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Filters and paging of `GET /audit-log`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// e.g. `client.create`, `agent.enroll`.
    pub action: Option<String>,
    /// e.g. `client`, `site`, `agent`, `user`, `api_token`, `enrollment_token`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The audit log (admin).
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_audit(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    auth.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    let f = Filter {
        action: q.action,
        target_type: q.target_type,
        target_id: q.target_id,
        limit,
        offset,
    };
    let (items, total) = audit::list(&st.db, auth.scope(), &f).await?;
    Ok(Json(AuditList {
        items,
        total,
        limit,
        offset,
    }))
}
