//! The agent inventory: filters, paging, get, move, labels, delete (credentials revoked at
//! once), and the audit trail of every change.

use reqwest::{Method, StatusCode};
use rmm_control_plane::secrets::token_hash;
use rmm_control_plane::store;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{Backend, Server};

backend_tests!(
    agents_filter_page_move_and_delete,
    audit_log_records_every_change
);

fn hostnames(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["hostname"].as_str().unwrap().to_owned())
        .collect()
}

async fn agents_filter_page_move_and_delete(backend: Backend) {
    let s = Server::start(&backend).await;
    let acme = s.new_client("Acme").await;
    let globex = s.new_client("Globex").await;
    let hq = s.new_site(&acme, "HQ").await;
    let branch = s.new_site(&acme, "Branch").await;
    let g_site = s.new_site(&globex, "Plant").await;
    let (t_hq, tok_hq) = s
        .new_enrollment_token(&hq, json!({"max_uses": 50, "labels": {"env": "prod"}}))
        .await;
    let _ = t_hq;
    for i in 0..12 {
        let version = if i % 3 == 0 { "0.2.0" } else { "0.1.0" };
        let labels = if i % 2 == 0 {
            json!({"role": "web"})
        } else {
            json!({"role": "db"})
        };
        let body = json!({"agent_version": version, "labels": labels});
        let (st, v) = s
            .enroll(
                &tok_hq,
                &format!("hq-{i:02}"),
                &format!("Web-{i:02}.acme.lan"),
                body,
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (b_agent, b_secret) = s.new_agent(&branch, "db_01%", json!({})).await;
    let (g_agent, _) = s.new_agent(&g_site, "plc-01", json!({})).await;

    let all = s.get("/api/v1/agents", &s.admin).await;
    assert_eq!(all["total"], 14);
    for a in all["items"].as_array().unwrap() {
        for k in [
            "id",
            "hostname",
            "site_id",
            "status",
            "client_id",
            "os",
            "arch",
            "agent_version",
            "labels",
            "last_seen",
            "host_id",
        ] {
            assert!(a.get(k).is_some(), "agent lacks {k}: {a}");
        }
    }
    let q = |query: &str| {
        let s = &s;
        let path = format!("/api/v1/agents?{query}");
        async move { s.get(&path, &s.admin).await }
    };
    assert_eq!(q(&format!("client_id={globex}")).await["total"], 1);
    assert_eq!(q(&format!("site_id={branch}")).await["total"], 1);
    assert_eq!(q("status=pending").await["total"], 14);
    assert_eq!(q("status=online").await["total"], 0);
    assert_eq!(q("version=0.2.0").await["total"], 4);
    assert_eq!(q("label=role%3Dweb").await["total"], 6);
    assert_eq!(q("label=role%3Dweb,env%3Dprod").await["total"], 6);
    assert_eq!(q("label=env%3Dprod").await["total"], 12);
    assert_eq!(q("label=env%3Dstaging").await["total"], 0);
    // Free text: case-insensitive substring; LIKE wildcards in the input are literal.
    assert_eq!(q("q=WEB-0").await["total"], 10);
    assert_eq!(q("q=acme.lan").await["total"], 12);
    assert_eq!(hostnames(&q("q=%25").await), vec!["db_01%"]);
    assert_eq!(hostnames(&q("q=_").await), vec!["db_01%"]);
    assert_eq!(
        q(&format!("q=web&version=0.1.0&site_id={hq}")).await["total"],
        8
    );

    // Paging: stable order by host name, pages do not overlap.
    let p1 = q(&format!("limit=5&offset=0&client_id={acme}")).await;
    let p2 = q(&format!("limit=5&offset=5&client_id={acme}")).await;
    let p3 = q(&format!("limit=5&offset=10&client_id={acme}")).await;
    assert_eq!(
        (
            p1["total"].clone(),
            p1["limit"].clone(),
            p2["offset"].clone()
        ),
        (json!(13), json!(5), json!(5))
    );
    let mut seen: Vec<String> = [hostnames(&p1), hostnames(&p2), hostnames(&p3)].concat();
    assert_eq!(seen.len(), 13);
    let sorted = {
        let mut v = seen.clone();
        v.sort_by_key(|h| h.to_lowercase());
        v
    };
    assert_eq!(seen, sorted);
    seen.dedup();
    assert_eq!(seen.len(), 13);

    // Get one, move it to another site of the same client, then to another client.
    let a = s.get(&format!("/api/v1/agents/{b_agent}"), &s.admin).await;
    assert_eq!(a["site_id"], branch.as_str());
    assert_eq!(a["site_name"], "Branch");
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{b_agent}"),
            Some(&s.admin),
            Some(json!({"site_id": hq})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["site_id"], hq.as_str());
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{b_agent}"),
            Some(&s.admin),
            Some(json!({"site_id": g_site, "labels": {"moved": "yes"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["client_id"].as_str(), v["client_name"].as_str()),
        (Some(globex.as_str()), Some("Globex"))
    );
    assert_eq!(v["labels"], json!({"moved": "yes"}));
    assert_eq!(q("label=moved%3Dyes").await["total"], 1);
    // Moving into a client that already has the same host id is a conflict.
    let (_, tok_g) = s.new_enrollment_token(&g_site, json!({})).await;
    let (st, dup) = s.enroll(&tok_g, "hq-00", "dup", json!({})).await;
    assert_eq!(st, StatusCode::CREATED);
    let hq00 = q("q=web-00").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        dup["agent_id"].as_str().unwrap(),
        hq00,
        "same host id in another client is another agent"
    );
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{hq00}"),
            Some(&s.admin),
            Some(json!({"site_id": g_site})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "duplicate_host");

    // Delete: gone, and its secret stops working at once.
    let db = s.db.connect().await;
    assert!(store::agents::authenticate(&db, &token_hash(&b_secret))
        .await
        .unwrap()
        .is_some());
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{b_agent}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(store::agents::authenticate(&db, &token_hash(&b_secret))
        .await
        .unwrap()
        .is_none());
    db.close().await;
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/agents/{b_agent}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(
        q("label=moved%3Dyes").await["total"],
        0,
        "its labels went with it"
    );
    let _ = g_agent;
    s.finish().await;
}

async fn audit_log_records_every_change(backend: Backend) {
    let s = Server::start(&backend).await;
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "HQ").await;
    let (_, tok) = s.new_enrollment_token(&site, json!({})).await;
    let (st, e) = s.enroll(&tok, "h1", "h1", json!({})).await;
    assert_eq!(st, StatusCode::CREATED);
    let agent = e["agent_id"].as_str().unwrap();
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/sites/{site}"),
            Some(&s.admin),
            Some(json!({"name": "Head office"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{agent}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    s.create("/api/v1/api-tokens", &s.admin, json!({"name": "sd"}))
        .await;

    let log = s.get("/api/v1/audit-log", &s.admin).await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "api_token.create",
            "agent.delete",
            "site.update",
            "agent.enroll",
            "enrollment_token.create",
            "site.create",
            "client.create",
            "user.create"
        ],
        "{log}"
    );
    let items = log["items"].as_array().unwrap();
    let by = |action: &str| {
        items
            .iter()
            .find(|e| e["action"] == action)
            .unwrap()
            .clone()
    };
    let upd = by("site.update");
    assert_eq!(upd["actor_type"], "user");
    assert_eq!(upd["actor_name"], crate::common::ADMIN_EMAIL);
    assert_eq!(upd["source_ip"], "127.0.0.1");
    assert_eq!(upd["target_id"], site.as_str());
    assert_eq!(upd["client_id"], c.as_str());
    assert_eq!(
        upd["details"]["name"],
        json!({"old": "HQ", "new": "Head office"})
    );
    let enr = by("agent.enroll");
    assert_eq!(enr["actor_type"], "enrollment_token");
    assert_eq!(enr["details"]["hostname"], "h1");
    assert_eq!(by("user.create")["actor_type"], "cli");
    // No secret ever reaches the log.
    assert!(!log.to_string().contains(&tok));
    assert!(!log
        .to_string()
        .contains(e["agent_secret"].as_str().unwrap()));
    // Filters and paging.
    let f = s.get("/api/v1/audit-log?target_type=site", &s.admin).await;
    assert_eq!(f["total"], 2);
    let f = s
        .get(&format!("/api/v1/audit-log?target_id={agent}"), &s.admin)
        .await;
    assert_eq!(f["total"], 2);
    let p = s.get("/api/v1/audit-log?limit=3&offset=3", &s.admin).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 3);
    assert_eq!(p["items"][0]["action"], "agent.enroll");
    s.finish().await;
}
