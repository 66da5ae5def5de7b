//! The real binary: start, health, login, the whole enrollment path, restart on the same
//! database (migrations run again), two replicas starting together.

use reqwest::{Method, StatusCode};
use rmm_control_plane::secrets::token_hash;
use rmm_control_plane::store::agents;
use serde_json::json;

use crate::backend_tests;
use crate::common::{spawn_binary, Backend, Server};

backend_tests!(
    binary_serves_the_enrollment_path,
    binary_restarts_and_replicas_share_a_database
);

async fn binary_serves_the_enrollment_path(backend: Backend) {
    let s = Server::start_binary(&backend, &[]).await;
    for p in ["/healthz", "/readyz"] {
        let (st, v) = s.call(Method::GET, p, None, None).await;
        assert_eq!(st, StatusCode::OK, "{p}: {v}");
        assert_eq!(v["status"], "ok");
    }
    let me = s.get("/api/v1/auth/me", &s.admin).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["client_id"], serde_json::Value::Null);

    let client = s.new_client("Acme Corp").await;
    let site = s.new_site(&client, "Head office").await;
    let (_, token) = s
        .new_enrollment_token(&site, json!({"max_uses": 3, "labels": {"env": "prod"}}))
        .await;
    assert!(token.starts_with("rmm_et_"));

    let (st, first) = s
        .enroll(
            &token,
            "machine-1",
            "web-01",
            json!({"metrics_address": "127.0.0.1:9464", "labels": {"role": "web", "env": "dev"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let agent_id = first["agent_id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&agent_id).unwrap();
    assert_eq!(uuid.get_version_num(), 7, "agent ids are UUIDv7");
    let secret1 = first["agent_secret"].as_str().unwrap().to_owned();
    assert!(secret1.starts_with("rmm_as_") && secret1.len() >= 7 + 43);
    assert_eq!(first["opamp_url"], format!("{}/v1/opamp", s.base));

    // Same host again: same agent, new credentials, the old secret stops working.
    let (st, second) = s
        .enroll(&token, "machine-1", "web-01-renamed", json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{second}");
    assert_eq!(second["agent_id"], agent_id.as_str());
    let secret2 = second["agent_secret"].as_str().unwrap().to_owned();
    assert_ne!(secret1, secret2);
    let db = s.db.connect().await;
    assert!(agents::authenticate(&db, &token_hash(&secret1))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        agents::authenticate(&db, &token_hash(&secret2))
            .await
            .unwrap()
            .unwrap()
            .id,
        agent_id
    );
    db.close().await;

    let list = s.get("/api/v1/agents", &s.admin).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "re-enrollment must not duplicate the agent: {list}"
    );
    let a = &items[0];
    assert_eq!(a["id"], agent_id.as_str());
    assert_eq!(a["hostname"], "web-01-renamed");
    assert_eq!(a["site_id"], site.as_str());
    assert_eq!(a["status"], "pending");
    assert_eq!(
        a["metrics_address"], "127.0.0.1:9464",
        "kept from the first enrollment"
    );
    // The token's labels win over the host's.
    assert_eq!(a["labels"], json!({"env": "prod"}));

    let tokens = s.get("/api/v1/enrollment-tokens", &s.admin).await;
    assert_eq!(tokens["items"][0]["uses"], 2);
    assert!(
        tokens["items"][0].get("token").is_none(),
        "the secret is never listed"
    );
    assert!(
        !tokens.to_string().contains(&token),
        "the secret is never listed"
    );

    // The binary's own metrics count it.
    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("rmm_cp_enrollments_total{result=\"success\"} 2"),
        "{text}"
    );
    assert!(text.contains(&format!("rmm_cp_agent_info{{agent=\"{agent_id}\",client=\"Acme Corp\",site=\"Head office\",host=\"web-01-renamed\",version=\"0.1.0\",os=\"linux\",arch=\"x86_64\"}} 1")), "{text}");
    assert!(
        text.contains(
            "rmm_cp_agents{client=\"Acme Corp\",site=\"Head office\",status=\"pending\"} 1"
        ),
        "{text}"
    );
    s.finish().await;
}

async fn binary_restarts_and_replicas_share_a_database(backend: Backend) {
    let mut s = Server::start_binary(&backend, &[]).await;
    let client = s.new_client("Persistent").await;
    s.shutdown().await;

    // Two replicas start together on the same database: migrations run twice, concurrently.
    let ((c1, b1), (c2, b2)) =
        tokio::join!(spawn_binary(&s.db.url, &[]), spawn_binary(&s.db.url, &[]));
    for base in [&b1, &b2] {
        let http = crate::common::http_client();
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // A login token from one replica works on the other (shared signing key).
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/clients/{client}"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["name"], "Persistent", "{v}");
    }
    drop((c1, c2));
    s.finish().await;
}
