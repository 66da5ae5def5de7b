//! The enrollment state on disk: `identity.json` and `secret` in the state directory.
//!
//! The directory is created with mode 0700 and the secret file with mode 0600 *at creation*
//! (`open(O_CREAT, 0600)` on a fresh temporary file, then `rename`), so the secret is never
//! readable by others, not even for an instant, and a crash never leaves a half-written file.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the identity inside the state directory.
pub const IDENTITY_FILE: &str = "identity.json";
/// File name of the agent secret inside the state directory.
pub const SECRET_FILE: &str = "secret";
/// File name of a locally generated host id (hosts without a machine id).
pub const HOST_ID_FILE: &str = "host-id";

/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the secret file.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of the identity file (not secret, but nobody else's business either).
pub const IDENTITY_MODE: u32 = 0o600;

/// Who this agent is to the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// UUIDv7 from the control plane; also the OpAMP instance uid.
    pub agent_id: String,
    /// The control plane's base URL given to `enroll`.
    pub server: String,
    /// Where the OpAMP session connects (as the control plane gave it, `http(s)://` or `ws(s)://`).
    pub opamp_url: String,
    /// RFC 3339 time of enrollment.
    pub enrolled_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// Release signing keys (`rmm-ed25519-public:...`) the control plane sent at enrollment,
    /// pinned: only builds signed by one of them are installed, whatever the server says later
    /// (enrolling again replaces them). Empty: no update is accepted.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub signing_keys: Vec<String>,
}

/// `null` reads as no keys.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The agent secret. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret, refusing values that cannot travel in an HTTP header.
    pub fn new(value: impl Into<String>) -> Result<Self, StateError> {
        let value = value.into();
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StateError::InvalidSecret);
        }
        Ok(Self(value.to_owned()))
    }

    /// The secret itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Problems with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: invalid identity: {message}", path.display())]
    InvalidIdentity { path: PathBuf, message: String },
    #[error("the agent secret is empty or contains characters not allowed in an HTTP header")]
    InvalidSecret,
    #[error("{} holds an identity but no secret file ({SECRET_FILE}); enroll again", dir.display())]
    MissingSecret { dir: PathBuf },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory (and missing parents) with mode 0700. An existing directory is
    /// left as it is (it may be shared, e.g. a test's temp dir), with a warning if others can
    /// read it: the secret file itself is 0600 either way.
    pub fn ensure(&self) -> Result<(), StateError> {
        match fs::metadata(&self.path) {
            Ok(meta) if meta.is_dir() => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(dir = %self.path.display(), mode = format!("{mode:o}"), "The state directory is accessible to other users; 0700 is recommended.");
                }
                Ok(())
            }
            Ok(_) => Err(StateError::Io {
                action: "using state directory",
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&self.path)
                .map_err(io_err("creating state directory", &self.path)),
            Err(e) => Err(io_err("reading state directory", &self.path)(e)),
        }
    }

    /// Stores the identity and secret (replacing earlier ones).
    pub fn save(&self, identity: &Identity, secret: &Secret) -> Result<(), StateError> {
        self.ensure()?;
        // Secret first: an identity without its secret would look enrolled but fail to connect.
        write_private(
            &self.path.join(SECRET_FILE),
            secret.expose().as_bytes(),
            SECRET_MODE,
        )?;
        let mut json = serde_json::to_vec_pretty(identity).expect("identity serialises");
        json.push(b'\n');
        write_private(&self.path.join(IDENTITY_FILE), &json, IDENTITY_MODE)
    }

    /// The stored identity and secret; `None` if the agent was never enrolled here.
    pub fn load(&self) -> Result<Option<(Identity, Secret)>, StateError> {
        let id_path = self.path.join(IDENTITY_FILE);
        let text = match fs::read(&id_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &id_path)(e)),
        };
        let identity: Identity =
            serde_json::from_slice(&text).map_err(|e| StateError::InvalidIdentity {
                path: id_path.clone(),
                message: e.to_string(),
            })?;
        if identity.agent_id.parse::<rmm_opamp::InstanceUid>().is_err() {
            return Err(StateError::InvalidIdentity {
                path: id_path,
                message: format!("agent_id {:?} is not a UUID", identity.agent_id),
            });
        }
        if let Err(message) = crate::update::verify::parse_keys(&identity.signing_keys) {
            return Err(StateError::InvalidIdentity {
                path: id_path,
                message,
            });
        }
        let secret_path = self.path.join(SECRET_FILE);
        let secret = match fs::read_to_string(&secret_path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::MissingSecret {
                    dir: self.path.clone(),
                })
            }
            Err(e) => return Err(io_err("reading", &secret_path)(e)),
        };
        if let Ok(meta) = fs::metadata(&secret_path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(file = %secret_path.display(), mode = format!("{mode:o}"), "The agent secret is readable by other users; it should be 0600.");
            }
        }
        Ok(Some((identity, Secret::new(secret)?)))
    }

    /// A host id kept in the state directory, generated on first use: for hosts without a
    /// machine id (some containers), so re-enrolling still maps to the same agent.
    pub fn local_host_id(&self) -> Result<String, StateError> {
        let path = self.path.join(HOST_ID_FILE);
        if let Ok(text) = fs::read_to_string(&path) {
            let id = text.trim();
            if !id.is_empty() {
                return Ok(id.to_owned());
            }
        }
        self.ensure()?;
        let id = rmm_opamp::uuid::Uuid::now_v7().simple().to_string();
        write_private(&path, format!("{id}\n").as_bytes(), IDENTITY_MODE)?;
        Ok(id)
    }
}

