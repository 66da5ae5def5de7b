//! Settings: a TOML file (optional), then `RMM_CP_<KEY>` environment variables on top.
//!
//! Every key of the file can be set from the environment by its upper-case name, e.g.
//! `RMM_CP_LISTEN=0.0.0.0:8080`, `RMM_CP_DATABASE_URL=postgres://...`; keys of a section by
//! section and key joined with `__`: `RMM_CP_RELEASES__SIGNING_KEYS=k1,k2` (lists are comma
//! separated). Unknown keys, in the
//! file or the environment, are refused with the key's name, so a typo never passes silently.
//! See `deploy/examples/control-plane.toml` for a commented example.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// Prefix of environment variables that override file settings.
pub const ENV_PREFIX: &str = "RMM_CP_";

/// Environment variables with the prefix that are not settings (read by the CLI itself).
const ENV_NOT_SETTINGS: &[&str] = &["RMM_CP_CONFIG"];

/// The control plane's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://PATH` (file created on first start) or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// Most connections the pool opens.
    pub database_max_connections: u32,
    /// URL agents and people reach this server at; the OpAMP URL handed out at enrollment is
    /// derived from it. Default: `http://<listen>`.
    pub public_url: Option<String>,
    /// Key for signing login JWTs (at least 32 characters). Default: a random key generated on
    /// first start and kept in the database, shared by every replica.
    pub jwt_secret: Option<String>,
    /// Lifetime of a login JWT, in seconds.
    pub jwt_ttl_seconds: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Login attempts allowed per source address per minute.
    pub login_rate_per_minute: u32,
    /// Enrollment attempts allowed per source address per minute.
    pub enroll_rate_per_minute: u32,
    /// Take the source address from the first `X-Forwarded-For` entry (only behind a proxy
    /// that sets it).
    pub trust_forwarded_for: bool,
    /// Default lifetime of an enrollment token, in seconds.
    pub enrollment_token_ttl_seconds: u64,
    /// Default number of uses of an enrollment token.
    pub enrollment_token_max_uses: u32,
    /// Log filter (`tracing` env-filter syntax), unless `RUST_LOG` is set.
    pub log: String,
    /// Heartbeat interval offered to OpAMP agents that take connection settings, in seconds.
    pub opamp_heartbeat_interval_seconds: u64,
    /// An agent silent this long is marked offline, in seconds. Default: 3 heartbeats of 30 s
    /// (also the default poll interval of plain-HTTP clients that ignore the offer).
    pub opamp_offline_timeout_seconds: u64,
    /// Largest OpAMP message accepted (after decompression), in bytes: 413 over plain HTTP,
    /// close code 1009 over WebSocket.
    pub opamp_max_message_bytes: usize,
    /// Agent releases and rollouts (`[releases]`).
    pub releases: ReleasesConfig,
}

/// `[releases]`: signed agent builds and how updates are offered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasesConfig {
    /// Public keys (`rmm-ed25519-public:...`) release signatures are verified with; handed to
    /// agents at enrollment, which pin them.
    pub signing_keys: Vec<String>,
    /// Where uploaded builds are stored. Default: `releases/` next to a SQLite database file,
    /// `./data/releases` otherwise.
    pub storage_dir: Option<String>,
    /// A directory polled for `<build>` + `<build>.sig` + `<build>.json` to import.
    pub watch_dir: Option<String>,
    /// How often the watched directory is polled, in seconds.
    pub watch_interval_seconds: u64,
    /// Largest build accepted (upload, URL, watched directory), in bytes.
    pub max_build_bytes: u64,
    /// Time limit for downloading a build registered by URL, in seconds.
    pub download_timeout_seconds: u64,
    /// How often rollouts are planned (besides on agent connect and status reports), in seconds.
    pub offer_interval_seconds: u64,
    /// Default of new rollouts: pause when more than this percentage of finished updates failed
    /// or rolled back ...
    pub auto_pause_failure_percent: u32,
    /// ... once at least this many updates have finished.
    pub auto_pause_min_attempts: u32,
    /// Default of new rollouts: updates under way at once.
    pub default_max_concurrent: u32,
    /// An offered update without a status change for this long is marked failed (frees its
    /// slot of the concurrency cap), in seconds.
    pub update_timeout_seconds: u64,
}

