//! The role matrix: every route × every role (all clients, or client A) × an object of
//! client A or client B, asserting the exact status. The rule under test, also written down in
//! `src/authz.rs`:
//!
//! 1. no credential → 401;
//! 2. a role below the route's → 403; an all-clients-only route with a client-scoped caller → 403;
//! 3. an object of another client with a client-scoped caller → 404, as if it did not exist;
//! 4. otherwise the route's success status.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use rmm_control_plane::releases::signing::{self, SecretKey};

use crate::backend_tests;
use crate::common::{id, serve_file, sign_release, Backend, Server};

backend_tests!(role_matrix, scoped_callers_see_only_their_client);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Operator,
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Own,
    Other,
}

/// What a route needs.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// No credential needed (credentials are in the body, or none at all).
    Public,
    Min(Role),
    /// The role, for all clients.
    AllClients(Role),
    /// An enrollment token as bearer (install reports): every user credential is refused
    /// with 401; the fixture's enrollment token succeeds.
    EnrollmentToken,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    method: &'static str,
    route: &'static str,
    need: Need,
    /// The target belongs to a client (own or other).
    owned: bool,
    success: u16,
}

const fn case(
    method: &'static str,
    route: &'static str,
    need: Need,
    owned: bool,
    success: u16,
) -> Case {
    Case {
        method,
        route,
        need,
        owned,
        success,
    }
}

use Need::*;
use Role::*;

