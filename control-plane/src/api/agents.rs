//! `/api/v1/agents`: the inventory of enrolled hosts.

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
use crate::store::agents::{self, Agent, AgentUpdate, Filter};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent, update_agent, delete_agent))
}

/// Filters and paging of `GET /agents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    pub client_id: Option<String>,
    pub site_id: Option<String>,
    /// `pending`, `online` or `offline`.
    pub status: Option<String>,
    /// Exact agent version.
    pub version: Option<String>,
    /// `key=value`; several separated by commas must all match.
    pub label: Option<String>,
    /// Case-insensitive substring of the host name.
    pub q: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// Agents to skip (default 0).
    pub offset: Option<i64>,
}

/// A page of agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<Agent>,
    /// Agents matching the filters, across all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Body of `PATCH /agents/{id}`; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    /// Move the agent to this site.
    pub site_id: Option<String>,
    /// Replace the agent's labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Agents the caller can see, filtered and paged, by host name.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_agents(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<AgentQuery>,
) -> ApiResult<Json<AgentList>> {
    auth.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: must be between 1 and 1000",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "offset: must not be negative",
        ));
    }
    if let Some(s) = &q.status {
        if !["pending", "online", "offline"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "status: must be pending, online or offline",
            ));
        }
    }
    let mut labels = Vec::new();
    if let Some(l) = &q.label {
        for pair in l.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("label: {pair:?} is not key=value"))
            })?;
            labels.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let f = Filter {
        client_id: q.client_id,
        site_id: q.site_id,
        status: q.status,
        agent_version: q.version,
        labels,
        hostname: q.q.filter(|s| !s.is_empty()),
        limit,
        offset,
    };
    let (items, total) = agents::list(&st.db, auth.scope(), &f).await?;
    Ok(Json(AgentList {
        items,
        total,
        limit,
        offset,
    }))
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_agent(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Agent>> {
    auth.require(Role::Viewer)?;
    Ok(Json(agents::get(&st.db, auth.scope(), &id).await?))
}

/// Move an agent to another site, or replace its labels (operator).
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    request_body = UpdateAgent,
    responses((status = 200, body = Agent), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown agent or site", body = ErrorBody),
        (status = 409, description = "the target client already has this host", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_agent(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateAgent>,
) -> ApiResult<Json<Agent>> {
    auth.require(Role::Operator)?;
    if let Some(l) = &body.labels {
        validate::labels("labels", l)?;
    }
    if body.site_id.is_none() && body.labels.is_none() {
        return Err(ApiError::invalid(
            "nothing to change: give site_id and/or labels",
        ));
    }
    let moved = body.site_id.is_some();
    let up = AgentUpdate {
        site_id: body.site_id,
        labels: body.labels,
    };
    let agent = agents::update(&st.db, auth.scope(), &auth.actor(), &id, up).await?;
    if moved {
        // Another site (and perhaps client): other policies apply.
        crate::policy::push::after_change(&st, Some(std::slice::from_ref(&agent.id))).await;
    }
    Ok(Json(agent))
}

/// Delete an agent; its credentials stop working at once (operator).
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_agent(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Operator)?;
    agents::delete(&st.db, auth.scope(), &auth.actor(), &id).await?;
    // Its credentials are gone: end a live OpAMP session now, not at its next message. (A
    // session on another replica ends at its next message, when its status write finds no
    // agent.)
    let refused = crate::opamp::metrics::CloseReason::Refused;
    if !st.opamp.close(&id, 1008, refused) {
        if let Some(gone) = st.opamp.remove(&id, None) {
            crate::opamp::count_gone(&st, &[gone], refused);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
