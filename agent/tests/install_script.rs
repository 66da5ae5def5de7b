//! `deploy/install/install-agent.sh` run for real (`sh`, `--prefix` into a temp dir,
//! `--no-systemd`, `--binary` = the built agent) against the real control plane, and the
//! systemd units of `deploy/systemd/`.
//!
//! Failure reports: the script reports a failure with the enrollment token it was given. An
//! unknown (or revoked) token cannot authenticate the report, so the control plane refuses it
//! (401) and the script only prints the failure locally, exiting 1; a token that expired less
//! than 7 days ago still authenticates the report, so "the token expired" reaches the list.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::control_plane::{control_plane_bin, Api, ControlPlane};
use common::*;
use serde_json::{json, Value};

fn script() -> PathBuf {
    repo_root().join("deploy/install/install-agent.sh")
}

/// Runs the script with `sh`, the token in the environment as documented.
fn install(server: &str, token: &str, prefix: &Path, extra: &[&str]) -> Output {
    let out = Command::new("sh")
        .arg(script())
        .args(["--server", server, "--prefix"])
        .arg(prefix)
        .args(extra)
        .env("RMM_ENROLL_TOKEN", token)
        .env_remove("RMM_SERVER")
        .output()
        .unwrap();
    eprintln!(
        "install-agent.sh exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cp: ControlPlane,
    api: Api,
    client: String,
    site: String,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let cp = ControlPlane::new(&dir);
    let api = Api::login(&cp.base).await;
    let c = api.post("/api/v1/clients", json!({"name": "Acme"})).await;
    let client = c["id"].as_str().unwrap().to_owned();
    let s = api
        .post(
            &format!("/api/v1/clients/{client}/sites"),
            json!({"name": "HQ"}),
        )
        .await;
    let site = s["id"].as_str().unwrap().to_owned();
    Setup {
        _tmp: tmp,
        dir,
        cp,
        api,
        client,
        site,
    }
}

impl Setup {
    async fn token(&self, extra: Value) -> (String, String) {
        let mut body = json!({"site_id": self.site});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let t = self.api.post("/api/v1/enrollment-tokens", body).await;
        (
            t["id"].as_str().unwrap().to_owned(),
            t["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn reports(&self) -> Vec<Value> {
        self.api
            .get(&format!("/api/v1/install-reports?site_id={}", self.site))
            .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn installs_enrolls_and_reports_success() {
    let s = setup().await;
    let (_, token) = s.token(json!({})).await;
    let prefix = s.dir.join("root");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let out = install(
        &s.cp.base,
        &token,
        &prefix,
        &["--binary", agent_bin(), "--no-systemd", "--listen", &listen],
    );
    assert!(out.status.success());

    // Layout and modes.
    let state = prefix.join("var/lib/rmm-agent");
    let bin = state.join("bin/rmm-agent");
    let config = prefix.join("etc/rmm-agent/agent.toml");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("identity.json")), 0o600);
    assert_eq!(mode(&state.join("secret")), 0o600);
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&config), 0o640);
    assert!(!prefix.join("etc/systemd").exists(), "--no-systemd");
    let identity: Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    let agent_id = identity["agent_id"].as_str().unwrap().to_owned();
    assert!(
        !std::fs::read_to_string(&config).unwrap().contains(&token),
        "no token in the config"
    );

    // Enrolled: listed, in the token's site, with the metrics address it listens on.
    let (row, _) = s
        .api
        .wait_for(&agent_id, Duration::from_secs(2), "listed", |_| true)
        .await;
    assert_eq!(row["site_id"], s.site.as_str(), "{row}");
    assert_eq!(row["metrics_address"], listen.as_str(), "{row}");

    // One success report, in the token's client and site, naming the version and every step.
    let reports = s.reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r["status"], "success");
    assert_eq!(r["step"], "complete");
    assert_eq!(r["client_id"], s.client.as_str());
    assert_eq!(r["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["os"], "linux");
    let msg = r["message"].as_str().unwrap();
    for step in [
        "preflight",
        "download",
        "user",
        "install",
        "config",
        "enroll",
        "service",
    ] {
        assert!(
            msg.contains(&format!("{step}: ")),
            "{step} missing in {msg}"
        );
    }

    // The installed binary runs with the written config and comes online.
    let _agent = ChildGuard::spawn(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("RMM_AGENT_CONTROL_HEARTBEAT_INTERVAL", "1s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    s.api
        .wait_for(&agent_id, Duration::from_secs(10), "online", |a| {
            a["status"] == "online"
        })
        .await;
    let up = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        matches!(http_get(listen.parse().unwrap(), "/metrics"), Ok((200, _))).then_some(())
    });
    assert!(
        up.is_some(),
        "the installed agent serves /metrics on {listen}"
    );

    // Re-running (an upgrade) keeps the config, keeps the agent id, reports success again.
    let (_, token2) = s.token(json!({})).await;
    std::fs::write(
        &config,
        format!(
            "# edited\n[prometheus]\nlisten = \"{listen}\"\n[control]\nstate_dir = \"{}\"\n",
            state.display()
        ),
    )
    .unwrap();
    let out = install(
        &s.cp.base,
        &token2,
        &prefix,
        &["--binary", agent_bin(), "--no-systemd"],
    );
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .starts_with("# edited"));
    let identity: Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    assert_eq!(identity["agent_id"], agent_id.as_str());
    assert_eq!(s.reports().await.len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn failures_name_their_step() {
    let s = setup().await;

    // An unknown token: enroll fails; the report cannot be authenticated and is refused, so
    // the failure is printed locally only.
    let prefix = s.dir.join("bad-token");
    let out = install(
        &s.cp.base,
        "rmm_et_thisisnotavalidtoken",
        &prefix,
        &["--binary", agent_bin(), "--no-systemd"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FAILED at step enroll"), "{err}");
    assert!(
        err.contains("not valid"),
        "the enroll error is shown: {err}"
    );
    assert!(err.contains("did not take the report (HTTP 401)"), "{err}");
    assert!(!prefix.join("var/lib/rmm-agent/identity.json").exists());
    assert!(s.reports().await.is_empty());

    // An expired token: enroll fails, and the report is accepted (7-day grace) with its step.
    let (id, expired) = s.token(json!({"expires_in_seconds": 1})).await;
    let t0 = std::time::Instant::now();
    while s.api.get(&format!("/api/v1/enrollment-tokens/{id}")).await["state"] != "expired" {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "token did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = install(
        &s.cp.base,
        &expired,
        &s.dir.join("expired"),
        &["--binary", agent_bin(), "--no-systemd"],
    );
    assert_eq!(out.status.code(), Some(1));
    let reports = s.reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["status"], "failed");
    assert_eq!(reports[0]["step"], "enroll");
    assert!(
        reports[0]["message"].as_str().unwrap().contains("expired"),
        "{reports:?}"
    );
    assert_eq!(reports[0]["agent_version"], env!("CARGO_PKG_VERSION"));

    // No --binary and no build in the catalog: the download step fails and says so.
    let (_, token) = s.token(json!({})).await;
    let out = install(
        &s.cp.base,
        &token,
        &s.dir.join("nobuild"),
        &["--no-systemd"],
    );
    assert_eq!(out.status.code(), Some(1));
    let reports = s.reports().await;
    assert_eq!(reports.len(), 2, "{reports:?}");
    let r = &reports[0];
    assert_eq!(
        (r["status"].as_str(), r["step"].as_str()),
        (Some("failed"), Some("download"))
    );
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 404") && msg.contains("--binary"),
        "{msg}"
    );
    assert!(r["agent_version"].is_null(), "no binary, no version: {r}");

    // --binary naming a missing file: download step, reported.
    let out = install(
        &s.cp.base,
        &token,
        &s.dir.join("missing"),
        &["--binary", "/nonexistent/rmm-agent", "--no-systemd"],
    );
    assert_eq!(out.status.code(), Some(1));
    let reports = s.reports().await;
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0]["step"], "download");
    assert!(reports[0]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/rmm-agent: no such file"));

    // Not root and no --prefix: preflight refuses (skipped when the test runs as root).
    if unsafe { libc::geteuid() } != 0 {
        let out = Command::new("sh")
            .arg(script())
            .args(["--server", &s.cp.base, "--binary", agent_bin()])
            .env("RMM_ENROLL_TOKEN", &token)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(s.reports().await[0]["step"], "preflight");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn served_script_is_the_repository_script_with_the_url() {
    let s = setup().await;
    let r = s
        .api
        .http
        .get(format!("{}/api/v1/install/agent.sh", s.cp.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served = r.text().await.unwrap();
    let repo = std::fs::read_to_string(script()).unwrap();
    assert_eq!(
        served,
        repo.replacen("@RMM_SERVER_URL@", &s.cp.base, 1),
        "the served script is the file with the server URL filled in"
    );
    // Served and run without --server: it installs against the server that served it.
    let path = s.dir.join("served.sh");
    std::fs::write(&path, &served).unwrap();
    let (_, token) = s.token(json!({})).await;
    let out = Command::new("sh")
        .arg(&path)
        .args(["--binary", agent_bin(), "--no-systemd", "--prefix"])
        .arg(s.dir.join("served-root"))
        .env("RMM_ENROLL_TOKEN", &token)
        .env_remove("RMM_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.reports().await[0]["status"], "success");
}

/// Keys of a unit file's `[Service]` section (repeated keys keep every value).
fn service_keys(text: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = if line == "[Service]" { "s" } else { "" };
            continue;
        }
        if section == "s" {
            let (k, v) = line.split_once('=').unwrap();
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn systemd_units_are_hardened_and_match_the_install_script() {
    let root = repo_root();
    let agent_unit =
        std::fs::read_to_string(root.join("deploy/systemd/rmm-agent.service")).unwrap();
    let cp_unit =
        std::fs::read_to_string(root.join("deploy/systemd/rmm-control-plane.service")).unwrap();
    let script = std::fs::read_to_string(script()).unwrap();

    // The script installs exactly the repository's unit.
    let embedded = script
        .split_once("<<'UNIT'")
        .and_then(|(_, rest)| rest.split_once('\n'))
        .and_then(|(_, rest)| rest.split_once("\nUNIT\n"))
        .map(|(unit, _)| format!("{unit}\n"))
        .expect("the unit heredoc in install-agent.sh");
    assert_eq!(
        embedded, agent_unit,
        "install-agent.sh and deploy/systemd/rmm-agent.service differ"
    );

    let get = |keys: &[(String, String)], k: &str| -> Vec<String> {
        keys.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let common = [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("Restart", "on-failure"),
    ];
    for (name, unit) in [("agent", &agent_unit), ("control plane", &cp_unit)] {
        let keys = service_keys(unit);
        for (k, v) in common {
            assert_eq!(get(&keys, k), [v], "{name}: {k}");
        }
        assert!(get(&keys, "SystemCallFilter").contains(&"@system-service".to_owned()));
    }
    let agent = service_keys(&agent_unit);
    // The paths the install script uses.
    assert_eq!(
        get(&agent, "ExecStart"),
        ["/var/lib/rmm-agent/bin/rmm-agent run --config /etc/rmm-agent/agent.toml"]
    );
    assert!(script.contains(r#"state_dir="$prefix/var/lib/rmm-agent""#));
    assert!(script.contains(r#"bin_dir="$state_dir/bin""#));
    assert!(script.contains(r#"config_file="$config_dir/agent.toml""#));
    assert!(script.contains(r#"config_dir="$prefix/etc/rmm-agent""#));
    assert_eq!(get(&agent, "User"), ["rmm-agent"]);
    assert!(script.contains(r#"agent_user="rmm-agent""#));
    assert_eq!(get(&agent, "StateDirectory"), ["rmm-agent"]);
    // The agent must see every process and the host's real mounts (see the unit's comment).
    for k in [
        "ProtectProc",
        "ProcSubset",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
    ] {
        assert!(get(&agent, k).is_empty(), "agent: {k} must stay unset");
    }
    let cp = service_keys(&cp_unit);
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/var/lib/rmm-control-plane"),
        ("WorkingDirectory", "/var/lib/rmm-control-plane"),
    ] {
        assert_eq!(get(&cp, k), [v], "control plane: {k}");
    }
    assert_eq!(
        get(&cp, "ExecStart"),
        ["/usr/local/bin/rmm-control-plane serve --config /etc/rmm-control-plane/control-plane.toml"]
    );

    // systemd's own check, when systemd-analyze is installed: the units with ExecStart pointed
    // at the built binaries (it insists that the executable exists) verify without a word.
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze not installed: key checks only");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent_copy = dir.path().join("rmm-agent.service");
    let cp_copy = dir.path().join("rmm-control-plane.service");
    std::fs::write(
        &agent_copy,
        agent_unit.replace("/var/lib/rmm-agent/bin/rmm-agent", agent_bin()),
    )
    .unwrap();
    std::fs::write(
        &cp_copy,
        cp_unit.replace(
            "/usr/local/bin/rmm-control-plane",
            control_plane_bin().to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&agent_copy)
        .arg(&cp_copy)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