/// Every route of the API.
const CASES: &[Case] = &[
    case("GET", "/healthz", Public, false, 200),
    case("GET", "/readyz", Public, false, 200),
    case("GET", "/metrics", Public, false, 200),
    case("GET", "/api/v1/openapi.json", Public, false, 200),
    case("POST", "/api/v1/auth/login", Public, false, 200),
    case("GET", "/api/v1/auth/me", Min(Viewer), false, 200),
    case("POST", "/api/v1/enroll", Public, false, 201),
    case("GET", "/api/v1/clients", Min(Viewer), false, 200),
    case("POST", "/api/v1/clients", AllClients(Admin), false, 201),
    case("GET", "/api/v1/clients/{id}", Min(Viewer), true, 200),
    case("PATCH", "/api/v1/clients/{id}", Min(Admin), true, 200),
    case(
        "DELETE",
        "/api/v1/clients/{id}",
        AllClients(Admin),
        false,
        204,
    ),
    case("GET", "/api/v1/clients/{id}/sites", Min(Viewer), true, 200),
    case(
        "POST",
        "/api/v1/clients/{id}/sites",
        Min(Operator),
        true,
        201,
    ),
    case("GET", "/api/v1/sites", Min(Viewer), false, 200),
    case("GET", "/api/v1/sites/{id}", Min(Viewer), true, 200),
    case("PATCH", "/api/v1/sites/{id}", Min(Operator), true, 200),
    case("DELETE", "/api/v1/sites/{id}", Min(Operator), true, 204),
    case("GET", "/api/v1/enrollment-tokens", Min(Viewer), false, 200),
    case(
        "POST",
        "/api/v1/enrollment-tokens",
        Min(Operator),
        true,
        201,
    ),
    case(
        "GET",
        "/api/v1/enrollment-tokens/{id}",
        Min(Viewer),
        true,
        200,
    ),
    case(
        "DELETE",
        "/api/v1/enrollment-tokens/{id}",
        Min(Operator),
        true,
        200,
    ),
    case("GET", "/api/v1/agents", Min(Viewer), false, 200),
    case("GET", "/api/v1/agents/{id}", Min(Viewer), true, 200),
    case("GET", "/api/v1/agents/{id}/users", Min(Viewer), true, 200),
    case("PATCH", "/api/v1/agents/{id}", Min(Operator), true, 200),
    case("DELETE", "/api/v1/agents/{id}", Min(Operator), true, 204),
    case("GET", "/api/v1/sd/prometheus", Min(Viewer), false, 200),
    case("GET", "/api/v1/users", Min(Admin), false, 200),
    case("POST", "/api/v1/users", Min(Admin), true, 201),
    case("GET", "/api/v1/users/{id}", Min(Admin), true, 200),
    case("PATCH", "/api/v1/users/{id}", Min(Admin), true, 200),
    case("DELETE", "/api/v1/users/{id}", Min(Admin), true, 204),
    case("GET", "/api/v1/api-tokens", Min(Admin), false, 200),
    case("POST", "/api/v1/api-tokens", Min(Admin), true, 201),
    case("GET", "/api/v1/api-tokens/{id}", Min(Admin), true, 200),
    case("DELETE", "/api/v1/api-tokens/{id}", Min(Admin), true, 200),
    case("GET", "/api/v1/audit-log", Min(Admin), false, 200),
    // Policies (issue 6)
    case("GET", "/api/v1/policies/schema", Public, false, 200),
    case("GET", "/api/v1/policies", Min(Viewer), false, 200),
    case("POST", "/api/v1/policies", Min(Operator), true, 201),
    case("GET", "/api/v1/policies/{id}", Min(Viewer), true, 200),
    case("PUT", "/api/v1/policies/{id}", Min(Operator), true, 200),
    case("DELETE", "/api/v1/policies/{id}", Min(Operator), true, 204),
    case(
        "GET",
        "/api/v1/policies/{id}/assignments",
        Min(Viewer),
        true,
        200,
    ),
    case(
        "POST",
        "/api/v1/policies/{id}/assignments",
        Min(Operator),
        true,
        201,
    ),
    case(
        "DELETE",
        "/api/v1/policy-assignments/{id}",
        Min(Operator),
        true,
        204,
    ),
    case("POST", "/api/v1/policies/preview", Min(Viewer), true, 200),
    case(
        "GET",
        "/api/v1/agents/{id}/effective-config",
        Min(Viewer),
        true,
        200,
    ),
    case(
        "GET",
        "/api/v1/agents/config-status",
        Min(Viewer),
        false,
        200,
    ),
    // Install script and reports (issue 8)
    case("GET", "/api/v1/install/agent.sh", Public, false, 200),
    case("GET", "/api/v1/install-reports", Min(Viewer), false, 200),
    case(
        "POST",
        "/api/v1/install-reports",
        EnrollmentToken,
        false,
        201,
    ),
    // Releases and rollouts (issue 7): the catalog and rollouts are fleet-wide.
    case("GET", "/api/v1/releases", Min(Viewer), false, 200),
    case("POST", "/api/v1/releases", AllClients(Operator), false, 201),
    case(
        "POST",
        "/api/v1/releases/from-url",
        AllClients(Operator),
        false,
        201,
    ),
    case("GET", "/api/v1/releases/{id}", Min(Viewer), false, 200),
    case(
        "DELETE",
        "/api/v1/releases/{id}",
        AllClients(Operator),
        false,
        204,
    ),
    case(
        "GET",
        "/api/v1/releases/{id}/build",
        Min(Viewer),
        false,
        200,
    ),
    case(
        "GET",
        "/api/v1/releases/latest/build",
        Min(Viewer),
        false,
        200,
    ),
    case("GET", "/api/v1/rollouts", Min(Viewer), false, 200),
    case("GET", "/api/v1/rollouts/{channel}", Min(Viewer), false, 200),
    case(
        "PUT",
        "/api/v1/rollouts/{channel}",
        AllClients(Operator),
        false,
        200,
    ),
    case(
        "POST",
        "/api/v1/rollouts/{channel}/pause",
        AllClients(Operator),
        false,
        200,
    ),
    case(
        "POST",
        "/api/v1/rollouts/{channel}/resume",
        AllClients(Operator),
        false,
        200,
    ),
    case("GET", "/api/v1/agents/{id}/update", Min(Viewer), true, 200),
    case(
        "POST",
        "/api/v1/agents/{id}/update",
        Min(Operator),
        true,
        202,
    ),
];

