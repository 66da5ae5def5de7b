//! Client-side (agent) session logic (pure, no I/O).
//!
//! [`ClientState`] holds the agent's current status and builds each outgoing
//! `AgentToServer`:
//!
//! * `sequence_num` increases by one per message built (first message:
//!   [`ClientState::DEFAULT_FIRST_SEQUENCE_NUM`], overridable);
//! * `capabilities` is set in every message;
//! * status compression: a sub-message is included only if it changed since it
//!   was last included, unless a full state is due (first message, the server's
//!   ReportFullState flag, or [`ClientState::request_full_state`], e.g. after a
//!   reconnect or a failed send);
//! * a message with nothing new is a heartbeat.
//!
//! [`ClientState::apply`] processes a `ServerToAgent`: checks the echoed instance
//! UID, switches to `new_instance_uid`, honours the flags, and hands back the
//! offers the agent is capable of handling in a [`ServerEffects`]. It never
//! queues a status report by itself except when the server asks for one (loop
//! avoidance): check [`ClientState::has_pending`] after applying.
//!
//! ```
//! use rmm_opamp::client::ClientState;
//! use rmm_opamp::capabilities::agent;
//! use rmm_opamp::proto::{AgentDescription, ComponentHealth, ServerToAgent};
//! use rmm_opamp::InstanceUid;
//!
//! let uid = InstanceUid::new_v7();
//! let mut c = ClientState::new(uid, agent::REPORTS_STATUS | agent::REPORTS_HEALTH | agent::REPORTS_HEARTBEAT);
//! c.set_agent_description(AgentDescription::default().with_identifying("service.name", "rmm-agent"));
//! c.set_health(ComponentHealth::healthy(1));
//! let first = c.next_message();
//! assert!(first.agent_description.is_some() && first.health.is_some());
//! let heartbeat = c.next_message();
//! assert!(heartbeat.is_heartbeat());
//! assert_eq!(heartbeat.sequence_num, first.sequence_num + 1);
//!
//! // The server asks for everything again:
//! let reply = ServerToAgent::builder(uid).report_full_state().build();
//! let effects = c.apply(reply).unwrap();
//! assert!(effects.report_full_state && c.has_pending());
//! assert!(c.next_message().agent_description.is_some());
//! ```

use crate::capabilities::{agent, agent_flags, has};
use crate::instance_uid::{InstanceUid, InstanceUidError};
use crate::proto::{
    AgentDescription, AgentRemoteConfig, AgentToServer, AvailableComponents, ComponentHealth,
    ConnectionSettingsOffers, ConnectionSettingsRequest, ConnectionSettingsStatus,
    CustomCapabilities, CustomMessage, EffectiveConfig, PackageStatuses, PackagesAvailable,
    RemoteConfigStatus, ServerToAgent,
};
use crate::status::{AgentStatus, StatusChanges};
use crate::typed::{Command, ServerError};

/// Why a `ServerToAgent` was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The echoed `instance_uid` is not ours (or not 16 bytes): the message is
    /// for someone else and was ignored entirely. An empty `instance_uid` is
    /// tolerated.
    #[error("ServerToAgent for another instance ({got:02x?}), ours is {ours}")]
    InstanceUidMismatch {
        /// Our instance UID.
        ours: InstanceUid,
        /// The raw echoed value.
        got: Vec<u8>,
    },
    /// `agent_identification.new_instance_uid` is not 16 bytes; the message was
    /// not applied.
    #[error("invalid new_instance_uid: {0}")]
    InvalidNewInstanceUid(InstanceUidError),
}

/// An offer the client dropped because the agent lacks the capability
/// (the spec says the agent SHOULD ignore such data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IgnoredOffer {
    /// `remote_config` without AcceptsRemoteConfig.
    RemoteConfig,
    /// `packages_available` without AcceptsPackages.
    Packages,
    /// `connection_settings.opamp` without AcceptsOpAMPConnectionSettings.
    OpAmpConnectionSettings,
    /// `connection_settings.own_metrics` without ReportsOwnMetrics.
    OwnMetrics,
    /// `connection_settings.own_traces` without ReportsOwnTraces.
    OwnTraces,
    /// `connection_settings.own_logs` without ReportsOwnLogs.
    OwnLogs,
    /// `connection_settings.other_connections` without AcceptsOtherConnectionSettings.
    OtherConnections,
    /// A restart command without AcceptsRestartCommand.
    RestartCommand,
}

