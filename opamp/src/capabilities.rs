//! Capability and flag bits as `u64` constants, plus small helpers.
//!
//! The wire fields (`AgentToServer.capabilities`, `AgentToServer.flags`,
//! `ServerToAgent.capabilities`, `ServerToAgent.flags`) are plain `u64` bitmasks.
//! Undefined bits must be sent as 0 and ignored when received.
//!
//! ```
//! use rmm_opamp::capabilities::{agent, has};
//! let caps = agent::REPORTS_STATUS | agent::REPORTS_HEARTBEAT;
//! assert!(has(caps, agent::REPORTS_HEARTBEAT));
//! assert!(!has(caps, agent::ACCEPTS_REMOTE_CONFIG));
//! assert_eq!(rmm_opamp::capabilities::agent_capability_names(caps),
//!            vec!["ReportsStatus", "ReportsHeartbeat"]);
//! ```

use crate::proto::{AgentCapabilities, ServerCapabilities};

/// Bits of `AgentToServer.capabilities` ([`AgentCapabilities`]).
pub mod agent {
    /// The agent reports status. MUST be set by every agent.
    pub const REPORTS_STATUS: u64 = 0x1;
    /// The server may send `remote_config`.
    pub const ACCEPTS_REMOTE_CONFIG: u64 = 0x2;
    /// The agent sends `effective_config`.
    pub const REPORTS_EFFECTIVE_CONFIG: u64 = 0x4;
    /// The agent accepts package offers. \[Beta\]
    pub const ACCEPTS_PACKAGES: u64 = 0x8;
    /// The agent reports package statuses. \[Beta\]
    pub const REPORTS_PACKAGE_STATUSES: u64 = 0x10;
    /// The agent accepts `own_traces` settings. \[Beta\]
    pub const REPORTS_OWN_TRACES: u64 = 0x20;
    /// The agent accepts `own_metrics` settings. \[Beta\]
    pub const REPORTS_OWN_METRICS: u64 = 0x40;
    /// The agent accepts `own_logs` settings. \[Beta\]
    pub const REPORTS_OWN_LOGS: u64 = 0x80;
    /// The agent accepts `connection_settings.opamp`. \[Beta\]
    pub const ACCEPTS_OPAMP_CONNECTION_SETTINGS: u64 = 0x100;
    /// The agent accepts `connection_settings.other_connections`. \[Beta\]
    pub const ACCEPTS_OTHER_CONNECTION_SETTINGS: u64 = 0x200;
    /// The agent accepts the restart command. \[Beta\]
    pub const ACCEPTS_RESTART_COMMAND: u64 = 0x400;
    /// The agent sends `health`.
    pub const REPORTS_HEALTH: u64 = 0x800;
    /// The agent sends `remote_config_status`.
    pub const REPORTS_REMOTE_CONFIG: u64 = 0x1000;
    /// The agent sends heartbeats. \[Development\]
    pub const REPORTS_HEARTBEAT: u64 = 0x2000;
    /// The agent sends `available_components`. \[Development\]
    pub const REPORTS_AVAILABLE_COMPONENTS: u64 = 0x4000;
    /// The agent sends `connection_settings_status`. \[Development\]
    pub const REPORTS_CONNECTION_SETTINGS_STATUS: u64 = 0x8000;
    /// Every bit defined by this spec version.
    pub const ALL_KNOWN: u64 = 0xFFFF;
}

/// Bits of `ServerToAgent.capabilities` ([`ServerCapabilities`]).
pub mod server {
    /// The server accepts status reports. MUST be set.
    pub const ACCEPTS_STATUS: u64 = 0x1;
    /// The server can offer remote configuration.
    pub const OFFERS_REMOTE_CONFIG: u64 = 0x2;
    /// The server accepts effective config.
    pub const ACCEPTS_EFFECTIVE_CONFIG: u64 = 0x4;
    /// The server can offer packages. \[Beta\]
    pub const OFFERS_PACKAGES: u64 = 0x8;
    /// The server accepts package statuses. \[Beta\]
    pub const ACCEPTS_PACKAGES_STATUS: u64 = 0x10;
    /// The server can offer connection settings. \[Beta\]
    pub const OFFERS_CONNECTION_SETTINGS: u64 = 0x20;
    /// The server accepts connection settings requests. \[Development\]
    pub const ACCEPTS_CONNECTION_SETTINGS_REQUEST: u64 = 0x40;
    /// Every bit defined by this spec version.
    pub const ALL_KNOWN: u64 = 0x7F;
}

/// Bits of `AgentToServer.flags` ([`AgentToServerFlags`](crate::proto::AgentToServerFlags)).
pub mod agent_flags {
    /// The agent asks the server to assign an instance UID.
    pub const REQUEST_INSTANCE_UID: u64 = 0x1;
    /// Every bit defined by this spec version.
    pub const ALL_KNOWN: u64 = 0x1;
}

