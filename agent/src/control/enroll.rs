//! `rmm-agent enroll`: trade an enrollment token and the host's facts for an agent identity.
//!
//! One `POST {server}/api/v1/enroll` with
//! `{"token","host_id","hostname","os","arch","agent_version","metrics_address"}`, answered with
//! `{"agent_id","agent_secret","opamp_url",...}` (unknown fields ignored). The identity and the
//! secret go to the state directory ([`super::identity`]). The secret is never logged.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::identity::{Identity, Secret, StateDir, StateError};
use crate::host::{HostFacts, HostPaths};
use crate::util::error_chain;

/// Path of the enrollment endpoint below the server's base URL.
pub const ENROLL_PATH: &str = "/api/v1/enroll";
/// OpAMP path assumed when the server's answer names none.
pub const DEFAULT_OPAMP_PATH: &str = "/v1/opamp";

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an unexpected answer is quoted back to the user.
const BODY_QUOTE_LIMIT: usize = 300;

/// What to enroll with.
#[derive(Clone)]
pub struct EnrollOptions {
    /// The control plane's base URL (`https://rmm.example.com`).
    pub server: String,
    /// The enrollment token.
    pub token: String,
    /// `host:port` Prometheus should scrape; `None` when `/metrics` is off.
    pub metrics_address: Option<String>,
    /// Where the identity is stored.
    pub state_dir: StateDir,
}

impl fmt::Debug for EnrollOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollOptions")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("metrics_address", &self.metrics_address)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("invalid --server URL {url:?}: {reason}")]
    InvalidServer { url: String, reason: &'static str },
    #[error("cannot reach the control plane at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The control plane answered with its `{"error":{"code","message"}}` body.
    #[error("the control plane refused the enrollment (HTTP {status}, {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from the control plane: HTTP {status}: {body}")]
    UnexpectedStatus { status: u16, body: String },
    #[error("invalid enrollment answer from the control plane: {0}")]
    InvalidResponse(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// The request body.
#[derive(Debug, Serialize)]
struct EnrollRequest<'a> {
    token: &'a str,
    host_id: String,
    hostname: String,
    os: String,
    arch: String,
    agent_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_address: Option<&'a str>,
}

/// The answer; other fields are ignored so the control plane can add more.
#[derive(Deserialize)]
struct EnrollResponse {
    agent_id: String,
    agent_secret: String,
    #[serde(default)]
    opamp_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    site_id: Option<String>,
    /// Release signing keys to pin (`rmm-ed25519-public:...`); absent or null: none.
    #[serde(default)]
    signing_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Normalises the server URL: `http(s)://host[:port][/prefix]`, without a trailing slash.
pub fn server_base(url: &str) -> Result<String, EnrollError> {
    let invalid = |reason| EnrollError::InvalidServer {
        url: url.to_owned(),
        reason,
    };
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid("no host"));
    }
    if trimmed.contains(['?', '#']) || trimmed.chars().any(char::is_whitespace) {
        return Err(invalid(
            "must be a base URL without query, fragment or spaces",
        ));
    }
    Ok(trimmed.to_owned())
}

/// The scrape address to register for a `/metrics` listener: its own address, or this host's
/// name when it listens on all interfaces (`0.0.0.0` would be useless to Prometheus).
pub fn default_metrics_address(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        let host = HostFacts::detect(&HostPaths::default()).host_name;
        format!("{host}:{}", listen.port())
    } else {
        listen.to_string()
    }
}

/// The error for a non-success answer: the server's own code and message when it sent its
/// error body, otherwise the status and the start of whatever it sent.
pub fn refusal(status: u16, body: &[u8]) -> EnrollError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => EnrollError::Refused {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let mut quoted: String = text.chars().take(BODY_QUOTE_LIMIT).collect();
            if quoted.len() < text.len() {
                quoted.push('…');
            }
            if quoted.is_empty() {
                quoted = "(empty body)".into();
            }
            EnrollError::UnexpectedStatus {
                status,
                body: quoted,
            }
        }
    }
}

