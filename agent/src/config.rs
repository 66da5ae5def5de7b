//! Agent configuration: a TOML file, then `RMM_AGENT_<SECTION>_<KEY>` environment overrides,
//! then validation. Every problem is reported at once, naming the file key or the environment
//! variable it came from.
//!
//! Adding a section: add a field to [`AgentConfig`] whose type has `Default`, `Serialize`,
//! `Deserialize` and `#[serde(deny_unknown_fields, default)]`. Environment overrides follow
//! automatically: the override of a key is typed after the key's default value (string,
//! integer, float, bool, or list given comma-separated); keys without a serialised default
//! (`Option` fields that default to `None`) take the value as a TOML literal if it parses as
//! one, else as a string.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "RMM_AGENT_";

/// The whole agent configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// What to collect and how often.
    pub collect: CollectConfig,
    /// The Prometheus `/metrics` endpoint.
    pub prometheus: PrometheusConfig,
    /// OTLP pushes (`export::otlp`).
    pub otlp: crate::export::otlp::OtlpConfig,
    /// The control plane: state directory, OpAMP heartbeats and reconnects.
    pub control: crate::control::ControlConfig,
    /// Extra labels on every series: labels on `/metrics`, data-point attributes on OTLP
    /// (`otlp.attributes` wins on a clash). A label a series already has is not overwritten.
    pub labels: BTreeMap<String, String>,
    /// `[inventory]`: user inventory reports.
    pub inventory: InventoryConfig,
    /// `[updates]`: self-updates from control-plane package offers ([`crate::update`]).
    pub updates: UpdatesConfig,
}

/// `[updates]`. `channel`, `auto` and `maintenance_window` come from policies; the control
/// plane acts on them (it decides what to offer, and when); the agent reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// Accept package offers at all (AcceptsPackages). Off: offers are ignored.
    pub enabled: bool,
    /// How long a new version has, after it starts, to collect and connect before it is rolled
    /// back.
    pub health_timeout_seconds: u64,
    /// The largest build the agent downloads.
    pub max_download_bytes: u64,
    /// Release channel (`stable`, `beta`, ...), set by policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Install updates automatically, set by policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    /// When updates may be installed, set by policy (the control plane enforces it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<toml::Table>,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            health_timeout_seconds: 30,
            max_download_bytes: 256 * 1024 * 1024,
            channel: None,
            auto: None,
            maintenance_window: None,
        }
    }
}

/// `[inventory]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// Hours between reports of local user accounts and sessions; 0 turns them off.
    pub interval_hours: u64,
}

/// Labels that service discovery or the scrape adds (`job`, `instance`, and the identity
/// labels `client`, `site`, `host`, `agent`): refused in `labels`, where they would clash.
pub const RESERVED_LABELS: [&str; 6] = ["job", "instance", "client", "site", "host", "agent"];

/// `[collect]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Time between collection cycles (humantime: `15s`, `1m`, `500ms`).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Length of each top list (by CPU and by memory).
    pub top_processes: usize,
    /// CPU time and utilization per logical CPU.
    pub cpu: bool,
    /// Load averages.
    pub load: bool,
    /// Memory and swap.
    pub memory: bool,
    /// Filesystem usage per mount.
    pub filesystem: bool,
    /// Disk I/O per whole disk.
    pub disk: bool,
    /// Network I/O, errors and drops per interface.
    pub network: bool,
    /// Temperature sensors.
    pub temperature: bool,
    /// Uptime.
    pub uptime: bool,
    /// Process counts, top processes and the remainder.
    pub processes: bool,
    /// Filesystem types left out (globs).
    pub filesystem_exclude_types: Vec<String>,
    /// Mount points left out (globs).
    pub filesystem_exclude_mountpoints: Vec<String>,
    /// Disk devices left out (globs; partitions are always left out).
    pub disk_exclude_devices: Vec<String>,
    /// Network interfaces left out (globs).
    pub network_exclude_interfaces: Vec<String>,
    /// Export each top process's command line (`process_command_line`). Off by default: long,
    /// high-cardinality, and may contain secrets.
    pub command_line: bool,
    /// Characters of the command line kept when `command_line` is on.
    pub command_line_max_length: usize,
}