impl Default for ReleasesConfig {
    fn default() -> Self {
        ReleasesConfig {
            signing_keys: Vec::new(),
            storage_dir: None,
            watch_dir: None,
            watch_interval_seconds: 10,
            max_build_bytes: 256 * 1024 * 1024,
            download_timeout_seconds: 300,
            offer_interval_seconds: 30,
            auto_pause_failure_percent: 20,
            auto_pause_min_attempts: 5,
            default_max_concurrent: 50,
            update_timeout_seconds: 3600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://./data/rmm.db".into(),
            database_max_connections: 10,
            public_url: None,
            jwt_secret: None,
            jwt_ttl_seconds: 3600,
            max_body_bytes: 64 * 1024,
            login_rate_per_minute: 10,
            enroll_rate_per_minute: 60,
            trust_forwarded_for: false,
            enrollment_token_ttl_seconds: 7 * 24 * 3600,
            enrollment_token_max_uses: 1,
            log: "info".into(),
            opamp_heartbeat_interval_seconds: 30,
            opamp_offline_timeout_seconds: 90,
            opamp_max_message_bytes: 4 * 1024 * 1024,
            releases: ReleasesConfig::default(),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// Comma-separated in the environment.
    List,
}

/// Every key and how to read it from an environment variable.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("database_url", Kind::Str),
    ("database_max_connections", Kind::Int),
    ("public_url", Kind::Str),
    ("jwt_secret", Kind::Str),
    ("jwt_ttl_seconds", Kind::Int),
    ("max_body_bytes", Kind::Int),
    ("login_rate_per_minute", Kind::Int),
    ("enroll_rate_per_minute", Kind::Int),
    ("trust_forwarded_for", Kind::Bool),
    ("enrollment_token_ttl_seconds", Kind::Int),
    ("enrollment_token_max_uses", Kind::Int),
    ("log", Kind::Str),
    ("opamp_heartbeat_interval_seconds", Kind::Int),
    ("opamp_offline_timeout_seconds", Kind::Int),
    ("opamp_max_message_bytes", Kind::Int),
    ("releases.signing_keys", Kind::List),
    ("releases.storage_dir", Kind::Str),
    ("releases.watch_dir", Kind::Str),
    ("releases.watch_interval_seconds", Kind::Int),
    ("releases.max_build_bytes", Kind::Int),
    ("releases.download_timeout_seconds", Kind::Int),
    ("releases.offer_interval_seconds", Kind::Int),
    ("releases.auto_pause_failure_percent", Kind::Int),
    ("releases.auto_pause_min_attempts", Kind::Int),
    ("releases.default_max_concurrent", Kind::Int),
    ("releases.update_timeout_seconds", Kind::Int),
];

/// Whether `key` is a section (`releases` for `releases.*`).
fn is_section(key: &str) -> bool {
    KEYS.iter()
        .any(|(k, _)| k.split_once('.').is_some_and(|(s, _)| s == key))
}

impl Config {
    /// Read `file` (if given), apply the process environment, validate.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        if let Some(path) = file {
            for (key, value) in &table {
                if is_section(key) {
                    let Some(sub) = value.as_table() else {
                        bail!(
                            "config file {}: `{key}` must be a section `[{key}]`",
                            path.display()
                        );
                    };
                    for k in sub.keys() {
                        let full = format!("{key}.{k}");
                        if !KEYS.iter().any(|(n, _)| *n == full) {
                            bail!(
                                "config file {}: unknown key `{k}` in [{key}] (known keys: {})",
                                path.display(),
                                known_keys()
                            );
                        }
                    }
                } else if !KEYS.iter().any(|(k, _)| k == key) {
                    bail!(
                        "config file {}: unknown key `{key}` (known keys: {})",
                        path.display(),
                        known_keys()
                    );
                }
            }
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, value) in env {
            if ENV_NOT_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            let key = name[ENV_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            let Some((_, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
                bail!(
                    "unknown environment variable {name} (known: {})",
                    known_env()
                );
            };
            let v = match kind {
                Kind::Str => toml::Value::String(value),
                Kind::Int => toml::Value::Integer(
                    value
                        .trim()
                        .parse::<i64>()
                        .with_context(|| format!("{name}: {value:?} is not an integer"))?,
                ),
                Kind::Bool => {
                    toml::Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
                        "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" => false,
                        _ => bail!("{name}: {value:?} is not a boolean (true/false)"),
                    })
                }
                Kind::List => toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ),
            };
            match key.split_once('.') {
                Some((section, sub)) => {
                    let entry = table
                        .entry(section.to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    let Some(t) = entry.as_table_mut() else {
                        bail!("{name}: `{section}` in the config file is not a section");
                    };
                    t.insert(sub.to_owned(), v);
                }
                None => {
                    table.insert(key, v);
                }
            }
        }
        let config: Config = table.try_into().context("invalid settings")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        let url = self.database_url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!("database_url must start with sqlite:// or postgres:// (got {url:?})");
        }
        if let Some(s) = &self.jwt_secret {
            if s.len() < 32 {
                bail!("jwt_secret must be at least 32 characters long");
            }
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("public_url must start with http:// or https:// (got {u:?})");
            }
        }
        if self.opamp_heartbeat_interval_seconds == 0 || self.opamp_offline_timeout_seconds == 0 {
            bail!("opamp_heartbeat_interval_seconds and opamp_offline_timeout_seconds must be positive");
        }
        if self.opamp_max_message_bytes < 1024 {
            bail!("opamp_max_message_bytes must be at least 1024");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        if self.jwt_ttl_seconds == 0
            || self.enrollment_token_ttl_seconds == 0
            || self.enrollment_token_max_uses == 0
        {
            bail!("jwt_ttl_seconds, enrollment_token_ttl_seconds and enrollment_token_max_uses must be positive");
        }
        self.releases.validate()?;
        Ok(())
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "listen must be an address like 127.0.0.1:8080 (got {:?})",
                self.listen
            )
        })
    }

    /// The public base URL, without a trailing slash; `bound` is the address actually bound
    /// (it differs from `listen` when that asks for port 0).
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

