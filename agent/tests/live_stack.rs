//! The whole stack on live data (issue 8): a real control plane (SQLite) with two clients, a
//! policy each and two enrolled agents — one scraped by Prometheus through the control plane's
//! HTTP service discovery, one pushing OTLP into VictoriaMetrics — and a real Prometheus 2.53
//! loaded with `deploy/prometheus/prometheus.yml` (a copy with only ports, paths and intervals
//! substituted) plus the federation job of `deploy/prometheus/victoria-federate.yml`, which
//! brings the pushed series into the same Prometheus (Debian's Prometheus has no OTLP
//! receiver). Then `dashboards/run_queries.py` runs every panel and variable query of every
//! dashboard, for the scraped host and for the pushed host, and every alert expression through
//! Prometheus's HTTP API: all must parse, and every query must return data unless
//! `dashboards/expected-empty.json` lists it with its reason.
//!
//! The release series are real too: the control plane is configured with a release key made
//! by the test, a signed, stamped copy of the agent is published with a stable rollout
//! (`rmm_cp_release_latest_info`), and both agents are forced to update to it. They run from
//! their own copies of the binary and allow only 1 MiB downloads
//! (`updates.max_download_bytes`), so they refuse the build and report the update failed
//! (`rmm_cp_agent_update_status{status="failed"}`): a real offer, download attempt and status
//! report, with nothing replaced.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::control_plane::{Api, ControlPlane};
use common::update::{stamped, ReleaseKey};
use common::*;
use serde_json::{json, Value};

/// `rmm-agent` run from its own copy in `dir/name` (an update replaces the running binary,
/// never the built one), without the caller's `RMM_AGENT_*` environment.
fn agent_copy(dir: &Path, name: &str) -> (Command, PathBuf) {
    let bin = dir.join(name).join("rmm-agent");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(agent_bin(), &bin).unwrap();
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RMM_AGENT_")) {
        cmd.env_remove(k);
    }
    (cmd, bin)
}

/// The version of the release the test publishes (newer than the built agent).
const RELEASE_VERSION: &str = "99.1.0";

