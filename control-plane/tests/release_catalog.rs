//! The release catalog on SQLite and PostgreSQL: verified releases are stored and listed by
//! semver precedence; bad signatures, unknown channels, wrong architectures, malformed
//! versions and duplicates are refused with clear errors.
//!
//! PostgreSQL runs when `RMM_TEST_PG_URL` is set (`source deploy/test-env.sh`); without it the
//! test is skipped with a message, unless `CI` or `RMM_TEST_REQUIRE_PG` is set (then it fails).

use rmm_control_plane::releases::signing::{self, PublicKey, SecretKey};
use rmm_control_plane::releases::store::{self, Filter, NewRelease};
use rmm_control_plane::store::{audit::Actor, Db, Error};

fn build(version: &str, key: &SecretKey, data: &[u8]) -> NewRelease {
    let digest = signing::sha256_reader(data).unwrap();
    NewRelease {
        version: version.into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        channel: "stable".into(),
        sha256: hex::encode(digest),
        size_bytes: data.len() as i64,
        signature: key.sign_digest(&digest).encode(),
        source_url: None,
    }
}

fn invalid_code(e: Error) -> (&'static str, String) {
    match e {
        Error::Invalid { code, message } => (code, message),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

async fn exercise(db: &Db) {
    let key = SecretKey::generate();
    let trusted: Vec<PublicKey> = vec![SecretKey::generate().public(), key.public()];
    let actor = Actor::cli();

    let r1 = store::insert(db, &actor, &build("v1.2.0", &key, b"one"), &trusted)
        .await
        .unwrap();
    assert_eq!(r1.version, "1.2.0");
    assert_eq!(r1.key_id, key.public().key_id());
    store::insert(db, &actor, &build("1.10.0", &key, b"ten"), &trusted)
        .await
        .unwrap();
    store::insert(db, &actor, &build("1.9.0", &key, b"nine"), &trusted)
        .await
        .unwrap();

    // Newest by precedence, not text order ("1.9.0" > "1.10.0" as text).
    let all = store::list(db, &Filter::default()).await.unwrap();
    let versions: Vec<_> = all.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["1.10.0", "1.9.0", "1.2.0"]);
    let got = store::get(db, "stable", "1.2.0", "linux", "x86_64")
        .await
        .unwrap();
    assert_eq!(got, r1);
    assert!(matches!(
        store::get(db, "beta", "1.2.0", "linux", "x86_64").await,
        Err(Error::NotFound("release"))
    ));

    // Duplicate.
    let e = store::insert(db, &actor, &build("1.2.0", &key, b"one"), &trusted)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                code: "duplicate_release",
                ..
            }
        ),
        "{e:?}"
    );

    // Signature by an untrusted key; signature of other content (hash mismatch).
    let stranger = SecretKey::generate();
    let (code, msg) = invalid_code(
        store::insert(db, &actor, &build("2.0.0", &stranger, b"x"), &trusted)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "bad_signature");
    assert!(msg.contains("verification FAILED"), "{msg}");
    let mut swapped = build("2.0.0", &key, b"x");
    swapped.sha256 = build("2.0.0", &key, b"y").sha256;
    let (code, _) = invalid_code(
        store::insert(db, &actor, &swapped, &trusted)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "bad_signature");
    let mut garbled = build("2.0.0", &key, b"x");
    garbled.signature = "rmm-ed25519-sig:AAAA".into();
    let (code, msg) = invalid_code(
        store::insert(db, &actor, &garbled, &trusted)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "bad_signature");
    assert!(msg.contains("malformed"), "{msg}");

    // Bad fields, each named.
    for (field, change) in [
        (
            "channel",
            Box::new(|r: &mut NewRelease| r.channel = "nightly".into())
                as Box<dyn Fn(&mut NewRelease)>,
        ),
        (
            "arch",
            Box::new(|r: &mut NewRelease| r.arch = "sparc".into()),
        ),
        ("os", Box::new(|r: &mut NewRelease| r.os = "plan9".into())),
        (
            "version",
            Box::new(|r: &mut NewRelease| r.version = "2.0".into()),
        ),
        (
            "sha256",
            Box::new(|r: &mut NewRelease| r.sha256 = "abc".into()),
        ),
        (
            "size_bytes",
            Box::new(|r: &mut NewRelease| r.size_bytes = 0),
        ),
        (
            "source_url",
            Box::new(|r: &mut NewRelease| r.source_url = Some("ftp://x".into())),
        ),
    ] {
        let mut r = build("2.0.0", &key, b"x");
        change(&mut r);
        let (code, msg) = invalid_code(store::insert(db, &actor, &r, &trusted).await.unwrap_err());
        assert_eq!(code, "invalid_release", "{field}");
        assert!(msg.starts_with(field), "{field}: {msg}");
    }
    let (code, _) = invalid_code(
        store::insert(db, &actor, &build("2.0.0", &key, b"x"), &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "no_release_keys");

    // Nothing refused was stored.
    assert_eq!(store::list(db, &Filter::default()).await.unwrap().len(), 3);
}

#[tokio::test]
async fn catalog_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("rmm-release-catalog-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/rmm.db", dir.display());
    let db = Db::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    exercise(&db).await;
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn catalog_on_postgres() {
    let admin = match std::env::var("RMM_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var_os("CI").is_some() || std::env::var_os("RMM_TEST_REQUIRE_PG").is_some()
            {
                panic!("RMM_TEST_PG_URL is not set: run `source deploy/test-env.sh` first");
            }
            eprintln!("SKIPPED: RMM_TEST_PG_URL is not set (source deploy/test-env.sh to run on PostgreSQL)");
            return;
        }
    };
    let name = format!("rmm_release_{}", uuid::Uuid::new_v4().simple());
    pg_exec(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("RMM_TEST_PG_URL has no database part: {admin}"),
    };
    let db = Db::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    exercise(&db).await;
    db.close().await;
    pg_exec(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

async fn pg_exec(admin_url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to RMM_TEST_PG_URL");
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}
