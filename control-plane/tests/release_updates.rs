//! Agent updates end to end on the real control plane (SQLite and PostgreSQL), with real
//! OpAMP WebSocket agents built from rmm-opamp: a rollout offers `PackagesAvailable` only to
//! the agents it should (capability, maintenance window, concurrency cap), the offered agents
//! download the signed build with their secret, their reported statuses show up in the API
//! and /metrics, failures pause the rollout, an operator forces one agent outside its window,
//! and downgrades need the flag. Bad input (truncated upload, wrong architecture, unknown
//! channel, bad signature, too large, duplicate) is refused with a clear error and leaves
//! nothing stored; the watched directory imports good builds and marks bad ones.

#[path = "api/common.rs"]
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chrono::Datelike;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use rmm_control_plane::releases::signing::{self, ReleaseSignature, SecretKey};
use rmm_opamp::capabilities::agent as cap;
use rmm_opamp::proto::{
    AgentDescription, AgentToServer, PackageStatus, PackageStatuses, PackagesAvailable,
    ServerToAgent,
};
use rmm_opamp::{InstanceUid, Limits};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::{id, serve_file, sign_release, Backend, Server};

backend_tests!(
    rollout_end_to_end,
    bad_input_stores_nothing,
    offers_follow_the_injected_clock
);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const UPDATABLE: u64 = cap::REPORTS_STATUS
    | cap::ACCEPTS_PACKAGES
    | cap::REPORTS_PACKAGE_STATUSES
    | cap::REPORTS_HEARTBEAT;

struct Agent {
    id: String,
    secret: String,
    ws: Ws,
    uid: InstanceUid,
    seq: u64,
    caps: u64,
    offers: Vec<PackagesAvailable>,
}

impl Agent {
    async fn connect(s: &Server, id: &str, secret: &str, caps: u64, version: &str) -> Agent {
        let url = format!("{}/v1/opamp", s.base.replacen("http://", "ws://", 1));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut a = Agent {
            id: id.to_owned(),
            secret: secret.to_owned(),
            ws,
            uid: id.parse().unwrap(),
            seq: 0,
            caps,
            offers: Vec::new(),
        };
        let mut m = a.message();
        m.agent_description = Some(description(version));
        a.send(m).await;
        a
    }

    fn message(&mut self) -> AgentToServer {
        self.seq += 1;
        AgentToServer {
            instance_uid: self.uid.to_vec(),
            sequence_num: self.seq,
            capabilities: self.caps,
            ..Default::default()
        }
    }

    async fn send(&mut self, msg: AgentToServer) {
        self.ws
            .send(Message::Binary(rmm_opamp::ws::encode(&msg).into()))
            .await
            .unwrap();
    }

    /// Read what arrives within `secs`, keeping package offers.
    async fn drain(&mut self, secs: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Binary(b) = m {
                let msg: ServerToAgent =
                    rmm_opamp::ws::decode_server_to_agent(&b, &Limits::default()).unwrap();
                if let Some(p) = msg.packages_available {
                    self.offers.push(p);
                }
            }
        }
    }

    async fn report(&mut self, status: i32, has: &str, offered: &str, err: &str) {
        let mut m = self.message();
        let mut ps = PackageStatuses {
            ..Default::default()
        };
        ps.packages.insert(
            "rmm-agent".into(),
            PackageStatus {
                name: "rmm-agent".into(),
                agent_has_version: has.into(),
                server_offered_version: offered.into(),
                status,
                error_message: err.into(),
                ..Default::default()
            },
        );
        m.package_statuses = Some(ps);
        if status == 0 {
            m.agent_description = Some(description(has));
        }
        self.send(m).await;
    }
}

fn description(version: &str) -> AgentDescription {
    AgentDescription::default()
        .with_identifying("service.name", "io.rmm.agent")
        .with_identifying("service.version", version)
        .with_non_identifying("os.type", "linux")
        .with_non_identifying("host.arch", "amd64")
}

fn test_build() -> Vec<u8> {
    std::fs::read("/bin/true").expect("/bin/true")
}

