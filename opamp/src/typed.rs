//! Presence-based, typed views of received messages.
//!
//! Several OpAMP enums have a *meaningful* zero value
//! (`PackageStatusEnum_Installed`, `CommandType_Restart`, `PackageType_TopLevel`,
//! `ServerErrorResponseType_Unknown`), and proto3 cannot tell "unset" from zero.
//! The rule is: **decide on presence of the enclosing message, never on the enum
//! value alone.** The accessors here follow it: e.g.
//! [`ServerToAgent::command_kind`] is `None` unless the `command` message is
//! present, and only then does a zero `type` mean Restart.
//!
//! Unknown enum values (from newer peers) are preserved as `Unknown(i32)` /
//! `Other(i32)` variants instead of being folded into the zero variant, as the
//! prost-generated getters would do.

use std::time::Duration;

use crate::capabilities::{agent_flags, has, server_flags};
use crate::instance_uid::{InstanceUid, InstanceUidError};
use crate::proto::{
    server_error_response, AgentCapabilities, AgentToServer, ConnectionSettingsStatus,
    PackageAvailable, PackageStatus, RemoteConfigStatus, ServerCapabilities, ServerErrorResponse,
    ServerToAgent, ServerToAgentCommand,
};

/// State of one package, from a *present* [`PackageStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackageState {
    /// Installed (wire value 0).
    Installed,
    /// Installation pending.
    InstallPending,
    /// Being installed.
    Installing,
    /// Installation failed; see `error_message`.
    InstallFailed,
    /// Being downloaded; see `download_details`. \[Development\]
    Downloading,
    /// A value this crate does not know.
    Unknown(i32),
}

impl PackageState {
    /// Maps a wire value.
    pub fn from_wire(value: i32) -> Self {
        match value {
            0 => Self::Installed,
            1 => Self::InstallPending,
            2 => Self::Installing,
            3 => Self::InstallFailed,
            4 => Self::Downloading,
            other => Self::Unknown(other),
        }
    }

    /// Short lowercase name for logs and APIs (`"installed"`, `"install_failed"`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::InstallPending => "install_pending",
            Self::Installing => "installing",
            Self::InstallFailed => "install_failed",
            Self::Downloading => "downloading",
            Self::Unknown(_) => "unknown",
        }
    }
}

impl PackageStatus {
    /// The typed state. The map entry's presence is what says "this package
    /// exists"; a zero `status` then means Installed.
    pub fn state(&self) -> PackageState {
        PackageState::from_wire(self.status)
    }
}

/// State of a remote config or connection settings application
/// (`RemoteConfigStatuses` / `ConnectionSettingsStatuses`, same values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApplyState {
    /// UNSET (wire value 0).
    Unset,
    /// APPLIED.
    Applied,
    /// APPLYING.
    Applying,
    /// FAILED; see `error_message`.
    Failed,
    /// A value this crate does not know.
    Unknown(i32),
}

impl ApplyState {
    /// Maps a wire value.
    pub fn from_wire(value: i32) -> Self {
        match value {
            0 => Self::Unset,
            1 => Self::Applied,
            2 => Self::Applying,
            3 => Self::Failed,
            other => Self::Unknown(other),
        }
    }

    /// Short lowercase name for logs and APIs (`"applied"`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unset => "unset",
            Self::Applied => "applied",
            Self::Applying => "applying",
            Self::Failed => "failed",
            Self::Unknown(_) => "unknown",
        }
    }
}

impl RemoteConfigStatus {
    /// The typed state.
    pub fn state(&self) -> ApplyState {
        ApplyState::from_wire(self.status)
    }
}

impl ConnectionSettingsStatus {
    /// The typed state.
    pub fn state(&self) -> ApplyState {
        ApplyState::from_wire(self.status)
    }
}

/// Kind of an offered package, from a *present* [`PackageAvailable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackageKind {
    /// The agent's own top-level package (wire value 0).
    TopLevel,
    /// An add-on.
    Addon,
    /// A value this crate does not know.
    Unknown(i32),
}

impl PackageAvailable {
    /// The typed package kind (0 = TopLevel).
    pub fn kind(&self) -> PackageKind {
        match self.r#type {
            0 => PackageKind::TopLevel,
            1 => PackageKind::Addon,
            other => PackageKind::Unknown(other),
        }
    }
}

/// A server command, from a *present* [`ServerToAgentCommand`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Restart the agent (wire value 0).
    Restart,
    /// A command this crate does not know; agents should ignore it.
    Unknown(i32),
}

impl ServerToAgentCommand {
    /// The typed command (0 = Restart).
    pub fn kind(&self) -> Command {
        match self.r#type {
            0 => Command::Restart,
            other => Command::Unknown(other),
        }
    }
}

