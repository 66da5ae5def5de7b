//! Connection settings offered by the server. \[Beta\]
//!
//! A missing sub-message in [`ConnectionSettingsOffers`] means "unchanged".

use std::collections::BTreeMap;

/// `ConnectionSettingsOffers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectionSettingsOffers {
    /// `hash = 1`: server-computed hash of the offers; echoed in `ConnectionSettingsStatus`.
    #[prost(bytes = "vec", tag = "1")]
    pub hash: Vec<u8>,
    /// `opamp = 2`: only for agents with AcceptsOpAMPConnectionSettings.
    #[prost(message, optional, tag = "2")]
    pub opamp: Option<OpAmpConnectionSettings>,
    /// `own_metrics = 3`: only for agents with ReportsOwnMetrics.
    #[prost(message, optional, tag = "3")]
    pub own_metrics: Option<TelemetryConnectionSettings>,
    /// `own_traces = 4`: only for agents with ReportsOwnTraces.
    #[prost(message, optional, tag = "4")]
    pub own_traces: Option<TelemetryConnectionSettings>,
    /// `own_logs = 5`: only for agents with ReportsOwnLogs.
    #[prost(message, optional, tag = "5")]
    pub own_logs: Option<TelemetryConnectionSettings>,
    /// `other_connections = 6`: only for agents with AcceptsOtherConnectionSettings.
    #[prost(btree_map = "string, message", tag = "6")]
    pub other_connections: BTreeMap<String, OtherConnectionSettings>,
}

/// `OpAMPConnectionSettings`: how to reach the OpAMP server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OpAmpConnectionSettings {
    /// `destination_endpoint = 1`: `ws://`, `wss://`, `http://` or `https://` URL.
    #[prost(string, tag = "1")]
    pub destination_endpoint: String,
    /// `headers = 2`: headers to send when connecting (e.g. `Authorization`).
    #[prost(message, optional, tag = "2")]
    pub headers: Option<Headers>,
    /// `certificate = 3`: client certificate.
    #[prost(message, optional, tag = "3")]
    pub certificate: Option<TlsCertificate>,
    /// `heartbeat_interval_seconds = 4`: 0 = do not send heartbeats. \[Development\]
    #[prost(uint64, tag = "4")]
    pub heartbeat_interval_seconds: u64,
    /// `tls = 5`. \[Development\]
    #[prost(message, optional, tag = "5")]
    pub tls: Option<TlsConnectionSettings>,
    /// `proxy = 6`. \[Development\]
    #[prost(message, optional, tag = "6")]
    pub proxy: Option<ProxyConnectionSettings>,
}

/// `TelemetryConnectionSettings`: where to send the agent's own telemetry (OTLP/HTTP).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TelemetryConnectionSettings {
    /// `destination_endpoint = 1`: full OTLP/HTTP URL including the path.
    #[prost(string, tag = "1")]
    pub destination_endpoint: String,
    /// `headers = 2`.
    #[prost(message, optional, tag = "2")]
    pub headers: Option<Headers>,
    /// `certificate = 3`.
    #[prost(message, optional, tag = "3")]
    pub certificate: Option<TlsCertificate>,
    /// `tls = 4`. \[Development\]
    #[prost(message, optional, tag = "4")]
    pub tls: Option<TlsConnectionSettings>,
    /// `proxy = 5`. \[Development\]
    #[prost(message, optional, tag = "5")]
    pub proxy: Option<ProxyConnectionSettings>,
}

/// `OtherConnectionSettings`: agent-specific connections.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OtherConnectionSettings {
    /// `destination_endpoint = 1`.
    #[prost(string, tag = "1")]
    pub destination_endpoint: String,
    /// `headers = 2`.
    #[prost(message, optional, tag = "2")]
    pub headers: Option<Headers>,
    /// `certificate = 3`.
    #[prost(message, optional, tag = "3")]
    pub certificate: Option<TlsCertificate>,
    /// `other_settings = 4`.
    #[prost(btree_map = "string, string", tag = "4")]
    pub other_settings: BTreeMap<String, String>,
    /// `tls = 5`. \[Development\]
    #[prost(message, optional, tag = "5")]
    pub tls: Option<TlsConnectionSettings>,
    /// `proxy = 6`. \[Development\]
    #[prost(message, optional, tag = "6")]
    pub proxy: Option<ProxyConnectionSettings>,
}

/// `Headers`: a list of HTTP headers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Headers {
    /// `headers = 1`.
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<Header>,
}

/// `Header`: one HTTP header.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// `key = 1`.
    #[prost(string, tag = "1")]
    pub key: String,
    /// `value = 2`.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `TLSCertificate`: PEM-encoded certificate material.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TlsCertificate {
    /// `cert = 1` (named `public_key` before v0.10.0).
    #[prost(bytes = "vec", tag = "1")]
    pub cert: Vec<u8>,
    /// `private_key = 2`.
    #[prost(bytes = "vec", tag = "2")]
    pub private_key: Vec<u8>,
    /// `ca_cert = 3` (named `ca_public_key` before v0.10.0).
    #[prost(bytes = "vec", tag = "3")]
    pub ca_cert: Vec<u8>,
}

/// `TLSConnectionSettings`. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct TlsConnectionSettings {
    /// `ca_pem_contents = 1`.
    #[prost(string, tag = "1")]
    pub ca_pem_contents: String,
    /// `include_system_ca_certs_pool = 2`.
    #[prost(bool, tag = "2")]
    pub include_system_ca_certs_pool: bool,
    /// `insecure_skip_verify = 3`.
    #[prost(bool, tag = "3")]
    pub insecure_skip_verify: bool,
    /// `min_version = 4` (default "1.2" when empty).
    #[prost(string, tag = "4")]
    pub min_version: String,
    /// `max_version = 5`.
    #[prost(string, tag = "5")]
    pub max_version: String,
    /// `cipher_suites = 6`.
    #[prost(string, repeated, tag = "6")]
    pub cipher_suites: Vec<String>,
}

/// `ProxyConnectionSettings`. \[Development\]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProxyConnectionSettings {
    /// `url = 1`.
    #[prost(string, tag = "1")]
    pub url: String,
    /// `connect_headers = 2`: headers for the proxy CONNECT request.
    #[prost(message, optional, tag = "2")]
    pub connect_headers: Option<Headers>,
}
