//! Operations: `/metrics` passes `promtool check metrics`, rate limits, the CLI and its
//! settings errors, readiness.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::common::{assert_error, require_tool, Backend, Server, TestDb};

backend_tests!(
    credentials_expire,
    forwarded_for_is_used_only_when_trusted,
    metrics_pass_promtool,
    login_and_enroll_are_rate_limited,
    readyz_reports_a_lost_database
);

async fn metrics_pass_promtool(backend: Backend) {
    let Some(promtool) = require_tool("RMM_TEST_PROMTOOL", "promtool") else {
        return;
    };
    let s = Server::start(&backend).await;
    let c = s.new_client("Acme").await;
    let site = s.new_site(&c, "H\"Q\\1").await;
    s.new_agent(&site, "web-01", json!({})).await;
    let _ = s.call(Method::GET, "/api/v1/nowhere", None, None).await;
    let text = s.metrics_text().await;
    for family in [
        "rmm_cp_http_requests_total",
        "rmm_cp_http_request_duration_seconds_bucket",
        "rmm_cp_enrollments_total",
        "rmm_cp_agents{",
        "rmm_cp_agent_info{",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(
        text.contains("site=\"H\\\"Q\\\\1\""),
        "label values are escaped:\n{text}"
    );
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.finish().await;
}

async fn login_and_enroll_are_rate_limited(backend: Backend) {
    let s = Server::start_with(&backend, |c| {
        c.login_rate_per_minute = 3;
        c.enroll_rate_per_minute = 2;
    })
    .await; // the admin's login used one of the three
    let bad = json!({"email": "root@example.com", "password": "wrong-password"});
    for _ in 0..2 {
        let (st, _) = s
            .call(Method::POST, "/api/v1/auth/login", None, Some(bad.clone()))
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let resp = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Even the right password waits.
    let good = json!({"email": "root@example.com", "password": crate::common::ADMIN_PASSWORD});
    let r = s
        .call(Method::POST, "/api/v1/auth/login", None, Some(good))
        .await;
    assert_error(&r, 429, "rate_limited", "too many requests");

    let before = s.snapshot().await;
    for _ in 0..2 {
        let (st, _) = s.enroll("rmm_et_guess", "h", "h", json!({})).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    assert_error(
        &s.enroll("rmm_et_guess", "h", "h", json!({})).await,
        429,
        "rate_limited",
        "retry",
    );
    assert_eq!(before, s.snapshot().await);
    let text = s.metrics_text().await;
    assert!(
        text.contains("rmm_cp_enrollments_total{result=\"rate_limited\"} 1"),
        "{text}"
    );
    s.finish().await;
}

async fn readyz_reports_a_lost_database(backend: Backend) {
    let s = Server::start(&backend).await;
    let (st, _) = s.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    if let Backend::Postgres { admin_url } = &backend {
        // Take the database away under the server.
        let name =
            s.db.url
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned();
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
        let r = s.call(Method::GET, "/readyz", None, None).await;
        assert_error(&r, 503, "database_unavailable", "database");
        let (st, _) = s.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(
            st,
            StatusCode::OK,
            "liveness does not depend on the database"
        );
    }
    s.finish().await;
}

fn bin() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rmm-control-plane"));
    c.env_remove("RUST_LOG");
    c
}

#[tokio::test]
async fn cli_explains_itself_and_refuses_bad_settings() {
    let out = bin().arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "user", "RMM_CP_"] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let out = bin()
        .args(["user", "create", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--email", "--role", "--client-id", "--password"] {
        assert!(
            help.contains(word),
            "user create --help lacks {word}:\n{help}"
        );
    }

    let db = TestDb::new(&Backend::Sqlite).await;
    // An unknown environment setting is refused by name.
    let out = bin()
        .arg("serve")
        .env("RMM_CP_LISTN", "127.0.0.1:0")
        .env("RMM_CP_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RMM_CP_LISTN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An unknown file key too.
    let cfg = db.dir.join("cp.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\ndatabse_url = \"sqlite://x.db\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("databse_url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // user create: generated password printed, works for login; bad role refused.
    let out = bin()
        .args([
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--role",
            "operator",
        ])
        .env("RMM_CP_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password printed")
        .to_owned();
    assert!(password.len() >= 16);
    let out = bin()
        .args([
            "user",
            "create",
            "--email",
            "x@example.com",
            "--role",
            "root",
        ])
        .env("RMM_CP_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    let out = bin()
        .args([
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--role",
            "viewer",
            "--password",
            "password-123",
        ])
        .env("RMM_CP_DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "duplicate email refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The settings file and the generated password work end to end.
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n", db.url),
    )
    .unwrap();
    let (mut child, base) = {
        let mut cmd = bin();
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut addr = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening addr=").nth(1) {
                addr = Some(rest.trim().to_owned());
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (child, format!("http://{}", addr.expect("listening line")))
    };
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "ops@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let _ = child.start_kill();
    let _ = child.wait().await;
    db.remove().await;
}

async fn forwarded_for_is_used_only_when_trusted(backend: Backend) {
    for trusted in [false, true] {
        let s = Server::start_with(&backend, |c| {
            c.trust_forwarded_for = trusted;
            c.login_rate_per_minute = 3;
        })
        .await; // the admin's login used one
        let login = |xff: &'static str| {
            let req = s
                .http
                .post(s.url("/api/v1/auth/login"))
                .header("x-forwarded-for", xff)
                .json(&json!({"email": "nobody@example.com", "password": "password-123"}));
            async move { req.send().await.unwrap().status() }
        };
        assert_eq!(login("192.0.2.1").await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            login("192.0.2.1, 127.0.0.1").await,
            StatusCode::UNAUTHORIZED
        );
        // Trusted: another forwarded address has a bucket of its own. Untrusted: the header
        // is ignored and every request counts against the peer address.
        let third = login("192.0.2.2").await;
        let want = if trusted {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(third, want, "trusted={trusted}");
        let resp = s
            .http
            .post(s.url("/api/v1/clients"))
            .bearer_auth(&s.admin)
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"name": "Acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let log = s
            .get("/api/v1/audit-log?action=client.create", &s.admin)
            .await;
        let want_ip = if trusted { "198.51.100.7" } else { "127.0.0.1" };
        assert_eq!(log["items"][0]["source_ip"], want_ip, "trusted={trusted}");
        s.finish().await;
    }
}

async fn credentials_expire(backend: Backend) {
    let s = Server::start_with(&backend, |c| c.jwt_ttl_seconds = 1).await;
    let jwt = s
        .login(crate::common::ADMIN_EMAIL, crate::common::ADMIN_PASSWORD)
        .await;
    let api = s
        .create(
            "/api/v1/api-tokens",
            &jwt,
            json!({"name": "short", "expires_in_seconds": 1}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _) = s
        .call(Method::GET, "/api/v1/clients", Some(&api), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .call(Method::GET, "/api/v1/clients", Some(&jwt), None)
        .await;
    assert_error(&r, 401, "token_expired", "log in again");
    let r = s
        .call(Method::GET, "/api/v1/clients", Some(&api), None)
        .await;
    assert_error(&r, 401, "token_invalid", "expired");
    // Tampered and foreign tokens.
    let mut forged = jwt.clone();
    forged.pop();
    forged.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    let r = s
        .call(Method::GET, "/api/v1/clients", Some(&forged), None)
        .await;
    assert_error(&r, 401, "token_invalid", "not a valid");
    let r = s
        .call(Method::GET, "/api/v1/clients", Some("rmm_at_forged"), None)
        .await;
    assert_error(&r, 401, "token_invalid", "unknown");
    let resp = s
        .http
        .get(s.url("/api/v1/clients"))
        .header("authorization", "Basic cm9vdDpyb290")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    s.finish().await;
}

#[test]
fn example_settings_file_is_valid() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/control-plane.toml"
    ));
    let c = rmm_control_plane::config::Config::load_from(Some(path), Vec::new())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.database_url, "sqlite://./data/rmm.db");
}