/// The routes the matrix covers, for the OpenAPI test.
pub fn matrix_routes() -> Vec<(String, String)> {
    CASES
        .iter()
        .map(|c| (c.method.to_owned(), c.route.to_owned()))
        .collect()
}

/// A caller: `None` = no credential; otherwise role and whether limited to client A.
type Caller = Option<(Role, bool)>;

fn expected(c: &Case, caller: Caller, owner: Owner) -> u16 {
    let (role, scoped) = match (c.need, caller) {
        (Public, _) => return c.success,
        (EnrollmentToken, _) => return 401,
        (_, None) => return 401,
        (_, Some(rs)) => rs,
    };
    let (min, all_only) = match c.need {
        Min(r) => (r, false),
        AllClients(r) => (r, true),
        Public | EnrollmentToken => unreachable!(),
    };
    if role < min || (all_only && scoped) {
        403
    } else if c.owned && scoped && owner == Owner::Other {
        404
    } else {
        c.success
    }
}

/// Objects of clients A and B.
struct Fixture {
    client: [String; 2],
    site: [String; 2],
    agent: [String; 2],
    etoken: [String; 2],
    /// The secrets of `etoken`.
    etoken_secret: [String; 2],
    user: [String; 2],
    api_token: [String; 2],
    policy: [String; 2],
    /// A release (1.0.0, linux/x86_64, stable) that the stable rollout targets.
    release: String,
    /// Signs new releases; its public key is the server's signing key.
    key: SecretKey,
    /// Serves the test build for `POST /releases/from-url`.
    build_url: String,
}

/// A minimal x86_64 ELF header as a test build: small, so a refused upload (401/403, answered
/// before the body is read) never races the client still sending it.
pub fn test_build() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // 64-bit
    h[5] = 1; // little endian
    h[6] = 1;
    h[18..20].copy_from_slice(&62u16.to_le_bytes());
    h
}

