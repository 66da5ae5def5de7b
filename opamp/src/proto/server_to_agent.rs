//! `ServerToAgent` and the offers, errors and commands a server sends.

use std::collections::BTreeMap;

use super::config::AgentConfigMap;
use super::connection::{ConnectionSettingsOffers, Headers};
use super::custom::{CustomCapabilities, CustomMessage};
use super::enums::{CommandType, PackageType, ServerErrorResponseType};

/// A message from the server to the agent.
///
/// Exclusivity rules: when `error_response` is set every other field except
/// `instance_uid` is unset; `command` travels only with `instance_uid` and
/// `capabilities`. The builders in [`crate::builders`] enforce this by construction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerToAgent {
    /// `instance_uid = 1`: echo of the agent's instance UID.
    #[prost(bytes = "vec", tag = "1")]
    pub instance_uid: Vec<u8>,
    /// `error_response = 2`: exclusive with fields 3–11.
    #[prost(message, optional, tag = "2")]
    pub error_response: Option<ServerErrorResponse>,
    /// `remote_config = 3`: only for agents with AcceptsRemoteConfig.
    #[prost(message, optional, tag = "3")]
    pub remote_config: Option<AgentRemoteConfig>,
    /// `connection_settings = 4`. \[Beta\]
    #[prost(message, optional, tag = "4")]
    pub connection_settings: Option<ConnectionSettingsOffers>,
    /// `packages_available = 5`. \[Beta\]
    #[prost(message, optional, tag = "5")]
    pub packages_available: Option<PackagesAvailable>,
    /// `flags = 6`: bitmask of [`ServerToAgentFlags`](super::ServerToAgentFlags).
    #[prost(uint64, tag = "6")]
    pub flags: u64,
    /// `capabilities = 7`: bitmask of [`ServerCapabilities`](super::ServerCapabilities);
    /// required in the first response, 0 later means "unspecified".
    #[prost(uint64, tag = "7")]
    pub capabilities: u64,
    /// `agent_identification = 8`: assigns a new instance UID.
    #[prost(message, optional, tag = "8")]
    pub agent_identification: Option<AgentIdentification>,
    /// `command = 9`: send alone (with `instance_uid` and `capabilities`). \[Beta\]
    #[prost(message, optional, tag = "9")]
    pub command: Option<ServerToAgentCommand>,
    /// `custom_capabilities = 10`. \[Development\]
    #[prost(message, optional, tag = "10")]
    pub custom_capabilities: Option<CustomCapabilities>,
    /// `custom_message = 11`. \[Development\]
    #[prost(message, optional, tag = "11")]
    pub custom_message: Option<CustomMessage>,
}

/// `ServerErrorResponse`.
///
/// `type == 0` means **Unknown** (do not retry); use
/// [`ServerErrorResponse::kind`](Self::kind) for a typed view.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerErrorResponse {
    /// `type = 1`: a [`ServerErrorResponseType`] value.
    #[prost(enumeration = "ServerErrorResponseType", tag = "1")]
    pub r#type: i32,
    /// `error_message = 2`: human-readable.
    #[prost(string, tag = "2")]
    pub error_message: String,
    /// The oneof `Details`.
    #[prost(oneof = "server_error_response::Details", tags = "3")]
    pub details: Option<server_error_response::Details>,
}

/// Nested types of [`ServerErrorResponse`].
pub mod server_error_response {
    /// The oneof `Details` of [`ServerErrorResponse`](super::ServerErrorResponse).
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Details {
        /// `retry_info = 3`: for UNAVAILABLE.
        #[prost(message, tag = "3")]
        RetryInfo(super::RetryInfo),
    }
}

/// `RetryInfo`: when to retry after UNAVAILABLE.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// `retry_after_nanoseconds = 1`.
    #[prost(uint64, tag = "1")]
    pub retry_after_nanoseconds: u64,
}

/// `ServerToAgentCommand`. \[Beta\]
///
/// `type == 0` means **Restart**: presence of the message is what matters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerToAgentCommand {
    /// `type = 1`: a [`CommandType`] value.
    #[prost(enumeration = "CommandType", tag = "1")]
    pub r#type: i32,
}

/// `AgentIdentification`: the server assigns a new instance UID.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentIdentification {
    /// `new_instance_uid = 1`: 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub new_instance_uid: Vec<u8>,
}

/// `AgentRemoteConfig`: configuration offered by the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentRemoteConfig {
    /// `config = 1`: may be omitted when unchanged.
    #[prost(message, optional, tag = "1")]
    pub config: Option<AgentConfigMap>,
    /// `config_hash = 2`: server-computed hash; must always be set.
    #[prost(bytes = "vec", tag = "2")]
    pub config_hash: Vec<u8>,
}

/// `PackagesAvailable`: packages offered by the server. \[Beta\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackagesAvailable {
    /// `packages = 1`: keyed by package name (top-level package may be `""`).
    #[prost(btree_map = "string, message", tag = "1")]
    pub packages: BTreeMap<String, PackageAvailable>,
    /// `all_packages_hash = 2`: aggregate hash over all offered packages.
    #[prost(bytes = "vec", tag = "2")]
    pub all_packages_hash: Vec<u8>,
}

/// `PackageAvailable`: one offered package. \[Beta\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageAvailable {
    /// `type = 1`: a [`PackageType`] value (0 = TopLevel).
    #[prost(enumeration = "PackageType", tag = "1")]
    pub r#type: i32,
    /// `version = 2`.
    #[prost(string, tag = "2")]
    pub version: String,
    /// `file = 3`: exactly one file per package.
    #[prost(message, optional, tag = "3")]
    pub file: Option<DownloadableFile>,
    /// `hash = 4`: identifies name + content.
    #[prost(bytes = "vec", tag = "4")]
    pub hash: Vec<u8>,
}

/// `DownloadableFile`. \[Beta\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct DownloadableFile {
    /// `download_url = 1`: fetched with HTTP GET.
    #[prost(string, tag = "1")]
    pub download_url: String,
    /// `content_hash = 2`: SHA-256 of the file content.
    #[prost(bytes = "vec", tag = "2")]
    pub content_hash: Vec<u8>,
    /// `signature = 3`: optional, agent-specific scheme.
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
    /// `headers = 4`: headers for the GET (e.g. auth tokens). \[Development\]
    #[prost(message, optional, tag = "4")]
    pub headers: Option<Headers>,
}