/// Writes `bytes` to `path` atomically; the file has `mode` from the moment it exists.
pub(crate) fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    // A leftover from a crashed run could have any mode: never write into it.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("replacing", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            agent_id: "0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01".into(),
            server: "https://cp.example".into(),
            opamp_url: "https://cp.example/v1/opamp".into(),
            enrolled_at: "2026-11-27T03:00:00Z".into(),
            client_id: Some("c1".into()),
            site_id: None,
            signing_keys: vec![
                "rmm-ed25519-public:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
            ],
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_dir_0700_and_secret_0600_even_with_a_permissive_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("a/b/state"));
        // umask 0 would make a plain create 0666; the mode must come from OpenOptions.
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0) };
        let saved = dir.save(&identity(), &Secret::new("rmm_as_s3cret").unwrap());
        unsafe { libc::umask(old) };
        saved.unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join(SECRET_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join(IDENTITY_FILE)), 0o600);
        assert_eq!(
            fs::read_to_string(dir.path().join(SECRET_FILE)).unwrap(),
            "rmm_as_s3cret"
        );
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn replacing_a_world_readable_secret_yields_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        let secret_path = tmp.path().join(SECRET_FILE);
        fs::write(&secret_path, "old").unwrap();
        fs::set_permissions(&secret_path, fs::Permissions::from_mode(0o644)).unwrap();
        dir.save(&identity(), &Secret::new("new").unwrap()).unwrap();
        assert_eq!(mode(&secret_path), 0o600);
        assert_eq!(fs::read_to_string(&secret_path).unwrap(), "new");
    }

    #[test]
    fn identity_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        assert!(dir.load().unwrap().is_none(), "not enrolled yet");
        let secret = Secret::new("rmm_as_abc\n").unwrap();
        dir.save(&identity(), &secret).unwrap();
        let (back, back_secret) = dir.load().unwrap().unwrap();
        assert_eq!(back, identity());
        assert_eq!(back_secret.expose(), "rmm_as_abc");
    }

    #[test]
    fn unknown_identity_fields_are_tolerated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        fs::write(
            tmp.path().join(IDENTITY_FILE),
            r#"{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","server":"s","opamp_url":"u","enrolled_at":"t","later":1}"#,
        )
        .unwrap();
        fs::write(tmp.path().join(SECRET_FILE), "x").unwrap();
        assert!(dir.load().unwrap().is_some());
    }

    #[test]
    fn broken_state_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        fs::write(tmp.path().join(IDENTITY_FILE), "{").unwrap();
        assert!(matches!(
            dir.load(),
            Err(StateError::InvalidIdentity { .. })
        ));
        let mut id = identity();
        id.agent_id = "not-a-uuid".into();
        fs::write(
            tmp.path().join(IDENTITY_FILE),
            serde_json::to_vec(&id).unwrap(),
        )
        .unwrap();
        let err = dir.load().unwrap_err().to_string();
        assert!(err.contains("not a UUID"), "{err}");
        fs::write(
            tmp.path().join(IDENTITY_FILE),
            serde_json::to_vec(&identity()).unwrap(),
        )
        .unwrap();
        assert!(matches!(dir.load(), Err(StateError::MissingSecret { .. })));
        let mut id = identity();
        id.signing_keys.push("rmm-ed25519-public:AAAA".into());
        fs::write(
            tmp.path().join(IDENTITY_FILE),
            serde_json::to_vec(&id).unwrap(),
        )
        .unwrap();
        fs::write(tmp.path().join(SECRET_FILE), "x").unwrap();
        let err = dir.load().unwrap_err().to_string();
        assert!(
            err.contains("signing_keys[1]") && err.contains("32 bytes"),
            "{err}"
        );
    }

    #[test]
    fn identities_without_keys_load_with_none_pinned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        fs::write(tmp.path().join(SECRET_FILE), "x").unwrap();
        for keys in ["", r#","signing_keys":null"#, r#","signing_keys":[]"#] {
            fs::write(
                tmp.path().join(IDENTITY_FILE),
                format!(r#"{{"agent_id":"0192f1c4-7b1e-7cc2-9a53-3c1f2a9b8e01","server":"s","opamp_url":"u","enrolled_at":"t"{keys}}}"#),
            )
            .unwrap();
            let (id, _) = dir.load().unwrap().unwrap();
            assert!(id.signing_keys.is_empty(), "{keys}");
        }
    }

    #[test]
    fn secret_is_never_shown_and_must_be_header_safe() {
        let s = Secret::new("rmm_as_topsecret").unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        assert!(Secret::new("  ").is_err());
        assert!(Secret::new("a b").is_err());
        assert!(Secret::new("a\r\nX-Evil: 1").is_err());
    }

    #[test]
    fn local_host_id_is_stable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("s"));
        let a = dir.local_host_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(dir.local_host_id().unwrap(), a);
    }
}
