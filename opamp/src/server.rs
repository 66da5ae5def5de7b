//! Server-side session logic (pure, no I/O).
//!
//! Feed every decoded `AgentToServer` to [`SessionTracker::observe`] (or, for a
//! per-connection state, [`AgentState::apply`]). The returned [`Observation`]
//! says whether the reply must carry ReportFullState and which status
//! sub-messages changed; the merged snapshot is in [`AgentState::status`].
//!
//! Full-state rules implemented here:
//!
//! * **Sequence gap**: the server does not assume a starting value — the first
//!   message of an agent may carry any `sequence_num` (the Python client starts
//!   at 0, the Node client at 1). After that, anything other than exactly
//!   previous + 1 (wrapping) is a gap, including a repeated number, and requires
//!   ReportFullState.
//! * **Unknown agent**: the first message the tracker sees from an instance UID
//!   requires ReportFullState unless it already carries an `agent_description`
//!   (agents open a session with a full status report; a WebSocket client that
//!   reconnects may legitimately omit unchanged sub-messages, and a restarted
//!   server has lost them).
//! * A disconnect message never asks for full state.
//!
//! ```
//! use rmm_opamp::{server::SessionTracker, proto::{AgentToServer, AgentDescription, ServerToAgent}};
//! let mut tracker = SessionTracker::new();
//! let hello = AgentToServer {
//!     instance_uid: vec![7; 16],
//!     sequence_num: 0,
//!     capabilities: 0x2001,
//!     agent_description: Some(AgentDescription::default().with_identifying("service.name", "demo")),
//!     ..Default::default()
//! };
//! let obs = tracker.observe(hello).unwrap();
//! assert!(obs.new_agent && !obs.report_full_state);
//! // seq 5 after 0 is a gap:
//! let hb = AgentToServer { instance_uid: vec![7; 16], sequence_num: 5, capabilities: 0x2001, ..Default::default() };
//! let obs = tracker.observe(hb).unwrap();
//! assert!(obs.report_full_state);
//! let reply = ServerToAgent::builder(obs.instance_uid).report_full_state_if(obs.report_full_state).build();
//! assert!(reply.report_full_state());
//! ```

use std::collections::HashMap;

use crate::builders::ServerToAgentBuilder;
use crate::capabilities::{agent_flags, has};
use crate::instance_uid::{InstanceUid, InstanceUidError};
use crate::proto::{AgentCapabilities, AgentToServer, ConnectionSettingsRequest, CustomMessage};
use crate::status::{AgentStatus, StatusChanges};

/// Why a message could not be tracked. The server should answer with a
/// `BAD_REQUEST` error response (or end the session) and log the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// `instance_uid` is not 16 bytes.
    #[error(transparent)]
    InvalidInstanceUid(#[from] InstanceUidError),
    /// The message's instance UID differs from the one this per-connection
    /// state tracks.
    #[error("message for instance {got} on a session of instance {expected}")]
    InstanceUidMismatch {
        /// The tracked instance.
        expected: InstanceUid,
        /// The message's instance.
        got: InstanceUid,
    },
}

/// A sequence number that was not previous + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceGap {
    /// The number expected (previous + 1).
    pub expected: u64,
    /// The number received.
    pub received: u64,
}

/// What the server learned from one `AgentToServer`.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The sender.
    pub instance_uid: InstanceUid,
    /// True for the first message seen from this instance.
    pub new_agent: bool,
    /// Set when `sequence_num` was not previous + 1.
    pub sequence_gap: Option<SequenceGap>,
    /// The reply must set `ServerToAgentFlags_ReportFullState`.
    pub report_full_state: bool,
    /// Status sub-messages whose value changed (present and different from the
    /// previous value, or reported for the first time).
    pub changed: StatusChanges,
    /// The capabilities differ from the previous message (always false for the
    /// first message).
    pub capabilities_changed: bool,
    /// `agent_disconnect` was present: the agent is going away.
    pub disconnect: bool,
    /// The agent asked for a server-assigned instance UID (RequestInstanceUid).
    pub requests_instance_uid: bool,
    /// A custom message, if sent (not part of the status snapshot).
    pub custom_message: Option<CustomMessage>,
    /// A connection settings request (CSR flow), if sent.
    pub connection_settings_request: Option<ConnectionSettingsRequest>,
}

