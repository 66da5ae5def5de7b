//! Remote configuration from the control plane (OpAMP `AgentRemoteConfig`).
//!
//! The control plane sends the agent's effective policy as one file, `agent.toml`
//! (`application/toml`), with the sections and keys of the local configuration file plus
//! `labels`, `inventory` and `updates`.
//!
//! **Layering**, lowest first: defaults, the local file, `OTEL_EXPORTER_OTLP_*`, `RMM_AGENT_*`
//! (together: the *base*, [`crate::config`]), then the remote file (the *overlay*). Tables merge
//! key by key; a remote scalar or list replaces the base value. A key the remote file leaves out
//! keeps its base value, so clearing a policy setting falls back to the local one.
//!
//! **Local-only keys** are refused in remote config: `[control]` (how and where this agent
//! reaches its control plane and keeps its state) and `otlp.buffer_disk_dir` (a path on
//! this host). A refusal, a parse error or a failed validation names the key and leaves the
//! configuration in force unchanged; the agent reports FAILED with that reason.
//!
//! **Persistence**: the last applied remote file is kept in the state directory
//! (`remote_config.toml` + `remote_config.hash`, 0600) and layered again at start, before the
//! agent connects, so it survives a restart. A persisted file that no longer parses or
//! validates is logged and ignored.

use std::io::Write;
use std::path::{Path, PathBuf};

use rmm_opamp::proto::{
    AgentConfigMap, AgentRemoteConfig, RemoteConfigStatus, RemoteConfigStatuses,
};

use crate::config::AgentConfig;

/// The one file of the config map.
pub const CONFIG_FILE: &str = "agent.toml";
/// Content types accepted for it (empty: unspecified).
const CONTENT_TYPES: [&str; 3] = ["application/toml", "text/toml", ""];
/// Where the last applied remote file and its hash are kept, in the state directory.
pub const PERSISTED_FILE: &str = "remote_config.toml";
pub const PERSISTED_HASH: &str = "remote_config.hash";

/// Keys only the local configuration may set, and why.
const LOCAL_ONLY: [(&str, &str); 2] = [
    (
        "control",
        "how this agent reaches its control plane and where it keeps its state are set locally only",
    ),
    (
        "otlp.buffer_disk_dir",
        "a directory on this host is set locally only",
    ),
];

/// A remote configuration file and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The TOML text (empty: no remote settings, the base applies).
    pub toml: String,
    /// `config_hash` as the server sent it (computed if it sent none).
    pub hash: Vec<u8>,
}

impl RemoteConfig {
    /// The file carried by an `AgentRemoteConfig`; `Err` names what is wrong with the map.
    pub fn from_message(rc: &AgentRemoteConfig) -> Result<Self, String> {
        let empty = AgentConfigMap::default();
        let map = rc.config.as_ref().unwrap_or(&empty);
        let hash = if rc.config_hash.is_empty() {
            rmm_opamp::config_hash(map)
        } else {
            rc.config_hash.clone()
        };
        let others: Vec<&str> = map
            .config_map
            .keys()
            .filter(|k| k.as_str() != CONFIG_FILE)
            .map(String::as_str)
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "remote config: unexpected file(s) {} (only `{CONFIG_FILE}` is understood)",
                others.join(", ")
            ));
        }
        let toml = match map.config_map.get(CONFIG_FILE) {
            None => String::new(),
            Some(file) => {
                if !CONTENT_TYPES.contains(&file.content_type.as_str()) {
                    return Err(format!(
                        "remote config: `{CONFIG_FILE}` has content type `{}`, expected application/toml",
                        file.content_type
                    ));
                }
                String::from_utf8(file.body.clone())
                    .map_err(|_| format!("remote config: `{CONFIG_FILE}` is not UTF-8"))?
            }
        };
        Ok(Self { toml, hash })
    }

    /// The hash as lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }

    /// APPLIED for this file.
    pub fn applied(&self) -> RemoteConfigStatus {
        RemoteConfigStatus::new(self.hash.clone(), RemoteConfigStatuses::Applied)
    }
}

