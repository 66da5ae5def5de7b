//! Every enum of `opamp.proto`.
//!
//! Enum-typed fields are stored as `i32` on the wire structs (proto3 open enums:
//! unknown values must survive a decode). prost generates typed getters for
//! them (e.g. [`RemoteConfigStatus::status`](super::RemoteConfigStatus::status)),
//! which map unknown values to the zero variant. Several enums have a
//! *meaningful* zero value (§0 item 6), so the presence-based accessors in
//! [`crate::typed`] are preferred over those getters.
//!
//! The four bitmask enums ([`AgentToServerFlags`], [`ServerToAgentFlags`],
//! [`AgentCapabilities`], [`ServerCapabilities`]) are never used as field types:
//! the wire fields are plain `uint64` bitmasks. Use [`AgentCapabilities::bit`]
//! and friends, or the constants in [`crate::capabilities`].

macro_rules! opamp_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr => $proto:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The value's name exactly as written in the `.proto` file.
            pub fn as_str_name(&self) -> &'static str {
                match self {
                    $( $name::$variant => $proto, )+
                }
            }

            /// Looks a value up by its `.proto` name.
            pub fn from_str_name(value: &str) -> Option<Self> {
                match value {
                    $( $proto => Some($name::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

opamp_enum! {
    /// Bits of `AgentToServer.flags`.
    AgentToServerFlags {
        /// No flag.
        Unspecified = 0 => "AgentToServerFlags_Unspecified",
        /// The agent asks the server to assign it an instance UID
        /// (answered with `ServerToAgent.agent_identification`).
        RequestInstanceUid = 0x1 => "AgentToServerFlags_RequestInstanceUid",
    }
}

opamp_enum! {
    /// Bits of `ServerToAgent.flags`.
    ServerToAgentFlags {
        /// No flag.
        Unspecified = 0 => "ServerToAgentFlags_Unspecified",
        /// The agent must resend every status sub-message (full state).
        ReportFullState = 0x1 => "ServerToAgentFlags_ReportFullState",
        /// The agent must send `available_components`. \[Development\]
        ReportAvailableComponents = 0x2 => "ServerToAgentFlags_ReportAvailableComponents",
    }
}

opamp_enum! {
    /// Bits of `ServerToAgent.capabilities`.
    ServerCapabilities {
        /// 0: "unspecified" (not "none").
        Unspecified = 0 => "ServerCapabilities_Unspecified",
        /// The server accepts status reports. MUST be set.
        AcceptsStatus = 0x1 => "ServerCapabilities_AcceptsStatus",
        /// The server can offer remote configuration.
        OffersRemoteConfig = 0x2 => "ServerCapabilities_OffersRemoteConfig",
        /// The server accepts effective config reports.
        AcceptsEffectiveConfig = 0x4 => "ServerCapabilities_AcceptsEffectiveConfig",
        /// The server can offer packages. \[Beta\]
        OffersPackages = 0x8 => "ServerCapabilities_OffersPackages",
        /// The server accepts package statuses. \[Beta\]
        AcceptsPackagesStatus = 0x10 => "ServerCapabilities_AcceptsPackagesStatus",
        /// The server can offer connection settings. \[Beta\]
        OffersConnectionSettings = 0x20 => "ServerCapabilities_OffersConnectionSettings",
        /// The server accepts connection settings requests (CSR flow). \[Development\]
        AcceptsConnectionSettingsRequest = 0x40 => "ServerCapabilities_AcceptsConnectionSettingsRequest",
    }
}

opamp_enum! {
    /// Bits of `AgentToServer.capabilities`.
    AgentCapabilities {
        /// 0: unspecified.
        Unspecified = 0 => "AgentCapabilities_Unspecified",
        /// The agent reports status. MUST be set by every agent.
        ReportsStatus = 0x1 => "AgentCapabilities_ReportsStatus",
        /// The server may send `remote_config`.
        AcceptsRemoteConfig = 0x2 => "AgentCapabilities_AcceptsRemoteConfig",
        /// The agent sends `effective_config`.
        ReportsEffectiveConfig = 0x4 => "AgentCapabilities_ReportsEffectiveConfig",
        /// The agent accepts package offers. \[Beta\]
        AcceptsPackages = 0x8 => "AgentCapabilities_AcceptsPackages",
        /// The agent reports package statuses. \[Beta\]
        ReportsPackageStatuses = 0x10 => "AgentCapabilities_ReportsPackageStatuses",
        /// The agent accepts `own_traces` connection settings. \[Beta\]
        ReportsOwnTraces = 0x20 => "AgentCapabilities_ReportsOwnTraces",
        /// The agent accepts `own_metrics` connection settings. \[Beta\]
        ReportsOwnMetrics = 0x40 => "AgentCapabilities_ReportsOwnMetrics",
        /// The agent accepts `own_logs` connection settings. \[Beta\]
        ReportsOwnLogs = 0x80 => "AgentCapabilities_ReportsOwnLogs",
        /// The agent accepts `connection_settings.opamp`. \[Beta\]
        AcceptsOpAmpConnectionSettings = 0x100 => "AgentCapabilities_AcceptsOpAMPConnectionSettings",
        /// The agent accepts `connection_settings.other_connections`. \[Beta\]
        AcceptsOtherConnectionSettings = 0x200 => "AgentCapabilities_AcceptsOtherConnectionSettings",
        /// The agent accepts the restart command. \[Beta\]
        AcceptsRestartCommand = 0x400 => "AgentCapabilities_AcceptsRestartCommand",
        /// The agent sends `health`.
        ReportsHealth = 0x800 => "AgentCapabilities_ReportsHealth",
        /// The agent sends `remote_config_status`.
        ReportsRemoteConfig = 0x1000 => "AgentCapabilities_ReportsRemoteConfig",
        /// The agent sends heartbeats. \[Development\]
        ReportsHeartbeat = 0x2000 => "AgentCapabilities_ReportsHeartbeat",
        /// The agent sends `available_components`. \[Development\]
        ReportsAvailableComponents = 0x4000 => "AgentCapabilities_ReportsAvailableComponents",
        /// The agent sends `connection_settings_status`. \[Development\]
        ReportsConnectionSettingsStatus = 0x8000 => "AgentCapabilities_ReportsConnectionSettingsStatus",
    }
}

opamp_enum! {
    /// `PackageAvailable.type`. Zero (`TopLevel`) is meaningful.
    PackageType {
        /// The agent's own top-level package.
        TopLevel = 0 => "PackageType_TopLevel",
        /// An add-on package.
        Addon = 1 => "PackageType_Addon",
    }
}

opamp_enum! {
    /// `ServerErrorResponse.type`. Zero (`Unknown`) is meaningful: do not retry.
    ServerErrorResponseType {
        /// Unknown error; the client should not retry.
        Unknown = 0 => "ServerErrorResponseType_Unknown",
        /// The request was malformed; the client should not retry it.
        BadRequest = 1 => "ServerErrorResponseType_BadRequest",
        /// The server is overloaded; retry later, honouring `retry_info`.
        Unavailable = 2 => "ServerErrorResponseType_Unavailable",
    }
}

opamp_enum! {
    /// `ServerToAgentCommand.type`. Zero (`Restart`) is meaningful.
    CommandType {
        /// Restart the agent.
        Restart = 0 => "CommandType_Restart",
    }
}

opamp_enum! {
    /// `RemoteConfigStatus.status`.
    RemoteConfigStatuses {
        /// No remote config status reported.
        Unset = 0 => "RemoteConfigStatuses_UNSET",
        /// The remote config was applied.
        Applied = 1 => "RemoteConfigStatuses_APPLIED",
        /// The remote config is being applied.
        Applying = 2 => "RemoteConfigStatuses_APPLYING",
        /// Applying the remote config failed (see `error_message`).
        Failed = 3 => "RemoteConfigStatuses_FAILED",
    }
}

opamp_enum! {
    /// `PackageStatus.status`. Zero (`Installed`) is meaningful.
    PackageStatusEnum {
        /// The package is installed.
        Installed = 0 => "PackageStatusEnum_Installed",
        /// Installation is pending.
        InstallPending = 1 => "PackageStatusEnum_InstallPending",
        /// The package is being installed.
        Installing = 2 => "PackageStatusEnum_Installing",
        /// Installation failed (see `error_message`).
        InstallFailed = 3 => "PackageStatusEnum_InstallFailed",
        /// The package is being downloaded. \[Development\]
        Downloading = 4 => "PackageStatusEnum_Downloading",
    }
}

opamp_enum! {
    /// `ConnectionSettingsStatus.status`. \[Development\]
    ConnectionSettingsStatuses {
        /// No status reported.
        Unset = 0 => "ConnectionSettingsStatuses_UNSET",
        /// The offered settings were applied.
        Applied = 1 => "ConnectionSettingsStatuses_APPLIED",
        /// The offered settings are being applied.
        Applying = 2 => "ConnectionSettingsStatuses_APPLYING",
        /// Applying the offered settings failed (see `error_message`).
        Failed = 3 => "ConnectionSettingsStatuses_FAILED",
    }
}

impl AgentCapabilities {
    /// The bit of this capability in `AgentToServer.capabilities`.
    pub const fn bit(self) -> u64 {
        self as i32 as u64
    }
}

impl ServerCapabilities {
    /// The bit of this capability in `ServerToAgent.capabilities`.
    pub const fn bit(self) -> u64 {
        self as i32 as u64
    }
}

impl AgentToServerFlags {
    /// The bit of this flag in `AgentToServer.flags`.
    pub const fn bit(self) -> u64 {
        self as i32 as u64
    }
}

impl ServerToAgentFlags {
    /// The bit of this flag in `ServerToAgent.flags`.
    pub const fn bit(self) -> u64 {
        self as i32 as u64
    }
}
