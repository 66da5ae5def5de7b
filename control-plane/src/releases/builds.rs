//! Build files: streamed into the storage directory while hashed and size-checked, checked
//! for the right executable format and architecture, verified and put in the catalog.
//!
//! A build is written to a temporary file in the storage directory first and renamed to
//! `<sha256>` only once it is complete, verified and in the catalog; on any error the
//! temporary file is removed, so nothing half-written or unverified ever stays.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::store::{self, NewRelease, Release};
use crate::api::error::ApiError;
use crate::store::audit::Actor;
use crate::store::new_id;
use crate::AppState;

/// What a build is, apart from its bytes.
#[derive(Debug, Clone)]
pub struct BuildMeta {
    pub version: String,
    pub os: String,
    pub arch: String,
    pub channel: String,
    /// `rmm-ed25519-sig:…`.
    pub signature: String,
    /// Hex SHA-256 the caller expects; a mismatch refuses the build.
    pub expected_sha256: Option<String>,
    /// Set when registered by URL.
    pub source_url: Option<String>,
}

/// ELF `e_machine` of each architecture name.
pub fn elf_machine(arch: &str) -> Option<u16> {
    match arch {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        _ => None,
    }
}

fn arch_of_machine(m: u16) -> String {
    match m {
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        3 => "x86 (32-bit)".into(),
        40 => "arm (32-bit)".into(),
        other => format!("e_machine {other}"),
    }
}

/// Check that `head` (the first bytes of a build) is an ELF executable for `arch`.
pub fn check_elf(head: &[u8], arch: &str) -> Result<(), ApiError> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_executable",
            "the build is not an ELF executable (os linux needs one)",
        ));
    }
    let machine = match head[5] {
        1 => u16::from_le_bytes([head[18], head[19]]),
        2 => u16::from_be_bytes([head[18], head[19]]),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_an_executable",
                "the build's ELF header has an unknown byte order",
            ))
        }
    };
    match elf_machine(arch) {
        Some(want) if want == machine => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_architecture",
            format!(
                "wrong architecture: the build is an ELF executable for {}, not for arch {arch}",
                arch_of_machine(machine)
            ),
        )),
    }
}

/// Where builds are stored; created if missing.
pub fn storage_dir(st: &AppState) -> PathBuf {
    st.config.releases.storage_path(&st.config.database_url)
}

/// The stored file of a build.
pub fn build_path(st: &AppState, sha256: &str) -> PathBuf {
    storage_dir(st).join(sha256)
}

