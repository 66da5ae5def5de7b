//! `/api/v1/policies`: policy documents, their assignments, previews; and per agent the
//! effective configuration with its provenance and the configuration status (drift).
//!
//! Every change that can alter effective configurations recomputes the affected agents and
//! pushes the new configuration to the connected ones (`policy::push`) before answering.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::validate;
use crate::authz::Role;
use crate::policy::merge::{AssignScope, Layer, Provenance, Source};
use crate::policy::{push, schema};
use crate::store::policies::{self, AgentPlace, Assignment, Policy};
use crate::store::{agents, Scope};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(policy_schema))
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(get_policy, replace_policy, delete_policy))
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(delete_assignment))
        .routes(routes!(preview))
        .routes(routes!(effective_config))
        .routes(routes!(config_status))
}

/// 422 naming every problem of a document.
fn check_document(doc: &Value) -> Result<(), ApiError> {
    schema::validate(doc).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            text.join("; "),
        )
    })
}

/// Recompute the agents reached by `assignments` (all agents if one is global).
async fn after(st: &AppState, assignments: &[Assignment]) {
    if assignments.is_empty() {
        return;
    }
    if assignments.iter().any(|a| a.scope == "global") {
        return push::after_change(st, None).await;
    }
    let mut ids = Vec::new();
    for a in assignments {
        match policies::agents_reached(&st.db, a).await {
            Ok(mut v) => ids.append(&mut v),
            Err(e) => tracing::warn!(error = %e, "cannot list the agents of an assignment"),
        }
    }
    ids.sort();
    ids.dedup();
    if !ids.is_empty() {
        push::after_change(st, Some(&ids)).await;
    }
}

/// The JSON Schema of policy documents (also in the repository as
/// `schemas/policy.v1.schema.json`).
#[utoipa::path(get, path = "/api/v1/policies/schema", tag = "policies",
    responses((status = 200, description = "JSON Schema (draft 2020-12)", body = Object)))]
async fn policy_schema() -> Json<Value> {
    Json(schema::json_schema())
}

/// Filters of `GET /policies`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PolicyFilter {
    /// Only policies of this client.
    pub client_id: Option<String>,
}

/// A list of policies.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub items: Vec<Policy>,
}

/// Policies the caller can see (a client-scoped caller: its client's only), by name.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", params(PolicyFilter),
    responses((status = 200, body = PolicyList)), security(("bearer" = [])))]
async fn list_policies(
    State(st): State<AppState>,
    auth: Auth,
    Query(f): Query<PolicyFilter>,
) -> ApiResult<Json<PolicyList>> {
    auth.require(Role::Viewer)?;
    Ok(Json(PolicyList {
        items: policies::list(&st.db, auth.scope(), f.client_id.as_deref()).await?,
    }))
}

/// Body of `POST /policies`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// 1 to 200 characters, unique per owner (case-insensitive).
    pub name: String,
    /// The document (schema v1, `GET /policies/schema`).
    #[schema(value_type = Object)]
    pub document: Value,
    /// Owning client. Omitted: global for an all-clients caller, the caller's client otherwise.
    pub client_id: Option<String>,
}

