//! Policy API over real HTTP, on SQLite and PostgreSQL: documents, assignments, effective
//! configuration with provenance, preview, tenancy, and bad input that changes nothing.

#[path = "api/common.rs"]
mod common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{assert_error, id, Backend, Server};

backend_tests!(
    layered_merge_with_provenance,
    bad_input_changes_nothing,
    client_scoped_callers,
    preview_saves_nothing
);

/// A client with two sites and an agent in each; returns (client, [site], [agent]).
async fn fleet(s: &Server, name: &str) -> (String, [String; 2], [String; 2]) {
    let c = s.new_client(name).await;
    let sites = [s.new_site(&c, "north").await, s.new_site(&c, "south").await];
    let a0 = s
        .new_agent(&sites[0], &format!("{name}-n1"), json!({}))
        .await
        .0;
    let a1 = s
        .new_agent(&sites[1], &format!("{name}-s1"), json!({}))
        .await
        .0;
    (c, sites, [a0, a1])
}

async fn policy(s: &Server, name: &str, doc: Value, client: Option<&str>) -> String {
    id(&s
        .create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": name, "document": doc, "client_id": client}),
        )
        .await)
}

async fn assign(
    s: &Server,
    policy: &str,
    scope: &str,
    target: Option<&str>,
    priority: i64,
) -> Value {
    s.create(
        &format!("/api/v1/policies/{policy}/assignments"),
        &s.admin,
        json!({"scope": scope, "target_id": target, "priority": priority}),
    )
    .await
}

async fn effective(s: &Server, agent: &str) -> Value {
    s.get(
        &format!("/api/v1/agents/{agent}/effective-config"),
        &s.admin,
    )
    .await
}

