//! The OpenAPI document matches the router: every documented operation is routed, every
//! route is documented, and the role matrix covers them all.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::common::{Backend, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_routes() {
    let s = Server::start(&Backend::Sqlite).await;
    let doc = s.get("/api/v1/openapi.json", &s.admin).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
    // The document itself is served outside the document.
    let matrix: BTreeSet<(String, String)> = crate::roles::matrix_routes()
        .into_iter()
        .filter(|(_, p)| p != "/api/v1/openapi.json")
        .collect();
    assert_eq!(
        documented, matrix,
        "documented routes vs the role matrix's routes"
    );

    // Every documented operation is routed: no "no such route" 404 and no 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "01900000-0000-7000-8000-000000000000");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (st, v) = s.call(m, &concrete, Some(&s.admin), None).await;
        assert_ne!(st.as_u16(), 405, "{method} {path}: {v}");
        assert!(
            !(st.as_u16() == 404 && v["error"]["message"] == "no such route"),
            "{method} {path} is not routed"
        );
    }
    // ... and something undocumented is not.
    let (st, v) = s
        .call(Method::GET, "/api/v1/secret-admin", Some(&s.admin), None)
        .await;
    assert_eq!(
        (st.as_u16(), v["error"]["message"].clone()),
        (404, Value::from("no such route"))
    );
    // Bearer security is declared, and request bodies have schemas.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let enroll = &doc["paths"]["/api/v1/enroll"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert!(enroll.to_string().contains("EnrollRequest"), "{enroll}");
    let schema = &doc["components"]["schemas"]["EnrollRequest"];
    for field in [
        "token",
        "host_id",
        "hostname",
        "os",
        "arch",
        "agent_version",
    ] {
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == field),
            "{field} required in {schema}"
        );
    }
    s.finish().await;
}