/// Create a policy (operator). Global policies need an all-clients caller.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", request_body = CreatePolicy,
    responses((status = 201, body = Policy), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown client", body = ErrorBody),
        (status = 409, description = "duplicate name", body = ErrorBody),
        (status = 422, description = "invalid document, naming the field", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_policy(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<CreatePolicy>,
) -> ApiResult<(StatusCode, Json<Policy>)> {
    auth.require(Role::Operator)?;
    let name = validate::name("name", &body.name)?;
    check_document(&body.document)?;
    let client_id = body
        .client_id
        .or_else(|| auth.scope().client_id().map(str::to_owned));
    let p = policies::create(
        &st.db,
        auth.scope(),
        &auth.actor(),
        client_id.as_deref(),
        &name,
        &body.document,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_policy(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Policy>> {
    auth.require(Role::Viewer)?;
    Ok(Json(policies::get(&st.db, auth.scope(), &id).await?))
}

/// Body of `PUT /policies/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacePolicy {
    pub name: String,
    #[schema(value_type = Object)]
    pub document: Value,
}

/// Replace a policy's name and document (operator); affected agents get the new
/// configuration at once.
#[utoipa::path(put, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    request_body = ReplacePolicy,
    responses((status = 200, body = Policy), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replace_policy(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<ReplacePolicy>,
) -> ApiResult<Json<Policy>> {
    auth.require(Role::Operator)?;
    let name = validate::name("name", &body.name)?;
    check_document(&body.document)?;
    let p = policies::update(
        &st.db,
        auth.scope(),
        &auth.actor(),
        &id,
        Some(&name),
        Some(&body.document),
    )
    .await?;
    let assignments = policies::list_assignments(&st.db, &Scope::All, &id).await?;
    after(&st, &assignments).await;
    Ok(Json(p))
}

/// Delete a policy and its assignments (operator); affected agents get their new
/// configuration at once.
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_policy(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Operator)?;
    let assignments = policies::delete(&st.db, auth.scope(), &auth.actor(), &id).await?;
    after(&st, &assignments).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A list of assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentList {
    pub items: Vec<Assignment>,
}

/// Assignments of a policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}/assignments", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = AssignmentList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_assignments(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AssignmentList>> {
    auth.require(Role::Viewer)?;
    policies::get(&st.db, auth.scope(), &id).await?;
    Ok(Json(AssignmentList {
        items: policies::list_assignments(&st.db, auth.scope(), &id).await?,
    }))
}

/// Body of `POST /policies/{id}/assignments`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    /// `global`, `client`, `site` or `agent`.
    pub scope: AssignScope,
    /// The client, site or agent; omitted or `null` for global.
    pub target_id: Option<String>,
    /// Within one scope, the higher priority wins; one policy per priority per target.
    /// Default 0.
    #[serde(default)]
    pub priority: i64,
}

/// Assign a policy (operator); affected agents get their new configuration at once. Global
/// assignments need an all-clients caller; a client's policy applies only inside that client.
#[utoipa::path(post, path = "/api/v1/policies/{id}/assignments", tag = "policies", params(("id" = String, Path)),
    request_body = AssignmentBody,
    responses((status = 201, body = Assignment), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown policy", body = ErrorBody),
        (status = 409, description = "priority taken at this target, or already assigned", body = ErrorBody),
        (status = 422, description = "unknown target, or a target outside the policy's client", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_assignment(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<AssignmentBody>,
) -> ApiResult<(StatusCode, Json<Assignment>)> {
    auth.require(Role::Operator)?;
    if body.scope == AssignScope::Global {
        auth.principal.require_all_clients(Role::Operator)?;
    }
    if !(-1_000_000..=1_000_000).contains(&body.priority) {
        return Err(ApiError::invalid(
            "priority: must be between -1000000 and 1000000",
        ));
    }
    let a = policies::assign(
        &st.db,
        auth.scope(),
        &auth.actor(),
        &id,
        body.scope,
        body.target_id.as_deref().filter(|t| !t.is_empty()),
        body.priority,
    )
    .await?;
    after(&st, std::slice::from_ref(&a)).await;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Remove an assignment (operator); affected agents get their new configuration at once.
#[utoipa::path(delete, path = "/api/v1/policy-assignments/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_assignment(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Operator)?;
    // Reach the agents before the assignment is gone.
    let a = policies::get_assignment(&st.db, auth.scope(), &id).await?;
    let reached = policies::agents_reached(&st.db, &a).await?;
    policies::unassign(&st.db, auth.scope(), &auth.actor(), &id).await?;
    if a.scope == "global" {
        push::after_change(&st, None).await;
    } else if !reached.is_empty() {
        push::after_change(&st, Some(&reached)).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An effective configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveConfig {
    pub agent_id: String,
    /// The merged document (no nulls: a cleared key is absent).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// For each field (dotted path), the policy that set it and what it overrode; cleared
    /// fields appear with `value: null`.
    pub provenance: BTreeMap<String, Provenance>,
    /// Hex SHA-256 of the encoded OpAMP `AgentConfigMap` sent (its `config_hash`).
    pub hash: String,
    /// The file `agent.toml` the agent receives.
    pub toml: String,
    /// `applied`, `applying`, `failed`, `drifted`, `unknown` or `unsupported`.
    pub config_status: String,
}

/// The effective configuration of an agent, with the provenance of every field.
#[utoipa::path(get, path = "/api/v1/agents/{id}/effective-config", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = EffectiveConfig), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn effective_config(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EffectiveConfig>> {
    auth.require(Role::Viewer)?;
    let agent = agents::get(&st.db, auth.scope(), &id).await?;
    let place = AgentPlace {
        id: agent.id.clone(),
        client_id: agent.client_id.clone(),
        site_id: agent.site_id.clone(),
    };
    let (merged, rendered) = push::effective(&st.db, &place).await?;
    let rows = policies::config_status_rows(&st.db, auth.scope(), Some(&id)).await?;
    let status = rows
        .first()
        .map(|r| {
            push::config_status(
                r.capabilities,
                &r.remote_config_status,
                Some(&rendered.hash),
            )
        })
        .unwrap_or("unknown");
    Ok(Json(EffectiveConfig {
        agent_id: agent.id,
        config: merged.config,
        provenance: merged.provenance,
        hash: rendered.hash,
        toml: rendered.toml,
        config_status: status.to_owned(),
    }))
}

/// Body of `POST /policies/preview`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// An existing policy whose document is replaced by `document` in the preview; omitted
    /// for a new policy.
    pub policy_id: Option<String>,
    /// The changed or new document.
    #[schema(value_type = Object)]
    pub document: Value,
    /// An assignment of the previewed policy to add (a new policy needs one to have effect).
    pub assignment: Option<AssignmentBody>,
    /// The agents to preview (1 to 1000).
    pub agent_ids: Vec<String>,
}

/// One agent's configuration now and with the previewed change.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewItem {
    pub agent_id: String,
    pub hostname: String,
    /// Whether the change alters this agent's configuration.
    pub changed: bool,
    pub current: EffectiveConfigBrief,
    pub preview: EffectiveConfigBrief,
}

/// A configuration, its provenance and hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveConfigBrief {
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    pub provenance: BTreeMap<String, Provenance>,
    pub hash: String,
}

/// The answer of a preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewList {
    pub items: Vec<PreviewItem>,
}

/// What the given agents would get if a policy changed (or a new one were assigned);
/// nothing is saved.
#[utoipa::path(post, path = "/api/v1/policies/preview", tag = "policies", request_body = PreviewRequest,
    responses((status = 200, body = PreviewList), (status = 404, description = "unknown policy or agent", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<PreviewRequest>,
) -> ApiResult<Json<PreviewList>> {
    auth.require(Role::Viewer)?;
    check_document(&body.document)?;
    if body.agent_ids.is_empty() || body.agent_ids.len() > 1000 {
        return Err(ApiError::invalid("agent_ids: give 1 to 1000 agent ids"));
    }
    let (policy_id, policy_name) = match &body.policy_id {
        Some(id) => {
            let p = policies::get(&st.db, auth.scope(), id).await?;
            (p.id, p.name)
        }
        None => ("preview".to_owned(), "(previewed policy)".to_owned()),
    };
    let mut items = Vec::new();
    for id in &body.agent_ids {
        let agent = agents::get(&st.db, auth.scope(), id)
            .await
            .map_err(|_| ApiError::not_found(&format!("agent {id:?}")))?;
        let place = AgentPlace {
            id: agent.id.clone(),
            client_id: agent.client_id.clone(),
            site_id: agent.site_id.clone(),
        };
        let layers = policies::layers_for_agent(&st.db, &place).await?;
        let (cur, cur_r) = push::compute(&layers);
        let mut changed_layers: Vec<Layer> = layers
            .into_iter()
            .map(|mut l| {
                if l.source.policy_id == policy_id {
                    l.document = body.document.clone();
                }
                l
            })
            .collect();
        if let Some(a) = &body.assignment {
            let source = Source {
                policy_id: policy_id.clone(),
                policy_name: policy_name.clone(),
                scope: a.scope,
                target_id: a.target_id.clone().filter(|t| !t.is_empty()),
                priority: a.priority,
            };
            if policies::reaches(&source, &place) {
                changed_layers.push(Layer {
                    source,
                    document: body.document.clone(),
                });
            }
        }
        let (new, new_r) = push::compute(&changed_layers);
        items.push(PreviewItem {
            agent_id: agent.id,
            hostname: agent.hostname,
            changed: cur_r.hash != new_r.hash,
            current: EffectiveConfigBrief {
                config: cur.config,
                provenance: cur.provenance,
                hash: cur_r.hash,
            },
            preview: EffectiveConfigBrief {
                config: new.config,
                provenance: new.provenance,
                hash: new_r.hash,
            },
        });
    }
    Ok(Json(PreviewList { items }))
}

/// Filter of `GET /agents/config-status`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConfigStatusFilter {
    /// `applied`, `applying`, `failed`, `drifted`, `unknown` or `unsupported`.
    pub status: Option<String>,
}

/// One agent's configuration status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigStatus {
    pub agent_id: String,
    pub client_id: String,
    pub client_name: String,
    pub site_name: String,
    pub hostname: String,
    /// `applied` (reported hash = expected, applied), `applying`, `failed` (the agent refused
    /// the expected config), `drifted` (reported hash differs from the expected one),
    /// `unknown` (nothing reported yet), `unsupported` (the agent does not accept remote config).
    pub config_status: String,
    /// Hex hash of the configuration the agent should have.
    pub expected_hash: Option<String>,
    /// What the agent last reported (`last_remote_config_hash`, `status`, `error_message`).
    #[schema(value_type = Object)]
    pub reported: Value,
}

/// Agents with their configuration status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigStatusList {
    pub items: Vec<ConfigStatus>,
}