async fn start(
    backend: &Backend,
    key: &SecretKey,
    watch: Option<&std::path::Path>,
) -> (Server, std::path::PathBuf) {
    let public = key.public().encode();
    let storage =
        std::env::temp_dir().join(format!("rmm-rel-store-{}", uuid::Uuid::new_v4().simple()));
    let watch = watch.map(|p| p.display().to_string());
    let dir = storage.clone();
    let s = Server::start_with(backend, move |c| {
        c.releases.signing_keys = vec![public];
        c.releases.storage_dir = Some(storage.display().to_string());
        c.releases.offer_interval_seconds = 1;
        c.releases.watch_dir = watch;
        c.releases.watch_interval_seconds = 1;
        c.releases.max_build_bytes = 1024 * 1024;
    })
    .await;
    (s, dir)
}

/// Files in the storage directory (none if it does not exist yet).
fn storage_files(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn rollout_end_to_end(backend: Backend) {
    let key = SecretKey::generate();
    let (s, _storage) = start(&backend, &key, None).await;
    let client = s.new_client("Acme").await;
    let site_a = s.new_site(&client, "Anytime").await;
    let site_b = s.new_site(&client, "Closed window").await;

    // Site B: a maintenance window on a day that is neither today nor yesterday (UTC).
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [((chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            .weekday()
            .num_days_from_monday()
            + 3)
            % 7) as usize];
    let policy = id(&s
        .create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "window", "client_id": client, "document": {"updates": {
                "maintenance_window": {"days": [day], "start": "01:00", "end": "02:00", "time_zone": "UTC"}}}}),
        )
        .await);
    s.create(
        &format!("/api/v1/policies/{policy}/assignments"),
        &s.admin,
        json!({"scope": "site", "target_id": site_b, "priority": 10}),
    )
    .await;

    // Enrollment hands out the signing key.
    let (_, token) = s.new_enrollment_token(&site_a, json!({})).await;
    let (st, v) = s.enroll(&token, "host-first", "first", json!({})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["signing_keys"], json!([key.public().encode()]));

    let data = test_build();
    let sha = hex::encode(signing::sha256_reader(&data[..]).unwrap());
    let (st, rel) = s
        .upload_release(Some(&s.admin), &key, &[("version", "2.0.0")], data.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rel}");
    let release_id = id(&rel);

    let mut agents = Vec::new();
    for i in 0..4 {
        let (aid, secret) = s.new_agent(&site_a, &format!("a{i}"), json!({})).await;
        agents.push(Agent::connect(&s, &aid, &secret, UPDATABLE, "1.0.0").await);
    }
    let (bid, bsecret) = s.new_agent(&site_b, "b0", json!({})).await;
    let mut in_window_closed = Agent::connect(&s, &bid, &bsecret, UPDATABLE, "1.0.0").await;
    let (nid, nsecret) = s.new_agent(&site_a, "nopkg", json!({})).await;
    let mut no_packages = Agent::connect(
        &s,
        &nid,
        &nsecret,
        cap::REPORTS_STATUS | cap::REPORTS_HEARTBEAT,
        "1.0.0",
    )
    .await;
    for a in agents.iter_mut() {
        a.drain(0.3).await;
    }
    assert!(agents.iter().all(|a| a.offers.is_empty()), "no rollout yet");

    // A rollout with a cap of 2 and auto-pause after 3 finished updates above 20 % bad.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(
                json!({"target_version": "2.0.0", "percent": 100, "max_concurrent": 2,
                "failure_percent": 20, "min_attempts": 3}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for _ in 0..4 {
        for a in agents.iter_mut() {
            a.drain(0.5).await;
        }
    }
    in_window_closed.drain(0.5).await;
    no_packages.drain(0.5).await;
    let offered: Vec<usize> = (0..4).filter(|i| !agents[*i].offers.is_empty()).collect();
    assert_eq!(offered.len(), 2, "the cap holds: {offered:?}");
    assert!(
        in_window_closed.offers.is_empty(),
        "outside its maintenance window"
    );
    assert!(no_packages.offers.is_empty(), "no AcceptsPackages");

    // The offer follows the contract; the build downloads with the agent's secret only.
    let first = offered[0];
    let p = &agents[first].offers[0];
    let pkg = &p.packages["rmm-agent"];
    assert_eq!(pkg.version, "2.0.0");
    let file = pkg.file.as_ref().unwrap();
    assert_eq!(hex::encode(&file.content_hash), sha);
    assert_eq!(
        file.download_url,
        format!("{}/api/v1/releases/{release_id}/build", s.base)
    );
    let sig_text = format!(
        "{}{}",
        signing::SIGNATURE_PREFIX,
        base64_std(&file.signature)
    );
    let sig = ReleaseSignature::parse(&sig_text).unwrap();
    let digest: [u8; 32] = file.content_hash.clone().try_into().unwrap();
    signing::verify_with_any(&[key.public()], &digest, &sig).unwrap();
    let resp = s
        .http
        .get(&file.download_url)
        .bearer_auth(&agents[first].secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
    let resp = s.http.get(&file.download_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Install scripts download with an enrollment token; people with the viewer role.
    let (_, viewer) = s.new_user("viewer@example.com", "viewer", None).await;
    for cred in [token.as_str(), viewer.as_str()] {
        let resp = s
            .http
            .get(&file.download_url)
            .bearer_auth(cred)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-length"],
            data.len().to_string().as_str()
        );
    }
    // ... but not with an expired or a revoked one.
    let (_, expired) = s
        .new_enrollment_token(&site_a, json!({"expires_in_seconds": 1}))
        .await;
    let (revoked_id, revoked) = s.new_enrollment_token(&site_a, json!({})).await;
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{revoked_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (cred, code) in [(&expired, "token_expired"), (&revoked, "token_revoked")] {
        let resp = s
            .http
            .get(&file.download_url)
            .bearer_auth(cred)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    let resp = s
        .http
        .get(&file.download_url)
        .bearer_auth("rmm_as_not-a-real-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // An offered agent that goes away keeps its slot of the cap; reconnecting, it is
    // offered again in the reply to its first message.
    let second = offered[1];
    let (sid, ssecret) = (agents[second].id.clone(), agents[second].secret.clone());
    agents[second].ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for a in agents.iter_mut() {
        if a.id != sid {
            a.drain(0.2).await;
        }
    }
    let now_offered = (0..4).filter(|i| !agents[*i].offers.is_empty()).count();
    assert_eq!(
        now_offered, 2,
        "a disconnected agent's update still counts against the cap"
    );
    agents[second] = Agent::connect(&s, &sid, &ssecret, UPDATABLE, "1.0.0").await;
    agents[second].drain(1.0).await;
    assert_eq!(
        agents[second].offers.len(),
        1,
        "offer repeated on reconnect"
    );

    // First offered agent: downloading, then installed. Second: rolled back.
    agents[first].report(4, "1.0.0", "2.0.0", "").await;
    agents[first].report(0, "2.0.0", "2.0.0", "").await;
    agents[second]
        .report(
            3,
            "1.0.0",
            "2.0.0",
            "rolled back: exited with status 1 at start",
        )
        .await;
    let status_of = |aid: String| {
        let s = &s;
        async move {
            s.get(&format!("/api/v1/agents/{aid}/update"), &s.admin)
                .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = status_of(agents[first].id.clone()).await;
        let b = status_of(agents[second].id.clone()).await;
        if a["update"]["status"] == "installed" && b["update"]["status"] == "rolled_back" {
            assert_eq!(
                b["update"]["reason"], "exited with status 1 at start",
                "{b}"
            );
            assert_eq!(a["update"]["version"], "2.0.0");
            break;
        }
        assert!(Instant::now() < deadline, "statuses not recorded: {a} {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two finished: the other two agents get their offers now (cap frees up).
    for _ in 0..6 {
        for a in agents.iter_mut() {
            a.drain(0.3).await;
        }
    }
    let rest: Vec<usize> = (0..4).filter(|i| !offered.contains(i)).collect();
    for i in &rest {
        assert!(!agents[*i].offers.is_empty(), "agent {i} not offered");
    }
    // One fails: 2 bad of 3 finished > 20 % → paused, with the reason stored.
    agents[rest[0]]
        .report(3, "1.0.0", "2.0.0", "sha256 mismatch: got 00")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get("/api/v1/rollouts/stable", &s.admin).await;
        if r["paused"] == true {
            assert!(
                r["pause_reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("automatic: 2 of 3"),
                "{r}"
            );
            assert_eq!(r["counts"]["installed"], 1, "{r}");
            assert_eq!(r["counts"]["rolled_back"], 1, "{r}");
            assert_eq!(r["counts"]["failed"], 1, "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "not paused: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = s.get("/api/v1/audit-log?limit=1000", &s.admin).await;
    assert!(audit.to_string().contains("rollout.pause"), "pause audited");

    // /metrics: per-agent update status and the latest release of the channel.
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "rmm_cp_agent_update_status{{agent=\"{}\",client=\"Acme\",site=\"Anytime\",host=\"a{first}\",status=\"installed\"}} 1",
            agents[first].id
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("agent=\"{}\"", agents[second].id)));
    assert!(metrics.contains("status=\"rolled_back\"} 1"));
    assert!(metrics.contains("rmm_cp_release_latest_info{channel=\"stable\",version=\"2.0.0\"} 1"));

    // Forced: the agent outside its window gets the offer at once.
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/v1/agents/{bid}/update"),
            Some(&s.admin),
            Some(json!({"version": "2.0.0"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    in_window_closed.drain(2.0).await;
    assert_eq!(in_window_closed.offers.len(), 1, "forced offer");

    // Downgrades need the flag: forcing 1.5.0 on an agent at 2.0.0, and moving the rollout back.
    let (st, v) = s
        .upload_release(Some(&s.admin), &key, &[("version", "1.5.0")], test_build())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/api/v1/agents/{}/update", agents[first].id),
            Some(&s.admin),
            Some(json!({"version": "1.5.0"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "downgrade", "{v}");
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "1.5.0", "percent": 100})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "downgrade", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("allow_downgrade"));
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "1.5.0", "percent": 100, "allow_downgrade": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["previous_version"], "2.0.0");
    // A release a rollout targets cannot be deleted.
    let r15 = s.get("/api/v1/releases?channel=stable", &s.admin).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.5.0")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/releases/{r15}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "release_in_use");
    s.finish().await;
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn bad_input_stores_nothing(backend: Backend) {
    let key = SecretKey::generate();
    let watch =
        std::env::temp_dir().join(format!("rmm-rel-watch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&watch).unwrap();
    let (s, storage) = start(&backend, &key, Some(&watch)).await;
    let data = test_build();
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    // Truncated: 1000 bytes of a declared 20000.
    let sig = sign_release(&key, &data);
    let query = format!(
        "version=3.0.0&os=linux&arch=x86_64&channel=stable&signature={}",
        sig.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let q2 = query.clone();
    let part = data[..1000].to_vec();
    let s_base = s.base.clone();
    let admin = s.admin.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let fake = FakeServer {
            base: s_base,
            admin,
        };
        fake.truncated(&q2, &part, 20000)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("truncated_upload"), "{answer}");
    assert!(answer.contains("received 1000 of 20000 bytes"), "{answer}");

    let zeros = "0".repeat(64);
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("version", "3.0.0"), ("arch", "aarch64")],
            data.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_architecture",
        ),
        (
            vec![("version", "3.0.0"), ("channel", "nightly")],
            data.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_channel",
        ),
        (
            vec![("version", "3.0")],
            data.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_release",
        ),
        (
            vec![("version", "3.0.0"), ("sha256", zeros.as_str())],
            data.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sha256_mismatch",
        ),
        (
            vec![("version", "3.0.0")],
            b"#!/bin/sh\nexit 0\n".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_executable",
        ),
    ];
    for (params, body, want, want_code) in cases {
        let (st, v) = s.upload_release(Some(&s.admin), &key, &params, body).await;
        assert_eq!(
            (st, code(&v).as_str()),
            (want, want_code),
            "{params:?}: {v}"
        );
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Larger than max_build_bytes (1 MiB): refused from the declared length, before the body
    // (raw HTTP, so the early answer is read rather than racing the client's upload).
    let q3 = query.clone();
    let s_base = s.base.clone();
    let admin = s.admin.clone();
    let answer = tokio::task::spawn_blocking(move || {
        FakeServer {
            base: s_base,
            admin,
        }
        .declared_only(&q3, 2 * 1024 * 1024)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("build_too_large"), "{answer}");

    // Signed by another key; a garbage signature.
    let other = SecretKey::generate();
    let (st, v) = s
        .upload_release(
            Some(&s.admin),
            &other,
            &[("version", "3.0.0")],
            data.clone(),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
        "{v}"
    );
    let (st, v) = s
        .upload_release(
            Some(&s.admin),
            &key,
            &[("version", "3.0.0"), ("signature", "rmm-ed25519-sig:AAAA")],
            data.clone(),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
        "{v}"
    );
    // Rollout to a version not in the catalog; unknown channel.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "3.0.0", "percent": 10})),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_release"),
        "{v}"
    );
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/nightly",
            Some(&s.admin),
            Some(json!({"target_version": "3.0.0", "percent": 10})),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_channel"),
        "{v}"
    );

    // Registered by URL: an answer other than 200, and bytes that are not the promised ones.
    let url = serve_file(data.clone()).await;
    let by_url = |url: String, sha: String| {
        json!({"version": "3.0.0", "os": "linux", "arch": "x86_64", "channel": "stable",
               "url": url, "sha256": sha, "signature": sign_release(&key, &data)})
    };
    let real_sha = hex::encode(signing::sha256_reader(&data[..]).unwrap());
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/releases/from-url",
            Some(&s.admin),
            Some(by_url(format!("{url}-missing"), real_sha.clone())),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::BAD_GATEWAY, "download_failed"),
        "{v}"
    );
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/releases/from-url",
            Some(&s.admin),
            Some(by_url(url.clone(), "1".repeat(64))),
        )
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "sha256_mismatch"),
        "{v}"
    );
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/releases/from-url",
            Some(&s.admin),
            Some(by_url("ftp://127.0.0.1/x".into(), real_sha.clone())),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Nothing stored so far: no release, no file in storage.
    let list = s.get("/api/v1/releases", &s.admin).await;
    assert_eq!(list["items"], json!([]), "{list}");
    assert_eq!(
        storage_files(&storage),
        Vec::<String>::new(),
        "leftover files"
    );

    // A good one, then the same again: 409.
    let (st, v) = s
        .upload_release(Some(&s.admin), &key, &[("version", "3.0.0")], data.clone())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .upload_release(Some(&s.admin), &key, &[("version", "3.0.0")], data.clone())
        .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::CONFLICT, "duplicate_release"),
        "{v}"
    );

    // The watched directory: a good build is imported (and removed), a bad one is marked.
    std::fs::write(watch.join("good"), &data).unwrap();
    std::fs::write(watch.join("good.sig"), sign_release(&key, &data)).unwrap();
    std::fs::write(
        watch.join("good.json"),
        r#"{"version": "3.1.0", "os": "linux", "arch": "x86_64", "channel": "beta"}"#,
    )
    .unwrap();
    std::fs::write(watch.join("bad"), &data).unwrap();
    std::fs::write(watch.join("bad.sig"), sign_release(&other, &data)).unwrap();
    std::fs::write(
        watch.join("bad.json"),
        r#"{"version": "3.2.0", "os": "linux", "arch": "x86_64", "channel": "beta"}"#,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let beta = s.get("/api/v1/releases?channel=beta", &s.admin).await;
        if watch.join("bad.rejected").exists() && beta["items"].as_array().unwrap().len() == 1 {
            assert_eq!(beta["items"][0]["version"], "3.1.0");
            assert!(!watch.join("good").exists());
            assert!(watch.join("bad").exists(), "a refused build stays");
            let note = std::fs::read_to_string(watch.join("bad.rejected")).unwrap();
            assert!(note.starts_with("bad_signature"), "{note}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watched directory not imported: {beta}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = s.get("/api/v1/releases", &s.admin).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    // Both releases are the same bytes: one stored file, named by its SHA-256.
    let sha = hex::encode(signing::sha256_reader(&data[..]).unwrap());
    assert_eq!(storage_files(&storage), vec![sha]);
    let _ = std::fs::remove_dir_all(&storage);
    let _ = std::fs::remove_dir_all(&watch);
    s.finish().await;
}

/// What the blocking truncated-upload client needs of the server.
struct FakeServer {
    base: String,
    admin: String,
}

impl FakeServer {
    /// Send only the head of an upload declaring `declared` bytes; return the answer.
    fn declared_only(&self, query: &str, declared: usize) -> String {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/releases?{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n",
            self.admin
        );
        tcp.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = tcp.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn truncated(&self, query: &str, body: &[u8], declared: usize) -> String {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/releases?{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n",
            self.admin
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(body).unwrap();
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out);
        out
    }
}

/// The offer round through the database and the OpAMP registry, with the planner's clock
/// under test control: nothing is offered outside the agents' maintenance window, everything
/// inside it.
async fn offers_follow_the_injected_clock(backend: Backend) {
    use chrono::TimeZone as _;
    use rmm_control_plane::releases::offers::{self, Clock, Releases};
    use std::sync::{Arc, Mutex};

    let key = SecretKey::generate();
    let public = key.public().encode();
    // Monday 2026-11-23, 12:00 UTC; the window is Mondays 22:00–23:00 UTC.
    let now = Arc::new(Mutex::new(
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap(),
    ));
    let clock_now = now.clone();
    let (s, state) = Server::start_state(
        &backend,
        |c| {
            c.releases.signing_keys = vec![public];
            c.releases.storage_dir = Some(
                std::env::temp_dir()
                    .join(format!("rmm-rel-clock-{}", uuid::Uuid::new_v4().simple()))
                    .display()
                    .to_string(),
            );
            // Rounds run when the test asks (and on connects, with the same clock).
            c.releases.offer_interval_seconds = 3600;
            c.releases.update_timeout_seconds = 2;
        },
        |st| {
            st.releases = Arc::new(Releases::new(Clock::new(move || {
                *clock_now.lock().unwrap()
            })));
        },
    )
    .await;
    let client = s.new_client("Clocked").await;
    let site = s.new_site(&client, "Main").await;
    let policy = id(&s
        .create(
            "/api/v1/policies",
            &s.admin,
            json!({"name": "monday nights", "client_id": client, "document": {"updates": {
                "maintenance_window": {"days": ["mon"], "start": "22:00", "end": "23:00", "time_zone": "UTC"}}}}),
        )
        .await);
    s.create(
        &format!("/api/v1/policies/{policy}/assignments"),
        &s.admin,
        json!({"scope": "client", "target_id": client, "priority": 10}),
    )
    .await;
    let (st, v) = s
        .upload_release(Some(&s.admin), &key, &[("version", "2.0.0")], test_build())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let mut agents = Vec::new();
    for i in 0..3 {
        let (aid, secret) = s.new_agent(&site, &format!("c{i}"), json!({})).await;
        agents.push(Agent::connect(&s, &aid, &secret, UPDATABLE, "1.0.0").await);
    }
    for a in agents.iter_mut() {
        a.drain(0.3).await;
    }
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "2.0.0", "percent": 100, "max_concurrent": 10})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // 12:00 and 21:59: closed.
    for (h, m) in [(12, 0), (21, 59), (23, 0)] {
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap();
        *now.lock().unwrap() = t;
        let offered = offers::round(&state, t).await.unwrap();
        assert!(
            offered.is_empty(),
            "{h}:{m:02} is outside the window: {offered:?}"
        );
    }
    for a in agents.iter_mut() {
        a.drain(0.5).await;
        assert!(a.offers.is_empty(), "offered outside the window");
    }
    // 22:30: open; every agent is offered, once.
    let t = chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 22, 30, 0)
        .unwrap();
    *now.lock().unwrap() = t;
    let mut offered = offers::round(&state, t).await.unwrap();
    offered.sort();
    let mut want: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    want.sort();
    assert_eq!(offered, want);
    assert!(
        offers::round(&state, t).await.unwrap().is_empty(),
        "in flight: not again"
    );
    for a in agents.iter_mut() {
        a.drain(1.0).await;
        assert_eq!(a.offers.len(), 1, "agent {}", a.id);
    }
    // Agents 0 and 1 report progress; agent 2 stays silent and its update times out.
    agents[0].report(4, "1.0.0", "2.0.0", "").await;
    agents[1].report(0, "2.0.0", "2.0.0", "").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    agents[0].report(2, "1.0.0", "2.0.0", "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    offers::round(&state, t).await.unwrap();
    let status = |i: usize| {
        let path = format!("/api/v1/agents/{}/update", agents[i].id);
        let s = &s;
        async move { s.get(&path, &s.admin).await["update"].clone() }
    };
    assert_eq!(status(0).await["status"], "downloading");
    assert_eq!(status(1).await["status"], "installed");
    let silent = status(2).await;
    assert_eq!(silent["status"], "failed", "{silent}");
    assert!(
        silent["reason"]
            .as_str()
            .unwrap()
            .starts_with("no status from the agent"),
        "{silent}"
    );
    s.finish().await;
}

/// The server refuses to start, naming the key, when a configured signing key does not parse.
#[test]
fn bad_signing_key_refuses_start() {
    let dir = std::env::temp_dir().join(format!("rmm-rel-key-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = SecretKey::generate().public().encode();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rmm-control-plane"))
        .arg("serve")
        .env("RMM_CP_LISTEN", "127.0.0.1:0")
        .env(
            "RMM_CP_DATABASE_URL",
            format!("sqlite://{}/rmm.db", dir.display()),
        )
        .env(
            "RMM_CP_RELEASES__SIGNING_KEYS",
            format!("{good},rmm-ed25519-public:not-base64"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad key: {stderr}");
    assert!(stderr.contains("releases.signing_keys[1]"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
