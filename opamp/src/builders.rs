//! Constructors and builders for outgoing messages.
//!
//! [`ServerToAgent`] is built through [`ServerToAgent::builder`] for normal
//! replies, or through the dedicated constructors [`ServerToAgent::ack`],
//! [`ServerToAgent::error_response`] (and its shorthands) and
//! [`ServerToAgent::restart_command`], so the exclusivity rules hold by
//! construction.
//!
//! Hash helpers ([`config_hash`], [`AgentRemoteConfig::new`],
//! [`ConnectionSettingsOffers::new`], [`PackagesAvailable::new`]) use SHA-256 over
//! the deterministic protobuf encoding (maps are `BTreeMap`s, so equal content
//! always hashes equally).
//!
//! ```
//! use std::time::Duration;
//! use rmm_opamp::proto::*;
//! use rmm_opamp::{capabilities::server, InstanceUid};
//!
//! let uid = InstanceUid::new_v7();
//! let reply = ServerToAgent::builder(uid)
//!     .capabilities(server::ACCEPTS_STATUS | server::OFFERS_CONNECTION_SETTINGS)
//!     .report_full_state()
//!     .connection_settings(ConnectionSettingsOffers::new(
//!         OpAmpConnectionSettings::default()
//!             .with_headers(Headers::bearer("agent-secret"))
//!             .with_heartbeat_interval(Duration::from_secs(30)),
//!     ))
//!     .build();
//! assert!(reply.report_full_state());
//! assert_eq!(reply.instance_uid, uid.to_vec());
//! ```

use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::capabilities::{agent_flags, server_flags};
use crate::instance_uid::InstanceUid;
use crate::proto::{
    any_value, server_error_response, AgentConfigFile, AgentConfigMap, AgentDescription,
    AgentIdentification, AgentRemoteConfig, AgentToServer, AnyValue, ArrayValue, CommandType,
    ComponentHealth, ConnectionSettingsOffers, ConnectionSettingsStatus,
    ConnectionSettingsStatuses, CustomCapabilities, CustomMessage, DownloadableFile,
    EffectiveConfig, Header, Headers, KeyValue, KeyValueList, OpAmpConnectionSettings,
    PackageAvailable, PackageType, PackagesAvailable, RemoteConfigStatus, RemoteConfigStatuses,
    RetryInfo, ServerErrorResponse, ServerErrorResponseType, ServerToAgent, ServerToAgentCommand,
    TelemetryConnectionSettings,
};

// ---------------------------------------------------------------------------
// AnyValue / KeyValue / AgentDescription
// ---------------------------------------------------------------------------