/// What a `ServerToAgent` asks of the agent, after capability gating.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerEffects {
    /// The server answered with an error; nothing else in the message was
    /// applied. For UNAVAILABLE, disconnect and retry after `retry_after` (or
    /// with backoff); for BAD_REQUEST, do not resend that message.
    pub error: Option<ServerError>,
    /// A command to carry out (only when the agent accepts restart commands);
    /// nothing else in the message was applied.
    pub command: Option<Command>,
    /// The instance UID was switched to this value; use it from now on (and
    /// persist it if the agent persists its identity).
    pub new_instance_uid: Option<InstanceUid>,
    /// The server asked for a full state report; [`ClientState::next_message`]
    /// will include every status sub-message.
    pub report_full_state: bool,
    /// The server asked for available components.
    pub report_available_components: bool,
    /// Remote config to apply (then report `RemoteConfigStatus`).
    pub remote_config: Option<AgentRemoteConfig>,
    /// Connection settings offers, with parts the agent cannot accept removed;
    /// `None` if nothing acceptable remained.
    pub connection_settings: Option<ConnectionSettingsOffers>,
    /// Packages offered.
    pub packages_available: Option<PackagesAvailable>,
    /// The server's custom capabilities.
    pub custom_capabilities: Option<CustomCapabilities>,
    /// A custom message from the server.
    pub custom_message: Option<CustomMessage>,
    /// Offers dropped for lack of capability.
    pub ignored: Vec<IgnoredOffer>,
}

/// The agent's side of an OpAMP session.
#[derive(Clone, Debug)]
pub struct ClientState {
    instance_uid: InstanceUid,
    capabilities: u64,
    next_sequence_num: u64,
    last_sequence_num: Option<u64>,
    status: AgentStatus,
    dirty: StatusChanges,
    full_state_due: bool,
    flags: u64,
    custom_message: Option<CustomMessage>,
    connection_settings_request: Option<ConnectionSettingsRequest>,
    server_capabilities: u64,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$doc])*
        ///
        /// Returns true when the value changed (and will be sent with the next
        /// message); setting an equal value is a no-op.
        pub fn $name(&mut self, value: $ty) -> bool {
            if self.status.$field.as_ref() == Some(&value) {
                return false;
            }
            self.status.$field = Some(value);
            self.dirty.$field = true;
            true
        }
    };
}

impl ClientState {
    /// `sequence_num` of the first message unless overridden.
    pub const DEFAULT_FIRST_SEQUENCE_NUM: u64 = 1;

    /// A fresh session. `capabilities` should include ReportsStatus (it is added
    /// if missing, as every agent MUST set it); undefined bits are cleared. The
    /// first message will be a full state report.
    pub fn new(instance_uid: InstanceUid, capabilities: u64) -> Self {
        Self {
            instance_uid,
            capabilities: (capabilities | agent::REPORTS_STATUS) & agent::ALL_KNOWN,
            next_sequence_num: Self::DEFAULT_FIRST_SEQUENCE_NUM,
            last_sequence_num: None,
            status: AgentStatus::default(),
            dirty: StatusChanges::default(),
            full_state_due: true,
            flags: 0,
            custom_message: None,
            connection_settings_request: None,
            server_capabilities: 0,
        }
    }

    /// Sets the `sequence_num` of the next message (e.g. to continue a
    /// persisted sequence).
    pub fn with_next_sequence_num(mut self, next: u64) -> Self {
        self.next_sequence_num = next;
        self
    }

    /// The current instance UID.
    pub fn instance_uid(&self) -> InstanceUid {
        self.instance_uid
    }

    /// The capability bits sent in every message.
    pub fn capabilities(&self) -> u64 {
        self.capabilities
    }

    /// Changes the capabilities (allowed since v0.13.0); they go out with the
    /// next message. ReportsStatus is always kept.
    pub fn set_capabilities(&mut self, capabilities: u64) {
        self.capabilities = (capabilities | agent::REPORTS_STATUS) & agent::ALL_KNOWN;
    }

