//! Install reports and the served install script: a report lands in the client and site of the
//! enrollment token that authenticated it, whatever its body says; every field is validated;
//! revoked, unknown and long-expired tokens are refused; lists are scoped by client.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{assert_error, Backend, Server};

backend_tests!(
    reports_belong_to_the_tokens_client_and_site,
    report_fields_are_validated,
    tokens_that_cannot_report,
    the_script_is_served_with_the_public_url,
    refused_reports_count_against_the_enrollment_rate_limit,
);

fn report(status: &str, step: &str) -> Value {
    json!({"hostname": "web-1", "os": "linux", "arch": "x86_64", "agent_version": "0.1.0",
           "status": status, "step": step, "message": "preflight: ok; enroll: ok"})
}

async fn post(s: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/install-reports",
        Some(token),
        Some(body),
    )
    .await
}

async fn reports_belong_to_the_tokens_client_and_site(backend: Backend) {
    let s = Server::start(&backend).await;
    let acme = s.new_client("Acme").await;
    let hq = s.new_site(&acme, "HQ").await;
    let lab = s.new_site(&acme, "Lab").await;
    let globex = s.new_client("Globex").await;
    let g_site = s.new_site(&globex, "Main").await;
    let (hq_token_id, hq_token) = s.new_enrollment_token(&hq, json!({})).await;
    let (_, lab_token) = s.new_enrollment_token(&lab, json!({})).await;
    let (_, g_token) = s.new_enrollment_token(&g_site, json!({})).await;

    let (st, r) = post(&s, &hq_token, report("success", "complete")).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(r["client_id"], acme.as_str());
    assert_eq!(r["site_id"], hq.as_str());
    assert_eq!(r["enrollment_token_id"], hq_token_id.as_str());
    assert_eq!(r["agent_version"], "0.1.0");
    assert_eq!(r["source_ip"], "127.0.0.1");
    // The body cannot choose the client or site: unknown fields are refused.
    let mut sneaky = report("failed", "enroll");
    sneaky["client_id"] = json!(globex);
    assert_error(
        &post(&s, &hq_token, sneaky).await,
        422,
        "invalid_body",
        "client_id",
    );
    let (st, _) = post(&s, &lab_token, report("failed", "download")).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = post(&s, &g_token, report("failed", "enroll")).await;
    assert_eq!(st, StatusCode::CREATED);

    let all = s.get("/api/v1/install-reports", &s.admin).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    // Newest first.
    assert_eq!(all["items"][0]["client_id"], globex.as_str());
    let by_client = s
        .get(
            &format!("/api/v1/install-reports?client_id={acme}"),
            &s.admin,
        )
        .await;
    assert_eq!(by_client["items"].as_array().unwrap().len(), 2);
    let by_site = s
        .get(&format!("/api/v1/install-reports?site_id={lab}"), &s.admin)
        .await;
    let items = by_site["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["step"], "download");
    assert_eq!(items[0]["status"], "failed");

    // A viewer of Globex sees Globex's report only.
    let (_, viewer) = s
        .new_user("v@globex.example", "viewer", Some(&globex))
        .await;
    let v = s.get("/api/v1/install-reports", &viewer).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["client_id"], globex.as_str());
    let v = s
        .get(&format!("/api/v1/install-reports?site_id={hq}"), &viewer)
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    assert_error(
        &s.call(
            Method::GET,
            "/api/v1/install-reports?limit=0",
            Some(&s.admin),
            None,
        )
        .await,
        400,
        "invalid_query",
        "limit",
    );

    // A deleted site takes its reports along (no agents in it).
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/sites/{lab}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT, "{}", r.1);
    let v = s
        .get(&format!("/api/v1/install-reports?site_id={lab}"), &s.admin)
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    s.finish().await;
}

