//! Custom capabilities and messages (both directions). \[Development\]

/// `CustomCapabilities`: reverse-FQDN names of custom capabilities supported.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CustomCapabilities {
    /// `capabilities = 1`.
    #[prost(string, repeated, tag = "1")]
    pub capabilities: Vec<String>,
}

/// `CustomMessage`: an opaque message of a custom capability.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CustomMessage {
    /// `capability = 1`: the custom capability this message belongs to.
    #[prost(string, tag = "1")]
    pub capability: String,
    /// `type = 2`: message type within the capability.
    #[prost(string, tag = "2")]
    pub r#type: String,
    /// `data = 3`.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}
