//! The HTTP API. Each resource module owns its routes (`router()`), documented with
//! `utoipa::path`; [`router`] merges them and serves the generated OpenAPI document.
//! Later modules (OpAMP, policies, releases) add their own routers the same way.

pub mod agents;
pub mod api_tokens;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod enroll;
pub mod enrollment_tokens;
pub mod error;
pub mod extract;
pub mod install;
pub mod inventory;
pub mod openapi;
pub mod ops;
pub mod policies;
pub mod releases;
pub mod rollouts;
pub mod sd;
pub mod sites;
pub mod users;
pub mod validate;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use error::ApiError;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The documented routes and the OpenAPI document describing exactly them.
pub fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ops::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(api_tokens::router())
        .merge(clients::router())
        .merge(sites::router())
        .merge(enrollment_tokens::router())
        .merge(enroll::router())
        .merge(agents::router())
        .merge(inventory::router())
        .merge(install::router())
        .merge(sd::router())
        .merge(audit::router())
        .merge(policies::router())
        .merge(releases::router())
        .merge(rollouts::router())
        .split_for_parts()
}

/// The whole HTTP application: routes, OpenAPI document, JSON 404/405, body cap, metrics.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented_routes();
    let doc = std::sync::Arc::new(doc);
    routes
        .route(
            OPENAPI_PATH,
            get(move || async move { axum::Json((*doc).clone()) }),
        )
        .merge(crate::opamp::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept this method",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        // One span per request (method and path; never headers or bodies, which carry secrets).
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}