impl Default for CollectConfig {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Self {
            interval: Duration::from_secs(15),
            top_processes: 10,
            cpu: true,
            load: true,
            memory: true,
            filesystem: true,
            disk: true,
            network: true,
            temperature: true,
            uptime: true,
            processes: true,
            filesystem_exclude_types: strings(&[
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "efivarfs",
                "fusectl",
                "fuse.lxcfs",
                "fuse.portal",
                "hugetlbfs",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "pstore",
                "ramfs",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "sysfs",
                "tmpfs",
                "tracefs",
            ]),
            filesystem_exclude_mountpoints: strings(&[
                "/dev/*",
                "/proc/*",
                "/sys/*",
                "/run/credentials/*",
                "/var/lib/docker/*",
                "/var/lib/containers/storage/*",
                "/var/lib/kubelet/pods/*",
                "/snap/*",
            ]),
            disk_exclude_devices: strings(&["loop*", "ram*", "zram*", "fd*", "sr*"]),
            network_exclude_interfaces: strings(&["lo"]),
            command_line: false,
            command_line_max_length: 256,
        }
    }
}

/// `[prometheus]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Every problem found while loading a configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl AgentConfig {
    /// Loads `file` (if any), applies the process environment's overrides and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(format!("reading config file {}: {e}", path.display()))
            })?),
            None => None,
        };
        Self::from_sources(
            text.as_deref().map(|t| (file.unwrap_or(Path::new("")), t)),
            std::env::vars(),
        )
    }

    /// Builds a configuration from an optional `(path, TOML text)` and environment variables
    /// (only `RMM_AGENT_*` ones are looked at).
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some((path, text)) => text.parse::<toml::Table>().map_err(|e| {
                ConfigError::one(format!("{}: {}", path.display(), e.to_string().trim_end()))
            })?,
            None => toml::Table::new(),
        };
        let file_label = file.map(|(p, _)| p.to_path_buf()).unwrap_or_default();
        let defaults = toml::Table::try_from(Self::default()).expect("defaults serialise");
        let mut problems = Vec::new();
        let mut from_env: BTreeMap<String, String> = BTreeMap::new();
        let env: Vec<(String, String)> = env.into_iter().collect();
        // The standard OTEL_EXPORTER_OTLP_* variables, below the agent's own overrides.
        let otel: BTreeMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("OTEL_EXPORTER_OTLP_"))
            .cloned()
            .collect();
        match crate::export::otlp::settings::otel_env(&otel) {
            Ok(settings) => {
                for (key, value, var) in settings {
                    set_path(&mut table, &["otlp".to_owned(), key.to_owned()], value);
                    from_env.insert(format!("otlp.{key}"), var);
                }
            }
            Err(mut p) => problems.append(&mut p),
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        env.sort();
        for (name, value) in env {
            match env_override(&defaults, &name, &value) {
                Ok((path, v)) => {
                    set_path(&mut table, &path, v);
                    from_env.insert(path.join("."), name);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let config: Self =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                // toml appends "in `path`" on a second line; the path is named by us instead.
                let inner = inner.lines().next().unwrap_or_default().trim_end();
                let problem = match from_env.get(&path) {
                    Some(var) => format!("{var}: {inner}"),
                    None if file.is_some() => {
                        format!("{}: key `{path}`: {inner}", file_label.display())
                    }
                    None => format!("key `{path}`: {inner}"),
                };
                ConfigError::one(problem)
            })?;
        config.validate(&from_env)?;
        Ok(config)
    }

    /// Range checks serde cannot express. `from_env` maps a key path to the variable that set it.
    pub(crate) fn validate(&self, from_env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let name = |key: &str| {
            from_env
                .get(key)
                .cloned()
                .unwrap_or_else(|| format!("key `{key}`"))
        };
        let c = &self.collect;
        let mut problems = Vec::new();
        if c.interval < Duration::from_millis(100) || c.interval > Duration::from_secs(3600) {
            problems.push(format!(
                "{}: must be between 100ms and 1h, got {}",
                name("collect.interval"),
                humantime::format_duration(c.interval)
            ));
        }
        if c.top_processes > 1000 {
            problems.push(format!(
                "{}: at most 1000, got {}",
                name("collect.top_processes"),
                c.top_processes
            ));
        }
        if c.command_line_max_length == 0 {
            problems.push(format!(
                "{}: must be at least 1",
                name("collect.command_line_max_length")
            ));
        }
        for (key, value) in &self.labels {
            let valid_name = key
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if key.is_empty() || !valid_name || key.starts_with("__") {
                problems.push(format!(
                    "{}: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
                    name(&format!("labels.{key}"))
                ));
            } else if RESERVED_LABELS.contains(&key.as_str()) {
                problems.push(format!(
                    "{}: `{key}` is set by service discovery or the scrape, not by labels",
                    name(&format!("labels.{key}"))
                ));
            } else if value.is_empty() {
                problems.push(format!(
                    "{}: must not be empty",
                    name(&format!("labels.{key}"))
                ));
            }
        }
        if self.inventory.interval_hours > 24 * 366 {
            problems.push(format!(
                "{}: at most {} hours, got {}",
                name("inventory.interval_hours"),
                24 * 366,
                self.inventory.interval_hours
            ));
        }
        let u = &self.updates;
        if !(1..=3600).contains(&u.health_timeout_seconds) {
            problems.push(format!(
                "{}: must be between 1 and 3600, got {}",
                name("updates.health_timeout_seconds"),
                u.health_timeout_seconds
            ));
        }
        if u.max_download_bytes < 1024 * 1024 {
            problems.push(format!(
                "{}: must be at least 1048576 (1 MiB), got {}",
                name("updates.max_download_bytes"),
                u.max_download_bytes
            ));
        }
        problems.extend(self.otlp.problems(name));
        problems.extend(self.control.problems(name));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Resolves one `RMM_AGENT_*` variable to a key path and a typed value.
fn env_override(
    defaults: &toml::Table,
    name: &str,
    raw: &str,
) -> Result<(Vec<String>, toml::Value), String> {
    let rest = name[ENV_PREFIX.len()..].to_ascii_lowercase();
    // The longest section name that prefixes the rest, followed by `_`.
    let section = defaults
        .iter()
        .filter(|(k, v)| v.is_table() && rest.starts_with(&format!("{k}_")))
        .max_by_key(|(k, _)| k.len());
    let Some((section, section_defaults)) = section else {
        let known: Vec<String> = defaults
            .keys()
            .map(|k| format!("{ENV_PREFIX}{}_*", k.to_ascii_uppercase()))
            .collect();
        return Err(format!(
            "{name}: unknown configuration section (known: {})",
            known.join(", ")
        ));
    };
    let key = &rest[section.len() + 1..];
    let default = section_defaults.get(key);
    let value = match default {
        Some(d) => {
            typed(d, raw).map_err(|expected| format!("{name}: expected {expected}, got `{raw}`"))?
        }
        // Not in the defaults: an `Option` key that defaults to `None`, or an unknown key, which
        // deserialisation (`deny_unknown_fields`) then refuses, naming this variable.
        None => literal(raw),
    };
    Ok((vec![section.clone(), key.to_owned()], value))
}

/// `raw` converted to the type of `default`; on failure, the expected type's description.
fn typed(default: &toml::Value, raw: &str) -> Result<toml::Value, &'static str> {
    use toml::Value;
    Ok(match default {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| "an integer")?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| "a number")?),
        Value::Boolean(_) => Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err("true or false"),
        }),
        Value::Array(_) => {
            let raw = raw.trim();
            if raw.starts_with('[') {
                match literal(raw) {
                    Value::Array(a) => Value::Array(a),
                    _ => return Err("a list (`a,b` or a TOML array)"),
                }
            } else {
                Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            }
        }
        // Maps such as `otlp.headers`: `k=v,k2=v2` or a TOML inline table.
        Value::Table(_) => match literal(raw) {
            Value::Table(t) => Value::Table(t),
            _ => Value::Table(
                crate::export::otlp::settings::parse_key_values(raw)
                    .ok_or("`key=value,key2=value2` or a TOML inline table")?,
            ),
        },
        Value::Datetime(_) => Value::String(raw.to_owned()),
    })
}

/// A TOML literal if `raw` is one, else the string itself.
fn literal(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("just made a table");
    }
    t.insert(last.clone(), value);
}

/// The example configuration shipped in `deploy/examples/agent.toml`.
pub fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/agent.toml")
}

#[cfg(test)]
mod tests;