async fn report_fields_are_validated(backend: Backend) {
    let s = Server::start(&backend).await;
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "HQ").await;
    let (_, token) = s.new_enrollment_token(&site, json!({})).await;
    let with = |key: &str, value: Value| {
        let mut b = report("failed", "enroll");
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b
    };
    let cases = [
        (with("status", json!("ok")), "status"),
        (with("step", json!("reboot")), "step"),
        (report("success", "enroll"), "step"),
        (report("failed", "complete"), "step"),
        (with("hostname", json!("")), "hostname"),
        (with("hostname", json!("x".repeat(256))), "hostname"),
        (with("os", json!("Linux")), "os"),
        (with("os", json!("l".repeat(33))), "os"),
        (with("arch", json!("x86 64")), "arch"),
        (with("agent_version", json!("1.0; rm")), "agent_version"),
        (
            with("agent_version", json!("1".repeat(65))),
            "agent_version",
        ),
        (with("message", json!("")), "message"),
        (with("message", json!("m".repeat(2001))), "message"),
        (with("message", json!("line\u{7}bell")), "message"),
    ];
    for (body, field) in cases {
        assert_error(&post(&s, &token, body).await, 422, "invalid_field", field);
    }
    // Missing fields and wrong types are refused by the body parser, naming the field.
    assert_error(
        &post(&s, &token, with("step", Value::Null)).await,
        422,
        "invalid_body",
        "step",
    );
    assert_error(
        &post(&s, &token, with("arch", json!(64))).await,
        422,
        "invalid_body",
        "",
    );
    // Without agent_version is fine (a failure before the download).
    let (st, v) = post(&s, &token, with("agent_version", Value::Null)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["agent_version"].is_null());
    // The verify step (the script checks a download before installing it).
    let (st, v) = post(&s, &token, report("failed", "verify")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["step"], "verify");
    // Nothing invalid was stored.
    let v = s.get("/api/v1/install-reports", &s.admin).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    s.finish().await;
}

async fn tokens_that_cannot_report(backend: Backend) {
    let s = Server::start(&backend).await;
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "HQ").await;
    let body = || report("failed", "enroll");

    // No credential, a user's JWT, an unknown enrollment token.
    assert_error(
        &s.call(Method::POST, "/api/v1/install-reports", None, Some(body()))
            .await,
        401,
        "unauthenticated",
        "enrollment token",
    );
    assert_error(
        &post(&s, &s.admin, body()).await,
        401,
        "token_invalid",
        "enrollment token",
    );
    assert_error(
        &post(&s, "rmm_et_notarealtoken", body()).await,
        401,
        "token_invalid",
        "not valid",
    );

    // Used up (the success report follows the enrollment that spent it): accepted.
    let (_, used) = s.new_enrollment_token(&site, json!({"max_uses": 1})).await;
    let (st, v) = s.enroll(&used, "host-1", "host-1", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = post(&s, &used, report("success", "complete")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Revoked: refused.
    let (rid, revoked) = s.new_enrollment_token(&site, json!({})).await;
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{rid}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_error(
        &post(&s, &revoked, body()).await,
        401,
        "token_revoked",
        "revoked",
    );

    // Expired a day ago: accepted (the install may have failed because of it); 8 days: refused.
    let (eid, expired) = s.new_enrollment_token(&site, json!({})).await;
    let db = s.db.connect().await;
    let set_expiry = |days: i64| {
        let db = db.clone();
        let eid = eid.clone();
        async move {
            let at = rmm_control_plane::store::now_ms() - days * 24 * 3600 * 1000;
            sqlx::query(&format!(
                "UPDATE enrollment_tokens SET expires_at = {at} WHERE id = '{eid}'"
            ))
            .execute(db.pool())
            .await
            .unwrap();
        }
    };
    set_expiry(1).await;
    let (st, v) = post(&s, &expired, body()).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    set_expiry(8).await;
    assert_error(
        &post(&s, &expired, body()).await,
        401,
        "token_expired",
        "expired",
    );
    db.close().await;

    let v = s.get("/api/v1/install-reports", &s.admin).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    s.finish().await;
}

async fn the_script_is_served_with_the_public_url(backend: Backend) {
    let s = Server::start_with(&backend, |c| {
        c.public_url = Some("https://rmm.example.com:8443/".into())
    })
    .await;
    let resp = s
        .http
        .get(s.url("/api/v1/install/agent.sh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/x-shellscript"));
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("#!/bin/sh\n"));
    assert!(
        text.contains("default_server='https://rmm.example.com:8443'"),
        "the public URL is the script's default server"
    );
    s.finish().await;
}

async fn refused_reports_count_against_the_enrollment_rate_limit(backend: Backend) {
    let s = Server::start_with(&backend, |c| c.enroll_rate_per_minute = 3).await;
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "HQ").await;
    let (_, token) = s.new_enrollment_token(&site, json!({})).await;
    // Valid reports cost nothing: more than the limit go through.
    for _ in 0..5 {
        let (st, v) = post(&s, &token, report("failed", "enroll")).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    // Guessing tokens is limited like enrollment: the 4th refusal in a minute is a 429.
    for _ in 0..3 {
        let (st, _) = post(&s, "rmm_et_guess", report("failed", "enroll")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    assert_error(
        &post(&s, "rmm_et_guess", report("failed", "enroll")).await,
        429,
        "rate_limited",
        "retry",
    );
    s.finish().await;
}