    /// The last non-zero server capabilities received (0 = none yet).
    pub fn server_capabilities(&self) -> u64 {
        self.server_capabilities
    }

    /// `sequence_num` of the last message built, if any.
    pub fn last_sequence_num(&self) -> Option<u64> {
        self.last_sequence_num
    }

    /// The `sequence_num` the next message will carry.
    pub fn next_sequence_num(&self) -> u64 {
        self.next_sequence_num
    }

    /// The agent's current status values.
    pub fn status(&self) -> &AgentStatus {
        &self.status
    }

    setter!(
        /// Sets the agent description.
        set_agent_description, agent_description, AgentDescription
    );
    setter!(
        /// Sets the agent's health.
        set_health, health, ComponentHealth
    );
    setter!(
        /// Sets the effective config.
        set_effective_config, effective_config, EffectiveConfig
    );
    setter!(
        /// Sets the remote config status.
        set_remote_config_status, remote_config_status, RemoteConfigStatus
    );
    setter!(
        /// Sets the package statuses.
        set_package_statuses, package_statuses, PackageStatuses
    );
    setter!(
        /// Sets the agent's custom capabilities.
        set_custom_capabilities, custom_capabilities, CustomCapabilities
    );
    setter!(
        /// Sets the available components.
        set_available_components, available_components, AvailableComponents
    );
    setter!(
        /// Sets the connection settings status.
        set_connection_settings_status, connection_settings_status, ConnectionSettingsStatus
    );

    /// Queues a custom message for the next message (replacing any queued one:
    /// only one up-to-date pending message per kind is kept).
    pub fn queue_custom_message(&mut self, message: CustomMessage) {
        self.custom_message = Some(message);
    }

    /// Queues a connection settings request (CSR flow) for the next message.
    pub fn queue_connection_settings_request(&mut self, request: ConnectionSettingsRequest) {
        self.connection_settings_request = Some(request);
    }

    /// Sets the RequestInstanceUid flag on every message until the server
    /// assigns a new instance UID.
    pub fn request_instance_uid(&mut self) {
        self.flags |= agent_flags::REQUEST_INSTANCE_UID;
    }

    /// Makes the next message a full state report (every known status
    /// sub-message). Use after reconnecting or when a built message could not be
    /// delivered.
    pub fn request_full_state(&mut self) {
        self.full_state_due = true;
    }

    /// True when the next message would carry more than a heartbeat (a full
    /// state, changed sub-messages, a queued custom message or request, or the
    /// RequestInstanceUid flag).
    pub fn has_pending(&self) -> bool {
        self.full_state_due
            || self.dirty.any()
            || self.custom_message.is_some()
            || self.connection_settings_request.is_some()
            || self.flags != 0
    }

    /// Builds the next `AgentToServer`: increments `sequence_num`, sets
    /// `instance_uid`, `capabilities` and flags, includes changed (or, when a
    /// full state is due, all known) status sub-messages and queued one-shot
    /// messages, then marks them as sent.
    pub fn next_message(&mut self) -> AgentToServer {
        let mut msg = self.base_message();
        let which = if self.full_state_due {
            self.status.present()
        } else {
            self.dirty
        };
        self.status.write_into(&mut msg, &which);
        msg.flags = self.flags;
        msg.custom_message = self.custom_message.take();
        msg.connection_settings_request = self.connection_settings_request.take();
        self.dirty = StatusChanges::default();
        self.full_state_due = false;
        msg
    }

    /// Builds the final message of a session: `agent_disconnect` set, plus
    /// `instance_uid`, `sequence_num` and `capabilities`. Pending status changes
    /// stay pending (a later session starts with a full state anyway if
    /// [`request_full_state`](Self::request_full_state) is called on reconnect).
    pub fn disconnect_message(&mut self) -> AgentToServer {
        let mut msg = self.base_message();
        msg.agent_disconnect = Some(Default::default());
        msg
    }

    fn base_message(&mut self) -> AgentToServer {
        let seq = self.next_sequence_num;
        self.next_sequence_num = seq.wrapping_add(1);
        self.last_sequence_num = Some(seq);
        AgentToServer {
            instance_uid: self.instance_uid.to_vec(),
            sequence_num: seq,
            capabilities: self.capabilities,
            ..Default::default()
        }
    }

