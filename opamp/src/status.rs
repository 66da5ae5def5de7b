//! The set of status sub-messages subject to status compression, shared by the
//! server ([`crate::server`]) and client ([`crate::client`]) session logic.

use crate::proto::{
    AgentDescription, AgentToServer, AvailableComponents, ComponentHealth,
    ConnectionSettingsStatus, CustomCapabilities, EffectiveConfig, PackageStatuses,
    RemoteConfigStatus,
};

/// Calls `$m!` with the names of every compressible status field.
macro_rules! for_each_status_field {
    ($m:ident) => {
        $m!(
            agent_description,
            health,
            effective_config,
            remote_config_status,
            package_statuses,
            custom_capabilities,
            available_components,
            connection_settings_status
        )
    };
}

/// The latest known value of every status sub-message of one agent. `None`
/// means "never reported".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentStatus {
    /// Last reported `agent_description`.
    pub agent_description: Option<AgentDescription>,
    /// Last reported `health`.
    pub health: Option<ComponentHealth>,
    /// Last reported `effective_config`.
    pub effective_config: Option<EffectiveConfig>,
    /// Last reported `remote_config_status`.
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// Last reported `package_statuses`.
    pub package_statuses: Option<PackageStatuses>,
    /// Last reported `custom_capabilities`.
    pub custom_capabilities: Option<CustomCapabilities>,
    /// Last reported `available_components`.
    pub available_components: Option<AvailableComponents>,
    /// Last reported `connection_settings_status`.
    pub connection_settings_status: Option<ConnectionSettingsStatus>,
}

/// One flag per status sub-message (which ones changed, or which ones are due
/// to be sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatusChanges {
    /// `agent_description`.
    pub agent_description: bool,
    /// `health`.
    pub health: bool,
    /// `effective_config`.
    pub effective_config: bool,
    /// `remote_config_status`.
    pub remote_config_status: bool,
    /// `package_statuses`.
    pub package_statuses: bool,
    /// `custom_capabilities`.
    pub custom_capabilities: bool,
    /// `available_components`.
    pub available_components: bool,
    /// `connection_settings_status`.
    pub connection_settings_status: bool,
}

impl StatusChanges {
    /// Every flag set.
    pub const ALL: StatusChanges = StatusChanges {
        agent_description: true,
        health: true,
        effective_config: true,
        remote_config_status: true,
        package_statuses: true,
        custom_capabilities: true,
        available_components: true,
        connection_settings_status: true,
    };

    /// True when at least one flag is set.
    pub fn any(&self) -> bool {
        *self != StatusChanges::default()
    }

    /// Names of the set flags (the proto field names), for logs.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! push {
            ($($f:ident),*) => { $( if self.$f { out.push(stringify!($f)); } )* };
        }
        for_each_status_field!(push);
        out
    }
}

impl AgentStatus {
    /// Moves every *present* status sub-message out of `msg` into `self`
    /// (status compression: absent ones keep their previous value) and reports
    /// which ones actually changed value.
    pub fn merge_from(&mut self, msg: &mut AgentToServer) -> StatusChanges {
        let mut changes = StatusChanges::default();
        macro_rules! merge {
            ($($f:ident),*) => {
                $(
                    if let Some(v) = msg.$f.take() {
                        if self.$f.as_ref() != Some(&v) {
                            changes.$f = true;
                            self.$f = Some(v);
                        }
                    }
                )*
            };
        }
        for_each_status_field!(merge);
        changes
    }

    /// Copies the sub-messages selected by `which` (and known) into `msg`.
    pub fn write_into(&self, msg: &mut AgentToServer, which: &StatusChanges) {
        macro_rules! write {
            ($($f:ident),*) => {
                $( if which.$f { msg.$f.clone_from(&self.$f); } )*
            };
        }
        for_each_status_field!(write);
    }

    /// Flags of the sub-messages that are known (`Some`).
    pub fn present(&self) -> StatusChanges {
        let mut out = StatusChanges::default();
        macro_rules! present {
            ($($f:ident),*) => { $( out.$f = self.$f.is_some(); )* };
        }
        for_each_status_field!(present);
        out
    }
}