/// Kind of a server error, from a *present* [`ServerErrorResponse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerErrorKind {
    /// Unknown error (wire value 0): do not retry.
    Unknown,
    /// Malformed request: do not retry that message.
    BadRequest,
    /// Server busy: retry later, honouring the retry delay if given.
    Unavailable,
    /// A value this crate does not know.
    Other(i32),
}

/// A typed server error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// What kind of error.
    pub kind: ServerErrorKind,
    /// Human-readable message.
    pub message: String,
    /// Server-suggested delay before retrying (`retry_info`), if any.
    pub retry_after: Option<Duration>,
}

impl ServerErrorResponse {
    /// The typed error kind (0 = Unknown).
    pub fn kind(&self) -> ServerErrorKind {
        match self.r#type {
            0 => ServerErrorKind::Unknown,
            1 => ServerErrorKind::BadRequest,
            2 => ServerErrorKind::Unavailable,
            other => ServerErrorKind::Other(other),
        }
    }

    /// `retry_info.retry_after_nanoseconds` as a duration, if present.
    pub fn retry_after(&self) -> Option<Duration> {
        self.details
            .as_ref()
            .map(|server_error_response::Details::RetryInfo(info)| {
                Duration::from_nanos(info.retry_after_nanoseconds)
            })
    }

    /// The typed error.
    pub fn to_server_error(&self) -> ServerError {
        ServerError {
            kind: self.kind(),
            message: self.error_message.clone(),
            retry_after: self.retry_after(),
        }
    }
}

impl AgentToServer {
    /// The validated instance UID (exactly 16 bytes).
    pub fn uid(&self) -> Result<InstanceUid, InstanceUidError> {
        InstanceUid::from_bytes(&self.instance_uid)
    }

    /// True when `agent_disconnect` is present (the agent's last message).
    pub fn is_disconnect(&self) -> bool {
        self.agent_disconnect.is_some()
    }

    /// True when the agent asks for a server-assigned instance UID.
    pub fn requests_instance_uid(&self) -> bool {
        has(self.flags, agent_flags::REQUEST_INSTANCE_UID)
    }

    /// True when the agent advertises `capability`.
    pub fn has_capability(&self, capability: AgentCapabilities) -> bool {
        has(self.capabilities, capability.bit())
    }

    /// The typed remote config status, if the sub-message is present.
    pub fn remote_config_state(&self) -> Option<ApplyState> {
        self.remote_config_status
            .as_ref()
            .map(RemoteConfigStatus::state)
    }

    /// True when any status sub-message (the ones subject to status
    /// compression) is present.
    pub fn has_status(&self) -> bool {
        self.agent_description.is_some()
            || self.health.is_some()
            || self.effective_config.is_some()
            || self.remote_config_status.is_some()
            || self.package_statuses.is_some()
            || self.custom_capabilities.is_some()
            || self.available_components.is_some()
            || self.connection_settings_status.is_some()
    }

    /// True for a pure heartbeat: no status sub-message, no disconnect, no
    /// custom message, no connection settings request and no flags.
    pub fn is_heartbeat(&self) -> bool {
        !self.has_status()
            && self.agent_disconnect.is_none()
            && self.custom_message.is_none()
            && self.connection_settings_request.is_none()
            && self.flags == 0
    }
}

/// A [`ServerToAgent`] that breaks the exclusivity rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExclusivityError {
    /// `error_response` is set together with other fields.
    #[error("error_response must be the only field besides instance_uid")]
    ErrorResponseNotAlone,
    /// `command` is set together with fields other than `instance_uid`/`capabilities`.
    #[error("command must travel only with instance_uid and capabilities")]
    CommandNotAlone,
}

impl ServerToAgent {
    /// The echoed instance UID, validated.
    pub fn uid(&self) -> Result<InstanceUid, InstanceUidError> {
        InstanceUid::from_bytes(&self.instance_uid)
    }

    /// The new instance UID assigned by the server, if `agent_identification` is
    /// present; an error if its `new_instance_uid` is not 16 bytes.
    pub fn new_instance_uid(&self) -> Option<Result<InstanceUid, InstanceUidError>> {
        self.agent_identification
            .as_ref()
            .map(|id| InstanceUid::from_bytes(&id.new_instance_uid))
    }

    /// The typed command, if the `command` message is present.
    pub fn command_kind(&self) -> Option<Command> {
        self.command.as_ref().map(ServerToAgentCommand::kind)
    }

    /// The typed error, if `error_response` is present.
    pub fn server_error(&self) -> Option<ServerError> {
        self.error_response
            .as_ref()
            .map(ServerErrorResponse::to_server_error)
    }

