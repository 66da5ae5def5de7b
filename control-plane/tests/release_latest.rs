//! `GET /api/v1/releases/latest/build` on SQLite and PostgreSQL: what install scripts download.
//! The newest release of an os/arch/channel by semver precedence, or what the channel's
//! rollout targets; headers carry version, SHA-256 and signature (which verify); the same
//! credentials as `GET /releases/{id}/build`; 404 `no_release` and 400 on bad queries.

#[path = "api/common.rs"]
mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rmm_control_plane::releases::signing::{self, ReleaseSignature, SecretKey};
use serde_json::{json, Value};

use common::{Backend, Server};

backend_tests!(latest_build);

/// An x86_64 ELF (`/bin/true`) made unique by a suffix, so each release has its own bytes.
fn build(tag: &str) -> Vec<u8> {
    let mut b = std::fs::read("/bin/true").expect("/bin/true");
    b.extend_from_slice(tag.as_bytes());
    b
}

async fn upload(s: &Server, key: &SecretKey, version: &str, channel: &str, data: &[u8]) {
    let (st, v) = s
        .upload_release(
            Some(&s.admin),
            key,
            &[("version", version), ("channel", channel)],
            data.to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

/// GET latest with `query` as `cred`: status, the three release headers, body.
async fn latest(
    s: &Server,
    query: &str,
    cred: Option<&str>,
) -> (StatusCode, [Option<String>; 3], Vec<u8>) {
    let mut req = s
        .http
        .get(s.url(&format!("/api/v1/releases/latest/build?{query}")));
    if let Some(c) = cred {
        req = req.bearer_auth(c);
    }
    let resp = req.send().await.unwrap();
    let h = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let headers = [
        h("x-rmm-release-version"),
        h("x-rmm-release-sha256"),
        h("x-rmm-release-signature"),
    ];
    let st = resp.status();
    (st, headers, resp.bytes().await.unwrap().to_vec())
}

fn error_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
}

const LINUX_STABLE: &str = "os=linux&arch=x86_64&channel=stable";

async fn latest_build(backend: Backend) {
    let key = SecretKey::generate();
    let public = key.public().encode();
    let storage =
        std::env::temp_dir().join(format!("rmm-rel-latest-{}", uuid::Uuid::new_v4().simple()));
    let storage_text = storage.display().to_string();
    let s = Server::start_with(&backend, move |c| {
        c.releases.signing_keys = vec![public];
        c.releases.storage_dir = Some(storage_text);
    })
    .await;
    let client = s.new_client("Acme").await;
    let site = s.new_site(&client, "HQ").await;
    let (_, token) = s.new_enrollment_token(&site, json!({})).await;

    // Nothing in the catalog: 404 naming what was asked for.
    let (st, _, body) = latest(&s, LINUX_STABLE, Some(&token)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let e = error_of(&body);
    assert_eq!(e["error"]["code"], "no_release", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("linux/x86_64") && msg.contains("stable"),
        "{msg}"
    );

    // Bad queries: 400 naming the field.
    for (q, code, needle) in [
        ("os=plan9&arch=x86_64&channel=stable", "invalid_query", "os"),
        ("os=linux&arch=mips&channel=stable", "invalid_query", "arch"),
        (
            "os=linux&arch=x86_64&channel=nightly",
            "unknown_channel",
            "nightly",
        ),
        ("os=linux&channel=stable", "invalid_query", "arch"),
        (
            "os=linux&arch=x86_64&channel=stable&x=1",
            "invalid_query",
            "x",
        ),
    ] {
        let (st, _, body) = latest(&s, q, Some(&token)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}");
        let e = error_of(&body);
        assert_eq!(e["error"]["code"], code, "{q}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{q}: {e}"
        );
    }

    // Newest by semver precedence (1.10.0 > 1.9.0, though not as text).
    let (b9, b10, beta) = (build("1.9.0"), build("1.10.0"), build("beta-2.0.0"));
    upload(&s, &key, "1.9.0", "stable", &b9).await;
    upload(&s, &key, "1.10.0", "stable", &b10).await;
    upload(&s, &key, "2.0.0", "beta", &beta).await;
    let (st, [version, sha, sig], body) = latest(&s, LINUX_STABLE, Some(&token)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, b10);
    assert_eq!(version.as_deref(), Some("1.10.0"));
    let digest = signing::sha256_reader(&body[..]).unwrap();
    assert_eq!(sha.as_deref(), Some(hex::encode(digest).as_str()));
    let sig = ReleaseSignature::parse(sig.as_deref().unwrap()).unwrap();
    key.public().verify_digest(&digest, &sig).unwrap();
    // Other channels and architectures are separate.
    let (st, [version, ..], body) =
        latest(&s, "os=linux&arch=x86_64&channel=beta", Some(&token)).await;
    assert_eq!((st, version.as_deref()), (StatusCode::OK, Some("2.0.0")));
    assert_eq!(body, beta);
    let (st, _, body) = latest(&s, "os=linux&arch=aarch64&channel=stable", Some(&token)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body)["error"]["code"], "no_release");

    // A rollout decides: its target, even though a newer build exists.
    let (st, v) = s
        .call(
            Method::PUT,
            "/api/v1/rollouts/stable",
            Some(&s.admin),
            Some(json!({"target_version": "1.9.0", "percent": 10})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, [version, ..], body) = latest(&s, LINUX_STABLE, Some(&token)).await;
    assert_eq!((st, version.as_deref()), (StatusCode::OK, Some("1.9.0")));
    assert_eq!(body, b9);

    // A new target: served; paused, the target it replaced is served until resumed.
    let put = |target: &'static str, allow_downgrade: bool| {
        let s = &s;
        async move {
            let (st, v) = s
                .call(
                    Method::PUT,
                    "/api/v1/rollouts/stable",
                    Some(&s.admin),
                    Some(json!({"target_version": target, "percent": 10,
                        "allow_downgrade": allow_downgrade})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    };
    put("1.10.0", false).await;
    let (_, [version, ..], _) = latest(&s, LINUX_STABLE, Some(&token)).await;
    assert_eq!(version.as_deref(), Some("1.10.0"));
    for (action, want) in [("pause", "1.9.0"), ("resume", "1.10.0")] {
        let (st, v) = s
            .call(
                Method::POST,
                &format!("/api/v1/rollouts/stable/{action}"),
                Some(&s.admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{action}: {v}");
        let (_, [version, ..], body) = latest(&s, LINUX_STABLE, Some(&token)).await;
        assert_eq!(version.as_deref(), Some(want), "after {action}");
        assert_eq!(body, if want == "1.9.0" { &b9 } else { &b10 }[..]);
    }
    // Rolled back to 1.9.0 (a downgrade of the target needs the flag).
    put("1.9.0", true).await;

    // Credentials: an agent secret and a viewer too; nothing, garbage, a revoked or an
    // expired token are refused before the query is even looked at.
    let (_, secret) = s.new_agent(&site, "one", json!({})).await;
    let (_, viewer) = s.new_user("viewer@example.com", "viewer", None).await;
    for cred in [secret.as_str(), viewer.as_str()] {
        let (st, [version, ..], _) = latest(&s, LINUX_STABLE, Some(cred)).await;
        assert_eq!((st, version.as_deref()), (StatusCode::OK, Some("1.9.0")));
    }
    let (revoked_id, revoked) = s.new_enrollment_token(&site, json!({})).await;
    let (st, v) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/enrollment-tokens/{revoked_id}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, expired) = s
        .new_enrollment_token(&site, json!({"expires_in_seconds": 1}))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for cred in [
        None,
        Some("rmm_et_notarealtoken"),
        Some(revoked.as_str()),
        Some(expired.as_str()),
    ] {
        for q in [LINUX_STABLE, "os=plan9"] {
            let (st, [version, ..], body) = latest(&s, q, cred).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{cred:?} {q}");
            assert!(version.is_none());
            assert!(error_of(&body)["error"]["code"].is_string());
        }
    }

    // `latest` is not taken for a release id by `GET /releases/{id}/build`'s neighbour.
    let (st, v) = s
        .call(Method::GET, "/api/v1/releases/latest", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    s.finish().await;
    let _ = std::fs::remove_dir_all(&storage);
}
