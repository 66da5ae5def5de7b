//! `/api/v1/rollouts`: per channel, which version agents are moved to and how fast; and per
//! agent, the update status and an operator's "update this one now".
//!
//! Rollouts are fleet-wide: changing them needs an all-clients operator. Anyone with the
//! viewer role reads them, seeing only the agents of their own client. Forcing an update and
//! reading an agent's update status are scoped like every agent route (404 for others).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use crate::authz::Role;
use crate::releases::offers::{self, canonical_arch, canonical_os};
use crate::releases::rollout::{self, parse_version, UpdateStatus, VersionChange};
use crate::releases::rollout_store::{self, AgentUpdateRow, RolloutRow, RolloutSpec, UpdateRow};
use crate::releases::store::{self as catalog, Release};
use crate::store::{agents, now_ms};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rollouts))
        .routes(routes!(get_rollout, put_rollout))
        .routes(routes!(pause_rollout))
        .routes(routes!(resume_rollout))
        .routes(routes!(agent_update_status, force_update))
}

/// Body of `PUT /rollouts/{channel}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRollout {
    /// A version in the catalog for this channel.
    pub target_version: String,
    /// Share of the channel's agents offered the target, 0–100. Raising it only adds agents.
    pub percent: i64,
    /// Updates under way at once (default `releases.default_max_concurrent`).
    pub max_concurrent: Option<i64>,
    /// Pause when more than this percentage of finished updates failed or rolled back
    /// (default `releases.auto_pause_failure_percent`) …
    pub failure_percent: Option<i64>,
    /// … once at least this many finished (default `releases.auto_pause_min_attempts`).
    pub min_attempts: Option<i64>,
    /// Needed for a target older than the channel's current one, and to offer it to agents
    /// running a newer version.
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// A rollout with the update status of its agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub rollout: RolloutRow,
    /// Agents per update status (of the agents the caller can see).
    pub counts: BTreeMap<String, i64>,
    pub agents: Vec<AgentUpdateRow>,
}

/// Every rollout.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutList {
    pub items: Vec<RolloutRow>,
}

/// Body of `POST /rollouts/{channel}/pause`.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PauseRollout {
    pub reason: Option<String>,
}

/// Body of `POST /agents/{id}/update`: a version (the build for the agent's platform) or a
/// release id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceUpdate {
    pub version: Option<String>,
    pub release_id: Option<String>,
    /// Needed when the version is older than the agent's.
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// An agent's update state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentUpdateStatus {
    pub agent_id: String,
    /// The version the agent reports running.
    pub running_version: String,
    /// The latest update offered to it, if any.
    pub update: Option<UpdateRow>,
}

/// Every rollout.
#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts",
    responses((status = 200, body = RolloutList)), security(("bearer" = [])))]
