//! Prometheus HTTP service discovery: the JSON contract, and a real Prometheus 2.53 using
//! `deploy/prometheus/sd-example.yml` that discovers the agents with the expected labels.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::common::{require_tool, Backend, Server};

backend_tests!(
    sd_lists_agents_with_metrics_addresses,
    real_prometheus_discovers_agents
);

async fn sd_lists_agents_with_metrics_addresses(backend: Backend) {
    let s = Server::start(&backend).await;
    let (st, v) = s
        .call(Method::GET, "/api/v1/sd/prometheus", None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let token = s
        .create(
            "/api/v1/api-tokens",
            &s.admin,
            json!({"name": "prometheus"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // No agents: an empty array, still 200 with application/json.
    let resp = s
        .http
        .get(s.url("/api/v1/sd/prometheus"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    let c = s.new_client("Acme \"Inc\"").await;
    let site = s.new_site(&c, "HQ").await;
    let (a1, _) = s
        .new_agent(
            &site,
            "web-01",
            json!({"metrics_address": "10.0.0.12:9464"}),
        )
        .await;
    let (_a2, _) = s.new_agent(&site, "no-metrics", json!({})).await;
    let (a3, _) = s
        .new_agent(&site, "v6", json!({"metrics_address": "[::1]:9464"}))
        .await;
    let sd = s.get("/api/v1/sd/prometheus", &token).await;
    let groups = sd.as_array().unwrap();
    assert_eq!(
        groups.len(),
        2,
        "agents without a metrics address are skipped: {sd}"
    );
    let g1 = groups
        .iter()
        .find(|g| g["labels"]["agent"] == a1.as_str())
        .unwrap();
    assert_eq!(
        g1,
        &json!({"targets": ["10.0.0.12:9464"], "labels": {
            "instance": a1, "agent": a1, "client": "Acme \"Inc\"", "site": "HQ", "host": "web-01", "__metrics_path__": "/metrics"
        }})
    );
    assert!(groups
        .iter()
        .any(|g| g["labels"]["agent"] == a3.as_str() && g["targets"][0] == "[::1]:9464"));
    s.finish().await;
}

async fn real_prometheus_discovers_agents(backend: Backend) {
    let Some(prometheus) = require_tool("RMM_TEST_PROMETHEUS", "prometheus") else {
        return;
    };
    let s = Server::start(&backend).await;
    let token = s
        .create(
            "/api/v1/api-tokens",
            &s.admin,
            json!({"name": "prometheus", "role": "viewer"}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "HQ").await;
    // The agents' "metrics endpoint" is the control plane's own /metrics, so scrapes succeed.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let (a1, _) = s
        .new_agent(&site, "web-01", json!({"metrics_address": addr}))
        .await;
    let (a2, _) = s
        .new_agent(&site, "web-02", json!({"metrics_address": addr}))
        .await;
    let _ = s.new_agent(&site, "dark", json!({})).await;

    // deploy/prometheus/sd-example.yml with the URL and credentials file substituted.
    let dir = s.db.dir.join("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let cred = dir.join("rmm-sd.token");
    std::fs::write(&cred, &token).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/sd-example.yml"
    ))
    .unwrap();
    assert!(
        example.contains("http://127.0.0.1:8080/api/v1/sd/prometheus")
            && example.contains("/etc/prometheus/rmm-sd.token")
    );
    let config = example
        .replace(
            "http://127.0.0.1:8080/api/v1/sd/prometheus",
            &s.url("/api/v1/sd/prometheus"),
        )
        .replace("/etc/prometheus/rmm-sd.token", cred.to_str().unwrap())
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let api = format!("http://127.0.0.1:{port}/api/v1/targets");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let targets = loop {
        if let Ok(r) = s.http.get(&api).send().await {
            if let Ok(v) = r.json::<Value>().await {
                let active = v["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let up = active.iter().filter(|t| t["health"] == "up").count();
                if active.len() == 2 && up == 2 {
                    break active;
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not discover and scrape the two agents; log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (agent, host) in [(&a1, "web-01"), (&a2, "web-02")] {
        let t = targets
            .iter()
            .find(|t| t["labels"]["agent"] == agent.as_str())
            .expect("target for agent");
        assert_eq!(
            t["labels"],
            json!({"instance": agent, "agent": agent, "client": "Acme", "site": "HQ", "host": host, "job": "rmm-agent"}),
            "{t}"
        );
        assert_eq!(t["scrapeUrl"], format!("http://{addr}/metrics"));
        assert_eq!(
            t["discoveredLabels"]["__meta_url"],
            s.url("/api/v1/sd/prometheus")
        );
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    s.finish().await;
}
