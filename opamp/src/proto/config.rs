//! Configuration messages shared by both directions.

use std::collections::BTreeMap;

/// `AgentConfigMap`: configuration files/sections by name.
///
/// Single-file agents use one entry; its key may be `""`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentConfigMap {
    /// `config_map = 1`.
    #[prost(btree_map = "string, message", tag = "1")]
    pub config_map: BTreeMap<String, AgentConfigFile>,
}

/// `AgentConfigFile`: one configuration file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AgentConfigFile {
    /// `body = 1`: agent-specific format.
    #[prost(bytes = "vec", tag = "1")]
    pub body: Vec<u8>,
    /// `content_type = 2`: optional MIME type, e.g. `text/yaml`, `application/json`.
    #[prost(string, tag = "2")]
    pub content_type: String,
}
