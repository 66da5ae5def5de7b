//! The OpenAPI 3 document, generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`. Every route is registered through `utoipa_axum`'s router, so a
//! route cannot exist without its entry in the document.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rmm-control-plane",
        description = "Control plane of the RMM: tenants, users, enrollment, agent inventory, \
                       Prometheus service discovery. Errors are `{\"error\": {\"code\", \"message\"}}`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in; who am I"),
        (name = "users", description = "People (admin)"),
        (name = "api-tokens", description = "Automation credentials (admin)"),
        (name = "clients", description = "Tenants"),
        (name = "sites", description = "Locations of a client"),
        (name = "enrollment-tokens", description = "Tokens hosts enroll with"),
        (name = "enroll", description = "Host enrollment"),
        (name = "agents", description = "Enrolled hosts"),
        (name = "install", description = "The agent install script and its reports"),
        (name = "sd", description = "Prometheus service discovery"),
        (name = "audit", description = "Audit log (admin)"),
        (name = "releases", description = "Signed agent builds"),
        (name = "rollouts", description = "Agent updates: rollouts per channel, per-agent status"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a login JWT from /api/v1/auth/login, or an API token (rmm_at_...)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "enrollment_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an enrollment token (rmm_et_...), as given to the install script",
                    ))
                    .build(),
            ),
        );
    }
}