    /// Applies a `ServerToAgent`. See [`ServerEffects`] for what comes back.
    ///
    /// Order: the echoed `instance_uid` is checked against the current one
    /// (empty is tolerated); an `error_response` short-circuits everything else;
    /// a `command` short-circuits the offers; otherwise `new_instance_uid` is
    /// validated and adopted, flags are honoured, server capabilities recorded
    /// (0 = unspecified, keeps the previous value) and offers are filtered by the
    /// agent's capabilities.
    pub fn apply(&mut self, msg: ServerToAgent) -> Result<ServerEffects, ApplyError> {
        if !msg.instance_uid.is_empty() && msg.instance_uid != self.instance_uid.as_bytes() {
            return Err(ApplyError::InstanceUidMismatch {
                ours: self.instance_uid,
                got: msg.instance_uid,
            });
        }
        let mut effects = ServerEffects::default();
        if let Some(err) = &msg.error_response {
            effects.error = Some(err.to_server_error());
            return Ok(effects);
        }
        if msg.capabilities != 0 {
            self.server_capabilities = msg.capabilities;
        }
        if let Some(cmd) = &msg.command {
            if has(self.capabilities, agent::ACCEPTS_RESTART_COMMAND) {
                effects.command = Some(cmd.kind());
            } else {
                effects.ignored.push(IgnoredOffer::RestartCommand);
            }
            return Ok(effects);
        }
        if let Some(id) = &msg.agent_identification {
            let uid = InstanceUid::from_bytes(&id.new_instance_uid)
                .map_err(ApplyError::InvalidNewInstanceUid)?;
            self.instance_uid = uid;
            self.flags &= !agent_flags::REQUEST_INSTANCE_UID;
            effects.new_instance_uid = Some(uid);
        }
        if msg.report_full_state() {
            self.full_state_due = true;
            effects.report_full_state = true;
        }
        if msg.report_available_components() {
            effects.report_available_components = true;
            if self.status.available_components.is_some() {
                self.dirty.available_components = true;
            }
        }
        let caps = self.capabilities;
        let mut gate = |cap: u64, what: IgnoredOffer| {
            let ok = has(caps, cap);
            if !ok {
                effects.ignored.push(what);
            }
            ok
        };
        let remote_config = msg
            .remote_config
            .filter(|_| gate(agent::ACCEPTS_REMOTE_CONFIG, IgnoredOffer::RemoteConfig));
        let packages = msg
            .packages_available
            .filter(|_| gate(agent::ACCEPTS_PACKAGES, IgnoredOffer::Packages));
        let connection_settings = msg.connection_settings.and_then(|mut o| {
            if o.opamp.is_some()
                && !gate(
                    agent::ACCEPTS_OPAMP_CONNECTION_SETTINGS,
                    IgnoredOffer::OpAmpConnectionSettings,
                )
            {
                o.opamp = None;
            }
            if o.own_metrics.is_some()
                && !gate(agent::REPORTS_OWN_METRICS, IgnoredOffer::OwnMetrics)
            {
                o.own_metrics = None;
            }
            if o.own_traces.is_some() && !gate(agent::REPORTS_OWN_TRACES, IgnoredOffer::OwnTraces) {
                o.own_traces = None;
            }
            if o.own_logs.is_some() && !gate(agent::REPORTS_OWN_LOGS, IgnoredOffer::OwnLogs) {
                o.own_logs = None;
            }
            if !o.other_connections.is_empty()
                && !gate(
                    agent::ACCEPTS_OTHER_CONNECTION_SETTINGS,
                    IgnoredOffer::OtherConnections,
                )
            {
                o.other_connections.clear();
            }
            let anything = o.opamp.is_some()
                || o.own_metrics.is_some()
                || o.own_traces.is_some()
                || o.own_logs.is_some()
                || !o.other_connections.is_empty();
            anything.then_some(o)
        });
        effects.remote_config = remote_config;
        effects.packages_available = packages;
        effects.connection_settings = connection_settings;
        effects.custom_capabilities = msg.custom_capabilities;
        effects.custom_message = msg.custom_message;
        Ok(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::server;
    use crate::proto::{
        AgentConfigMap, AgentIdentification, ConnectionSettingsOffers, Headers,
        OpAmpConnectionSettings, RemoteConfigStatuses, ServerErrorResponseType,
        TelemetryConnectionSettings,
    };
    use crate::typed::ServerErrorKind;

    const UID: InstanceUid = InstanceUid::from_array([5; 16]);

    fn client(caps: u64) -> ClientState {
        let mut c = ClientState::new(UID, caps);
        c.set_agent_description(AgentDescription::default().with_identifying("service.name", "a"));
        c
    }

    #[test]
    fn sequence_and_capabilities_always_set() {
        let mut c = client(agent::REPORTS_HEARTBEAT | 1 << 40);
        assert_eq!(
            c.capabilities(),
            agent::REPORTS_STATUS | agent::REPORTS_HEARTBEAT
        );
        let m1 = c.next_message();
        let m2 = c.next_message();
        let m3 = c.disconnect_message();
        assert_eq!(
            (m1.sequence_num, m2.sequence_num, m3.sequence_num),
            (1, 2, 3)
        );
        for m in [&m1, &m2, &m3] {
            assert_eq!(m.capabilities, 0x2001);
            assert_eq!(m.instance_uid, UID.to_vec());
        }
        assert!(m3.is_disconnect() && !m3.has_status());
        assert_eq!(c.last_sequence_num(), Some(3));
        let mut c = ClientState::new(UID, 0).with_next_sequence_num(u64::MAX);
        assert_eq!(c.next_message().sequence_num, u64::MAX);
        assert_eq!(c.next_message().sequence_num, 0);
    }

    #[test]
    fn status_compression() {
        let mut c = client(agent::REPORTS_HEALTH);
        let first = c.next_message();
        assert!(first.agent_description.is_some());
        assert!(!c.has_pending());
        assert!(c.set_health(ComponentHealth::healthy(1)));
        assert!(!c.set_agent_description(c.status().agent_description.clone().unwrap()));
        assert!(c.has_pending());
        let m = c.next_message();
        assert!(m.health.is_some() && m.agent_description.is_none());
        assert!(!c.set_health(ComponentHealth::healthy(1)));
        assert!(c.next_message().is_heartbeat());
        c.request_full_state();
        let m = c.next_message();
        assert!(m.health.is_some() && m.agent_description.is_some());
        assert!(m.effective_config.is_none());
    }

    #[test]
    fn full_state_flag_and_loop_avoidance() {
        let mut c = client(0);
        c.next_message();
        let e = c.apply(ServerToAgent::ack(UID)).unwrap();
        assert_eq!(e, ServerEffects::default());
        assert!(!c.has_pending(), "an ack must not trigger a report");
        let e = c
            .apply(
                ServerToAgent::builder(UID)
                    .report_full_state()
                    .capabilities(server::ACCEPTS_STATUS)
                    .build(),
            )
            .unwrap();
        assert!(e.report_full_state && c.has_pending());
        assert_eq!(c.server_capabilities(), server::ACCEPTS_STATUS);
        c.apply(ServerToAgent::ack(UID)).unwrap();
        assert_eq!(
            c.server_capabilities(),
            server::ACCEPTS_STATUS,
            "0 = unspecified"
        );
        assert!(c.next_message().agent_description.is_some());
    }

    #[test]
    fn new_instance_uid_switch() {
        let mut c = client(0);
        c.request_instance_uid();
        let m = c.next_message();
        assert!(m.requests_instance_uid());
        assert!(c.has_pending());
        let new = InstanceUid::from_array([6; 16]);
        let e = c
            .apply(ServerToAgent::builder(UID).new_instance_uid(new).build())
            .unwrap();
        assert_eq!(e.new_instance_uid, Some(new));
        assert_eq!(c.instance_uid(), new);
        let m = c.next_message();
        assert_eq!(m.instance_uid, new.to_vec());
        assert!(!m.requests_instance_uid());
        // messages for the old uid are now rejected; empty echo tolerated
        assert!(matches!(
            c.apply(ServerToAgent::ack(UID)),
            Err(ApplyError::InstanceUidMismatch { .. })
        ));
        assert!(c.apply(ServerToAgent::default()).is_ok());
        let bad = ServerToAgent {
            agent_identification: Some(AgentIdentification {
                new_instance_uid: b"x".to_vec(),
            }),
            ..Default::default()
        };
        assert_eq!(
            c.apply(bad),
            Err(ApplyError::InvalidNewInstanceUid(
                InstanceUidError::WrongLength(1)
            ))
        );
        assert_eq!(c.instance_uid(), new);
    }

    #[test]
    fn errors_and_commands_short_circuit() {
        let mut c = client(agent::ACCEPTS_REMOTE_CONFIG);
        let e = c
            .apply(ServerToAgent::error_response(
                UID,
                ServerErrorResponseType::Unavailable,
                "busy",
                None,
            ))
            .unwrap();
        assert_eq!(e.error.unwrap().kind, ServerErrorKind::Unavailable);
        let e = c.apply(ServerToAgent::restart_command(UID, 1)).unwrap();
        assert_eq!(e.command, None);
        assert_eq!(e.ignored, vec![IgnoredOffer::RestartCommand]);
        c.set_capabilities(agent::ACCEPTS_RESTART_COMMAND);
        let e = c.apply(ServerToAgent::restart_command(UID, 1)).unwrap();
        assert_eq!(e.command, Some(Command::Restart));
    }

    #[test]
    fn offers_are_gated_by_capabilities() {
        let offers = ConnectionSettingsOffers {
            own_metrics: Some(TelemetryConnectionSettings::new("https://m/v1/metrics")),
            ..ConnectionSettingsOffers::new(
                OpAmpConnectionSettings::new("").with_headers(Headers::bearer("secret")),
            )
        };
        let msg = ServerToAgent::builder(UID)
            .remote_config(AgentRemoteConfig::new(AgentConfigMap::single(
                "",
                b"x".to_vec(),
                "",
            )))
            .connection_settings(offers.clone())
            .build();
        let mut c = client(0);
        let e = c.apply(msg.clone()).unwrap();
        assert_eq!(e.remote_config, None);
        assert_eq!(e.connection_settings, None);
        assert_eq!(
            e.ignored,
            vec![
                IgnoredOffer::RemoteConfig,
                IgnoredOffer::OpAmpConnectionSettings,
                IgnoredOffer::OwnMetrics
            ]
        );
        let mut c = client(agent::ACCEPTS_REMOTE_CONFIG | agent::ACCEPTS_OPAMP_CONNECTION_SETTINGS);
        c.next_message();
        let e = c.apply(msg).unwrap();
        assert!(e.remote_config.is_some());
        let cs = e.connection_settings.unwrap();
        assert_eq!(
            cs.opamp.unwrap().headers.unwrap().bearer_token(),
            Some("secret")
        );
        assert!(cs.own_metrics.is_none());
        assert_eq!(cs.hash, offers.hash);
        assert_eq!(e.ignored, vec![IgnoredOffer::OwnMetrics]);
        // applying an offer does not by itself queue a report (loop avoidance)
        assert!(!c.has_pending());
        assert!(c.set_remote_config_status(RemoteConfigStatus::new(
            vec![1],
            RemoteConfigStatuses::Applied
        )));
        assert!(c.next_message().remote_config_status.is_some());
    }

    #[test]
    fn one_shot_messages() {
        let mut c = client(agent::REPORTS_AVAILABLE_COMPONENTS);
        c.next_message();
        c.queue_custom_message(CustomMessage {
            capability: "a".into(),
            ..Default::default()
        });
        c.queue_custom_message(CustomMessage {
            capability: "b".into(),
            ..Default::default()
        });
        c.queue_connection_settings_request(ConnectionSettingsRequest::default());
        let m = c.next_message();
        assert_eq!(m.custom_message.unwrap().capability, "b");
        assert!(m.connection_settings_request.is_some());
        assert!(c.next_message().is_heartbeat());
        c.set_available_components(AvailableComponents::default());
        c.next_message();
        let e = c
            .apply(
                ServerToAgent::builder(UID)
                    .report_available_components()
                    .build(),
            )
            .unwrap();
        assert!(e.report_available_components);
        let m = c.next_message();
        assert!(m.available_components.is_some() && m.agent_description.is_none());
    }
}
