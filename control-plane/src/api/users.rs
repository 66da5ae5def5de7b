//! `/api/v1/users`: people who log in (admin).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::validate;
use crate::authz::Role;
use crate::secrets;
use crate::store::users::{self, User, UserUpdate};
use crate::store::Scope;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

/// Body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    pub role: Role,
    /// The one client the user may see; omit or `null` for all clients.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// Body of `PATCH /users/{id}`; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub role: Option<Role>,
    /// New password, at least 8 characters.
    pub password: Option<String>,
    /// Move the user to one client; `null` = all clients.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub client_id: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

/// A list of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<User>,
}

/// A client-scoped admin may only hand out their own client's scope.
fn check_grant(auth: &Auth, client_id: Option<&str>) -> Result<(), ApiError> {
    match (auth.scope(), client_id) {
        (Scope::All, _) => Ok(()),
        (Scope::Client(_), None) => Err(ApiError::forbidden(
            "a client-scoped admin cannot grant access to all clients; set client_id",
        )),
        (Scope::Client(_), Some(_)) => Ok(()), // the store checks the client is visible (404 otherwise)
    }
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Users the caller can see (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = UserList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_users(State(st): State<AppState>, auth: Auth) -> ApiResult<Json<UserList>> {
    auth.require(Role::Admin)?;
    Ok(Json(UserList {
        items: users::list_users(&st.db, auth.scope()).await?,
    }))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 404, description = "unknown client_id", body = ErrorBody),
        (status = 409, description = "email taken", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_user(
    State(st): State<AppState>,
    auth: Auth,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    auth.require(Role::Admin)?;
    let email = validate::email(&body.email)?;
    validate::password(&body.password)?;
    check_grant(&auth, body.client_id.as_deref())?;
    let hash = hash(body.password).await?;
    let u = users::create_user(
        &st.db,
        auth.scope(),
        &auth.actor(),
        &email,
        &hash,
        body.role.as_str(),
        body.client_id.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    auth.require(Role::Admin)?;
    Ok(Json(users::get_user(&st.db, auth.scope(), &id).await?))
}

/// Change a user's role, client or password (admin).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UpdateUser,
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "would remove the last all-clients admin", body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<Json<User>> {
    auth.require(Role::Admin)?;
    if let Some(c) = &body.client_id {
        check_grant(&auth, c.as_deref())?;
    }
    let password_hash = match body.password {
        Some(p) => {
            validate::password(&p)?;
            Some(hash(p).await?)
        }
        None => None,
    };
    let up = UserUpdate {
        role: body.role.map(|r| r.as_str().to_owned()),
        client_id: body.client_id,
        password_hash,
    };
    Ok(Json(
        users::update_user(&st.db, auth.scope(), &auth.actor(), &id, up).await?,
    ))
}

/// Delete a user (admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the last all-clients admin", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Role::Admin)?;
    users::delete_user(&st.db, auth.scope(), &auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
