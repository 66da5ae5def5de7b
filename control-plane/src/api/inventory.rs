//! `GET /api/v1/agents/{id}/users`: the user inventory an agent last reported (local accounts
//! and logged-in sessions), received over OpAMP (`opamp::custom`).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::authz::Role;
use crate::store::inventory::{self, InventorySession, InventoryUser};
use crate::store::ser;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(agent_users))
}

/// The last user inventory of an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentUsers {
    pub agent_id: String,
    /// Whether the agent has reported an inventory yet (then the lists are empty and the
    /// times null). The agent reports at connect and every `inventory.interval_hours`.
    pub reported: bool,
    /// When the agent read its accounts (RFC 3339).
    pub collected_at: Option<String>,
    /// When the control plane received the report (RFC 3339).
    pub received_at: Option<String>,
    pub users: Vec<InventoryUser>,
    pub sessions: Vec<InventorySession>,
}

/// Local accounts and logged-in sessions of an agent's host, as last reported.
#[utoipa::path(get, path = "/api/v1/agents/{id}/users", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentUsers), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn agent_users(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentUsers>> {
    auth.require(Role::Viewer)?;
    let stored = inventory::get(&st.db, auth.scope(), &id).await?;
    let Some(s) = stored else {
        return Ok(Json(AgentUsers {
            agent_id: id,
            reported: false,
            collected_at: None,
            received_at: None,
            users: Vec::new(),
            sessions: Vec::new(),
        }));
    };
    Ok(Json(AgentUsers {
        agent_id: id,
        reported: true,
        collected_at: Some(ser::rfc3339(s.collected_at)),
        received_at: Some(ser::rfc3339(s.received_at)),
        // Stored by this server from a checked report; unreadable text would be a bug.
        users: serde_json::from_str(&s.users).unwrap_or_default(),
        sessions: serde_json::from_str(&s.sessions).unwrap_or_default(),
    }))
}
