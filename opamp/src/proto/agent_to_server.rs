//! `AgentToServer` and the status sub-messages an agent reports.

use std::collections::BTreeMap;

use super::anyvalue::KeyValue;
use super::config::AgentConfigMap;
use super::custom::{CustomCapabilities, CustomMessage};
use super::enums::{ConnectionSettingsStatuses, PackageStatusEnum, RemoteConfigStatuses};

/// A message from the agent to the server.
///
/// Status sub-messages (`agent_description`, `health`, `effective_config`,
/// `remote_config_status`, `package_statuses`, `custom_capabilities`,
/// `available_components`, `connection_settings_status`) follow *status
/// compression*: `None` means "unchanged since I last sent it", not "empty".
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentToServer {
    /// `instance_uid = 1`: the agent's 16-byte instance UID (UUIDv7 recommended).
    #[prost(bytes = "vec", tag = "1")]
    pub instance_uid: Vec<u8>,
    /// `sequence_num = 2`: incremented by one for every message sent.
    #[prost(uint64, tag = "2")]
    pub sequence_num: u64,
    /// `agent_description = 3`: omitted when unchanged.
    #[prost(message, optional, tag = "3")]
    pub agent_description: Option<AgentDescription>,
    /// `capabilities = 4`: bitmask of [`AgentCapabilities`](super::AgentCapabilities);
    /// set in every message.
    #[prost(uint64, tag = "4")]
    pub capabilities: u64,
    /// `health = 5`: the agent's health. \[Beta\]
    #[prost(message, optional, tag = "5")]
    pub health: Option<ComponentHealth>,
    /// `effective_config = 6`: omitted when unchanged.
    #[prost(message, optional, tag = "6")]
    pub effective_config: Option<EffectiveConfig>,
    /// `remote_config_status = 7`: omitted when unchanged.
    #[prost(message, optional, tag = "7")]
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// `package_statuses = 8`. \[Beta\]
    #[prost(message, optional, tag = "8")]
    pub package_statuses: Option<PackageStatuses>,
    /// `agent_disconnect = 9`: set in the agent's last message.
    #[prost(message, optional, tag = "9")]
    pub agent_disconnect: Option<AgentDisconnect>,
    /// `flags = 10`: bitmask of [`AgentToServerFlags`](super::AgentToServerFlags).
    #[prost(uint64, tag = "10")]
    pub flags: u64,
    /// `connection_settings_request = 11`: CSR flow. \[Development\]
    #[prost(message, optional, tag = "11")]
    pub connection_settings_request: Option<ConnectionSettingsRequest>,
    /// `custom_capabilities = 12`. \[Development\]
    #[prost(message, optional, tag = "12")]
    pub custom_capabilities: Option<CustomCapabilities>,
    /// `custom_message = 13`. \[Development\]
    #[prost(message, optional, tag = "13")]
    pub custom_message: Option<CustomMessage>,
    /// `available_components = 14`. \[Development\]
    #[prost(message, optional, tag = "14")]
    pub available_components: Option<AvailableComponents>,
    /// `connection_settings_status = 15`. \[Development\]
    #[prost(message, optional, tag = "15")]
    pub connection_settings_status: Option<ConnectionSettingsStatus>,
}

/// `AgentDisconnect`: empty; its presence in `AgentToServer` is the signal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentDisconnect {}

/// `AgentDescription`: attributes describing the agent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentDescription {
    /// `identifying_attributes = 1`: e.g. `service.name`, `service.version`,
    /// `service.instance.id`.
    #[prost(message, repeated, tag = "1")]
    pub identifying_attributes: Vec<KeyValue>,
    /// `non_identifying_attributes = 2`: e.g. `os.type`, `host.name`.
    #[prost(message, repeated, tag = "2")]
    pub non_identifying_attributes: Vec<KeyValue>,
}

/// `ComponentHealth`: health of the agent (top level) or one of its components. \[Beta\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComponentHealth {
    /// `healthy = 1`.
    #[prost(bool, tag = "1")]
    pub healthy: bool,
    /// `start_time_unix_nano = 2`: when the component started; 0 if not running.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// `last_error = 3`: human-readable; should be set when unhealthy.
    #[prost(string, tag = "3")]
    pub last_error: String,
    /// `status = 4`: agent-defined status word.
    #[prost(string, tag = "4")]
    pub status: String,
    /// `status_time_unix_nano = 5`: when the status was observed.
    #[prost(fixed64, tag = "5")]
    pub status_time_unix_nano: u64,
    /// `component_health_map = 6`: nested sub-components by name.
    #[prost(btree_map = "string, message", tag = "6")]
    pub component_health_map: BTreeMap<String, ComponentHealth>,
    /// `attributes = 7`. \[Development\], added after v0.18.0.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
}

/// `EffectiveConfig`: the configuration the agent actually runs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EffectiveConfig {
    /// `config_map = 1`.
    #[prost(message, optional, tag = "1")]
    pub config_map: Option<AgentConfigMap>,
}