    /// True when the ReportFullState flag is set.
    pub fn report_full_state(&self) -> bool {
        has(self.flags, server_flags::REPORT_FULL_STATE)
    }

    /// True when the ReportAvailableComponents flag is set.
    pub fn report_available_components(&self) -> bool {
        has(self.flags, server_flags::REPORT_AVAILABLE_COMPONENTS)
    }

    /// True when the server advertises `capability` in this message (0 means
    /// "unspecified" after the first message).
    pub fn has_capability(&self, capability: ServerCapabilities) -> bool {
        has(self.capabilities, capability.bit())
    }

    /// Checks the exclusivity rules of `error_response` and `command`.
    pub fn check_exclusivity(&self) -> Result<(), ExclusivityError> {
        let offers = self.remote_config.is_some()
            || self.connection_settings.is_some()
            || self.packages_available.is_some()
            || self.agent_identification.is_some()
            || self.custom_capabilities.is_some()
            || self.custom_message.is_some()
            || self.flags != 0;
        if self.error_response.is_some()
            && (offers || self.command.is_some() || self.capabilities != 0)
        {
            return Err(ExclusivityError::ErrorResponseNotAlone);
        }
        if self.command.is_some() && offers {
            return Err(ExclusivityError::CommandNotAlone);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        AgentIdentification, PackageStatusEnum, RetryInfo, ServerErrorResponseType,
    };

    #[test]
    fn zero_enums_need_presence() {
        let msg = ServerToAgent::default();
        assert_eq!(msg.command_kind(), None);
        assert_eq!(msg.server_error(), None);
        let msg = ServerToAgent {
            command: Some(ServerToAgentCommand::default()),
            ..Default::default()
        };
        assert_eq!(msg.command_kind(), Some(Command::Restart));
        let cmd = ServerToAgentCommand { r#type: 9 };
        assert_eq!(cmd.kind(), Command::Unknown(9));

        let p = PackageStatus::default();
        assert_eq!(p.state(), PackageState::Installed);
        let p = PackageStatus {
            status: PackageStatusEnum::Downloading as i32,
            ..Default::default()
        };
        assert_eq!(p.state(), PackageState::Downloading);
        assert_eq!(PackageState::from_wire(42), PackageState::Unknown(42));
        assert_eq!(PackageState::InstallFailed.as_str(), "install_failed");

        assert_eq!(PackageAvailable::default().kind(), PackageKind::TopLevel);
        assert_eq!(AgentToServer::default().remote_config_state(), None);
    }

    #[test]
    fn errors() {
        let e = ServerErrorResponse {
            r#type: ServerErrorResponseType::Unavailable as i32,
            error_message: "busy".into(),
            details: Some(server_error_response::Details::RetryInfo(RetryInfo {
                retry_after_nanoseconds: 2_500_000_000,
            })),
        };
        assert_eq!(
            e.to_server_error(),
            ServerError {
                kind: ServerErrorKind::Unavailable,
                message: "busy".into(),
                retry_after: Some(Duration::from_millis(2500)),
            }
        );
        assert_eq!(
            ServerErrorResponse::default().kind(),
            ServerErrorKind::Unknown
        );
        assert_eq!(
            ServerErrorResponse {
                r#type: 7,
                ..Default::default()
            }
            .kind(),
            ServerErrorKind::Other(7)
        );
    }

    #[test]
    fn exclusivity() {
        let mut m = ServerToAgent {
            instance_uid: vec![1; 16],
            error_response: Some(ServerErrorResponse::default()),
            ..Default::default()
        };
        assert_eq!(m.check_exclusivity(), Ok(()));
        m.flags = 1;
        assert_eq!(
            m.check_exclusivity(),
            Err(ExclusivityError::ErrorResponseNotAlone)
        );
        let mut m = ServerToAgent {
            command: Some(ServerToAgentCommand::default()),
            capabilities: 1,
            ..Default::default()
        };
        assert_eq!(m.check_exclusivity(), Ok(()));
        m.agent_identification = Some(AgentIdentification::default());
        assert_eq!(
            m.check_exclusivity(),
            Err(ExclusivityError::CommandNotAlone)
        );
    }

    #[test]
    fn uids() {
        let m = AgentToServer {
            instance_uid: vec![1; 15],
            ..Default::default()
        };
        assert_eq!(m.uid(), Err(InstanceUidError::WrongLength(15)));
        let s = ServerToAgent {
            agent_identification: Some(AgentIdentification {
                new_instance_uid: vec![2; 16],
            }),
            ..Default::default()
        };
        assert_eq!(
            s.new_instance_uid(),
            Some(Ok(InstanceUid::from_array([2; 16])))
        );
        assert_eq!(ServerToAgent::default().new_instance_uid(), None);
    }
}
