//! Fetching an offered build into the state directory, hashing while streaming.
//!
//! The agent secret goes along (`Authorization: Bearer`) only when the URL's origin (scheme,
//! host, port) is the control plane's own; redirects are not followed, so it can never be
//! carried elsewhere. The size is capped before and while downloading; the file is created
//! 0600 and removed on any failure.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use sha2::{Digest as _, Sha256};

use crate::control::identity::Secret;
use crate::util::error_chain;

/// Name of the download inside the state directory.
pub const DOWNLOAD_FILE: &str = "update-download.tmp";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// No byte for this long fails the download.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole download.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where and how to download.
pub struct Request<'a> {
    pub url: &'a str,
    /// The control plane's base URL (`identity.server`).
    pub server: &'a str,
    pub secret: &'a Secret,
    pub max_bytes: u64,
    pub state_dir: &'a Path,
}

/// A finished download.
#[derive(Debug)]
pub struct Downloaded {
    pub path: PathBuf,
    pub sha256: [u8; 32],
    pub bytes: u64,
}

/// True when `url` has the control plane's origin.
pub fn same_origin(url: &Url, server: &str) -> bool {
    Url::parse(server)
        .map(|s| s.origin() == url.origin())
        .unwrap_or(false)
}

/// Downloads; the error is the reported reason (`download failed: ...`).
pub async fn fetch(req: &Request<'_>) -> Result<Downloaded, String> {
    let fail = |m: String| format!("download failed: {m}");
    // Whatever an earlier attempt left goes first, whatever happens next.
    let path = req.state_dir.join(DOWNLOAD_FILE);
    let _ = fs::remove_file(&path);
    let url = Url::parse(req.url).map_err(|e| fail(format!("invalid URL {:?}: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!("unsupported URL scheme {:?}", url.scheme())));
    }
    let mut client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(crate::user_agent());
    if url.scheme() == "https" {
        let tls = crate::control::tls::client_config().map_err(|e| fail(e.to_string()))?;
        client = client.use_preconfigured_tls((*tls).clone());
    }
    let client = client.build().map_err(|e| fail(e.to_string()))?;
    let mut request = client.get(url.clone());
    if same_origin(&url, req.server) {
        request = request.bearer_auth(req.secret.expose());
    } else {
        tracing::info!(url = %url, "The build is not on the control plane's origin; downloading without the agent secret.");
    }
    let mut response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status} from {url}")));
    }
    if let Some(len) = response.content_length() {
        if len > req.max_bytes {
            return Err(fail(format!(
                "the build is {len} bytes, more than updates.max_download_bytes ({})",
                req.max_bytes
            )));
        }
    }
    let result = async {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fail(format!("creating {}: {e}", path.display())))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        loop {
            let chunk = tokio::time::timeout(STALL_TIMEOUT, response.chunk())
                .await
                .map_err(|_| fail(format!("no data for {} s", STALL_TIMEOUT.as_secs())))?
                .map_err(|e| fail(error_chain(&e)))?;
            let Some(chunk) = chunk else { break };
            bytes += chunk.len() as u64;
            if bytes > req.max_bytes {
                return Err(fail(format!(
                    "more than updates.max_download_bytes ({}) bytes",
                    req.max_bytes
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
        }
        file.sync_all()
            .map_err(|e| fail(format!("syncing {}: {e}", path.display())))?;
        Ok(Downloaded {
            path: path.clone(),
            sha256: hasher.finalize().into(),
            bytes,
        })
    }
    .await;
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_goes_only_to_the_control_planes_origin() {
        let u = |s: &str| Url::parse(s).unwrap();
        let server = "https://cp.example";
        assert!(same_origin(
            &u("https://cp.example/api/v1/releases/1/build"),
            server
        ));
        assert!(same_origin(&u("https://cp.example:443/x"), server));
        assert!(!same_origin(&u("http://cp.example/x"), server), "scheme");
        assert!(
            !same_origin(&u("https://cp.example:8443/x"), server),
            "port"
        );
        assert!(
            !same_origin(&u("https://cp.example.evil/x"), server),
            "host"
        );
        assert!(!same_origin(&u("https://evil/x"), "not a url"));
        assert!(same_origin(
            &u("http://127.0.0.1:8080/api/v1/releases/1/build"),
            "http://127.0.0.1:8080/prefix"
        ));
    }
}