/// `RemoteConfigStatus`: outcome of the last remote config received.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoteConfigStatus {
    /// `last_remote_config_hash = 1`: echo of `AgentRemoteConfig.config_hash`.
    #[prost(bytes = "vec", tag = "1")]
    pub last_remote_config_hash: Vec<u8>,
    /// `status = 2`: a [`RemoteConfigStatuses`] value.
    #[prost(enumeration = "RemoteConfigStatuses", tag = "2")]
    pub status: i32,
    /// `error_message = 3`: set when `status` is FAILED.
    #[prost(string, tag = "3")]
    pub error_message: String,
}

/// `PackageStatuses`: every package the agent has or is processing. \[Beta\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageStatuses {
    /// `packages = 1`: keyed by package name.
    #[prost(btree_map = "string, message", tag = "1")]
    pub packages: BTreeMap<String, PackageStatus>,
    /// `server_provided_all_packages_hash = 2`: echo of `PackagesAvailable.all_packages_hash`.
    #[prost(bytes = "vec", tag = "2")]
    pub server_provided_all_packages_hash: Vec<u8>,
    /// `error_message = 3`: an error not tied to one package.
    #[prost(string, tag = "3")]
    pub error_message: String,
}

/// `PackageStatus`: one package's state. \[Beta\]
///
/// `status == 0` means **Installed**; use
/// [`PackageStatus::state`](Self::state) for a typed view.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageStatus {
    /// `name = 1`: equals the map key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `agent_has_version = 2`: empty if not installed.
    #[prost(string, tag = "2")]
    pub agent_has_version: String,
    /// `agent_has_hash = 3`: empty if not installed.
    #[prost(bytes = "vec", tag = "3")]
    pub agent_has_hash: Vec<u8>,
    /// `server_offered_version = 4`.
    #[prost(string, tag = "4")]
    pub server_offered_version: String,
    /// `server_offered_hash = 5`.
    #[prost(bytes = "vec", tag = "5")]
    pub server_offered_hash: Vec<u8>,
    /// `status = 6`: a [`PackageStatusEnum`] value.
    #[prost(enumeration = "PackageStatusEnum", tag = "6")]
    pub status: i32,
    /// `error_message = 7`.
    #[prost(string, tag = "7")]
    pub error_message: String,
    /// `download_details = 8`: only while Downloading. \[Development\]
    #[prost(message, optional, tag = "8")]
    pub download_details: Option<PackageDownloadDetails>,
}

/// `PackageDownloadDetails`: download progress. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageDownloadDetails {
    /// `download_percent = 1`.
    #[prost(double, tag = "1")]
    pub download_percent: f64,
    /// `download_bytes_per_second = 2` (double since v0.12.0).
    #[prost(double, tag = "2")]
    pub download_bytes_per_second: f64,
}

/// `ConnectionSettingsRequest`: the agent asks for connection settings. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectionSettingsRequest {
    /// `opamp = 1`.
    #[prost(message, optional, tag = "1")]
    pub opamp: Option<OpAmpConnectionSettingsRequest>,
}

/// `OpAMPConnectionSettingsRequest`. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpAmpConnectionSettingsRequest {
    /// `certificate_request = 1`.
    #[prost(message, optional, tag = "1")]
    pub certificate_request: Option<CertificateRequest>,
}

/// `CertificateRequest`. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct CertificateRequest {
    /// `csr = 1`: PEM-encoded certificate signing request.
    #[prost(bytes = "vec", tag = "1")]
    pub csr: Vec<u8>,
}

/// `AvailableComponents`: components the agent can run. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct AvailableComponents {
    /// `components = 1`.
    #[prost(btree_map = "string, message", tag = "1")]
    pub components: BTreeMap<String, ComponentDetails>,
    /// `hash = 2`: agent-computed hash of the component set.
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
}

/// `ComponentDetails`. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ComponentDetails {
    /// `metadata = 1`.
    #[prost(message, repeated, tag = "1")]
    pub metadata: Vec<KeyValue>,
    /// `sub_component_map = 2`.
    #[prost(btree_map = "string, message", tag = "2")]
    pub sub_component_map: BTreeMap<String, ComponentDetails>,
}

/// `ConnectionSettingsStatus`: outcome of the last connection settings offer. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectionSettingsStatus {
    /// `last_connection_settings_hash = 1`: echo of `ConnectionSettingsOffers.hash`.
    #[prost(bytes = "vec", tag = "1")]
    pub last_connection_settings_hash: Vec<u8>,
    /// `status = 2`: a [`ConnectionSettingsStatuses`] value.
    #[prost(enumeration = "ConnectionSettingsStatuses", tag = "2")]
    pub status: i32,
    /// `error_message = 3`.
    #[prost(string, tag = "3")]
    pub error_message: String,
}