impl AnyValue {
    /// A string value.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            value: Some(any_value::Value::StringValue(value.into())),
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    /// A human-readable rendering of scalar values (strings as-is, numbers and
    /// booleans formatted, bytes as lowercase hex); `None` for arrays, kv-lists
    /// and empty values.
    pub fn to_display_string(&self) -> Option<String> {
        match self.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::BoolValue(b) => Some(b.to_string()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            any_value::Value::DoubleValue(d) => Some(d.to_string()),
            any_value::Value::BytesValue(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
            any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => None,
        }
    }
}

impl From<&str> for AnyValue {
    fn from(v: &str) -> Self {
        Self::string(v)
    }
}
impl From<String> for AnyValue {
    fn from(v: String) -> Self {
        Self::string(v)
    }
}
impl From<bool> for AnyValue {
    fn from(v: bool) -> Self {
        Self {
            value: Some(any_value::Value::BoolValue(v)),
        }
    }
}
impl From<i64> for AnyValue {
    fn from(v: i64) -> Self {
        Self {
            value: Some(any_value::Value::IntValue(v)),
        }
    }
}
impl From<f64> for AnyValue {
    fn from(v: f64) -> Self {
        Self {
            value: Some(any_value::Value::DoubleValue(v)),
        }
    }
}
impl From<Vec<u8>> for AnyValue {
    fn from(v: Vec<u8>) -> Self {
        Self {
            value: Some(any_value::Value::BytesValue(v)),
        }
    }
}
impl From<ArrayValue> for AnyValue {
    fn from(v: ArrayValue) -> Self {
        Self {
            value: Some(any_value::Value::ArrayValue(v)),
        }
    }
}
impl From<KeyValueList> for AnyValue {
    fn from(v: KeyValueList) -> Self {
        Self {
            value: Some(any_value::Value::KvlistValue(v)),
        }
    }
}

impl KeyValue {
    /// A key/value pair.
    pub fn new(key: impl Into<String>, value: impl Into<AnyValue>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

impl AgentDescription {
    /// Adds an identifying attribute (e.g. `service.name`, `service.version`,
    /// `service.instance.id`).
    pub fn with_identifying(mut self, key: impl Into<String>, value: impl Into<AnyValue>) -> Self {
        self.identifying_attributes.push(KeyValue::new(key, value));
        self
    }

    /// Adds a non-identifying attribute (e.g. `os.type`, `host.name`).
    pub fn with_non_identifying(
        mut self,
        key: impl Into<String>,
        value: impl Into<AnyValue>,
    ) -> Self {
        self.non_identifying_attributes
            .push(KeyValue::new(key, value));
        self
    }

    /// The value of `key`, searched among identifying then non-identifying
    /// attributes (first match wins).
    pub fn attribute(&self, key: &str) -> Option<&AnyValue> {
        self.identifying_attributes
            .iter()
            .chain(&self.non_identifying_attributes)
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
    }

    /// The string value of `key` (see [`attribute`](Self::attribute)).
    pub fn string_attribute(&self, key: &str) -> Option<&str> {
        self.attribute(key).and_then(AnyValue::as_str)
    }
}

// ---------------------------------------------------------------------------
// Health and statuses (agent side)
// ---------------------------------------------------------------------------

impl ComponentHealth {
    /// A healthy component that started at `start_time_unix_nano`.
    pub fn healthy(start_time_unix_nano: u64) -> Self {
        Self {
            healthy: true,
            start_time_unix_nano,
            ..Default::default()
        }
    }

    /// An unhealthy component with a human-readable error.
    pub fn unhealthy(last_error: impl Into<String>) -> Self {
        Self {
            healthy: false,
            last_error: last_error.into(),
            ..Default::default()
        }
    }
}

impl RemoteConfigStatus {
    /// A status for the remote config identified by `hash`.
    pub fn new(hash: impl Into<Vec<u8>>, status: RemoteConfigStatuses) -> Self {
        Self {
            last_remote_config_hash: hash.into(),
            status: status as i32,
            error_message: String::new(),
        }
    }

    /// FAILED with an error message.
    pub fn failed(hash: impl Into<Vec<u8>>, error_message: impl Into<String>) -> Self {
        Self {
            error_message: error_message.into(),
            ..Self::new(hash, RemoteConfigStatuses::Failed)
        }
    }
}

impl ConnectionSettingsStatus {
    /// A status for the connection settings offer identified by `hash`.
    pub fn new(hash: impl Into<Vec<u8>>, status: ConnectionSettingsStatuses) -> Self {
        Self {
            last_connection_settings_hash: hash.into(),
            status: status as i32,
            error_message: String::new(),
        }
    }

    /// FAILED with an error message.
    pub fn failed(hash: impl Into<Vec<u8>>, error_message: impl Into<String>) -> Self {
        Self {
            error_message: error_message.into(),
            ..Self::new(hash, ConnectionSettingsStatuses::Failed)
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

impl AgentConfigMap {
    /// A map holding one file under `name` (single-file agents may use `""`).
    pub fn single(
        name: impl Into<String>,
        body: impl Into<Vec<u8>>,
        content_type: impl Into<String>,
    ) -> Self {
        let mut map = Self::default();
        map.config_map.insert(
            name.into(),
            AgentConfigFile {
                body: body.into(),
                content_type: content_type.into(),
            },
        );
        map
    }
}

impl EffectiveConfig {
    /// Wraps a config map.
    pub fn new(config_map: AgentConfigMap) -> Self {
        Self {
            config_map: Some(config_map),
        }
    }
}

/// A stable content hash of a config map: SHA-256 of its deterministic protobuf
/// encoding. Suitable as `AgentRemoteConfig.config_hash`.
pub fn config_hash(config: &AgentConfigMap) -> Vec<u8> {
    sha256(&config.encode_to_vec())
}

impl AgentRemoteConfig {
    /// A remote config with `config_hash` = [`config_hash`]`(&config)`.
    pub fn new(config: AgentConfigMap) -> Self {
        Self {
            config_hash: config_hash(&config),
            config: Some(config),
        }
    }
}

// ---------------------------------------------------------------------------
// Connection settings
// ---------------------------------------------------------------------------

impl Headers {
    /// Headers from `(key, value)` pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            headers: pairs
                .into_iter()
                .map(|(k, v)| Header {
                    key: k.into(),
                    value: v.into(),
                })
                .collect(),
        }
    }

    /// `Authorization: Bearer <token>` — how a server hands an agent its
    /// credentials in an OpAMP connection settings offer.
    pub fn bearer(token: impl AsRef<str>) -> Self {
        Self::from_pairs([("Authorization", format!("Bearer {}", token.as_ref()))])
    }

    /// Appends a header.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// The first value of `key` (case-insensitive, as HTTP header names are).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .map(|h| h.value.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header, if present.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.get("Authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

impl OpAmpConnectionSettings {
    /// Settings pointing at `destination_endpoint` (`ws://`, `wss://`, `http://`,
    /// `https://`). Leave the endpoint empty to keep the current one.
    pub fn new(destination_endpoint: impl Into<String>) -> Self {
        Self {
            destination_endpoint: destination_endpoint.into(),
            ..Default::default()
        }
    }

    /// Sets the headers the agent must send when connecting (e.g.
    /// [`Headers::bearer`] to hand over credentials).
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// Sets `heartbeat_interval_seconds` (whole seconds, rounded up;
    /// `Duration::ZERO` means "send no heartbeats").
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        let secs = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
        self.heartbeat_interval_seconds = secs;
        self
    }

    /// The offered heartbeat interval; `None` when 0 ("no heartbeats").
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        (self.heartbeat_interval_seconds > 0)
            .then(|| Duration::from_secs(self.heartbeat_interval_seconds))
    }
}

impl TelemetryConnectionSettings {
    /// Settings for an OTLP/HTTP destination (full URL including the path,
    /// e.g. `https://host/v1/metrics`).
    pub fn new(destination_endpoint: impl Into<String>) -> Self {
        Self {
            destination_endpoint: destination_endpoint.into(),
            ..Default::default()
        }
    }

    /// Sets the headers to send with the telemetry.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }
}

impl ConnectionSettingsOffers {
    /// An offer of OpAMP connection settings, hashed (see [`with_hash`](Self::with_hash)).
    /// Add own-telemetry/other settings by setting fields, then call `with_hash` again.
    pub fn new(opamp: OpAmpConnectionSettings) -> Self {
        Self {
            opamp: Some(opamp),
            ..Default::default()
        }
        .with_hash()
    }

    /// Sets `hash` to SHA-256 of the encoding of the offers with `hash` cleared.
    pub fn with_hash(mut self) -> Self {
        self.hash.clear();
        self.hash = sha256(&self.encode_to_vec());
        self
    }
}

// ---------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------

impl DownloadableFile {
    /// A file at `download_url` whose content has SHA-256 `content_hash`.
    pub fn new(download_url: impl Into<String>, content_hash: impl Into<Vec<u8>>) -> Self {
        Self {
            download_url: download_url.into(),
            content_hash: content_hash.into(),
            ..Default::default()
        }
    }

    /// Sets the headers for the download request (e.g. auth). \[Development\]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }
}

impl PackageAvailable {
    /// An offered package; `hash` is left empty for [`PackagesAvailable::new`]
    /// to fill in.
    pub fn new(kind: PackageType, version: impl Into<String>, file: DownloadableFile) -> Self {
        Self {
            r#type: kind as i32,
            version: version.into(),
            file: Some(file),
            hash: Vec::new(),
        }
    }
}

impl PackagesAvailable {
    /// A package offer. Each package with an empty `hash` gets SHA-256 over its
    /// name and encoding; `all_packages_hash` is SHA-256 over every
    /// `(name, hash)` in name order.
    pub fn new<N: Into<String>>(packages: impl IntoIterator<Item = (N, PackageAvailable)>) -> Self {
        let mut out = Self::default();
        for (name, mut pkg) in packages {
            let name = name.into();
            if pkg.hash.is_empty() {
                let mut h = Sha256::new();
                h.update((name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
                h.update(pkg.encode_to_vec());
                pkg.hash = h.finalize().to_vec();
            }
            out.packages.insert(name, pkg);
        }
        let mut all = Sha256::new();
        for (name, pkg) in &out.packages {
            all.update((name.len() as u64).to_le_bytes());
            all.update(name.as_bytes());
            all.update((pkg.hash.len() as u64).to_le_bytes());
            all.update(&pkg.hash);
        }
        out.all_packages_hash = all.finalize().to_vec();
        out
    }
}

// ---------------------------------------------------------------------------
// ServerToAgent
// ---------------------------------------------------------------------------

/// Builder for a normal (non-error, non-command) [`ServerToAgent`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ServerToAgentBuilder {
    msg: ServerToAgent,
}

impl ServerToAgentBuilder {
    /// Starts a reply echoing `instance_uid` (the raw bytes the agent sent, or an
    /// [`InstanceUid`]).
    pub fn new(instance_uid: impl AsRef<[u8]>) -> Self {
        Self {
            msg: ServerToAgent {
                instance_uid: instance_uid.as_ref().to_vec(),
                ..Default::default()
            },
        }
    }

    /// Sets the server capability bits (required in the first reply of a session;
    /// sending them in every reply is recommended).
    pub fn capabilities(mut self, capabilities: u64) -> Self {
        self.msg.capabilities = capabilities;
        self
    }

    /// ORs raw `ServerToAgentFlags` bits into `flags`.
    pub fn flags(mut self, flags: u64) -> Self {
        self.msg.flags |= flags;
        self
    }

    /// Sets ReportFullState: the agent must resend all status sub-messages.
    pub fn report_full_state(self) -> Self {
        self.flags(server_flags::REPORT_FULL_STATE)
    }

    /// Sets ReportFullState when `condition` holds (e.g. an observation said so).
    pub fn report_full_state_if(self, condition: bool) -> Self {
        if condition {
            self.report_full_state()
        } else {
            self
        }
    }

    /// Sets ReportAvailableComponents. \[Development\]
    pub fn report_available_components(self) -> Self {
        self.flags(server_flags::REPORT_AVAILABLE_COMPONENTS)
    }

    /// Offers a remote config (only for agents with AcceptsRemoteConfig).
    pub fn remote_config(mut self, remote_config: AgentRemoteConfig) -> Self {
        self.msg.remote_config = Some(remote_config);
        self
    }

    /// Offers connection settings (gate each part on the agent's capabilities).
    pub fn connection_settings(mut self, offers: ConnectionSettingsOffers) -> Self {
        self.msg.connection_settings = Some(offers);
        self
    }

    /// Offers packages (only for agents with AcceptsPackages).
    pub fn packages_available(mut self, packages: PackagesAvailable) -> Self {
        self.msg.packages_available = Some(packages);
        self
    }

    /// Assigns a new instance UID to the agent.
    pub fn new_instance_uid(mut self, uid: InstanceUid) -> Self {
        self.msg.agent_identification = Some(AgentIdentification {
            new_instance_uid: uid.to_vec(),
        });
        self
    }

    /// Declares the server's custom capabilities.
    pub fn custom_capabilities(mut self, capabilities: CustomCapabilities) -> Self {
        self.msg.custom_capabilities = Some(capabilities);
        self
    }

    /// Sends a custom message.
    pub fn custom_message(mut self, message: CustomMessage) -> Self {
        self.msg.custom_message = Some(message);
        self
    }

    /// The finished message.
    pub fn build(self) -> ServerToAgent {
        self.msg
    }
}

impl ServerToAgent {
    /// Starts a normal reply; see [`ServerToAgentBuilder`].
    pub fn builder(instance_uid: impl AsRef<[u8]>) -> ServerToAgentBuilder {
        ServerToAgentBuilder::new(instance_uid)
    }

    /// A bare acknowledgement: only `instance_uid` set.
    pub fn ack(instance_uid: impl AsRef<[u8]>) -> Self {
        ServerToAgentBuilder::new(instance_uid).build()
    }

    /// An error response: `instance_uid` + `error_response`, nothing else.
    pub fn error_response(
        instance_uid: impl AsRef<[u8]>,
        kind: ServerErrorResponseType,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            instance_uid: instance_uid.as_ref().to_vec(),
            error_response: Some(ServerErrorResponse {
                r#type: kind as i32,
                error_message: message.into(),
                details: retry_after.map(|d| {
                    server_error_response::Details::RetryInfo(RetryInfo {
                        retry_after_nanoseconds: u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
                    })
                }),
            }),
            ..Default::default()
        }
    }

    /// BAD_REQUEST for a malformed `AgentToServer` (the client should not retry it).
    pub fn bad_request(instance_uid: impl AsRef<[u8]>, message: impl Into<String>) -> Self {
        Self::error_response(
            instance_uid,
            ServerErrorResponseType::BadRequest,
            message,
            None,
        )
    }

    /// UNAVAILABLE (throttling), optionally with a retry delay.
    pub fn unavailable(
        instance_uid: impl AsRef<[u8]>,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self::error_response(
            instance_uid,
            ServerErrorResponseType::Unavailable,
            message,
            retry_after,
        )
    }

    /// A restart command: `instance_uid`, `capabilities` and `command` only
    /// (only for agents with AcceptsRestartCommand).
    pub fn restart_command(instance_uid: impl AsRef<[u8]>, capabilities: u64) -> Self {
        Self {
            instance_uid: instance_uid.as_ref().to_vec(),
            capabilities,
            command: Some(ServerToAgentCommand {
                r#type: CommandType::Restart as i32,
            }),
            ..Default::default()
        }
    }
}

impl AgentToServer {
    /// A disconnect message (normally built by
    /// [`ClientState::disconnect_message`](crate::client::ClientState::disconnect_message)).
    pub fn disconnect(instance_uid: InstanceUid, sequence_num: u64, capabilities: u64) -> Self {
        Self {
            instance_uid: instance_uid.to_vec(),
            sequence_num,
            capabilities,
            agent_disconnect: Some(Default::default()),
            ..Default::default()
        }
    }

    /// Sets the RequestInstanceUid flag.
    pub fn with_request_instance_uid(mut self) -> Self {
        self.flags |= agent_flags::REQUEST_INSTANCE_UID;
        self
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::server;
    use crate::typed::ServerErrorKind;

    #[test]
    fn error_response_is_exclusive() {
        let m = ServerToAgent::unavailable([1u8; 16], "busy", Some(Duration::from_secs(30)));
        assert_eq!(m.check_exclusivity(), Ok(()));
        let e = m.server_error().unwrap();
        assert_eq!(e.kind, ServerErrorKind::Unavailable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        let m = ServerToAgent::bad_request(b"short", "instance_uid must be 16 bytes");
        assert_eq!(m.instance_uid, b"short");
        assert_eq!(m.server_error().unwrap().kind, ServerErrorKind::BadRequest);
        assert_eq!(m.server_error().unwrap().retry_after, None);
        let m = ServerToAgent::restart_command([1u8; 16], server::ACCEPTS_STATUS);
        assert_eq!(m.check_exclusivity(), Ok(()));
        assert_eq!(m.command_kind(), Some(crate::typed::Command::Restart));
    }

    #[test]
    fn hashes_are_stable() {
        let a = AgentConfigMap::single("", b"a: 1".to_vec(), "text/yaml");
        let b = AgentConfigMap::single("", b"a: 1".to_vec(), "text/yaml");
        let c = AgentConfigMap::single("", b"a: 2".to_vec(), "text/yaml");
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(config_hash(&a).len(), 32);
        assert_eq!(
            AgentRemoteConfig::new(a.clone()).config_hash,
            config_hash(&a)
        );

        let s = OpAmpConnectionSettings::new("wss://cp/v1/opamp")
            .with_headers(Headers::bearer("t1"))
            .with_heartbeat_interval(Duration::from_millis(1500));
        assert_eq!(s.heartbeat_interval_seconds, 2);
        assert_eq!(s.heartbeat_interval(), Some(Duration::from_secs(2)));
        let o1 = ConnectionSettingsOffers::new(s.clone());
        let o2 = ConnectionSettingsOffers::new(s.clone()).with_hash();
        assert_eq!(o1, o2);
        let o3 = ConnectionSettingsOffers::new(s.with_headers(Headers::bearer("t2")));
        assert_ne!(o1.hash, o3.hash);

        let file = DownloadableFile::new("https://x/p.tgz", vec![1; 32]);
        let p1 = PackagesAvailable::new([(
            "",
            PackageAvailable::new(PackageType::TopLevel, "1.0", file.clone()),
        )]);
        let p2 = PackagesAvailable::new([(
            "",
            PackageAvailable::new(PackageType::TopLevel, "1.1", file),
        )]);
        assert_eq!(p1.packages[""].hash.len(), 32);
        assert_ne!(p1.all_packages_hash, p2.all_packages_hash);
    }

    #[test]
    fn headers_and_description() {
        let h = Headers::bearer("s3cret").with("X-Extra", "1");
        assert_eq!(h.get("authorization"), Some("Bearer s3cret"));
        assert_eq!(h.bearer_token(), Some("s3cret"));
        assert_eq!(h.get("x-extra"), Some("1"));
        assert_eq!(
            Headers::from_pairs([("Authorization", "Basic abc")]).bearer_token(),
            None
        );

        let d = AgentDescription::default()
            .with_identifying("service.name", "rmm-agent")
            .with_non_identifying("os.type", "linux")
            .with_non_identifying("host.cpus", 4i64);
        assert_eq!(d.string_attribute("service.name"), Some("rmm-agent"));
        assert_eq!(d.string_attribute("os.type"), Some("linux"));
        assert_eq!(d.string_attribute("host.cpus"), None);
        assert_eq!(
            d.attribute("host.cpus")
                .and_then(AnyValue::to_display_string),
            Some("4".to_owned())
        );
        assert_eq!(
            AnyValue::from(vec![0xab, 1]).to_display_string(),
            Some("ab01".into())
        );
    }
}