/// Publishes a stamped copy of the built agent as `RELEASE_VERSION` on the stable channel,
/// signed with `key`, and makes it the stable rollout's target (at 0 %: nothing is offered
/// by the rollout itself).
async fn publish_release(api: &Api, key: &ReleaseKey, dir: &Path) {
    let build = std::fs::read(stamped(dir, "rmm-agent-release", RELEASE_VERSION)).unwrap();
    let signature = key.signature_text(&build);
    let (status, v) = api
        .upload_release(build, RELEASE_VERSION, "stable", &signature)
        .await;
    assert_eq!(status, 201, "upload: {v}");
    let r = api
        .http
        .put(format!("{}/api/v1/rollouts/stable", api.base))
        .bearer_auth(&api.jwt)
        .json(&json!({"target_version": RELEASE_VERSION, "percent": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "rollout: {}", r.text().await.unwrap());
}

/// `text` with `from` replaced by `to`, which must occur: a changed deploy file fails loudly.
fn subst(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{from:?} not found in the deploy config"
    );
    text.replace(from, to)
}

/// `deploy/prometheus/prometheus.yml` for this test, with the federation job appended.
fn prometheus_config(
    cp: &str,
    prom: &str,
    victoria: &str,
    token_file: &Path,
    alertmanager: &str,
) -> String {
    let root = repo_root();
    let base = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap();
    let alerts = root.join("alerts").canonicalize().unwrap();
    let mut c = subst(
        &base,
        "http://127.0.0.1:8080/api/v1/sd/prometheus",
        &format!("http://{cp}/api/v1/sd/prometheus"),
    );
    c = subst(
        &c,
        r#"targets: ["127.0.0.1:8080"]"#,
        &format!(r#"targets: ["{cp}"]"#),
    );
    c = subst(
        &c,
        r#"targets: ["127.0.0.1:9090"]"#,
        &format!(r#"targets: ["{prom}"]"#),
    );
    c = subst(
        &c,
        r#"targets: ["127.0.0.1:9093"]"#,
        &format!(r#"targets: ["{alertmanager}"]"#),
    );
    c = subst(
        &c,
        "credentials_file: rmm-sd.token",
        &format!("credentials_file: {}", token_file.display()),
    );
    c = subst(
        &c,
        "../../alerts/*.rules.yml",
        &format!("{}/*.rules.yml", alerts.display()),
    );
    c = subst(&c, "scrape_interval: 15s", "scrape_interval: 1s");
    c = subst(&c, "scrape_timeout: 10s", "scrape_timeout: 1s");
    c = subst(&c, "evaluation_interval: 15s", "evaluation_interval: 1s");
    c = subst(&c, "refresh_interval: 30s", "refresh_interval: 1s");
    // scrape_configs is prometheus.yml's last section: the federation job joins its list.
    let last_top_level = c
        .lines()
        .rfind(|l| !l.starts_with([' ', '#']) && !l.is_empty())
        .unwrap();
    assert_eq!(last_top_level, "scrape_configs:", "prometheus.yml layout");
    let fed =
        std::fs::read_to_string(root.join("deploy/prometheus/victoria-federate.yml")).unwrap();
    let (_, jobs) = fed.split_once("scrape_configs:\n").unwrap();
    let jobs = subst(
        jobs,
        r#"targets: ["127.0.0.1:8428"]"#,
        &format!(r#"targets: ["{victoria}"]"#),
    );
    let jobs = subst(&jobs, "scrape_interval: 15s", "scrape_interval: 1s");
    format!("{c}\n{jobs}")
}

/// One instant query; the result vector (empty on any error).
fn query(prom: std::net::SocketAddr, q: &str) -> Vec<Value> {
    let Ok((200, body)) = http_get(prom, &format!("/api/v1/query?query={}", urlencode(q))) else {
        return Vec::new();
    };
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

struct Stack {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    _children: Vec<ChildGuard>,
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> ChildGuard {
    ChildGuard::spawn(
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap()),
    )
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "control-plane.log",
        "agent-scraped.log",
        "agent-otlp.log",
        "prometheus.log",
        "victoria.log",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        out += &format!("--- {name} (last lines)\n");
        for l in tail.into_iter().rev() {
            out += l;
            out.push('\n');
        }
    }
    out
}

fn run_queries(prom: &str, vars: &[(&str, &str)], arrival: &str, rules: bool, dir: &Path) {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("dashboards/run_queries.py"))
        .args(["--prometheus", prom, "--arrival", arrival])
        .args(["--var", "__range=5m", "--step", "5s"]);
    for (k, v) in vars {
        cmd.args(["--var", &format!("{k}={v}")]);
    }
    if rules {
        cmd.args(["--rules", "--rules-wait", "20"]);
    }
    let out = cmd.output().expect("python3 dashboards/run_queries.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "run_queries.py for {vars:?} ({arrival}) failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs(dir)
    );
    // It ran queries and most had data (a silent no-op would pass the exit code).
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("run_queries.py: "))
        .unwrap_or_default();
    assert!(summary.contains(" with data"), "{summary}");
}

#[tokio::test(flavor = "current_thread")]
async fn every_dashboard_query_and_alert_rule_on_live_agents() {
    let prometheus = tool("prometheus", "RMM_TEST_PROMETHEUS");
    let promtool = tool("promtool", "RMM_TEST_PROMTOOL");
    let victoria = tool("victoria-metrics", "RMM_TEST_VICTORIA_METRICS");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let started = Instant::now();

    // Control plane with a release key: two clients with a site, an enrollment token and a
    // policy each.
    let release_key = ReleaseKey::new(77);
    let release_public = release_key.public_text();
    let storage = dir.join("releases");
    let cp = ControlPlane::with_env(
        &dir,
        &[
            ("RMM_CP_RELEASES__SIGNING_KEYS", &release_public),
            ("RMM_CP_RELEASES__STORAGE_DIR", storage.to_str().unwrap()),
        ],
    );
    let api = Api::login(&cp.base).await;
    let mut tokens = Vec::new();
    for (client, site) in [("Acme", "HQ"), ("Globex", "Lab")] {
        let c = api.post("/api/v1/clients", json!({"name": client})).await;
        let cid = c["id"].as_str().unwrap().to_owned();
        let s = api
            .post(
                &format!("/api/v1/clients/{cid}/sites"),
                json!({"name": site}),
            )
            .await;
        let t = api
            .post("/api/v1/enrollment-tokens", json!({"site_id": s["id"]}))
            .await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
        let p = api
            .post(
                "/api/v1/policies",
                json!({"name": format!("{client} live"), "client_id": cid,
                       "document": {"schema_version": 1, "collect": {"top_processes": 5}}}),
            )
            .await;
        api.post(
            &format!("/api/v1/policies/{}/assignments", p["id"].as_str().unwrap()),
            json!({"scope": "client", "target_id": cid}),
        )
        .await;
    }
    // Service discovery credentials, as deploy/prometheus/README.md says: a viewer API token.
    let sd = api
        .post(
            "/api/v1/api-tokens",
            json!({"name": "prometheus-sd", "role": "viewer"}),
        )
        .await;
    let token_file = dir.join("rmm-sd.token");
    std::fs::write(&token_file, sd["token"].as_str().unwrap()).unwrap();

    let mut children = Vec::new();
    // VictoriaMetrics: the OTLP backend.
    let vm_port = free_port();
    let vm_addr = format!("127.0.0.1:{vm_port}");
    children.push(spawn_logged(
        Command::new(&victoria)
            .arg(format!("-httpListenAddr={vm_addr}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.join("vm-data").display()
            ))
            .arg("-opentelemetry.usePrometheusNaming")
            .arg("-retentionPeriod=1d")
            .arg("-search.latencyOffset=0s")
            .arg("-loggerLevel=ERROR"),
        &dir.join("victoria.log"),
    ));
    assert!(
        poll(Duration::from_secs(20), Duration::from_millis(100), || {
            matches!(http_get(vm_addr.parse().unwrap(), "/health"), Ok((200, _))).then_some(())
        })
        .is_some(),
        "VictoriaMetrics did not start\n{}",
        logs(&dir)
    );

    // Agent 1, Acme/HQ: scraped. Enrolled with its metrics address, so the SD lists it.
    let scraped_port = free_port();
    let scraped_listen = format!("127.0.0.1:{scraped_port}");
    let state1 = dir.join("state-scraped");
    let out = agent_command()
        .args(["enroll", "--server", &cp.base])
        .env("RMM_ENROLL_TOKEN", &tokens[0])
        .arg("--state-dir")
        .arg(&state1)
        .env("RMM_AGENT_PROMETHEUS_LISTEN", &scraped_listen)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own binary copy; no build over 1 MiB (the forced update below fails).
    let (mut run1, agent1_bin) = agent_copy(&dir, "bin-scraped");
    children.push(spawn_logged(
        run1.args(["run", "--state-dir"])
            .arg(&state1)
            .env("RMM_AGENT_PROMETHEUS_LISTEN", &scraped_listen)
            .env("RMM_AGENT_UPDATES_MAX_DOWNLOAD_BYTES", "1048576")
            .env("RMM_AGENT_COLLECT_INTERVAL", "1s")
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s"),
        &dir.join("agent-scraped.log"),
    ));

    // Agent 2, Globex/Lab: OTLP only (no /metrics, so the SD does not list it). Its own binary
    // copy; no build over 1 MiB.
    let state2 = dir.join("state-otlp");
    let config2 = dir.join("agent-otlp.toml");
    std::fs::write(
        &config2,
        format!(
            "[collect]\ninterval = \"1s\"\n[prometheus]\nenabled = false\n\
             [otlp]\nenabled = true\nendpoint = \"http://{vm_addr}/opentelemetry\"\n\
             attributes = {{ client = \"Globex\", site = \"Lab\" }}\n\
             [control]\nheartbeat_interval = \"1s\"\n\
             [updates]\nmax_download_bytes = 1048576\n"
        ),
    )
    .unwrap();
    let out = agent_command()
        .args(["enroll", "--server", &cp.base, "--config"])
        .arg(&config2)
        .arg("--state-dir")
        .arg(&state2)
        .env("RMM_ENROLL_TOKEN", &tokens[1])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut run2, agent2_bin) = agent_copy(&dir, "bin-otlp");
    children.push(spawn_logged(
        run2.args(["run", "--config"])
            .arg(&config2)
            .arg("--state-dir")
            .arg(&state2),
        &dir.join("agent-otlp.log"),
    ));

    // The release series: publish a signed release with a rollout, force both agents to it
    // and wait for their own reports that the update failed (the build is over their limit).
    publish_release(&api, &release_key, &dir).await;
    for (state, bin) in [(&state1, &agent1_bin), (&state2, &agent2_bin)] {
        let identity: Value =
            serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
        let agent = identity["agent_id"].as_str().unwrap().to_owned();
        api.wait_for(&agent, Duration::from_secs(20), "online", |a| {
            a["status"] == "online"
        })
        .await;
        api.post(
            &format!("/api/v1/agents/{agent}/update"),
            json!({"version": RELEASE_VERSION}),
        )
        .await;
        let t = Instant::now();
        let update = loop {
            let v = api.get(&format!("/api/v1/agents/{agent}/update")).await;
            if v["update"]["status"] == "failed" {
                break v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the forced update did not fail: {v}\n{}",
                logs(&dir)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let reason = update["update"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("max_download_bytes"), "{update}");
        assert_eq!(
            std::fs::read(bin).unwrap(),
            std::fs::read(agent_bin()).unwrap(),
            "the refused update replaced nothing"
        );
    }

    // Prometheus 2.53 with the deploy/ configuration.
    let prom_port = free_port();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let config = prometheus_config(
        &format!("127.0.0.1:{}", cp.port),
        &prom_addr,
        &vm_addr,
        &token_file,
        &format!("127.0.0.1:{}", free_port()),
    );
    let config_file = dir.join("prometheus.yml");
    std::fs::write(&config_file, &config).unwrap();
    let check = Command::new(&promtool)
        .args(["check", "config"])
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check config:\n{}{}\n{config}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    children.push(spawn_logged(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--log.level=warn"),
        &dir.join("prometheus.log"),
    ));
    let stack = Stack {
        _tmp: tmp,
        dir: dir.clone(),
        _children: children,
    };

    // Both hosts' series, with rates, and the control plane's view, are in Prometheus; the
    // policies have been applied (rmm_cp_agent_config_status). Polled, never slept.
    let prom: std::net::SocketAddr = prom_addr.parse().unwrap();
    let wanted = [
        r#"rate(system_cpu_time_seconds_total{job="rmm-agent", client="Acme", site="HQ"}[1m])"#,
        r#"rate(system_cpu_time_seconds_total{job="rmm-agent", client="Globex", site="Lab"}[1m])"#,
        r#"process_memory_usage_bytes{job="rmm-agent", client="Globex", process_executable_name="other"}"#,
        r#"up{job="rmm-agent", client="Acme"} == 1"#,
        r#"rmm_cp_agent_config_status{job="rmm-control-plane", client="Acme", status="applied"}"#,
        r#"rmm_cp_agent_config_status{job="rmm-control-plane", client="Globex", status="applied"}"#,
        r#"count(rmm_cp_agent_info{job="rmm-control-plane"}) == 2"#,
        r#"rmm_cp_release_latest_info{job="rmm-control-plane", channel="stable", version="99.1.0"}"#,
        r#"rmm_cp_agent_update_status{job="rmm-control-plane", client="Acme", status="failed"}"#,
        r#"rmm_cp_agent_update_status{job="rmm-control-plane", client="Globex", status="failed"}"#,
        // The processes dashboard's history uses a subquery at a 15 s resolution: it has data
        // once a 15 s-aligned evaluation time has passed since the first samples.
        r#"max_over_time((sum by (client) (process_cpu_utilization_ratio{job="rmm-agent", client="Acme"}))[5m:15s])"#,
        r#"max_over_time((sum by (client) (process_cpu_utilization_ratio{job="rmm-agent", client="Globex"}))[5m:15s])"#,
    ];
    for q in wanted {
        let found = poll(Duration::from_secs(45), Duration::from_millis(250), || {
            (!query(prom, q).is_empty()).then_some(())
        });
        assert!(
            found.is_some(),
            "no data for {q} after {:?}\n{}",
            started.elapsed(),
            logs(&stack.dir)
        );
    }
    // Pushed series carry exactly the labels scraped ones do: job and instance from
    // service.name / service.instance.id, no leftover resource attributes.
    let pushed = query(
        prom,
        r#"system_uptime_seconds{job="rmm-agent", client="Globex"}"#,
    );
    let labels = pushed[0]["metric"].as_object().unwrap();
    let mut names: Vec<&str> = labels.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["__name__", "agent", "client", "host", "instance", "job", "site"],
        "{pushed:?}"
    );
    assert_eq!(labels["instance"], labels["agent"]);

    // The hosts' names, as the control plane labels them.
    let agents = api.get("/api/v1/agents").await;
    let host_of = |client_site: &str| -> String {
        let q = format!(r#"rmm_cp_agent_info{{{client_site}}}"#);
        query(prom, &q)[0]["metric"]["host"]
            .as_str()
            .unwrap_or_else(|| panic!("{q}: {agents}"))
            .to_owned()
    };
    let host_scraped = host_of(r#"client="Acme""#);
    let host_pushed = host_of(r#"client="Globex""#);

    let prom_url = format!("http://{prom_addr}");
    run_queries(
        &prom_url,
        &[("client", "Acme"), ("site", "HQ"), ("host", &host_scraped)],
        "scrape",
        true,
        &stack.dir,
    );
    run_queries(
        &prom_url,
        &[
            ("client", "Globex"),
            ("site", "Lab"),
            ("host", &host_pushed),
        ],
        "otlp",
        false,
        &stack.dir,
    );
    println!("live stack checked in {:?}", started.elapsed());
    drop(cp);
}