async fn list_rollouts(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<RolloutList>> {
    auth.require(Role::Viewer)?;
    Ok(Json(RolloutList {
        items: rollout_store::list(&st.db).await?,
    }))
}

/// One channel's rollout with per-status counts and its agents (of the caller's clients).
#[utoipa::path(get, path = "/api/v1/rollouts/{channel}", tag = "rollouts",
    responses((status = 200, body = RolloutDetail), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_rollout(
    State(st): State<AppState>,
    auth: Auth,
    Path(channel): Path<String>,
) -> ApiResult<Json<RolloutDetail>> {
    auth.require(Role::Viewer)?;
    detail(&st, &auth, &channel).await.map(Json)
}

async fn detail(st: &AppState, auth: &Auth, channel: &str) -> ApiResult<RolloutDetail> {
    let rollout = rollout_store::get(&st.db, channel).await?;
    let agents =
        rollout_store::rollout_agents(&st.db, auth.scope(), channel, &rollout.target_version)
            .await?;
    let mut counts: BTreeMap<String, i64> = UpdateStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for a in &agents {
        *counts.entry(a.status.clone()).or_default() += 1;
    }
    Ok(RolloutDetail {
        rollout,
        counts,
        agents,
    })
}

/// Create or change the rollout of a channel (all-clients operator). A target older than
/// the channel's current one needs `allow_downgrade`.
#[utoipa::path(put, path = "/api/v1/rollouts/{channel}", tag = "rollouts",
    request_body = PutRollout,
    responses((status = 200, body = RolloutDetail),
        (status = 422, description = "`unknown_channel`, `unknown_release`, `downgrade`, `invalid_rollout`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_rollout(
    State(st): State<AppState>,
    auth: Auth,
    Path(channel): Path<String>,
    Json(body): Json<PutRollout>,
) -> ApiResult<Json<RolloutDetail>> {
    auth.principal.require_all_clients(Role::Operator)?;
    let d = &st.config.releases;
    let spec = RolloutSpec {
        target_version: body.target_version,
        percent: body.percent,
        max_concurrent: body
            .max_concurrent
            .unwrap_or(i64::from(d.default_max_concurrent)),
        failure_percent: body
            .failure_percent
            .unwrap_or(i64::from(d.auto_pause_failure_percent)),
        min_attempts: body
            .min_attempts
            .unwrap_or(i64::from(d.auto_pause_min_attempts)),
        allow_downgrade: body.allow_downgrade,
    };
    rollout_store::put(&st.db, &auth.actor(), &channel, &spec).await?;
    st.releases.kick();
    detail(&st, &auth, &channel).await.map(Json)
}

/// Pause a rollout: no new offers (updates under way finish).
#[utoipa::path(post, path = "/api/v1/rollouts/{channel}/pause", tag = "rollouts",
    request_body(content = PauseRollout, description = "optional"),
    responses((status = 200, body = RolloutRow), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pause_rollout(
    State(st): State<AppState>,
    auth: Auth,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RolloutRow>> {
    auth.principal.require_all_clients(Role::Operator)?;
    // The body is optional: empty, or `{"reason": "..."}`.
    let body: PauseRollout = if body.iter().all(u8::is_ascii_whitespace) {
        PauseRollout::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("{e}"),
            )
        })?
    };
    let reason = body
        .reason
        .map(|r| r.chars().take(500).collect::<String>())
        .unwrap_or_else(|| format!("paused by {}", auth.principal.name));
    Ok(Json(
        rollout_store::set_paused(&st.db, &auth.actor(), &channel, true, Some(&reason)).await?,
    ))
}

/// Resume a paused rollout; failures before now no longer count toward auto-pause.
#[utoipa::path(post, path = "/api/v1/rollouts/{channel}/resume", tag = "rollouts",
    responses((status = 200, body = RolloutRow), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume_rollout(
    State(st): State<AppState>,
    auth: Auth,
    Path(channel): Path<String>,
) -> ApiResult<Json<RolloutRow>> {
    auth.principal.require_all_clients(Role::Operator)?;
    let r = rollout_store::set_paused(&st.db, &auth.actor(), &channel, false, None).await?;
    st.releases.kick();
    Ok(Json(r))
}

/// An agent's update status: offered, downloading, installed, failed or rolled back (with
/// the reason), the version and when.
#[utoipa::path(get, path = "/api/v1/agents/{id}/update", tag = "rollouts",
    responses((status = 200, body = AgentUpdateStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn agent_update_status(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentUpdateStatus>> {
    auth.require(Role::Viewer)?;
    let agent = agents::get(&st.db, auth.scope(), &id).await?;
    let update = rollout_store::for_agent(&st.db, auth.scope(), &id).await?;
    Ok(Json(AgentUpdateStatus {
        agent_id: agent.id,
        running_version: agent.agent_version,
        update,
    }))
}

/// Offer one agent an update now, outside its maintenance window, rollout percentage and
/// concurrency cap. A version older than the agent's needs `allow_downgrade`. Sent at once
/// when the agent is connected, else when it connects.
#[utoipa::path(post, path = "/api/v1/agents/{id}/update", tag = "rollouts",
    request_body = ForceUpdate,
    responses((status = 202, body = AgentUpdateStatus), (status = 404, body = ErrorBody),
        (status = 422, description = "`downgrade`, `up_to_date`, `no_build` (no build for the agent's platform), `unsupported`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn force_update(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<ForceUpdate>,
) -> ApiResult<(StatusCode, Json<AgentUpdateStatus>)> {
    auth.require(Role::Operator)?;
    let agent = agents::get(&st.db, auth.scope(), &id).await?;
    let live = st.opamp.update_view(&id);
    let os = live
        .as_ref()
        .and_then(|v| v.os.clone())
        .unwrap_or(agent.os.clone());
    let arch = live
        .as_ref()
        .and_then(|v| v.arch.clone())
        .unwrap_or(agent.arch.clone());
    let (os, arch) = (
        canonical_os(&os).to_owned(),
        canonical_arch(&arch).to_owned(),
    );
    let release: Release = match (&body.release_id, &body.version) {
        (Some(rid), None) => catalog::by_id(&st.db, rid).await?,
        (None, Some(v)) => {
            let version = parse_version(v)
                .map_err(|e| ApiError::invalid(format!("version: {e}")))?
                .to_string();
            let all = catalog::list(
                &st.db,
                &catalog::Filter {
                    channel: None,
                    os: Some(os.clone()),
                    arch: Some(arch.clone()),
                },
            )
            .await?;
            all.into_iter()
                .filter(|r| r.version == version)
                // Prefer stable, then beta, then edge.
                .min_by_key(|r| catalog::CHANNELS.iter().position(|c| *c == r.channel))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "no_build",
                        format!("no release {version} for {os}/{arch} in the catalog"),
                    )
                })?
        }
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of version and release_id",
            ))
        }
    };
    if release.os != os || release.arch != arch {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_build",
            format!(
                "release {} is for {}/{}, the agent runs {os}/{arch}",
                release.id, release.os, release.arch
            ),
        ));
    }
    let running = live
        .as_ref()
        .and_then(|v| v.version.clone())
        .unwrap_or(agent.agent_version.clone());
    let target = parse_version(&release.version).map_err(ApiError::internal)?;
    if let Ok(current) = parse_version(&running) {
        match rollout::check_version_change(&current, &target, body.allow_downgrade) {
            Ok(VersionChange::Same) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "up_to_date",
                    format!("the agent already runs {current}"),
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "downgrade",
                    e.to_string(),
                ))
            }
        }
    }
    if let Some(v) = &live {
        if !rmm_opamp::capabilities::has(
            v.capabilities,
            rmm_opamp::capabilities::agent::ACCEPTS_PACKAGES,
        ) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported",
                "the agent does not accept packages (OpAMP capability AcceptsPackages)",
            ));
        }
    }
    let now = now_ms();
    let row = UpdateRow {
        agent_id: id.clone(),
        release_id: release.id.clone(),
        channel: None,
        version: release.version.clone(),
        sha256: release.sha256.clone(),
        status: UpdateStatus::Offered.as_str().into(),
        reason: None,
        forced: 1,
        allow_downgrade: body.allow_downgrade as i64,
        from_version: Some(running.clone()),
        offered_at: now,
        updated_at: now,
    };
    rollout_store::record_offer(&st.db, &row).await?;
    let sent = offers::push_offer(&st, &id, &release);
    tracing::info!(agent = %id, version = %release.version, sent, by = %auth.principal.name, "update forced");
    let mut tx = st.db.begin().await?;
    crate::store::audit::record(
        &mut tx,
        &auth.actor(),
        crate::store::audit::Change {
            action: "agent.update_force",
            target_type: "agent",
            target_id: Some(&id),
            client_id: Some(&agent.client_id),
            details: serde_json::json!({"release_id": release.id, "version": release.version, "allow_downgrade": body.allow_downgrade}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AgentUpdateStatus {
            agent_id: id,
            running_version: running,
            update: Some(row),
        }),
    ))
}