/// Everything the server knows about one agent from its messages.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentState {
    /// The agent's instance UID.
    pub instance_uid: InstanceUid,
    /// `sequence_num` of the last message, `None` before the first one.
    pub last_sequence_num: Option<u64>,
    /// Capabilities from the last message.
    pub capabilities: u64,
    /// Merged status snapshot (status compression applied).
    pub status: AgentStatus,
    /// Messages received.
    pub messages_received: u64,
    /// The last message carried `agent_disconnect`.
    pub disconnected: bool,
}

impl AgentState {
    /// A state for an agent from which nothing has been received yet.
    pub fn new(instance_uid: InstanceUid) -> Self {
        Self {
            instance_uid,
            last_sequence_num: None,
            capabilities: 0,
            status: AgentStatus::default(),
            messages_received: 0,
            disconnected: false,
        }
    }

    /// Applies one message from this agent (see the [module docs](self) for
    /// the rules). Status sub-messages are moved out of `msg`.
    pub fn apply(&mut self, mut msg: AgentToServer) -> Result<Observation, SessionError> {
        let uid = msg.uid()?;
        if uid != self.instance_uid {
            return Err(SessionError::InstanceUidMismatch {
                expected: self.instance_uid,
                got: uid,
            });
        }
        let new_agent = self.last_sequence_num.is_none();
        let sequence_gap = self.last_sequence_num.and_then(|prev| {
            let expected = prev.wrapping_add(1);
            (msg.sequence_num != expected).then_some(SequenceGap {
                expected,
                received: msg.sequence_num,
            })
        });
        let disconnect = msg.agent_disconnect.is_some();
        let unknown_without_description = new_agent && msg.agent_description.is_none();
        let report_full_state =
            !disconnect && (sequence_gap.is_some() || unknown_without_description);
        let capabilities_changed = !new_agent && msg.capabilities != self.capabilities;

        let changed = self.status.merge_from(&mut msg);
        self.last_sequence_num = Some(msg.sequence_num);
        self.capabilities = msg.capabilities;
        self.messages_received += 1;
        self.disconnected = disconnect;

        Ok(Observation {
            instance_uid: uid,
            new_agent,
            sequence_gap,
            report_full_state,
            changed,
            capabilities_changed,
            disconnect,
            requests_instance_uid: has(msg.flags, agent_flags::REQUEST_INSTANCE_UID),
            custom_message: msg.custom_message.take(),
            connection_settings_request: msg.connection_settings_request.take(),
        })
    }
}

impl Observation {
    /// Starts the reply to this message: echoes the instance UID, sets the
    /// server capabilities, and sets ReportFullState when required. Add offers
    /// and call [`build`](ServerToAgentBuilder::build).
    pub fn reply(&self, server_capabilities: u64) -> ServerToAgentBuilder {
        ServerToAgentBuilder::new(self.instance_uid)
            .capabilities(server_capabilities)
            .report_full_state_if(self.report_full_state)
    }
}

impl AgentState {
    /// True when the agent advertised `capability` in its last message (use it
    /// to gate offers: remote config, packages, connection settings, commands).
    pub fn has_capability(&self, capability: AgentCapabilities) -> bool {
        has(self.capabilities, capability.bit())
    }

    /// Whether the reply must carry `remote_config` for a server holding config
    /// with hash `current_hash`: the agent accepts remote config and its
    /// reported `last_remote_config_hash` differs from `current_hash` (or it
    /// never reported one). The spec says the server MUST send it then, and
    /// SHOULD NOT resend an unchanged body otherwise.
    pub fn needs_remote_config(&self, current_hash: &[u8]) -> bool {
        let reported = self
            .status
            .remote_config_status
            .as_ref()
            .map(|s| s.last_remote_config_hash.as_slice());
        self.has_capability(AgentCapabilities::AcceptsRemoteConfig)
            && reported != Some(current_hash)
    }
}

/// Agent states keyed by instance UID.
#[derive(Clone, Debug, Default)]
pub struct SessionTracker {
    agents: HashMap<InstanceUid, AgentState>,
}