/// Configuration status of every agent the caller can see (`?status=drifted` lists drift).
#[utoipa::path(get, path = "/api/v1/agents/config-status", tag = "policies", params(ConfigStatusFilter),
    responses((status = 200, body = ConfigStatusList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn config_status(
    State(st): State<AppState>,
    auth: Auth,
    Query(f): Query<ConfigStatusFilter>,
) -> ApiResult<Json<ConfigStatusList>> {
    auth.require(Role::Viewer)?;
    if let Some(s) = &f.status {
        if !push::CONFIG_STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "status: must be one of {}",
                    push::CONFIG_STATUSES.join(", ")
                ),
            ));
        }
    }
    let mut rows = policies::config_status_rows(&st.db, auth.scope(), None).await?;
    let missing: Vec<String> = rows
        .iter()
        .filter(|r| r.expected_hash.is_none())
        .map(|r| r.id.clone())
        .collect();
    if !missing.is_empty() {
        push::recompute(&st, Some(&missing)).await?;
        rows = policies::config_status_rows(&st.db, auth.scope(), None).await?;
    }
    let items = rows
        .into_iter()
        .map(|r| {
            let status = push::config_status(
                r.capabilities,
                &r.remote_config_status,
                r.expected_hash.as_deref(),
            );
            ConfigStatus {
                agent_id: r.id,
                client_id: r.client_id,
                client_name: r.client_name,
                site_name: r.site_name,
                hostname: r.hostname,
                config_status: status.to_owned(),
                expected_hash: r.expected_hash,
                reported: serde_json::from_str(&r.remote_config_status).unwrap_or(Value::Null),
            }
        })
        .filter(|c| f.status.as_deref().is_none_or(|s| s == c.config_status))
        .collect();
    Ok(Json(ConfigStatusList { items }))
}
