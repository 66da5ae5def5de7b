//! Enrollment refusals and concurrency: expired, revoked, used-up and unknown tokens each get
//! their own status and code, change nothing, and are counted in the metrics.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{assert_error, Backend, Server};

backend_tests!(
    refused_enrollments_say_why_and_change_nothing,
    concurrent_enrollments_never_overspend_a_token,
    revoking_and_states
);

async fn refused_enrollments_say_why_and_change_nothing(backend: Backend) {
    let s = Server::start_binary(&backend, &[]).await;
    let client = s.new_client("Acme").await;
    let site = s.new_site(&client, "HQ").await;

    let (_, expiring) = s
        .new_enrollment_token(&site, json!({"expires_in_seconds": 1}))
        .await;
    let (revoked_id, revoked) = s.new_enrollment_token(&site, json!({})).await;
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{revoked_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, once) = s.new_enrollment_token(&site, json!({"max_uses": 1})).await;
    let (st, v) = s.enroll(&once, "h-once", "once", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let before = s.snapshot().await;
    assert_error(
        &s.enroll(&expiring, "h1", "a", json!({})).await,
        401,
        "token_expired",
        "expired",
    );
    assert_error(
        &s.enroll(&revoked, "h1", "a", json!({})).await,
        401,
        "token_revoked",
        "revoked",
    );
    assert_error(
        &s.enroll(&once, "h1", "a", json!({})).await,
        403,
        "token_exhausted",
        "used up",
    );
    // Same host as the successful one: still refused, still no change.
    assert_error(
        &s.enroll(&once, "h-once", "once", json!({})).await,
        403,
        "token_exhausted",
        "used up",
    );
    assert_error(
        &s.enroll("rmm_et_nope", "h1", "a", json!({})).await,
        401,
        "token_invalid",
        "not valid",
    );
    assert_error(
        &s.enroll("", "h1", "a", json!({})).await,
        401,
        "token_invalid",
        "not valid",
    );
    let after = s.snapshot().await;
    assert_eq!(
        before, after,
        "a refused enrollment must not change anything"
    );

    let text = s.metrics_text().await;
    for (result, n) in [
        ("success", 1),
        ("token_expired", 1),
        ("token_revoked", 1),
        ("token_exhausted", 2),
        ("token_invalid", 2),
    ] {
        assert!(
            text.contains(&format!(
                "rmm_cp_enrollments_total{{result=\"{result}\"}} {n}"
            )),
            "{result} {n}:\n{text}"
        );
    }
    s.finish().await;
}

async fn concurrent_enrollments_never_overspend_a_token(backend: Backend) {
    let s = Server::start(&backend).await;
    let client = s.new_client("Acme").await;
    let site = s.new_site(&client, "HQ").await;
    let (_, token) = s.new_enrollment_token(&site, json!({"max_uses": 5})).await;
    let results = futures_join(&s, &token, 12).await;
    let ok = results
        .iter()
        .filter(|st| **st == StatusCode::CREATED)
        .count();
    let exhausted = results
        .iter()
        .filter(|st| **st == StatusCode::FORBIDDEN)
        .count();
    assert_eq!((ok, exhausted), (5, 7), "{results:?}");
    let agents = s.get("/api/v1/agents", &s.admin).await;
    assert_eq!(agents["total"], 5);
    let t = s.get("/api/v1/enrollment-tokens", &s.admin).await;
    assert_eq!(t["items"][0]["uses"], 5);
    assert_eq!(t["items"][0]["state"], "exhausted");

    // The same new host enrolling twice at once still yields one agent.
    let (_, token) = s.new_enrollment_token(&site, json!({"max_uses": 10})).await;
    let (a, b) = tokio::join!(
        s.enroll(&token, "twin", "twin", json!({})),
        s.enroll(&token, "twin", "twin", json!({}))
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{a:?} {b:?}"
    );
    assert_eq!(a.1["agent_id"], b.1["agent_id"]);
    let agents = s.get("/api/v1/agents?q=twin", &s.admin).await;
    assert_eq!(agents["total"], 1);
    s.finish().await;
}

async fn futures_join(s: &Server, token: &str, n: usize) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let http = s.http.clone();
        let url = s.url("/api/v1/enroll");
        let body = json!({"token": token, "host_id": format!("conc-{i}"), "hostname": format!("conc-{i}"),
            "os": "linux", "arch": "x86_64", "agent_version": "0.1.0"});
        set.spawn(async move { http.post(url).json(&body).send().await.unwrap().status() });
    }
    set.join_all().await
}

async fn revoking_and_states(backend: Backend) {
    let s = Server::start(&backend).await;
    let client = s.new_client("Acme").await;
    let site = s.new_site(&client, "HQ").await;
    let (id, token) = s
        .new_enrollment_token(
            &site,
            json!({"description": "rollout wave 1", "max_uses": 2}),
        )
        .await;
    let t = s
        .get(&format!("/api/v1/enrollment-tokens/{id}"), &s.admin)
        .await;
    assert_eq!(t["state"], "active");
    assert_eq!(t["description"], "rollout wave 1");
    assert_eq!(t["token_prefix"], &token[..12]);
    let (agent, _) = {
        let (st, v) = s.enroll(&token, "h1", "h1", json!({})).await;
        assert_eq!(st, StatusCode::CREATED);
        (v["agent_id"].as_str().unwrap().to_owned(), ())
    };
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["state"], "revoked");
    let again = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_error(&again, 409, "already_revoked", "already revoked");
    // Agents enrolled with a revoked token keep existing.
    s.get(&format!("/api/v1/agents/{agent}"), &s.admin).await;
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/enrollment-tokens?site_id={site}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.finish().await;
}