impl SessionTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the instance UID, creates the agent's state on first contact,
    /// and applies the message (see [`AgentState::apply`]).
    pub fn observe(&mut self, msg: AgentToServer) -> Result<Observation, SessionError> {
        let uid = msg.uid()?;
        self.agents
            .entry(uid)
            .or_insert_with(|| AgentState::new(uid))
            .apply(msg)
    }

    /// The state of one agent.
    pub fn get(&self, uid: &InstanceUid) -> Option<&AgentState> {
        self.agents.get(uid)
    }

    /// Mutable state of one agent.
    pub fn get_mut(&mut self, uid: &InstanceUid) -> Option<&mut AgentState> {
        self.agents.get_mut(uid)
    }

    /// Forgets an agent (e.g. after disconnect or liveness timeout); its next
    /// message will be treated as first contact.
    pub fn remove(&mut self, uid: &InstanceUid) -> Option<AgentState> {
        self.agents.remove(uid)
    }

    /// Moves an agent's state to a new instance UID, after the server assigned
    /// one with `agent_identification.new_instance_uid`. Returns false if `old`
    /// is unknown. Any state under `new` is replaced.
    pub fn rekey(&mut self, old: &InstanceUid, new: InstanceUid) -> bool {
        match self.agents.remove(old) {
            Some(mut state) => {
                state.instance_uid = new;
                self.agents.insert(new, state);
                true
            }
            None => false,
        }
    }

    /// Number of tracked agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// True when no agent is tracked.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Iterates over every tracked agent.
    pub fn iter(&self) -> impl Iterator<Item = (&InstanceUid, &AgentState)> {
        self.agents.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        AgentDescription, ComponentHealth, RemoteConfigStatus, RemoteConfigStatuses,
    };

    const UID: [u8; 16] = [3; 16];

    fn msg(seq: u64) -> AgentToServer {
        AgentToServer {
            instance_uid: UID.to_vec(),
            sequence_num: seq,
            capabilities: 0x2001,
            ..Default::default()
        }
    }

    fn desc() -> AgentDescription {
        AgentDescription::default().with_identifying("service.name", "x")
    }

    #[test]
    fn first_message_any_sequence_number() {
        for start in [0, 1, 12345, u64::MAX] {
            let mut t = SessionTracker::new();
            let mut m = msg(start);
            m.agent_description = Some(desc());
            let o = t.observe(m).unwrap();
            assert!(o.new_agent);
            assert_eq!(o.sequence_gap, None);
            assert!(!o.report_full_state);
            assert!(o.changed.agent_description);
            // next is previous + 1 (wrapping at u64::MAX)
            let o = t.observe(msg(start.wrapping_add(1))).unwrap();
            assert!(!o.new_agent);
            assert!(!o.report_full_state, "start {start}");
            assert!(!o.changed.any());
        }
    }

    #[test]
    fn unknown_agent_without_description_needs_full_state() {
        let mut t = SessionTracker::new();
        let o = t.observe(msg(40)).unwrap();
        assert!(o.new_agent && o.report_full_state && o.sequence_gap.is_none());
        // the agent answers with a full state; no further request
        let mut m = msg(41);
        m.agent_description = Some(desc());
        let o = t.observe(m).unwrap();
        assert!(!o.report_full_state);
        let o = t.observe(msg(42)).unwrap();
        assert!(!o.report_full_state);
    }

    #[test]
    fn gaps_and_duplicates() {
        let mut t = SessionTracker::new();
        let mut m = msg(1);
        m.agent_description = Some(desc());
        t.observe(m).unwrap();
        let o = t.observe(msg(3)).unwrap();
        assert_eq!(
            o.sequence_gap,
            Some(SequenceGap {
                expected: 2,
                received: 3
            })
        );
        assert!(o.report_full_state);
        let o = t.observe(msg(3)).unwrap(); // duplicate
        assert_eq!(
            o.sequence_gap,
            Some(SequenceGap {
                expected: 4,
                received: 3
            })
        );
        assert!(o.report_full_state);
        let o = t.observe(msg(2)).unwrap(); // backwards (agent restart)
        assert!(o.report_full_state);
        let o = t.observe(msg(3)).unwrap();
        assert!(!o.report_full_state);
        assert_eq!(
            t.get(&InstanceUid::from_array(UID))
                .unwrap()
                .messages_received,
            5
        );
    }

    #[test]
    fn status_compression_merge() {
        let mut t = SessionTracker::new();
        let uid = InstanceUid::from_array(UID);
        let mut m = msg(0);
        m.agent_description = Some(desc());
        m.health = Some(ComponentHealth::healthy(5));
        m.remote_config_status = Some(RemoteConfigStatus::new(
            vec![1],
            RemoteConfigStatuses::Applied,
        ));
        let o = t.observe(m).unwrap();
        assert_eq!(
            o.changed.names(),
            vec!["agent_description", "health", "remote_config_status"]
        );
        // only health changes; the rest keep their values
        let mut m = msg(1);
        m.health = Some(ComponentHealth::unhealthy("disk full"));
        m.agent_description = Some(desc()); // resent, unchanged
        let o = t.observe(m).unwrap();
        assert_eq!(o.changed.names(), vec!["health"]);
        let s = &t.get(&uid).unwrap().status;
        assert_eq!(s.agent_description, Some(desc()));
        assert_eq!(s.health.as_ref().unwrap().last_error, "disk full");
        assert_eq!(
            s.remote_config_status
                .as_ref()
                .unwrap()
                .last_remote_config_hash,
            vec![1]
        );
        // capabilities change is reported
        let mut m = msg(2);
        m.capabilities = 0x3003;
        let o = t.observe(m).unwrap();
        assert!(o.capabilities_changed);
        assert_eq!(t.get(&uid).unwrap().capabilities, 0x3003);
    }

    #[test]
    fn disconnect_and_errors() {
        let mut t = SessionTracker::new();
        let mut m = msg(9);
        m.agent_disconnect = Some(Default::default());
        let o = t.observe(m).unwrap();
        assert!(o.disconnect && !o.report_full_state);
        let uid = InstanceUid::from_array(UID);
        assert!(t.get(&uid).unwrap().disconnected);
        assert!(t.remove(&uid).is_some());
        assert!(t.is_empty());

        let bad = AgentToServer {
            instance_uid: b"01ARZ3NDEKTSV4RRFFQ69G5FAV".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            t.observe(bad),
            Err(SessionError::InvalidInstanceUid(
                InstanceUidError::WrongLength(26)
            ))
        );
        let mut s = AgentState::new(InstanceUid::from_array([1; 16]));
        assert!(matches!(
            s.apply(msg(0)),
            Err(SessionError::InstanceUidMismatch { .. })
        ));
    }

    #[test]
    fn reply_and_remote_config_decision() {
        let mut t = SessionTracker::new();
        let o = t.observe(msg(0)).unwrap();
        let reply = o.reply(crate::capabilities::server::ACCEPTS_STATUS).build();
        assert!(reply.report_full_state());
        assert_eq!(reply.capabilities, 1);
        assert_eq!(reply.instance_uid, UID.to_vec());
        let uid = InstanceUid::from_array(UID);
        // 0x2001 lacks AcceptsRemoteConfig
        assert!(!t.get(&uid).unwrap().needs_remote_config(b"h1"));
        let mut m = msg(1);
        m.capabilities |= crate::capabilities::agent::ACCEPTS_REMOTE_CONFIG;
        t.observe(m).unwrap();
        let state = t.get(&uid).unwrap();
        assert!(state.has_capability(AgentCapabilities::AcceptsRemoteConfig));
        assert!(state.needs_remote_config(b"h1"), "never reported a hash");
        let mut m = msg(2);
        m.capabilities |= crate::capabilities::agent::ACCEPTS_REMOTE_CONFIG;
        m.remote_config_status = Some(RemoteConfigStatus::new(
            b"h1".to_vec(),
            RemoteConfigStatuses::Applied,
        ));
        t.observe(m).unwrap();
        let state = t.get(&uid).unwrap();
        assert!(!state.needs_remote_config(b"h1"));
        assert!(state.needs_remote_config(b"h2"));
    }

    #[test]
    fn rekey_keeps_sequence() {
        let mut t = SessionTracker::new();
        let mut m = msg(0).with_request_instance_uid();
        m.agent_description = Some(desc());
        let o = t.observe(m).unwrap();
        assert!(o.requests_instance_uid);
        let new = InstanceUid::from_array([4; 16]);
        assert!(t.rekey(&o.instance_uid, new));
        assert!(!t.rekey(&InstanceUid::from_array([9; 16]), new));
        let mut m = msg(1);
        m.instance_uid = new.to_vec();
        let o = t.observe(m).unwrap();
        assert!(!o.new_agent && !o.report_full_state);
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().count(), 1);
    }
}