impl ReleasesConfig {
    fn validate(&self) -> anyhow::Result<()> {
        self.public_keys()?;
        if self.max_build_bytes == 0
            || self.watch_interval_seconds == 0
            || self.offer_interval_seconds == 0
            || self.download_timeout_seconds == 0
            || self.update_timeout_seconds == 0
        {
            bail!("releases: max_build_bytes, watch_interval_seconds, offer_interval_seconds, download_timeout_seconds and update_timeout_seconds must be positive");
        }
        if self.auto_pause_failure_percent > 100 {
            bail!(
                "releases.auto_pause_failure_percent must be between 0 and 100 (got {})",
                self.auto_pause_failure_percent
            );
        }
        Ok(())
    }

    /// The configured signing keys, parsed; an error names the key that does not parse.
    pub fn public_keys(&self) -> anyhow::Result<Vec<crate::releases::signing::PublicKey>> {
        self.signing_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                crate::releases::signing::PublicKey::parse(k).with_context(|| {
                    format!(
                        "releases.signing_keys[{i}] is not a release public key \
                         (expected `rmm-ed25519-public:<base64 of 32 bytes>`, as written by \
                         `rmm-control-plane release keygen`)"
                    )
                })
            })
            .collect()
    }

    /// Where builds are stored (see [`ReleasesConfig::storage_dir`]).
    pub fn storage_path(&self, database_url: &str) -> std::path::PathBuf {
        if let Some(d) = &self.storage_dir {
            return d.into();
        }
        let file = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .map(|f| f.split('?').next().unwrap_or(f));
        match file.and_then(|f| Path::new(f).parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("releases"),
            _ => "./data/releases".into(),
        }
    }
}

fn known_keys() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

fn known_env() -> String {
    KEYS.iter()
        .map(|(k, _)| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase().replace('.', "__")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/rmm.db");
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("rmm-cfg-{}", crate::store::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cp.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\n").unwrap();
        let c = Config::load_from(
            Some(&f),
            env(&[
                ("RMM_CP_LISTEN", "0.0.0.0:1"),
                ("RMM_CP_TRUST_FORWARDED_FOR", "true"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.max_body_bytes, 2048);
        assert!(c.trust_forwarded_for);
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&f), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`lisen`"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_env_is_refused_by_name() {
        let err = Config::load_from(None, env(&[("RMM_CP_LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RMM_CP_LISTN"), "{err}");
        let err = Config::load_from(None, env(&[("RMM_CP_MAX_BODY_BYTES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("RMM_CP_MAX_BODY_BYTES"), "{err}");
        assert!(Config::load_from(None, env(&[("RMM_CP_CONFIG", "/x")])).is_ok());
    }

    #[test]
    fn release_section_from_file_and_env() {
        let key = crate::releases::signing::SecretKey::generate()
            .public()
            .encode();
        let c = Config::load_from(
            None,
            env(&[
                ("RMM_CP_RELEASES__SIGNING_KEYS", &format!("{key}, {key}")),
                ("RMM_CP_RELEASES__MAX_BUILD_BYTES", "4096"),
            ]),
        )
        .unwrap();
        assert_eq!(c.releases.signing_keys, vec![key.clone(), key]);
        assert_eq!(c.releases.max_build_bytes, 4096);
        assert_eq!(
            c.releases.storage_path("sqlite:///var/lib/rmm/rmm.db"),
            Path::new("/var/lib/rmm/releases")
        );
        let err =
            Config::load_from(None, env(&[("RMM_CP_RELEASES__SIGNING_KEYS", "nope")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("releases.signing_keys[0]"),
            "{err:#}"
        );
        let dir = std::env::temp_dir().join(format!("rmm-cfg-{}", crate::store::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cp.toml");
        std::fs::write(&f, "[releases]\nsigning_kys = []\n").unwrap();
        let err = Config::load_from(Some(&f), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`signing_kys` in [releases]"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::load_from(None, env(&[("RMM_CP_LISTEN", "nowhere")])).is_err());
        assert!(Config::load_from(None, env(&[("RMM_CP_DATABASE_URL", "mysql://x")])).is_err());
        assert!(Config::load_from(None, env(&[("RMM_CP_JWT_SECRET", "short")])).is_err());
    }
}
