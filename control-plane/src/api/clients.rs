//! `/api/v1/clients`: the MSP's customers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::validate;
use crate::authz::Role;
use crate::store::clients::{self, Client};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, update_client, delete_client))
}

/// Body of `POST /clients` and `PATCH /clients/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// Unique name (case-insensitive), 1 to 200 characters.
    pub name: String,
}

/// A list of clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<Client>,
}

/// List the clients the caller can see.
#[utoipa::path(get, path = "/api/v1/clients", tag = "clients",
    responses((status = 200, body = ClientList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_clients(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<ClientList>> {
    auth.require(Role::Viewer)?;
    Ok(Json(ClientList {
        items: clients::list_clients(&st.db, auth.scope()).await?,
    }))
}

/// Create a client (admin for all clients).
#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = ClientBody,
    responses((status = 201, body = Client), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a client with this name exists", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_client(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<ClientBody>,
) -> ApiResult<(StatusCode, Json<Client>)> {
    auth.principal.require_all_clients(Role::Admin)?;
    let name = validate::name("name", &body.name)?;
    let c = clients::create_client(&st.db, &auth.actor(), &name).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One client.
#[utoipa::path(get, path = "/api/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    responses((status = 200, body = Client), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_client(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Client>> {
    auth.require(Role::Viewer)?;
    Ok(Json(clients::get_client(&st.db, auth.scope(), &id).await?))
}

/// Rename a client (admin).
#[utoipa::path(patch, path = "/api/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    request_body = ClientBody,
    responses((status = 200, body = Client), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_client(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<ClientBody>,
) -> ApiResult<Json<Client>> {
    auth.require(Role::Admin)?;
    let name = validate::name("name", &body.name)?;
    Ok(Json(
        clients::rename_client(&st.db, auth.scope(), &auth.actor(), &id, &name).await?,
    ))
}

/// Delete a client with no sites, users or API tokens left (admin for all clients).
#[utoipa::path(delete, path = "/api/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the client still has sites, users or tokens", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_client(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.principal.require_all_clients(Role::Admin)?;
    clients::delete_client(&st.db, auth.scope(), &auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