/// `base` with the remote file `remote` laid over it, validated. `Err` names every problem
/// (each with its key), prefixed `remote config:`.
pub fn overlay(base: &AgentConfig, remote: &str) -> Result<AgentConfig, String> {
    let fail = |problems: Vec<String>| Err(format!("remote config: {}", problems.join("; ")));
    let remote: toml::Table = match remote.parse() {
        Ok(t) => t,
        Err(e) => {
            return fail(vec![format!(
                "`{CONFIG_FILE}`: {}",
                first_line(&e.to_string())
            )])
        }
    };
    let refused: Vec<String> = LOCAL_ONLY
        .iter()
        .filter_map(|(key, why)| {
            let mut parts = key.split('.');
            let section = remote.get(parts.next()?)?;
            match parts.next() {
                None => Some(format!("key `{key}`: {why}")),
                Some(k) => section
                    .as_table()?
                    .get(k)
                    .map(|_| format!("key `{key}`: {why}")),
            }
        })
        .collect();
    if !refused.is_empty() {
        return fail(refused);
    }
    let mut table = match toml::Table::try_from(base) {
        Ok(t) => t,
        Err(e) => {
            return fail(vec![format!(
                "the base configuration does not serialise: {e}"
            )])
        }
    };
    merge(&mut table, remote);
    let config: AgentConfig = match serde_path_to_error::deserialize(toml::Value::Table(table)) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            return fail(vec![format!(
                "key `{path}`: {}",
                first_line(&e.into_inner().to_string())
            )]);
        }
    };
    match config.validate(&Default::default()) {
        Ok(()) => Ok(config),
        Err(e) => fail(e.problems),
    }
}

/// Tables merge key by key; anything else in `over` replaces what `base` has.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default().trim_end()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The last applied remote configuration in a state directory.
pub struct Persisted {
    dir: PathBuf,
}