/// Enrolls this host and stores the identity; returns it.
pub async fn enroll(options: &EnrollOptions) -> Result<Identity, EnrollError> {
    let base = server_base(&options.server)?;
    if base.starts_with("http://") {
        tracing::warn!(server = %base, "Enrolling over plain HTTP: the token and the agent secret travel unencrypted. Use https:// outside a lab.");
    }
    // Fail before spending a token use if the identity could not be stored afterwards.
    options.state_dir.ensure()?;
    let facts = HostFacts::detect(&HostPaths::default());
    let host_id = match facts.host_id.clone() {
        Some(id) => id,
        None => {
            tracing::warn!("No /etc/machine-id or /var/lib/dbus/machine-id; using a host id kept in the state directory.");
            options.state_dir.local_host_id()?
        }
    };
    let body = EnrollRequest {
        token: options.token.trim(),
        host_id,
        hostname: facts.host_name.clone(),
        os: facts.os_type.clone(),
        arch: std::env::consts::ARCH.to_owned(),
        agent_version: crate::version(),
        metrics_address: options.metrics_address.as_deref(),
    };
    let url = format!("{base}{ENROLL_PATH}");
    let mut client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(crate::user_agent());
    if base.starts_with("https://") {
        client = client.use_preconfigured_tls((*super::tls::client_config()?).clone());
    }
    let client = client.build().map_err(|e| EnrollError::Unreachable {
        url: url.clone(),
        message: error_chain(&e),
    })?;
    let response =
        client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| EnrollError::Unreachable {
                url: url.clone(),
                message: error_chain(&e),
            })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| EnrollError::Unreachable {
            url: url.clone(),
            message: error_chain(&e),
        })?;
    if !status.is_success() {
        return Err(refusal(status.as_u16(), &bytes));
    }
    let answer: EnrollResponse =
        serde_json::from_slice(&bytes).map_err(|e| EnrollError::InvalidResponse(e.to_string()))?;
    let (identity, secret) = identity_from(&base, answer, SystemTime::now())?;
    options.state_dir.save(&identity, &secret)?;
    Ok(identity)
}

