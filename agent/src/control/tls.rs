//! The TLS client configuration shared by enrollment (HTTPS) and the OpAMP session (WSS):
//! rustls with the `ring` provider and the operating system's trust store, so a control plane
//! behind a private CA works once that CA is installed on the host
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured too).

use std::sync::{Arc, OnceLock};

/// Why no TLS configuration could be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsError(String);

/// The process-wide client configuration, built on first use (reading the trust store once).
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, TlsError>> = OnceLock::new();
    CONFIG.get_or_init(build).clone()
}

fn build() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "Reading the system's trusted certificates.");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        tracing::warn!("No trusted CA certificates found on this host; HTTPS/WSS connections to the control plane will fail. Install ca-certificates or set SSL_CERT_FILE.");
    }
    tracing::debug!(added, ignored, "Loaded the system's trusted certificates.");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