async fn layered_merge_with_provenance(backend: Backend) {
    let s = Server::start(&backend).await;
    let (c, sites, agents) = fleet(&s, "acme").await;
    let global = policy(
        &s,
        "baseline",
        json!({"schema_version": 1, "collect": {"interval": "15s", "top_processes": 10}, "otlp": {"endpoint": "http://collector:4318", "enabled": true}, "labels": {"tier": "std"}}),
        None,
    )
    .await;
    let client = policy(
        &s,
        "acme",
        json!({"labels": {"tier": "gold"}, "otlp": {"endpoint": null}}),
        Some(&c),
    )
    .await;
    let north = policy(
        &s,
        "north few procs",
        json!({"collect": {"top_processes": 3}}),
        Some(&c),
    )
    .await;
    let north_hi = policy(
        &s,
        "north fast",
        json!({"collect": {"interval": "5s"}}),
        Some(&c),
    )
    .await;
    assign(&s, &global, "global", None, 0).await;
    assign(&s, &client, "client", Some(&c), 0).await;
    assign(&s, &north, "site", Some(&sites[0]), 1).await;
    let a = assign(&s, &north_hi, "site", Some(&sites[0]), 2).await;
    assert_eq!(a["scope"], "site");
    assert_eq!(a["target_id"], sites[0].as_str());

    let n = effective(&s, &agents[0]).await;
    assert_eq!(
        n["config"],
        json!({"collect": {"interval": "5s", "top_processes": 3}, "otlp": {"enabled": true}, "labels": {"tier": "gold"}})
    );
    let p = &n["provenance"]["collect.top_processes"];
    assert_eq!(p["policy_id"], north.as_str());
    assert_eq!(p["policy_name"], "north few procs");
    assert_eq!(p["scope"], "site");
    assert_eq!(p["target_id"], sites[0].as_str());
    assert_eq!(p["overrode"]["value"], 10);
    assert_eq!(p["overrode"]["source"]["policy_id"], global.as_str());
    assert_eq!(n["provenance"]["otlp.endpoint"]["value"], Value::Null);
    assert_eq!(
        n["provenance"]["otlp.endpoint"]["policy_id"],
        client.as_str()
    );
    assert_eq!(n["provenance"]["labels.tier"]["overrode"]["value"], "std");
    assert_eq!(n["hash"].as_str().unwrap().len(), 64);
    let toml: toml::Table = n["toml"].as_str().unwrap().parse().unwrap();
    assert_eq!(toml["collect"]["top_processes"].as_integer(), Some(3));

    let south = effective(&s, &agents[1]).await;
    assert_eq!(south["config"]["collect"]["top_processes"], 10);
    assert_ne!(south["hash"], n["hash"]);

    // An agent-scope policy beats every site policy whatever its priority.
    let host = policy(
        &s,
        "this host",
        json!({"collect": {"top_processes": 50}}),
        Some(&c),
    )
    .await;
    assign(&s, &host, "agent", Some(&agents[0]), -5).await;
    assert_eq!(
        effective(&s, &agents[0]).await["config"]["collect"]["top_processes"],
        50
    );

    // Editing a policy changes the effective config; deleting it restores the site's value.
    let (st, v) = s
        .call(
            Method::PUT,
            &format!("/api/v1/policies/{host}"),
            Some(&s.admin),
            Some(json!({"name": "this host", "document": {"collect": {"top_processes": 60}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        effective(&s, &agents[0]).await["config"]["collect"]["top_processes"],
        60
    );
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/policies/{host}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        effective(&s, &agents[0]).await["config"]["collect"]["top_processes"],
        3
    );

    // Moving the agent to the other site changes what applies.
    let (st, v) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/agents/{}", agents[0]),
            Some(&s.admin),
            Some(json!({"site_id": sites[1]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        effective(&s, &agents[0]).await["config"]["collect"]["top_processes"],
        10
    );

    // Listing, assignments, unassigning, audit.
    let list = s.get("/api/v1/policies", &s.admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    let asg = s
        .get(
            &format!("/api/v1/policies/{north_hi}/assignments"),
            &s.admin,
        )
        .await;
    let aid = asg["items"][0]["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/policy-assignments/{aid}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(
            &format!("/api/v1/policies/{north_hi}/assignments"),
            &s.admin
        )
        .await["items"],
        json!([])
    );
    let audit = s
        .get("/api/v1/audit-log?target_type=policy&limit=100", &s.admin)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "policy.create",
        "policy.assign",
        "policy.update",
        "policy.delete",
        "policy.unassign",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    // The schema is served.
    let schema = s.get("/api/v1/policies/schema", &s.admin).await;
    assert_eq!(
        schema["properties"]["collect"]["anyOf"][0]["properties"]["top_processes"]["anyOf"][0]
            ["maximum"],
        1000
    );
    s.finish().await;
}

async fn bad_input_changes_nothing(backend: Backend) {
    let s = Server::start(&backend).await;
    let (c, sites, _) = fleet(&s, "acme").await;
    let p = policy(&s, "p", json!({"collect": {"top_processes": 5}}), Some(&c)).await;
    let other = policy(&s, "other", json!({}), Some(&c)).await;
    assign(&s, &p, "site", Some(&sites[0]), 1).await;
    let before = snapshot(&s).await;
    let post = |body: Value| s.call(Method::POST, "/api/v1/policies", Some(&s.admin), Some(body));
    assert_error(
        &post(json!({"name": "x", "document": {"collect": {"top_processes": 0}}})).await,
        422,
        "invalid_policy",
        "collect.top_processes: expected an integer between 1 and 1000",
    );
    assert_error(
        &post(json!({"name": "x", "document": {"collect": {"top_procs": 3}}})).await,
        422,
        "invalid_policy",
        "collect.top_procs: unknown field",
    );
    assert_error(
        &post(json!({"name": "x", "document": {"otlp": {"enabled": "yes"}}})).await,
        422,
        "invalid_policy",
        "otlp.enabled: expected true or false",
    );
    assert_error(
        &post(json!({"name": "x", "document": {"collect": {"interval": 15}}})).await,
        422,
        "invalid_policy",
        "collect.interval: expected a duration",
    );
    assert_error(
        &post(json!({"name": "x", "document": {"schema_version": 2}})).await,
        422,
        "invalid_policy",
        "schema_version",
    );
    assert_error(
        &post(json!({"name": "x", "document": [1]})).await,
        422,
        "invalid_policy",
        "document: expected an object",
    );
    assert_error(
        &post(json!({"name": "x", "document": {}, "extra": 1})).await,
        422,
        "invalid_body",
        "extra",
    );
    assert_error(
        &post(json!({"name": "p", "document": {}, "client_id": c})).await,
        409,
        "duplicate_name",
        "\"p\"",
    );
    let put = s.call(Method::PUT, &format!("/api/v1/policies/{p}"), Some(&s.admin),
        Some(json!({"name": "p", "document": {"updates": {"maintenance_window": {"days": ["funday"]}}}}))).await;
    assert_error(
        &put,
        422,
        "invalid_policy",
        "updates.maintenance_window.days",
    );
    // Two policies at one scope target with one priority.
    let dup = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{other}/assignments"),
            Some(&s.admin),
            Some(json!({"scope": "site", "target_id": sites[0], "priority": 1})),
        )
        .await;
    assert_error(&dup, 409, "priority_taken", "\"p\"");
    // Targets that do not exist.
    for scope in ["client", "site", "agent"] {
        let r = s.call(Method::POST, &format!("/api/v1/policies/{other}/assignments"), Some(&s.admin),
            Some(json!({"scope": scope, "target_id": "01900000-0000-7000-8000-000000000000", "priority": 3}))).await;
        assert_error(
            &r,
            422,
            "target_not_found",
            &format!("target_id: {scope} \"01900000-0000-7000-8000-000000000000\" does not exist"),
        );
    }
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{other}/assignments"),
            Some(&s.admin),
            Some(json!({"scope": "nowhere", "target_id": c, "priority": 3})),
        )
        .await;
    assert_eq!(r.0.as_u16(), 422, "{}", r.1);
    // A client's policy cannot be assigned globally.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{other}/assignments"),
            Some(&s.admin),
            Some(json!({"scope": "global", "priority": 3})),
        )
        .await;
    assert_error(&r, 422, "invalid_field", "cannot be assigned globally");
    let r = s
        .call(
            Method::POST,
            "/api/v1/policies/01900000-0000-7000-8000-000000000000/assignments",
            Some(&s.admin),
            Some(json!({"scope": "client", "target_id": c})),
        )
        .await;
    assert_error(&r, 404, "not_found", "policy");
    assert_eq!(
        before,
        snapshot(&s).await,
        "a refused request changed something"
    );
    s.finish().await;
}

/// Policies, their assignments, and the audit log.
async fn snapshot(s: &Server) -> Value {
    let mut out = s.snapshot().await;
    let policies = s.get("/api/v1/policies", &s.admin).await;
    let mut asg = Vec::new();
    for p in policies["items"].as_array().unwrap() {
        asg.push(
            s.get(
                &format!("/api/v1/policies/{}/assignments", p["id"].as_str().unwrap()),
                &s.admin,
            )
            .await,
        );
    }
    out["policies"] = policies;
    out["assignments"] = Value::Array(asg);
    out
}

async fn client_scoped_callers(backend: Backend) {
    let s = Server::start(&backend).await;
    let (a, a_sites, a_agents) = fleet(&s, "alpha").await;
    let (b, b_sites, _) = fleet(&s, "beta").await;
    let global = policy(&s, "msp", json!({"labels": {"msp": "yes"}}), None).await;
    assign(&s, &global, "global", None, 0).await;
    let pb = policy(&s, "beta only", json!({}), Some(&b)).await;
    let (_, op_a) = s.new_user("op-a@example.com", "operator", Some(&a)).await;
    // Created without client_id: the caller's client.
    let pa = s
        .create(
            "/api/v1/policies",
            &op_a,
            json!({"name": "alpha", "document": {"collect": {"cpu": false}}}),
        )
        .await;
    assert_eq!(pa["client_id"], a.as_str());
    let pa = id(&pa);
    // Sees only its client's policies.
    let list = s.get("/api/v1/policies", &op_a).await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![pa.as_str()]);
    for p in [&global, &pb] {
        let r = s
            .call(
                Method::GET,
                &format!("/api/v1/policies/{p}"),
                Some(&op_a),
                None,
            )
            .await;
        assert_error(&r, 404, "not_found", "policy");
        let r = s
            .call(
                Method::PUT,
                &format!("/api/v1/policies/{p}"),
                Some(&op_a),
                Some(json!({"name": "x", "document": {}})),
            )
            .await;
        assert_error(&r, 404, "not_found", "policy");
    }
    // May not assign globally, nor to another client's targets.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{pa}/assignments"),
            Some(&op_a),
            Some(json!({"scope": "global"})),
        )
        .await;
    assert_error(&r, 403, "forbidden", "all clients");
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{pa}/assignments"),
            Some(&op_a),
            Some(json!({"scope": "site", "target_id": b_sites[0]})),
        )
        .await;
    assert_error(&r, 422, "target_not_found", "site");
    let r = s
        .call(
            Method::POST,
            "/api/v1/policies",
            Some(&op_a),
            Some(json!({"name": "sneaky", "document": {}, "client_id": b})),
        )
        .await;
    assert_error(&r, 404, "not_found", "client");
    // The admin cannot apply one client's policy to another's site either.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{pb}/assignments"),
            Some(&s.admin),
            Some(json!({"scope": "site", "target_id": a_sites[0]})),
        )
        .await;
    assert_error(&r, 422, "invalid_field", "another client");
    // Own assignment works, and the effective config shows the global policy's provenance.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/policies/{pa}/assignments"),
            Some(&op_a),
            Some(json!({"scope": "site", "target_id": a_sites[0]})),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let e = s
        .get(
            &format!("/api/v1/agents/{}/effective-config", a_agents[0]),
            &op_a,
        )
        .await;
    assert_eq!(
        e["config"],
        json!({"collect": {"cpu": false}, "labels": {"msp": "yes"}})
    );
    assert_eq!(e["provenance"]["labels.msp"]["scope"], "global");
    let st = s.get("/api/v1/agents/config-status", &op_a).await;
    assert_eq!(st["items"].as_array().unwrap().len(), 2, "{st}");
    assert!(st["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["client_id"] == a.as_str()));
    assert_eq!(st["items"][0]["config_status"], "unknown");
    s.finish().await;
}

async fn preview_saves_nothing(backend: Backend) {
    let s = Server::start(&backend).await;
    let (c, sites, agents) = fleet(&s, "acme").await;
    let p = policy(
        &s,
        "site",
        json!({"collect": {"top_processes": 5}}),
        Some(&c),
    )
    .await;
    assign(&s, &p, "site", Some(&sites[0]), 0).await;
    let before = snapshot(&s).await;
    let eff_before = effective(&s, &agents[0]).await;
    // A changed document of an existing policy.
    let r = s.create_like_ok(json!({"policy_id": p, "document": {"collect": {"top_processes": 2}}, "agent_ids": agents})).await;
    let items = r["items"].as_array().unwrap();
    assert_eq!(items[0]["changed"], true);
    assert_eq!(items[0]["current"]["config"]["collect"]["top_processes"], 5);
    assert_eq!(items[0]["preview"]["config"]["collect"]["top_processes"], 2);
    assert_eq!(
        items[0]["preview"]["provenance"]["collect.top_processes"]["policy_id"],
        p.as_str()
    );
    assert_eq!(items[1]["changed"], false, "the other site is not affected");
    // A new policy with an assignment.
    let r = s.create_like_ok(json!({"document": {"labels": {"x": "y"}}, "assignment": {"scope": "site", "target_id": sites[1], "priority": 0}, "agent_ids": agents})).await;
    assert_eq!(r["items"][0]["changed"], false);
    assert_eq!(r["items"][1]["preview"]["config"]["labels"]["x"], "y");
    // Invalid document, unknown agent.
    let bad = s
        .call(
            Method::POST,
            "/api/v1/policies/preview",
            Some(&s.admin),
            Some(json!({"document": {"collect": {"top_processes": -1}}, "agent_ids": agents})),
        )
        .await;
    assert_error(&bad, 422, "invalid_policy", "collect.top_processes");
    let bad = s
        .call(
            Method::POST,
            "/api/v1/policies/preview",
            Some(&s.admin),
            Some(json!({"document": {}, "agent_ids": ["01900000-0000-7000-8000-000000000000"]})),
        )
        .await;
    assert_error(&bad, 404, "not_found", "agent");
    assert_eq!(before, snapshot(&s).await);
    assert_eq!(eff_before, effective(&s, &agents[0]).await);
    s.finish().await;
}

trait PreviewExt {
    async fn create_like_ok(&self, body: Value) -> Value;
}

impl PreviewExt for Server {
    async fn create_like_ok(&self, body: Value) -> Value {
        let (st, v) = self
            .call(
                Method::POST,
                "/api/v1/policies/preview",
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }
}
