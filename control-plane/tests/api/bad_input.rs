//! Bad input on every write route: malformed JSON, wrong types, missing and unknown fields,
//! wrong content type, oversized bodies, invalid values, unknown ids, duplicates. Each gets a
//! 4xx whose message names the problem, and afterwards nothing stored has changed.

use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, Server};

backend_tests!(bad_input_is_refused_and_changes_nothing);

struct Bad {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Text the message must contain (case-insensitive).
    needle: &'static str,
}

fn bad(
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
    needle: &'static str,
) -> Bad {
    Bad {
        method,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
        needle,
    }
}

fn js(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let s = Server::start(&backend).await;
    let client = s.new_client("Acme").await;
    let site = s.new_site(&client, "HQ").await;
    s.new_site(&client, "Branch").await;
    let (agent, _) = s.new_agent(&site, "web-01", serde_json::json!({})).await;
    let (_, token) = s
        .new_enrollment_token(&site, json!({"max_uses": 100}))
        .await;
    let me = s.get("/api/v1/auth/me", &s.admin).await;
    let admin_id = me["id"].as_str().unwrap().to_owned();
    s.create(
        "/api/v1/users",
        &s.admin,
        json!({"email": "taken@example.com", "password": "password-123", "role": "viewer"}),
    )
    .await;
    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(70 * 1024));
    let unknown = "01900000-0000-7000-8000-000000000000";
    let enroll_ok = |extra: serde_json::Value| {
        let mut b = json!({"token": token, "host_id": "h-bad", "hostname": "bad", "os": "linux", "arch": "x86_64", "agent_version": "1"});
        if let (Some(o), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    o.remove(k);
                } else {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        js(b)
    };

    use Method as M;
    let client_path = format!("/api/v1/clients/{client}");
    let sites_path = format!("/api/v1/clients/{client}/sites");
    let site_path = format!("/api/v1/sites/{site}");
    let agent_path = format!("/api/v1/agents/{agent}");
    let user_path = format!("/api/v1/users/{admin_id}");
    let mut cases = vec![
        // POST /clients
        bad(
            M::POST,
            "/api/v1/clients",
            "{\"name\": ",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            "",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": 42})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({})),
            422,
            "invalid_body",
            "missing field `name`",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": "x", "colour": "red"})),
            422,
            "invalid_body",
            "colour",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!(["name"])),
            422,
            "invalid_body",
            "object",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            "  [\"x\"]",
            422,
            "invalid_body",
            "object",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            "\"name\"",
            422,
            "invalid_body",
            "expected",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": "  "})),
            422,
            "invalid_field",
            "name",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": "x".repeat(201)})),
            422,
            "invalid_field",
            "name",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": "a\u{7}b"})),
            422,
            "invalid_field",
            "control",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            js(json!({"name": "ACME"})),
            409,
            "duplicate_name",
            "already exists",
        ),
        bad(
            M::POST,
            "/api/v1/clients",
            huge.clone(),
            413,
            "body_too_large",
            "max_body_bytes",
        ),
        Bad {
            content_type: Some("text/plain"),
            ..bad(
                M::POST,
                "/api/v1/clients",
                js(json!({"name": "x"})),
                415,
                "unsupported_media_type",
                "application/json",
            )
        },
        Bad {
            content_type: None,
            ..bad(
                M::POST,
                "/api/v1/clients",
                js(json!({"name": "x"})),
                415,
                "unsupported_media_type",
                "application/json",
            )
        },
        // PATCH /clients/{id}
        bad(M::PATCH, &client_path, "{", 400, "malformed_json", "parse"),
        bad(
            M::PATCH,
            &client_path,
            js(json!({"name": false})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::PATCH,
            &client_path,
            js(json!({})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::PATCH,
            &format!("/api/v1/clients/{unknown}"),
            js(json!({"name": "y"})),
            404,
            "not_found",
            "client",
        ),
        bad(
            M::PATCH,
            &client_path,
            huge.clone(),
            413,
            "body_too_large",
            "large",
        ),
        // POST /clients/{id}/sites
        bad(M::POST, &sites_path, "nope", 400, "malformed_json", "parse"),
        bad(
            M::POST,
            &sites_path,
            js(json!({"name": ["x"]})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::POST,
            &sites_path,
            js(json!({"nam": "x"})),
            422,
            "invalid_body",
            "nam",
        ),
        bad(
            M::POST,
            &sites_path,
            js(json!({"name": "hq"})),
            409,
            "duplicate_name",
            "already has a site",
        ),
        bad(
            M::POST,
            &sites_path,
            js(json!({"name": ""})),
            422,
            "invalid_field",
            "name",
        ),
        bad(
            M::POST,
            &format!("/api/v1/clients/{unknown}/sites"),
            js(json!({"name": "x"})),
            404,
            "not_found",
            "client",
        ),
        bad(
            M::POST,
            &sites_path,
            huge.clone(),
            413,
            "body_too_large",
            "large",
        ),
        // PATCH /sites/{id}
        bad(M::PATCH, &site_path, "{]", 400, "malformed_json", "parse"),
        bad(
            M::PATCH,
            &site_path,
            js(json!({"name": 1.5})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::PATCH,
            &site_path,
            js(json!({"name": "branch"})),
            409,
            "duplicate_name",
            "already has a site",
        ),
        bad(
            M::PATCH,
            &format!("/api/v1/sites/{unknown}"),
            js(json!({"name": "x"})),
            404,
            "not_found",
            "site",
        ),
        // POST /enrollment-tokens
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            "{\"site_id\"",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({})),
            422,
            "invalid_body",
            "site_id",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "max_uses": "ten"})),
            422,
            "invalid_body",
            "max_uses",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "max_uses": -1})),
            422,
            "invalid_body",
            "max_uses",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "max_uses": 0})),
            422,
            "invalid_field",
            "max_uses",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "expires_in_seconds": 0})),
            422,
            "invalid_field",
            "expires_in_seconds",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "labels": {"bad key": "x"}})),
            422,
            "invalid_field",
            "bad key",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": site, "labels": {"k": 1}})),
            422,
            "invalid_body",
            "labels",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            js(json!({"site_id": unknown})),
            404,
            "not_found",
            "site",
        ),
        bad(
            M::POST,
            "/api/v1/enrollment-tokens",
            huge.clone(),
            413,
            "body_too_large",
            "large",
        ),
        // POST /enroll (unknown fields are allowed here, for newer agents)
        bad(
            M::POST,
            "/api/v1/enroll",
            "{\"token\": \"x",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"host_id": null})),
            422,
            "invalid_body",
            "host_id",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"hostname": 7})),
            422,
            "invalid_body",
            "hostname",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"hostname": " "})),
            422,
            "invalid_field",
            "hostname",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"host_id": "x".repeat(300)})),
            422,
            "invalid_field",
            "host_id",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"metrics_address": "not an address"})),
            422,
            "invalid_field",
            "metrics_address",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"labels": {"__reserved": "x"}})),
            422,
            "invalid_field",
            "__reserved",
        ),
        bad(
            M::POST,
            "/api/v1/enroll",
            enroll_ok(json!({"token": "rmm_et_wrong"})),
            401,
            "token_invalid",
            "not valid",
        ),
        Bad {
            content_type: Some("application/x-www-form-urlencoded"),
            ..bad(
                M::POST,
                "/api/v1/enroll",
                "token=x",
                415,
                "unsupported_media_type",
                "json",
            )
        },
        bad(
            M::POST,
            "/api/v1/enroll",
            huge.clone(),
            413,
            "body_too_large",
            "large",
        ),
        // PATCH /agents/{id}
        bad(M::PATCH, &agent_path, "{", 400, "malformed_json", "parse"),
        bad(
            M::PATCH,
            &agent_path,
            js(json!({"site_id": 5})),
            422,
            "invalid_body",
            "site_id",
        ),
        bad(
            M::PATCH,
            &agent_path,
            js(json!({})),
            422,
            "invalid_field",
            "nothing to change",
        ),
        bad(
            M::PATCH,
            &agent_path,
            js(json!({"hostname": "x"})),
            422,
            "invalid_body",
            "hostname",
        ),
        bad(
            M::PATCH,
            &agent_path,
            js(json!({"site_id": unknown})),
            404,
            "not_found",
            "site",
        ),
        bad(
            M::PATCH,
            &format!("/api/v1/agents/{unknown}"),
            js(json!({"labels": {}})),
            404,
            "not_found",
            "agent",
        ),
        bad(
            M::PATCH,
            &agent_path,
            js(json!({"labels": {"1x": "y"}})),
            422,
            "invalid_field",
            "1x",
        ),
        // POST /users
        bad(
            M::POST,
            "/api/v1/users",
            "{",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(json!({"email": "n@example.com", "password": "password-123"})),
            422,
            "invalid_body",
            "role",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(json!({"email": "n@example.com", "password": "password-123", "role": "root"})),
            422,
            "invalid_body",
            "role",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(json!({"email": "n@example.com", "password": "short", "role": "viewer"})),
            422,
            "invalid_field",
            "password",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(json!({"email": "not-an-email", "password": "password-123", "role": "viewer"})),
            422,
            "invalid_field",
            "email",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(json!({"email": "TAKEN@example.com", "password": "password-123", "role": "viewer"})),
            409,
            "duplicate_email",
            "already exists",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            js(
                json!({"email": "n@example.com", "password": "password-123", "role": "viewer", "client_id": unknown}),
            ),
            404,
            "not_found",
            "client",
        ),
        bad(
            M::POST,
            "/api/v1/users",
            huge.clone(),
            413,
            "body_too_large",
            "large",
        ),
        // PATCH /users/{id}
        bad(
            M::PATCH,
            &user_path,
            js(json!({"role": 3})),
            422,
            "invalid_body",
            "role",
        ),
        bad(
            M::PATCH,
            &user_path,
            js(json!({"password": "short"})),
            422,
            "invalid_field",
            "password",
        ),
        bad(
            M::PATCH,
            &user_path,
            js(json!({"client_id": unknown})),
            404,
            "not_found",
            "client",
        ),
        bad(
            M::PATCH,
            &user_path,
            js(json!({"role": "viewer"})),
            409,
            "last_admin",
            "last admin",
        ),
        bad(
            M::PATCH,
            &format!("/api/v1/users/{unknown}"),
            js(json!({"role": "viewer"})),
            404,
            "not_found",
            "user",
        ),
        // POST /api-tokens
        bad(
            M::POST,
            "/api/v1/api-tokens",
            "[",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/api-tokens",
            js(json!({})),
            422,
            "invalid_body",
            "name",
        ),
        bad(
            M::POST,
            "/api/v1/api-tokens",
            js(json!({"name": "t", "role": "god"})),
            422,
            "invalid_body",
            "role",
        ),
        bad(
            M::POST,
            "/api/v1/api-tokens",
            js(json!({"name": "t", "expires_in_seconds": 0})),
            422,
            "invalid_field",
            "expires_in_seconds",
        ),
        bad(
            M::POST,
            "/api/v1/api-tokens",
            js(json!({"name": "t", "client_id": unknown})),
            404,
            "not_found",
            "client",
        ),
        // POST /auth/login
        bad(
            M::POST,
            "/api/v1/auth/login",
            "{",
            400,
            "malformed_json",
            "parse",
        ),
        bad(
            M::POST,
            "/api/v1/auth/login",
            js(json!({"email": "root@example.com"})),
            422,
            "invalid_body",
            "password",
        ),
        bad(
            M::POST,
            "/api/v1/auth/login",
            js(json!({"email": "root@example.com", "password": "wrong"})),
            401,
            "invalid_credentials",
            "wrong email or password",
        ),
        bad(
            M::POST,
            "/api/v1/auth/login",
            js(json!({"email": "nobody@example.com", "password": "wrong"})),
            401,
            "invalid_credentials",
            "wrong email or password",
        ),
        // DELETEs of unknown ids, and deletes refused because something depends on the target
        bad(
            M::DELETE,
            &format!("/api/v1/clients/{unknown}"),
            "",
            404,
            "not_found",
            "client",
        ),
        bad(M::DELETE, &client_path, "", 409, "client_not_empty", "site"),
        bad(
            M::DELETE,
            &format!("/api/v1/sites/{unknown}"),
            "",
            404,
            "not_found",
            "site",
        ),
        bad(M::DELETE, &site_path, "", 409, "site_not_empty", "agent"),
        bad(
            M::DELETE,
            &format!("/api/v1/agents/{unknown}"),
            "",
            404,
            "not_found",
            "agent",
        ),
        bad(
            M::DELETE,
            &format!("/api/v1/users/{unknown}"),
            "",
            404,
            "not_found",
            "user",
        ),
        bad(M::DELETE, &user_path, "", 409, "last_admin", "last admin"),
        bad(
            M::DELETE,
            &format!("/api/v1/api-tokens/{unknown}"),
            "",
            404,
            "not_found",
            "token",
        ),
        bad(
            M::DELETE,
            &format!("/api/v1/enrollment-tokens/{unknown}"),
            "",
            404,
            "not_found",
            "token",
        ),
        // Query strings
        bad(
            M::GET,
            "/api/v1/agents?limit=0",
            "",
            400,
            "invalid_query",
            "limit",
        ),
        bad(
            M::GET,
            "/api/v1/agents?limit=abc",
            "",
            400,
            "invalid_query",
            "limit",
        ),
        bad(
            M::GET,
            "/api/v1/agents?status=sleeping",
            "",
            400,
            "invalid_query",
            "status",
        ),
        bad(
            M::GET,
            "/api/v1/agents?label=novalue",
            "",
            400,
            "invalid_query",
            "label",
        ),
        bad(
            M::GET,
            "/api/v1/agents?colour=red",
            "",
            400,
            "invalid_query",
            "colour",
        ),
        // Unknown routes and methods
        bad(
            M::GET,
            "/api/v1/widgets",
            "",
            404,
            "not_found",
            "no such route",
        ),
        bad(
            M::PUT,
            "/api/v1/clients",
            "",
            405,
            "method_not_allowed",
            "method",
        ),
    ];
    for c in &mut cases {
        if c.body.is_empty() && matches!(c.method, M::GET | M::DELETE | M::PUT) {
            c.content_type = None;
        }
    }
    // Every route with a JSON body also gets: an oversized body, a wrong content type, and a
    // truncated document.
    let mut write_routes: Vec<(Method, String)> = cases
        .iter()
        .filter(|c| matches!(c.method, M::POST | M::PATCH) && c.status != 404)
        .map(|c| (c.method.clone(), c.path.clone()))
        .collect();
    write_routes.dedup();
    assert!(write_routes.len() >= 10, "{write_routes:?}");
    for (m, p) in write_routes {
        cases.push(bad(
            m.clone(),
            &p,
            huge.clone(),
            413,
            "body_too_large",
            "max_body_bytes",
        ));
        cases.push(Bad {
            content_type: Some("text/plain"),
            ..bad(
                m.clone(),
                &p,
                "{}",
                415,
                "unsupported_media_type",
                "application/json",
            )
        });
        cases.push(bad(m, &p, "{\"a\": [1, 2", 400, "malformed_json", "parse"));
    }

    let before = s.snapshot().await;
    let mut failures = Vec::new();
    for c in &cases {
        let (st, v) = s
            .raw(
                c.method.clone(),
                &c.path,
                Some(&s.admin),
                c.content_type,
                c.body.clone(),
            )
            .await;
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        let summary = || {
            format!(
                "{} {} {:?}",
                c.method,
                c.path,
                String::from_utf8_lossy(&c.body[..c.body.len().min(100)])
            )
        };
        if st.as_u16() != c.status
            || v["error"]["code"] != c.code
            || !msg.contains(&c.needle.to_lowercase())
        {
            failures.push(format!(
                "{}: want {} {} ~{:?}, got {st} {v}",
                summary(),
                c.status,
                c.code,
                c.needle
            ));
        }
        let after = s.snapshot().await;
        if after != before {
            failures.push(format!("{}: the stored state changed", summary()));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    s.finish().await;
}
