//! `GET /api/v1/sd/prometheus`: Prometheus HTTP service discovery. One target group per agent
//! that reported a metrics address, labelled so that scraped series carry the same `instance`
//! (the agent id) as the agent's OTLP pushes (`service.instance.id`), plus `client`, `site`,
//! `host` and `agent`. Agents without a metrics address are left out.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::authz::Role;
use crate::store::agents;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(prometheus_sd))
}

/// One Prometheus target group.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetGroup {
    /// `host:port` of the agent's `/metrics`.
    pub targets: Vec<String>,
    /// `instance`, `agent` (both the agent id), `client`, `site`, `host`, `__metrics_path__`.
    pub labels: BTreeMap<String, String>,
}

/// Scrape targets for Prometheus `http_sd_configs` (API token or login token, any role;
/// a client-scoped credential sees its client's agents only).
#[utoipa::path(get, path = "/api/v1/sd/prometheus", tag = "sd",
    responses((status = 200, content_type = "application/json", body = Vec<TargetGroup>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn prometheus_sd(
    State(st): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<TargetGroup>>> {
    auth.require(Role::Viewer)?;
    let targets = agents::sd_targets(&st.db, auth.scope()).await?;
    Ok(Json(
        targets
            .into_iter()
            .map(|t| TargetGroup {
                targets: vec![t.metrics_address],
                labels: BTreeMap::from([
                    ("instance".to_owned(), t.id.clone()),
                    ("agent".to_owned(), t.id),
                    ("client".to_owned(), t.client_name),
                    ("site".to_owned(), t.site_name),
                    ("host".to_owned(), t.hostname),
                    ("__metrics_path__".to_owned(), "/metrics".to_owned()),
                ]),
            })
            .collect(),
    ))
}