/// Bits of `ServerToAgent.flags` ([`ServerToAgentFlags`](crate::proto::ServerToAgentFlags)).
pub mod server_flags {
    /// The agent must resend every status sub-message.
    pub const REPORT_FULL_STATE: u64 = 0x1;
    /// The agent must send `available_components`. \[Development\]
    pub const REPORT_AVAILABLE_COMPONENTS: u64 = 0x2;
    /// Every bit defined by this spec version.
    pub const ALL_KNOWN: u64 = 0x3;
}

/// True when every bit of `bits` is set in `mask`.
pub const fn has(mask: u64, bits: u64) -> bool {
    mask & bits == bits
}

/// `mask` with undefined agent-capability bits cleared (the spec requires them
/// to be 0 when sent, and ignored when received).
pub const fn known_agent_capabilities(mask: u64) -> u64 {
    mask & agent::ALL_KNOWN
}

/// `mask` with undefined server-capability bits cleared.
pub const fn known_server_capabilities(mask: u64) -> u64 {
    mask & server::ALL_KNOWN
}

/// The [`AgentCapabilities`] set in `mask`, in bit order; unknown bits are skipped.
pub fn agent_capabilities(mask: u64) -> Vec<AgentCapabilities> {
    AgentCapabilities::ALL
        .iter()
        .copied()
        .filter(|c| c.bit() != 0 && has(mask, c.bit()))
        .collect()
}

/// The [`ServerCapabilities`] set in `mask`, in bit order; unknown bits are skipped.
pub fn server_capabilities(mask: u64) -> Vec<ServerCapabilities> {
    ServerCapabilities::ALL
        .iter()
        .copied()
        .filter(|c| c.bit() != 0 && has(mask, c.bit()))
        .collect()
}

/// Short names (e.g. `"ReportsStatus"`) of the agent capabilities set in `mask`,
/// for logs and APIs. Unknown bits are skipped.
pub fn agent_capability_names(mask: u64) -> Vec<&'static str> {
    agent_capabilities(mask)
        .into_iter()
        .map(|c| strip_prefix(c.as_str_name()))
        .collect()
}

/// Short names (e.g. `"AcceptsStatus"`) of the server capabilities set in `mask`.
pub fn server_capability_names(mask: u64) -> Vec<&'static str> {
    server_capabilities(mask)
        .into_iter()
        .map(|c| strip_prefix(c.as_str_name()))
        .collect()
}

fn strip_prefix(name: &'static str) -> &'static str {
    name.split_once('_').map_or(name, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AgentToServerFlags, ServerToAgentFlags};

    #[test]
    fn constants_match_enums() {
        for c in AgentCapabilities::ALL {
            assert_eq!(c.bit() & !agent::ALL_KNOWN, 0);
        }
        assert_eq!(
            AgentCapabilities::ALL.iter().fold(0, |m, c| m | c.bit()),
            agent::ALL_KNOWN
        );
        assert_eq!(
            ServerCapabilities::ALL.iter().fold(0, |m, c| m | c.bit()),
            server::ALL_KNOWN
        );
        assert_eq!(
            AgentToServerFlags::ALL.iter().fold(0, |m, c| m | c.bit()),
            agent_flags::ALL_KNOWN
        );
        assert_eq!(
            ServerToAgentFlags::ALL.iter().fold(0, |m, c| m | c.bit()),
            server_flags::ALL_KNOWN
        );
        assert_eq!(
            AgentCapabilities::AcceptsOpAmpConnectionSettings.bit(),
            agent::ACCEPTS_OPAMP_CONNECTION_SETTINGS
        );
        assert_eq!(
            AgentCapabilities::ReportsConnectionSettingsStatus.bit(),
            agent::REPORTS_CONNECTION_SETTINGS_STATUS
        );
        assert_eq!(
            ServerCapabilities::AcceptsConnectionSettingsRequest.bit(),
            server::ACCEPTS_CONNECTION_SETTINGS_REQUEST
        );
    }

    #[test]
    fn names_skip_unknown_bits() {
        assert_eq!(
            agent_capability_names(0x3007 | 1 << 40),
            vec![
                "ReportsStatus",
                "AcceptsRemoteConfig",
                "ReportsEffectiveConfig",
                "ReportsRemoteConfig",
                "ReportsHeartbeat"
            ]
        );
        assert_eq!(
            server_capability_names(0x21),
            vec!["AcceptsStatus", "OffersConnectionSettings"]
        );
        assert_eq!(known_agent_capabilities(1 << 40 | 1), 1);
        assert_eq!(known_server_capabilities(1 << 40 | 2), 2);
    }
}
