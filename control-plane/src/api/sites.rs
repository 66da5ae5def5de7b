//! `/api/v1/clients/{id}/sites` and `/api/v1/sites`: locations of a client.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path, Query};
use super::validate;
use crate::authz::Role;
use crate::store::clients::{self, Site};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_client_sites, create_site))
        .routes(routes!(list_sites))
        .routes(routes!(get_site, update_site, delete_site))
}

/// Body of `POST /clients/{id}/sites` and `PATCH /sites/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Name, unique within the client (case-insensitive), 1 to 200 characters.
    pub name: String,
}

/// A list of sites.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteList {
    pub items: Vec<Site>,
}

/// Filters of `GET /sites`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SiteFilter {
    /// Only sites of this client.
    pub client_id: Option<String>,
}

/// Sites of one client.
#[utoipa::path(get, path = "/api/v1/clients/{id}/sites", tag = "sites", params(("id" = String, Path, description = "client id")),
    responses((status = 200, body = SiteList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_client_sites(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<SiteList>> {
    auth.require(Role::Viewer)?;
    clients::get_client(&st.db, auth.scope(), &id).await?;
    Ok(Json(SiteList {
        items: clients::list_sites(&st.db, auth.scope(), Some(&id)).await?,
    }))
}

/// Create a site in a client (operator).
#[utoipa::path(post, path = "/api/v1/clients/{id}/sites", tag = "sites", params(("id" = String, Path, description = "client id")),
    request_body = SiteBody,
    responses((status = 201, body = Site), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the client has a site with this name", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_site(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<SiteBody>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    auth.require(Role::Operator)?;
    let name = validate::name("name", &body.name)?;
    let s = clients::create_site(&st.db, auth.scope(), &auth.actor(), &id, &name).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Every site the caller can see.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", params(SiteFilter),
    responses((status = 200, body = SiteList)),
    security(("bearer" = [])))]
async fn list_sites(
    State(st): State<AppState>,
    auth: Auth,
    Query(f): Query<SiteFilter>,
) -> ApiResult<Json<SiteList>> {
    auth.require(Role::Viewer)?;
    Ok(Json(SiteList {
        items: clients::list_sites(&st.db, auth.scope(), f.client_id.as_deref()).await?,
    }))
}

/// One site.
#[utoipa::path(get, path = "/api/v1/sites/{id}", tag = "sites", params(("id" = String, Path)),
    responses((status = 200, body = Site), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_site(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Site>> {
    auth.require(Role::Viewer)?;
    Ok(Json(clients::get_site(&st.db, auth.scope(), &id).await?))
}

/// Rename a site (operator).
#[utoipa::path(patch, path = "/api/v1/sites/{id}", tag = "sites", params(("id" = String, Path)),
    request_body = SiteBody,
    responses((status = 200, body = Site), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_site(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<SiteBody>,
) -> ApiResult<Json<Site>> {
    auth.require(Role::Operator)?;
    let name = validate::name("name", &body.name)?;
    Ok(Json(
        clients::rename_site(&st.db, auth.scope(), &auth.actor(), &id, &name).await?,
    ))
}

/// Delete a site with no agents; its enrollment tokens are deleted with it (operator).
#[utoipa::path(delete, path = "/api/v1/sites/{id}", tag = "sites", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the site still has agents", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_site(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Operator)?;
    clients::delete_site(&st.db, auth.scope(), &auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