fn unique_version() -> String {
    format!("0.{}.0", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

fn idx(o: Owner) -> usize {
    match o {
        Owner::Own => 0,
        Owner::Other => 1,
    }
}

async fn fixture(s: &Server, key: SecretKey) -> Fixture {
    let mut f = Fixture {
        client: Default::default(),
        site: Default::default(),
        agent: Default::default(),
        etoken: Default::default(),
        etoken_secret: Default::default(),
        user: Default::default(),
        api_token: Default::default(),
        policy: Default::default(),
        release: String::new(),
        key: SecretKey::generate(),
        build_url: serve_file(test_build()).await,
    };
    for (i, name) in ["A", "B"].iter().enumerate() {
        f.client[i] = s.new_client(&format!("Client {name}")).await;
        f.site[i] = s.new_site(&f.client[i], "Main").await;
        f.agent[i] = s
            .new_agent(
                &f.site[i],
                &format!("host-{name}"),
                json!({"metrics_address": "127.0.0.1:9"}),
            )
            .await
            .0;
        (f.etoken[i], f.etoken_secret[i]) = s.new_enrollment_token(&f.site[i], json!({})).await;
        let (st, v) = s
            .call(
                Method::POST,
                "/api/v1/install-reports",
                Some(&f.etoken_secret[i]),
                Some(install_report()),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        f.user[i] = id(&s
            .create("/api/v1/users", &s.admin, json!({"email": format!("fixture-{name}@example.com"), "password": "password-123", "role": "viewer", "client_id": f.client[i]}))
            .await);
        f.api_token[i] = id(&s
            .create(
                "/api/v1/api-tokens",
                &s.admin,
                json!({"name": format!("fixture {name}"), "client_id": f.client[i]}),
            )
            .await);
        f.policy[i] = new_policy(s, &f.client[i]).await;
    }
    f.key = key;
    let (st, v) = s
        .upload_release(
            Some(&s.admin),
            &f.key,
            &[("version", "1.0.0")],
            test_build(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    f.release = id(&v);
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "1.0.0", "percent": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    f
}

/// A valid install-report body.
fn install_report() -> Value {
    json!({"hostname": "h", "os": "linux", "arch": "x86_64", "status": "failed", "step": "enroll", "message": "m"})
}

/// A server whose release signing key is `key`'s public half.
pub async fn start_with_key(backend: &Backend) -> (Server, SecretKey) {
    let key = SecretKey::generate();
    let public = key.public().encode();
    let s = Server::start_with(backend, |c| c.releases.signing_keys = vec![public]).await;
    (s, key)
}

/// A new empty policy of `client`, created by the global admin.
async fn new_policy(s: &Server, client: &str) -> String {
    id(&s
        .create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": unique("policy"), "document": {}, "client_id": client}),
        )
        .await)
}

/// A free priority (assignment slots are unique per target and priority).
fn priority() -> i64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as i64
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The concrete path and body for one call; creates fresh objects for destructive calls.
async fn prepare(s: &Server, f: &Fixture, c: &Case, owner: Owner) -> (String, Option<Value>) {
    let i = idx(owner);
    let fresh_site = || async { s.new_site(&f.client[i], &unique("site")).await };
    match (c.method, c.route) {
        ("POST", "/api/v1/auth/login") => (
            c.route.into(),
            Some(
                json!({"email": crate::common::ADMIN_EMAIL, "password": crate::common::ADMIN_PASSWORD}),
            ),
        ),
        ("POST", "/api/v1/enroll") => {
            let (_, t) = s.new_enrollment_token(&f.site[i], json!({})).await;
            (
                c.route.into(),
                Some(
                    json!({"token": t, "host_id": unique("h"), "hostname": "x", "os": "linux", "arch": "x86_64", "agent_version": "1"}),
                ),
            )
        }
        ("POST", "/api/v1/clients") => (c.route.into(), Some(json!({"name": unique("client")}))),
        ("DELETE", "/api/v1/clients/{id}") => {
            let fresh = s.new_client(&unique("doomed")).await;
            (format!("/api/v1/clients/{fresh}"), None)
        }
        ("PATCH", "/api/v1/clients/{id}") => (
            format!("/api/v1/clients/{}", f.client[i]),
            Some(json!({"name": unique("renamed")})),
        ),
        ("POST", "/api/v1/clients/{id}/sites") => (
            format!("/api/v1/clients/{}/sites", f.client[i]),
            Some(json!({"name": unique("site")})),
        ),
        ("PATCH", "/api/v1/sites/{id}") => (
            format!("/api/v1/sites/{}", f.site[i]),
            Some(json!({"name": unique("renamed")})),
        ),
        ("DELETE", "/api/v1/sites/{id}") => (format!("/api/v1/sites/{}", fresh_site().await), None),
        ("POST", "/api/v1/enrollment-tokens") => {
            (c.route.into(), Some(json!({"site_id": f.site[i]})))
        }
        ("DELETE", "/api/v1/enrollment-tokens/{id}") => {
            let (t, _) = s.new_enrollment_token(&f.site[i], json!({})).await;
            (format!("/api/v1/enrollment-tokens/{t}"), None)
        }
        ("PATCH", "/api/v1/agents/{id}") => (
            format!("/api/v1/agents/{}", f.agent[i]),
            Some(json!({"labels": {"k": unique("v")}})),
        ),
        ("DELETE", "/api/v1/agents/{id}") => {
            let (a, _) = s.new_agent(&f.site[i], &unique("doomed"), json!({})).await;
            (format!("/api/v1/agents/{a}"), None)
        }
        ("POST", "/api/v1/users") => (
            c.route.into(),
            Some(
                json!({"email": format!("{}@example.com", unique("u")), "password": "password-123", "role": "viewer", "client_id": f.client[i]}),
            ),
        ),
        ("PATCH", "/api/v1/users/{id}") => (
            format!("/api/v1/users/{}", f.user[i]),
            Some(json!({"role": "viewer"})),
        ),
        ("DELETE", "/api/v1/users/{id}") => {
            let u = id(&s
                .create("/api/v1/users", &s.admin, json!({"email": format!("{}@example.com", unique("d")), "password": "password-123", "role": "viewer", "client_id": f.client[i]}))
                .await);
            (format!("/api/v1/users/{u}"), None)
        }
        ("POST", "/api/v1/api-tokens") => (
            c.route.into(),
            Some(json!({"name": unique("t"), "client_id": f.client[i]})),
        ),
        ("DELETE", "/api/v1/api-tokens/{id}") => {
            let t = id(&s
                .create(
                    "/api/v1/api-tokens",
                    &s.admin,
                    json!({"name": unique("t"), "client_id": f.client[i]}),
                )
                .await);
            (format!("/api/v1/api-tokens/{t}"), None)
        }
        ("POST", "/api/v1/policies") => (
            c.route.into(),
            Some(
                json!({"name": unique("p"), "document": {"collect": {"top_processes": 5}}, "client_id": f.client[i]}),
            ),
        ),
        ("PUT", "/api/v1/policies/{id}") => (
            format!("/api/v1/policies/{}", f.policy[i]),
            Some(json!({"name": unique("p"), "document": {"collect": {"top_processes": 7}}})),
        ),
        ("DELETE", "/api/v1/policies/{id}") => (
            format!("/api/v1/policies/{}", new_policy(s, &f.client[i]).await),
            None,
        ),
        ("POST", "/api/v1/policies/{id}/assignments") => (
            format!(
                "/api/v1/policies/{}/assignments",
                new_policy(s, &f.client[i]).await
            ),
            Some(json!({"scope": "site", "target_id": f.site[i], "priority": priority()})),
        ),
        ("DELETE", "/api/v1/policy-assignments/{id}") => {
            let p = new_policy(s, &f.client[i]).await;
            let a = id(&s
                .create(
                    &format!("/api/v1/policies/{p}/assignments"),
                    &s.admin,
                    json!({"scope": "client", "target_id": f.client[i], "priority": priority()}),
                )
                .await);
            (format!("/api/v1/policy-assignments/{a}"), None)
        }
        ("POST", "/api/v1/install-reports") => (c.route.into(), Some(install_report())),
        ("POST", "/api/v1/releases/from-url") => {
            let data = test_build();
            (
                c.route.into(),
                Some(json!({
                    "version": unique_version(), "os": "linux", "arch": "x86_64",
                    "channel": "stable", "url": f.build_url,
                    "sha256": hex::encode(signing::sha256_reader(&data[..]).unwrap()),
                    "signature": sign_release(&f.key, &data),
                })),
            )
        }
        ("DELETE", "/api/v1/releases/{id}") => {
            let version = unique_version();
            let (st, v) = s
                .upload_release(
                    Some(&s.admin),
                    &f.key,
                    &[("version", &version)],
                    test_build(),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            (format!("/api/v1/releases/{}", id(&v)), None)
        }
        ("GET", "/api/v1/releases/latest/build") => (
            format!("{}?os=linux&arch=x86_64&channel=stable", c.route),
            None,
        ),
        ("PUT", "/api/v1/rollouts/{channel}") => (
            "/api/v1/rollouts/stable".into(),
            Some(json!({"target_version": "1.0.0", "percent": 0})),
        ),
        ("POST", "/api/v1/agents/{id}/update") => (
            format!("/api/v1/agents/{}/update", f.agent[i]),
            Some(json!({"version": "1.0.0"})),
        ),
        ("POST", "/api/v1/policies/preview") => (
            c.route.into(),
            Some(json!({"document": {"collect": {"top_processes": 3}}, "agent_ids": [f.agent[i]]})),
        ),
        (_, route) => {
            let path = route
                .replace("/clients/{id}", &format!("/clients/{}", f.client[i]))
                .replace("/sites/{id}", &format!("/sites/{}", f.site[i]))
                .replace(
                    "/enrollment-tokens/{id}",
                    &format!("/enrollment-tokens/{}", f.etoken[i]),
                )
                .replace("/agents/{id}", &format!("/agents/{}", f.agent[i]))
                .replace("/users/{id}", &format!("/users/{}", f.user[i]))
                .replace("/policies/{id}", &format!("/policies/{}", f.policy[i]))
                .replace("/releases/{id}", &format!("/releases/{}", f.release))
                .replace("/rollouts/{channel}", "/rollouts/stable")
                .replace(
                    "/api-tokens/{id}",
                    &format!("/api-tokens/{}", f.api_token[i]),
                );
            assert!(!path.contains('{'), "no fixture for {route}");
            (path, None)
        }
    }
}

async fn role_matrix(backend: Backend) {
    let (s, key) = start_with_key(&backend).await;
    let f = fixture(&s, key).await;
    // Callers: every role for all clients and for client A; plus no credential.
    let mut callers: Vec<(Caller, Option<String>)> = vec![(None, None)];
    for (role, name) in [(Viewer, "viewer"), (Operator, "operator"), (Admin, "admin")] {
        for scoped in [false, true] {
            let email = format!("{name}-{}@example.com", if scoped { "a" } else { "all" });
            let client = scoped.then(|| f.client[0].as_str());
            let (_, jwt) = s.new_user(&email, name, client).await;
            callers.push((Some((role, scoped)), Some(jwt)));
        }
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in CASES {
        let owners: &[Owner] = if c.owned {
            &[Owner::Own, Owner::Other]
        } else {
            &[Owner::Own]
        };
        for owner in owners {
            for (caller, token) in &callers {
                let (path, body) = prepare(&s, &f, c, *owner).await;
                let method = Method::from_bytes(c.method.as_bytes()).unwrap();
                let (st, v) = if (c.method, c.route) == ("POST", "/api/v1/releases") {
                    // The build is the raw body.
                    let version = unique_version();
                    s.upload_release(
                        token.as_deref(),
                        &f.key,
                        &[("version", &version)],
                        test_build(),
                    )
                    .await
                } else {
                    s.call(method, &path, token.as_deref(), body).await
                };
                let want = expected(c, *caller, *owner);
                checked += 1;
                if st.as_u16() != want {
                    failures.push(format!(
                        "{} {} caller={caller:?} owner={owner:?}: got {st}, want {want}: {v}",
                        c.method, c.route
                    ));
                } else if want >= 400 && v["error"]["code"].as_str().is_none() {
                    failures.push(format!("{} {}: error without code: {v}", c.method, c.route));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Routes authenticated by an enrollment token: that token succeeds.
    for c in CASES.iter().filter(|c| matches!(c.need, EnrollmentToken)) {
        let (path, body) = prepare(&s, &f, c, Owner::Own).await;
        let method = Method::from_bytes(c.method.as_bytes()).unwrap();
        let (st, v) = s.call(method, &path, Some(&f.etoken_secret[0]), body).await;
        checked += 1;
        if st.as_u16() != c.success {
            failures.push(format!(
                "{} {} with an enrollment token: got {st}, want {}: {v}",
                c.method, c.route, c.success
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 300, "{checked}");
    s.finish().await;
}

async fn scoped_callers_see_only_their_client(backend: Backend) {
    let (s, key) = start_with_key(&backend).await;
    let f = fixture(&s, key).await;
    let (_, op_a) = s
        .new_user("op-a@example.com", "operator", Some(&f.client[0]))
        .await;
    let (_, admin_a) = s
        .new_user("admin-a@example.com", "admin", Some(&f.client[0]))
        .await;

    // The headline rule: a client-scoped operator gets 404 for another client's agent.
    let (st, v) = s
        .call(
            Method::GET,
            &format!("/api/v1/agents/{}", f.agent[1]),
            Some(&op_a),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{}", f.agent[1]),
            Some(&op_a),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // ... and cannot move its own agent into another client's site.
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{}", f.agent[0]),
            Some(&op_a),
            Some(json!({"site_id": f.site[1]})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let only = |v: &Value, key: &str, want: &str| {
        let items = v["items"]
            .as_array()
            .unwrap_or_else(|| v.as_array().unwrap());
        assert!(!items.is_empty(), "{v}");
        for it in items {
            assert_eq!(it[key], want, "{v}");
        }
    };
    only(&s.get("/api/v1/clients", &op_a).await, "id", &f.client[0]);
    only(
        &s.get("/api/v1/sites", &op_a).await,
        "client_id",
        &f.client[0],
    );
    only(
        &s.get("/api/v1/agents", &op_a).await,
        "client_id",
        &f.client[0],
    );
    only(
        &s.get("/api/v1/enrollment-tokens", &op_a).await,
        "client_id",
        &f.client[0],
    );
    only(
        &s.get("/api/v1/install-reports", &op_a).await,
        "client_id",
        &f.client[0],
    );
    let v = s
        .get(
            &format!("/api/v1/install-reports?client_id={}", f.client[1]),
            &op_a,
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
    // A filter naming another client finds nothing rather than leaking.
    let v = s
        .get(&format!("/api/v1/agents?client_id={}", f.client[1]), &op_a)
        .await;
    assert_eq!(v["total"], 0);
    let sd = s.get("/api/v1/sd/prometheus", &op_a).await;
    assert_eq!(sd.as_array().unwrap().len(), 1);
    assert_eq!(sd[0]["labels"]["client"], "Client A");
    only(
        &s.get("/api/v1/users", &admin_a).await,
        "client_id",
        &f.client[0],
    );
    only(
        &s.get("/api/v1/api-tokens", &admin_a).await,
        "client_id",
        &f.client[0],
    );
    only(
        &s.get("/api/v1/audit-log?limit=1000", &admin_a).await,
        "client_id",
        &f.client[0],
    );
    let all = s.get("/api/v1/audit-log?limit=1000", &s.admin).await;
    assert!(
        all["total"].as_i64().unwrap()
            > s.get("/api/v1/audit-log", &admin_a).await["total"]
                .as_i64()
                .unwrap()
    );

    // A client-scoped admin cannot hand out the all-clients scope ...
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin_a),
            Some(json!({"email": "x@example.com", "password": "password-123", "role": "admin"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", f.user[0]),
            Some(&admin_a),
            Some(json!({"client_id": null})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // ... and its API tokens are limited to its client.
    let t = s
        .create(
            "/api/v1/api-tokens",
            &admin_a,
            json!({"name": "automation"}),
        )
        .await;
    assert_eq!(t["client_id"], f.client[0].as_str());
    let token = t["token"].as_str().unwrap();
    assert!(token.starts_with("rmm_at_"));
    only(
        &s.get("/api/v1/agents", token).await,
        "client_id",
        &f.client[0],
    );
    let me = s.get("/api/v1/auth/me", token).await;
    assert_eq!(
        (me["kind"].as_str(), me["role"].as_str()),
        (Some("api_token"), Some("viewer"))
    );
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/clients/{}/sites", f.client[0]),
            Some(token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a viewer token cannot write");
    // Revoked: stops at once.
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/api-tokens/{}", id(&t)),
            Some(&admin_a),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .call(Method::GET, "/api/v1/agents", Some(token), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        !s.get("/api/v1/api-tokens", &s.admin)
            .await
            .to_string()
            .contains(token),
        "secrets are never listed"
    );

    // A deleted user's login token stops working; a changed role applies at once.
    let (uid, jwt) = s.new_user("temp@example.com", "operator", None).await;
    s.create(
        &format!("/api/v1/clients/{}/sites", f.client[0]),
        &jwt,
        json!({"name": "by temp"}),
    )
    .await;
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{uid}"),
            Some(&s.admin),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/clients/{}/sites", f.client[0]),
            Some(&jwt),
            Some(json!({"name": "again"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{uid}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(Method::GET, "/api/v1/auth/me", Some(&jwt), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The last all-clients admin cannot be removed or demoted.
    let me = s.get("/api/v1/auth/me", &s.admin).await;
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}", id(&me)),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin")),
        "{v}"
    );
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", id(&me)),
            Some(&s.admin),
            Some(json!({"role": "operator"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    s.finish().await;
}