/// Removes the temporary file unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The metadata fields, checked before any byte is read so a wrong channel or platform is
/// refused at once.
fn precheck(meta: &BuildMeta) -> Result<(), ApiError> {
    let bad =
        |code: &'static str, m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m);
    if !store::CHANNELS.contains(&meta.channel.as_str()) {
        return Err(bad(
            "unknown_channel",
            format!(
                "channel: unknown channel {:?}; expected one of {}",
                meta.channel,
                store::CHANNELS.join(", ")
            ),
        ));
    }
    for (field, value, allowed) in [
        ("os", &meta.os, store::OSES),
        ("arch", &meta.arch, store::ARCHES),
    ] {
        if !allowed.contains(&value.as_str()) {
            return Err(bad(
                "invalid_release",
                format!(
                    "{field}: unknown {field} {value:?}; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    super::rollout::parse_version(&meta.version)
        .map_err(|e| bad("invalid_release", format!("version: {e}")))?;
    if let Some(h) = &meta.expected_sha256 {
        if h.len() != 64 || hex::decode(h).is_err() {
            return Err(bad(
                "invalid_release",
                "sha256: expected 64 hex characters".into(),
            ));
        }
    }
    Ok(())
}

/// Stream `body` into storage, check it, verify it and add it to the catalog.
/// `declared_len` is the length the sender announced (Content-Length), if any.
pub async fn ingest<S, E>(
    st: &AppState,
    actor: &Actor,
    meta: &BuildMeta,
    declared_len: Option<u64>,
    body: S,
) -> Result<Release, ApiError>
where
    S: Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    precheck(meta)?;
    let max = st.config.releases.max_build_bytes;
    if declared_len.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let dir = storage_dir(st);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
    let tmp_path = dir.join(format!(".incoming-{}", new_id()));
    let mut guard = TempFile(Some(tmp_path.clone()));
    let mut file = tokio::fs::File::create(&tmp_path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", tmp_path.display())))?;
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(64);
    let mut total: u64 = 0;
    let mut body = body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| truncated(total, declared_len, &e.to_string()))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        if head.len() < 64 {
            let take = (64 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot write a build: {e}")))?;
    }
    if let Some(n) = declared_len {
        if total != n {
            return Err(truncated(total, declared_len, "the body ended early"));
        }
    }
    if total == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_build",
            "the build is empty",
        ));
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("cannot write a build: {e}")))?;
    drop(file);
    let digest: [u8; 32] = hasher.finalize().into();
    let sha = hex::encode(digest);
    if let Some(want) = &meta.expected_sha256 {
        if !want.eq_ignore_ascii_case(&sha) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sha256_mismatch",
                format!("sha256 mismatch: the build's SHA-256 is {sha}, expected {want}"),
            ));
        }
    }
    if meta.os == "linux" {
        check_elf(&head, &meta.arch)?;
    }
    let new = NewRelease {
        version: meta.version.clone(),
        os: meta.os.clone(),
        arch: meta.arch.clone(),
        channel: meta.channel.clone(),
        sha256: sha.clone(),
        size_bytes: total as i64,
        signature: meta.signature.clone(),
        source_url: meta.source_url.clone(),
    };
    let trusted = st
        .config
        .releases
        .public_keys()
        .map_err(ApiError::internal)?;
    // Validate (signature included) before the file takes its final name.
    store::validate(&new, &trusted)?;
    let final_path = dir.join(&sha);
    tokio::fs::rename(&tmp_path, &final_path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store a build: {e}")))?;
    guard.0 = None;
    match store::insert(&st.db, actor, &new, &trusted).await {
        Ok(r) => {
            tracing::info!(release = %r.id, version = %r.version, os = %r.os, arch = %r.arch, channel = %r.channel, sha256 = %r.sha256, "release added");
            Ok(r)
        }
        Err(e) => {
            // Keep the file only if another release uses the same bytes.
            remove_if_unused(st, &sha).await;
            Err(e.into())
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "build_too_large",
        format!("the build is larger than this server accepts ({max} bytes, setting releases.max_build_bytes)"),
    )
}

fn truncated(got: u64, declared: Option<u64>, why: &str) -> ApiError {
    let of = declared.map(|n| format!(" of {n}")).unwrap_or_default();
    ApiError::bad_request(
        "truncated_upload",
        format!("the upload is incomplete: received {got}{of} bytes before it ended ({why}); nothing was stored"),
    )
}

/// Delete the stored file of `sha256` unless a release still uses it.
pub async fn remove_if_unused(st: &AppState, sha256: &str) {
    let mut sql = crate::store::Sql::new("SELECT COUNT(*) FROM releases WHERE sha256 = ");
    sql.bind(sha256);
    match sql.fetch_i64(st.db.pool()).await {
        Ok(0) => {
            let _ = tokio::fs::remove_file(build_path(st, sha256)).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check whether a build file is still used"),
    }
}

/// The HTTP client for builds registered by URL: the system's trusted roots.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(loaded.certs);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()?)
}

/// Download a build from `url` and ingest it.
pub async fn ingest_url(
    st: &AppState,
    actor: &Actor,
    meta: &BuildMeta,
    url: &str,
) -> Result<Release, ApiError> {
    precheck(meta)?;
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ApiError::invalid(format!("url: not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::invalid(
            "url: expected an http:// or https:// URL",
        ));
    }
    let timeout = Duration::from_secs(st.config.releases.download_timeout_seconds);
    let client = http_client(timeout).map_err(ApiError::internal)?;
    let bad_gateway = |m: String| ApiError::new(StatusCode::BAD_GATEWAY, "download_failed", m);
    let resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| bad_gateway(format!("download failed: {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(bad_gateway(format!(
            "download failed: {url} answered {}",
            resp.status()
        )));
    }
    let declared = resp.content_length();
    // reqwest without its `stream` feature: chunks one by one.
    let stream = Box::pin(futures_util::stream::unfold(
        Some(resp),
        |state| async move {
            let mut resp = state?;
            match resp.chunk().await {
                Ok(Some(c)) => Some((Ok(c), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        },
    ));
    ingest(st, actor, meta, declared, stream).await
}

/// Import every complete `<build>` + `<build>.sig` + `<build>.json` of the watched directory.
/// Imported builds are removed; refused ones get a `<build>.rejected` note and stay.
pub async fn scan_watch_dir(st: &AppState, dir: &Path) {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "releases: cannot read the watched directory");
            return;
        }
    };
    let mut builds = Vec::new();
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name.ends_with(".sig")
            || name.ends_with(".json")
            || name.ends_with(".rejected")
        {
            continue;
        }
        if e.file_type().await.map(|t| t.is_file()).unwrap_or(false) {
            builds.push(e.path());
        }
    }
    builds.sort();
    for build in builds {
        let with = |ext: &str| {
            let mut p = build.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let (sig, json, rejected) = (with(".sig"), with(".json"), with(".rejected"));
        if rejected.exists() || !sig.exists() || !json.exists() {
            continue; // refused before, or not complete yet
        }
        // Claim the build by renaming it (atomic): of several replicas polling one directory,
        // only one imports it.
        let Some(name) = build.file_name() else {
            continue;
        };
        let claimed = dir.join(format!(".importing-{}", name.to_string_lossy()));
        if tokio::fs::rename(&build, &claimed).await.is_err() {
            continue;
        }
        match import_one(st, &claimed, &sig, &json).await {
            Ok(r) => {
                tracing::info!(file = %build.display(), release = %r.id, "releases: imported from the watched directory");
                for p in [&claimed, &sig, &json] {
                    let _ = tokio::fs::remove_file(p).await;
                }
            }
            Err(e) => {
                tracing::warn!(file = %build.display(), error = %e.message, "releases: build refused");
                let _ = tokio::fs::rename(&claimed, &build).await;
                let note = format!("{}: {}\n", e.code, e.message);
                let _ = tokio::fs::write(&rejected, note).await;
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchMeta {
    version: String,
    os: String,
    arch: String,
    channel: String,
}

async fn import_one(
    st: &AppState,
    build: &Path,
    sig: &Path,
    json: &Path,
) -> Result<Release, ApiError> {
    let read = |p: &Path| {
        let p = p.to_owned();
        async move {
            tokio::fs::read(&p)
                .await
                .map_err(|e| ApiError::invalid(format!("cannot read {}: {e}", p.display())))
        }
    };
    let meta: WatchMeta = serde_json::from_slice(&read(json).await?)
        .map_err(|e| ApiError::invalid(format!("{}: {e}", json.display())))?;
    let signature = String::from_utf8_lossy(&read(sig).await?).trim().to_owned();
    let meta = BuildMeta {
        version: meta.version,
        os: meta.os,
        arch: meta.arch,
        channel: meta.channel,
        signature,
        expected_sha256: None,
        source_url: None,
    };
    let file = tokio::fs::File::open(build)
        .await
        .map_err(|e| ApiError::invalid(format!("cannot read {}: {e}", build.display())))?;
    let len = file.metadata().await.ok().map(|m| m.len());
    let stream = file_chunks(file);
    ingest(st, &Actor::system("watch_dir"), &meta, len, stream).await
}

/// A file as a stream of chunks (what `ingest` takes and downloads serve).
pub fn file_chunks(
    file: tokio::fs::File,
) -> impl Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Unpin + Send {
    chunks::chunks(file)
}

mod chunks {
    use futures_util::Stream;
    use tokio::io::AsyncReadExt;

    pub fn chunks(
        file: tokio::fs::File,
    ) -> impl Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Unpin + Send {
        Box::pin(futures_util::stream::unfold(
            Some(file),
            |state| async move {
                let mut file = state?;
                let mut buf = vec![0u8; 64 * 1024];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(axum::body::Bytes::from(buf)), Some(file)))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            },
        ))
    }
}

/// Poll the watched directory until the process ends.
pub fn spawn_watcher(st: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let dir = PathBuf::from(st.config.releases.watch_dir.clone()?);
    let every = Duration::from_secs(st.config.releases.watch_interval_seconds);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            scan_watch_dir(&st, &dir).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machines() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[5] = 1;
        h[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert!(check_elf(&h, "x86_64").is_ok());
        let e = check_elf(&h, "aarch64").unwrap_err();
        assert_eq!(e.code, "wrong_architecture");
        assert!(e.message.contains("x86_64"), "{}", e.message);
        h[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert!(check_elf(&h, "aarch64").is_ok());
        assert_eq!(
            check_elf(b"#!/bin/sh\necho hi\n....", "x86_64")
                .unwrap_err()
                .code,
            "not_an_executable"
        );
    }
}