/// Checks the answer and turns it into what is stored.
fn identity_from(
    base: &str,
    answer: EnrollResponse,
    now: SystemTime,
) -> Result<(Identity, Secret), EnrollError> {
    let agent_id = answer
        .agent_id
        .parse::<rmm_opamp::InstanceUid>()
        .map_err(|_| {
            EnrollError::InvalidResponse(format!("agent_id {:?} is not a UUID", answer.agent_id))
        })?;
    let secret = Secret::new(answer.agent_secret)
        .map_err(|e| EnrollError::InvalidResponse(e.to_string()))?;
    let opamp_url = answer
        .opamp_url
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| format!("{base}{DEFAULT_OPAMP_PATH}"));
    super::session::websocket_url(&opamp_url)
        .map_err(|e| EnrollError::InvalidResponse(format!("opamp_url: {e}")))?;
    let signing_keys: Vec<String> = answer
        .signing_keys
        .unwrap_or_default()
        .into_iter()
        .map(|k| k.trim().to_owned())
        .collect();
    crate::update::verify::parse_keys(&signing_keys).map_err(EnrollError::InvalidResponse)?;
    if signing_keys.is_empty() {
        tracing::warn!("The control plane sent no release signing keys: this agent will refuse every update until it is enrolled again.");
    }
    let identity = Identity {
        agent_id: agent_id.to_string(),
        server: base.to_owned(),
        opamp_url,
        enrolled_at: humantime::format_rfc3339_seconds(now).to_string(),
        client_id: answer.client_id,
        site_id: answer.site_id,
        signing_keys,
    };
    Ok((identity, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_servers_error_body() {
        let body =
            br#"{"error":{"code":"token_expired","message":"the enrollment token has expired"}}"#;
        match refusal(401, body) {
            EnrollError::Refused {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 401);
                assert_eq!(code, "token_expired");
                assert_eq!(message, "the enrollment token has expired");
            }
            other => panic!("{other:?}"),
        }
        let shown = refusal(
            403,
            br#"{"error":{"code":"token_exhausted","message":"used up"}}"#,
        )
        .to_string();
        assert_eq!(
            shown,
            "the control plane refused the enrollment (HTTP 403, token_exhausted): used up"
        );
    }

    #[test]
    fn other_answers_are_quoted_briefly() {
        let e = refusal(502, b"<html>Bad Gateway</html>");
        assert_eq!(
            e.to_string(),
            "unexpected answer from the control plane: HTTP 502: <html>Bad Gateway</html>"
        );
        let long = vec![b'x'; 5000];
        let EnrollError::UnexpectedStatus { body, .. } = refusal(500, &long) else {
            panic!()
        };
        assert!(body.chars().count() <= BODY_QUOTE_LIMIT + 1);
        assert!(refusal(404, b"").to_string().contains("(empty body)"));
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            server_base("https://rmm.example.com/").unwrap(),
            "https://rmm.example.com"
        );
        assert_eq!(
            server_base("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(server_base("rmm.example.com").is_err());
        assert!(server_base("ftp://x").is_err());
        assert!(server_base("https://").is_err());
        assert!(server_base("https://x/?a=b").is_err());
    }

    #[test]
    fn answer_to_identity() {
        let answer: EnrollResponse = serde_json::from_str(
            r#"{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","agent_secret":"rmm_as_x",
                "opamp_url":"https://cp/v1/opamp","client_id":"c","site_id":"s","new_field":[1]}"#,
        )
        .unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (id, secret) = identity_from("https://cp", answer, t).unwrap();
        assert_eq!(id.agent_id, "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01");
        assert_eq!(id.opamp_url, "https://cp/v1/opamp");
        assert_eq!(id.enrolled_at, "2027-01-15T08:00:00Z");
        assert_eq!(id.site_id.as_deref(), Some("s"));
        assert_eq!(secret.expose(), "rmm_as_x");

        let minimal: EnrollResponse = serde_json::from_str(
            r#"{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","agent_secret":"s"}"#,
        )
        .unwrap();
        let (id, _) = identity_from("http://cp:8080", minimal, t).unwrap();
        assert_eq!(id.opamp_url, "http://cp:8080/v1/opamp");

        let bad: EnrollResponse =
            serde_json::from_str(r#"{"agent_id":"nope","agent_secret":"s"}"#).unwrap();
        assert!(matches!(
            identity_from("http://cp", bad, t),
            Err(EnrollError::InvalidResponse(_))
        ));
        let bad_url: EnrollResponse = serde_json::from_str(
            r#"{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","agent_secret":"s","opamp_url":"tcp://x"}"#,
        )
        .unwrap();
        assert!(identity_from("http://cp", bad_url, t).is_err());
    }

    #[test]
    fn signing_keys_are_pinned_and_checked() {
        let key = "rmm-ed25519-public:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        let t = SystemTime::UNIX_EPOCH;
        let answer = |keys: &str| -> EnrollResponse {
            serde_json::from_str(&format!(
                r#"{{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","agent_secret":"s","signing_keys":{keys}}}"#
            ))
            .unwrap()
        };
        let (id, _) = identity_from("http://cp", answer(&format!("[\"{key}\"]")), t).unwrap();
        assert_eq!(id.signing_keys, [key]);
        let (id, _) = identity_from("http://cp", answer("[]"), t).unwrap();
        assert!(id.signing_keys.is_empty());
        let (id, _) = identity_from("http://cp", answer("null"), t).unwrap();
        assert!(id.signing_keys.is_empty());
        let Err(EnrollError::InvalidResponse(e)) = identity_from(
            "http://cp",
            answer(&format!("[\"{key}\", \"rmm-ed25519-public:Zm9v\"]")),
            t,
        ) else {
            panic!("a bad key must fail the enrollment")
        };
        assert!(e.contains("signing_keys[1]"), "{e}");
    }

    #[test]
    fn metrics_address_names_the_host_for_wildcard_listeners() {
        let a = default_metrics_address("127.0.0.1:9464".parse().unwrap());
        assert_eq!(a, "127.0.0.1:9464");
        let b = default_metrics_address("0.0.0.0:9464".parse().unwrap());
        assert!(b.ends_with(":9464") && !b.starts_with("0.0.0.0"), "{b}");
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let o = EnrollOptions {
            server: "https://x".into(),
            token: "rmm_et_supersecret".into(),
            metrics_address: None,
            state_dir: StateDir::new("/tmp/x"),
        };
        assert!(!format!("{o:?}").contains("supersecret"));
    }
}
