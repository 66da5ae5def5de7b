//! Who may do what.
//!
//! A caller is a [`Principal`]: a user (logged in with a JWT) or an API token. Each has a
//! [`Role`] and a [`Scope`]: all clients (`client_id` NULL) or one client.
//!
//! # Role matrix
//!
//! Roles are ordered `viewer < operator < admin`; each includes the rights of the ones below.
//! "own" means an object of the caller's client (or any object for an all-clients caller),
//! "other" an object of another client.
//!
//! | route                                   | viewer | operator | admin | other client |
//! |-----------------------------------------|--------|----------|-------|--------------|
//! | `GET auth/me`                           | yes    | yes      | yes   | -            |
//! | `GET clients`, `GET clients/{id}`       | yes    | yes      | yes   | not listed / 404 |
//! | `POST clients`, `DELETE clients/{id}`   | 403    | 403      | all-clients admin only (scoped admin: 403) | - |
//! | `PATCH clients/{id}`                    | 403    | 403      | yes   | 404          |
//! | `GET clients/{id}/sites`, `GET sites[/{id}]` | yes | yes    | yes   | 404 / not listed |
//! | `POST clients/{id}/sites`, `PATCH/DELETE sites/{id}` | 403 | yes | yes | 404      |
//! | `GET enrollment-tokens[/{id}]`          | yes    | yes      | yes   | not listed / 404 |
//! | `POST enrollment-tokens`, `DELETE enrollment-tokens/{id}` | 403 | yes | yes | 404 (site or token) |
//! | `GET agents`, `GET agents/{id}`, `GET agents/{id}/users` | yes | yes | yes | not listed / 404 |
//! | `PATCH agents/{id}` (move), `DELETE agents/{id}` | 403 | yes | yes | 404 (agent or target site) |
//! | `GET sd/prometheus`                     | yes    | yes      | yes   | not listed   |
//! | `GET/POST users`, `GET/PATCH/DELETE users/{id}` | 403 | 403 | yes | not listed / 404 |
//! | `GET/POST api-tokens`, `DELETE api-tokens/{id}` | 403 | 403 | yes | not listed / 404 |
//! | `GET audit-log`                         | 403    | 403      | yes   | not listed   |
//! | `GET policies[/{id}[/assignments]]`, `GET agents/{id}/effective-config`, `GET agents/config-status`, `POST policies/preview` | yes | yes | yes | not listed / 404 (global policies: listed for all-clients callers only) |
//! | `POST policies`, `PUT/DELETE policies/{id}`, `POST policies/{id}/assignments`, `DELETE policy-assignments/{id}` | 403 | yes | yes | 404 (global policies and global assignments: all-clients callers only, 403 for a global assignment) |
//! | `GET releases[/{id}]`, `GET rollouts[/{channel}]` | yes | yes | yes | - (a rollout lists only the caller's client's agents) |
//! | `GET releases/{id}/build`, `GET releases/latest/build` | yes (also an agent secret or an enrollment token) | yes | yes | - |
//! | `POST releases`, `POST releases/from-url`, `DELETE releases/{id}`, `PUT rollouts/{channel}`, `POST rollouts/{channel}/pause`, `POST rollouts/{channel}/resume` | 403 | all-clients operator only (scoped: 403) | all-clients only | - |
//! | `GET agents/{id}/update`                | yes    | yes      | yes   | 404          |
//! | `POST agents/{id}/update` (force one agent now) | 403 | yes | yes | 404          |
//! | `GET policies/schema`                   | no authentication |||| |
//! | `GET install-reports`                   | yes    | yes      | yes   | not listed   |
//! | `GET install/agent.sh`                  | no authentication (holds no secret) |||| |
//! | `POST install-reports`                  | an enrollment token (`Bearer rmm_et_...`); client and site are the token's |||| |
//! | `POST auth/login`, `POST enroll`        | no authentication (credentials in the body) |||| |
//!
//! The role is checked first (403 `forbidden`), then the scope: an object of another client
//! is reported as 404 `not_found`, exactly as if it did not exist, so a client-scoped caller
//! learns nothing about other clients. A client-scoped admin manages users and API tokens of
//! their own client only, and cannot grant the all-clients scope.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::ApiError;
pub use crate::store::Scope;

/// A role. Ordered: `Viewer < Operator < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads clients, sites, agents, enrollment tokens (never their secrets) and SD.
    Viewer,
    /// Viewer, plus manages sites, agents and enrollment tokens.
    Operator,
    /// Operator, plus manages clients, users and API tokens, and reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of credential the caller used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    ApiToken,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// User id or API token id.
    pub id: String,
    /// Email or token name, for the audit log.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

impl Principal {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs the {role} role; this credential has {}",
                self.role
            )))
        }
    }

    /// 403 unless the caller has at least `role` for all clients.
    pub fn require_all_clients(&self, role: Role) -> Result<(), ApiError> {
        self.require(role)?;
        if self.scope == Scope::All {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs the {role} role for all clients; this credential is limited to one client"
            )))
        }
    }

    pub fn actor_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::User => "user",
            PrincipalKind::ApiToken => "api_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn require_checks_role_then_scope() {
        let p = Principal {
            kind: PrincipalKind::User,
            id: "u".into(),
            name: "u@x".into(),
            role: Role::Admin,
            scope: Scope::Client("c".into()),
        };
        assert!(p.require(Role::Operator).is_ok());
        assert!(p.require_all_clients(Role::Admin).is_err());
        let v = Principal {
            role: Role::Viewer,
            scope: Scope::All,
            ..p
        };
        assert!(v.require(Role::Operator).is_err());
    }
}