impl Persisted {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.to_owned(),
        }
    }

    /// Keeps `remote` (file, then hash; each written to a temporary file and renamed, 0600).
    pub fn save(&self, remote: &RemoteConfig) -> std::io::Result<()> {
        write_private(&self.dir.join(PERSISTED_FILE), remote.toml.as_bytes())?;
        write_private(
            &self.dir.join(PERSISTED_HASH),
            format!("{}\n", remote.hash_hex()).as_bytes(),
        )
    }

    /// The kept configuration, if any. A missing pair is `Ok(None)`; an unreadable or
    /// malformed one is `Err` with the reason.
    pub fn load(&self) -> Result<Option<RemoteConfig>, String> {
        let file = self.dir.join(PERSISTED_FILE);
        let hash_file = self.dir.join(PERSISTED_HASH);
        let toml = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let toml = String::from_utf8(toml).map_err(|_| format!("{}: not UTF-8", file.display()))?;
        let hash = std::fs::read_to_string(&hash_file)
            .map_err(|e| format!("{}: {e}", hash_file.display()))?;
        let hash =
            unhex(&hash).ok_or_else(|| format!("{}: not a hex hash", hash_file.display()))?;
        Ok(Some(RemoteConfig { toml, hash }))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// At start: the persisted remote configuration laid over `base`, if there is a valid one.
pub fn load_at_start(base: &AgentConfig) -> Option<(AgentConfig, RemoteConfig)> {
    let persisted = Persisted::new(&base.control.state_dir);
    let remote = match persisted.load() {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(reason) => {
            tracing::warn!(%reason, "Ignoring the persisted remote configuration.");
            return None;
        }
    };
    match overlay(base, &remote.toml) {
        Ok(config) => {
            tracing::info!(hash = %remote.hash_hex(), "Applying the last remote configuration from the control plane.");
            Some((config, remote))
        }
        Err(reason) => {
            tracing::warn!(%reason, "Ignoring the persisted remote configuration.");
            None
        }
    }
}

/// Applies remote configurations as they arrive and keeps the last applied one.
pub struct Applier {
    base: AgentConfig,
    applied: Option<RemoteConfig>,
    persisted: Persisted,
}

impl Applier {
    /// `base`: the local configuration (file + environment); `applied`: the remote
    /// configuration already in force (from [`load_at_start`]).
    pub fn new(base: AgentConfig, applied: Option<RemoteConfig>) -> Self {
        let persisted = Persisted::new(&base.control.state_dir);
        Self {
            base,
            applied,
            persisted,
        }
    }

    /// The status to report for what is in force (APPLIED), if a remote config is.
    pub fn status(&self) -> Option<RemoteConfigStatus> {
        self.applied.as_ref().map(RemoteConfig::applied)
    }

    /// Handles one `AgentRemoteConfig`: the status to report, and the new configuration if
    /// `runtime` now runs one (its effective config is to be reported).
    pub async fn handle(
        &mut self,
        rc: &AgentRemoteConfig,
        runtime: &mut crate::reload::Runtime,
    ) -> (RemoteConfigStatus, Option<AgentConfig>) {
        let remote = match RemoteConfig::from_message(rc) {
            Ok(r) => r,
            Err(reason) => return (self.refuse(rc.config_hash.clone(), reason), None),
        };
        if self.applied.as_ref().is_some_and(|a| a.hash == remote.hash) {
            tracing::debug!(hash = %remote.hash_hex(), "Remote configuration already applied.");
            return (remote.applied(), None);
        }
        let config = match overlay(&self.base, &remote.toml) {
            Ok(c) => c,
            Err(reason) => return (self.refuse(remote.hash, reason), None),
        };
        if let Err(error) = runtime.apply(config.clone()).await {
            let reason = format!("remote config: {error:#}");
            return (self.refuse(remote.hash, reason), None);
        }
        if let Err(error) = self.persisted.save(&remote) {
            tracing::warn!(%error, "Applied the remote configuration but could not keep it for the next start.");
        }
        tracing::info!(hash = %remote.hash_hex(), "Applied a remote configuration from the control plane.");
        let status = remote.applied();
        self.applied = Some(remote);
        (status, Some(config))
    }

    fn refuse(&self, hash: Vec<u8>, reason: String) -> RemoteConfigStatus {
        tracing::warn!(%reason, "Refused a remote configuration; the previous one stays in force.");
        RemoteConfigStatus::failed(hash, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn base() -> AgentConfig {
        AgentConfig::from_sources(
            Some((
                Path::new("agent.toml"),
                "[collect]\ntop_processes = 7\ninterval = \"5s\"\n[otlp]\nendpoint = \"http://a:4318\"\n",
            )),
            [("RMM_AGENT_COLLECT_CPU".to_owned(), "false".to_owned())],
        )
        .unwrap()
    }

    #[test]
    fn remote_keys_win_and_the_rest_stays() {
        let c = overlay(
            &base(),
            "[collect]\ntop_processes = 3\n[labels]\nteam = \"ops\"\n[inventory]\ninterval_hours = 6\n[updates]\nchannel = \"beta\"\nauto = true\n[updates.maintenance_window]\ndays = [\"sat\"]\nstart = \"02:00\"\nend = \"04:00\"\ntime_zone = \"UTC\"\n",
        )
        .unwrap();
        assert_eq!(c.collect.top_processes, 3);
        assert_eq!(
            c.collect.interval,
            Duration::from_secs(5),
            "file value kept"
        );
        assert!(!c.collect.cpu, "environment value kept");
        assert_eq!(c.otlp.endpoint.as_deref(), Some("http://a:4318"));
        assert_eq!(c.labels["team"], "ops");
        assert_eq!(c.inventory.interval_hours, 6);
        assert_eq!(c.updates.channel.as_deref(), Some("beta"));
        assert_eq!(c.updates.auto, Some(true));
        let window = c.updates.maintenance_window.as_ref().unwrap();
        assert_eq!(window["start"].as_str(), Some("02:00"));
        assert!(c.updates.enabled, "local key kept");
        assert_eq!(overlay(&base(), "").unwrap(), base(), "empty remote = base");
    }

    #[test]
    fn labels_and_inventory_from_the_environment() {
        let c = AgentConfig::from_sources(
            None,
            [
                ("RMM_AGENT_LABELS_TEAM".to_owned(), "ops".to_owned()),
                (
                    "RMM_AGENT_INVENTORY_INTERVAL_HOURS".to_owned(),
                    "6".to_owned(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.labels["team"], "ops");
        assert_eq!(c.inventory.interval_hours, 6);
        let e =
            AgentConfig::from_sources(None, [("RMM_AGENT_LABELS_JOB".to_owned(), "x".to_owned())])
                .unwrap_err();
        assert!(e.to_string().contains("RMM_AGENT_LABELS_JOB: `job`"), "{e}");
    }

    #[test]
    fn remote_overrides_environment() {
        let c = overlay(&base(), "[collect]\ncpu = true\n").unwrap();
        assert!(c.collect.cpu);
    }

    #[test]
    fn the_control_plane_renders_what_the_agent_reads() {
        // As control-plane/src/policy/render.rs writes it: sorted keys, humantime strings.
        let text = "[collect]\ninterval = \"10s\"\ntop_processes = 5\n\n[otlp]\nenabled = true\n\n[otlp.headers]\na = \"1\"\n";
        let c = overlay(&AgentConfig::default(), text).unwrap();
        assert_eq!(c.collect.interval, Duration::from_secs(10));
        assert!(c.otlp.enabled);
        assert_eq!(c.otlp.headers["a"], "1");
    }

    #[test]
    fn local_only_keys_are_refused_by_name() {
        let e = overlay(&base(), "[control]\nstate_dir = \"/tmp/x\"\n").unwrap_err();
        assert!(
            e.contains("key `control`") && e.contains("locally only"),
            "{e}"
        );
        let e = overlay(&base(), "[otlp]\nbuffer_disk_dir = \"/tmp/x\"\n").unwrap_err();
        assert!(e.contains("key `otlp.buffer_disk_dir`"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = overlay(&base(), "[collect]\ntop_processes = 5000\n").unwrap_err();
        assert!(e.starts_with("remote config:"), "{e}");
        assert!(
            e.contains("key `collect.top_processes`: at most 1000"),
            "{e}"
        );
        let e = overlay(&base(), "[collect]\ntop_processes = \"many\"\n").unwrap_err();
        assert!(e.contains("key `collect.top_processes`"), "{e}");
        let e = overlay(&base(), "[collect]\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = overlay(&base(), "[labels]\ninstance = \"x\"\n").unwrap_err();
        assert!(e.contains("key `labels.instance`"), "{e}");
        let e = overlay(&base(), "[labels]\n\"bad-name\" = \"x\"\n").unwrap_err();
        assert!(e.contains("labels.bad-name"), "{e}");
        let e = overlay(&base(), "[collect\n").unwrap_err();
        assert!(e.contains("agent.toml"), "{e}");
    }

    #[test]
    fn message_parsing() {
        let map = AgentConfigMap::single(CONFIG_FILE, b"[collect]\n".to_vec(), "application/toml");
        let rc = AgentRemoteConfig::new(map.clone());
        let r = RemoteConfig::from_message(&rc).unwrap();
        assert_eq!(r.toml, "[collect]\n");
        assert_eq!(r.hash, rmm_opamp::config_hash(&map));
        let other = AgentConfigMap::single("x.yaml", b"a: 1".to_vec(), "application/yaml");
        let e = RemoteConfig::from_message(&AgentRemoteConfig::new(other)).unwrap_err();
        assert!(e.contains("x.yaml"), "{e}");
        let json = AgentConfigMap::single(CONFIG_FILE, b"{}".to_vec(), "application/json");
        assert!(RemoteConfig::from_message(&AgentRemoteConfig::new(json)).is_err());
    }

    #[test]
    fn persisted_round_trip_private_and_corrupt_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = Persisted::new(dir.path());
        assert_eq!(p.load(), Ok(None));
        let r = RemoteConfig {
            toml: "[collect]\ntop_processes = 2\n".into(),
            hash: vec![0xab, 0x01],
        };
        p.save(&r).unwrap();
        assert_eq!(p.load(), Ok(Some(r)));
        let mode = std::fs::metadata(dir.path().join(PERSISTED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut b = AgentConfig::default();
        b.control.state_dir = dir.path().to_owned();
        let (c, _) = load_at_start(&b).unwrap();
        assert_eq!(c.collect.top_processes, 2);
        std::fs::write(dir.path().join(PERSISTED_FILE), "[collect\n").unwrap();
        assert!(load_at_start(&b).is_none(), "unparsable file ignored");
        std::fs::write(dir.path().join(PERSISTED_HASH), "zz").unwrap();
        assert!(p.load().is_err());
    }
}
