//! The live-session registry: every agent this process heard from recently, keyed by agent
//! id, with its OpAMP state (sequence numbers, merged status, capabilities), when it was last
//! seen, and for WebSocket agents a handle to push `ServerToAgent` messages to it at once.
//!
//! One mutex guards the map: each message holds it for a hash lookup and a status merge, so
//! it is never held across I/O or an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rmm_opamp::proto::{AgentToServer, ServerToAgent};
use rmm_opamp::{AgentState, InstanceUid, Observation, SessionError};
use tokio::sync::mpsc;

use super::metrics::CloseReason;
use crate::metrics::Metrics;

/// How an agent talks to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket = 0,
    Http = 1,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
        }
    }
}

/// Something for a WebSocket session task to do.
#[derive(Debug)]
pub enum Push {
    /// Send this message now.
    Message(Box<ServerToAgent>),
    /// Close the connection with this status and reason.
    Close(u16, CloseReason),
}

/// A WebSocket session's mailbox. Small on purpose: a push that finds it full is dropped and
/// reported, never waited for.
pub const SESSION_QUEUE: usize = 8;

/// Handle on one live WebSocket session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: u64,
    tx: mpsc::Sender<Push>,
}

impl SessionHandle {
    fn send(&self, push: Push) -> bool {
        self.tx.try_send(push).is_ok()
    }

    /// Ask the session to close with `code`.
    pub fn close(&self, code: u16, reason: CloseReason) -> bool {
        self.send(Push::Close(code, reason))
    }
}

/// What the registry keeps per agent.
#[derive(Debug)]
struct LiveAgent {
    state: AgentState,
    transport: Transport,
    /// Counted in `rmm_cp_agents_connected` (set by the first message).
    online: bool,
    last_seen_ms: i64,
    /// The `last_seen` already written to the database.
    flushed_ms: i64,
    session: Option<SessionHandle>,
}

/// The result of recording one message.
#[derive(Debug)]
pub struct Recorded {
    pub obs: Observation,
    /// The agent was not online in this process before this message.
    pub went_online: bool,
    /// The capabilities of the message.
    pub capabilities: u64,
}

/// An agent removed from the registry.
#[derive(Debug)]
pub struct Gone {
    pub agent_id: String,
    pub was_online: bool,
    pub session: Option<SessionHandle>,
}

/// An online agent as the update planner sees it.
#[derive(Debug, Clone)]
pub struct UpdateView {
    pub agent_id: String,
    pub capabilities: u64,
    /// Reported `service.version`.
    pub version: Option<String>,
    /// Reported `os.type` and `host.arch`, as reported.
    pub os: Option<String>,
    pub arch: Option<String>,
    /// The reported status of the `rmm-agent` package.
    pub package: Option<rmm_opamp::proto::PackageStatus>,
}

impl UpdateView {
    fn of(id: &str, state: &AgentState) -> UpdateView {
        let (version, _, os, arch) = match &state.status.agent_description {
            Some(d) => super::describe::reported_facts(d),
            None => (None, None, None, None),
        };
        UpdateView {
            agent_id: id.to_owned(),
            capabilities: state.capabilities,
            version,
            os,
            arch,
            package: state
                .status
                .package_statuses
                .as_ref()
                .and_then(|p| p.packages.get(crate::releases::offers::PACKAGE).cloned()),
        }
    }
}

/// Live sessions of this process.
#[derive(Debug)]
pub struct Registry {
    agents: Mutex<HashMap<String, LiveAgent>>,
    next_session: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Registry {
            agents: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, LiveAgent>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach a new WebSocket session to `agent_id` (replacing, and closing, an older one)
    /// and return its handle and mailbox.
    pub fn attach(
        &self,
        agent_id: &str,
        uid: InstanceUid,
    ) -> (SessionHandle, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let handle = SessionHandle {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            tx,
        };
        let mut map = self.lock();
        let entry = map.entry(agent_id.to_owned()).or_insert_with(|| LiveAgent {
            state: AgentState::new(uid),
            transport: Transport::WebSocket,
            online: false,
            last_seen_ms: 0,
            flushed_ms: 0,
            session: None,
        });
        if let Some(old) = entry.session.replace(handle.clone()) {
            old.send(Push::Close(1000, CloseReason::Replaced));
        }
        if entry.transport != Transport::WebSocket {
            if entry.online {
                self.metrics.opamp.connected_add(entry.transport, -1);
                self.metrics.opamp.connected_add(Transport::WebSocket, 1);
            }
            entry.transport = Transport::WebSocket;
        }
        (handle, rx)
    }

    /// Apply one message from `agent_id` (authenticated by the caller) to its state.
    ///
    /// `extract` runs under the registry lock with the observation, the merged state and
    /// whether the agent just went online, to copy out what the caller must persist.
    pub fn record<T>(
        &self,
        agent_id: &str,
        transport: Transport,
        msg: AgentToServer,
        now_ms: i64,
        extract: impl FnOnce(&Observation, &AgentState, bool) -> T,
    ) -> Result<(Recorded, T), SessionError> {
        let uid = msg.uid()?;
        let mut map = self.lock();
        let entry = map.entry(agent_id.to_owned()).or_insert_with(|| LiveAgent {
            state: AgentState::new(uid),
            transport,
            online: false,
            last_seen_ms: 0,
            flushed_ms: 0,
            session: None,
        });
        if entry.state.instance_uid != uid {
            // The agent switched ids (new_instance_uid) or restarted with a new one: a new
            // instance, whose first message decides about full state.
            entry.state = AgentState::new(uid);
        }
        if entry.transport != transport {
            if entry.online {
                self.metrics.opamp.connected_add(entry.transport, -1);
                self.metrics.opamp.connected_add(transport, 1);
            }
            entry.transport = transport;
        }
        let obs = entry.state.apply(msg)?;
        entry.last_seen_ms = now_ms;
        let went_online = !entry.online;
        if went_online {
            entry.online = true;
            // Status changes and the online transition are written at once; last_seen of
            // this message with them.
            entry.flushed_ms = now_ms;
            self.metrics.opamp.connected_add(transport, 1);
        }
        let extracted = extract(&obs, &entry.state, went_online);
        Ok((
            Recorded {
                obs,
                went_online,
                capabilities: entry.state.capabilities,
            },
            extracted,
        ))
    }

    /// Switch the tracked instance uid of `agent_id` after offering it `new_instance_uid`.
    pub fn rekey(&self, agent_id: &str, uid: InstanceUid) {
        if let Some(e) = self.lock().get_mut(agent_id) {
            e.state.instance_uid = uid;
        }
    }

    /// Forget `agent_id` (disconnect, closed socket). With `session`, only if that session
    /// is still the agent's current one, so a replaced connection cannot remove its successor.
    pub fn remove(&self, agent_id: &str, session: Option<u64>) -> Option<Gone> {
        let mut map = self.lock();
        let current = map.get(agent_id)?.session.as_ref().map(|s| s.id);
        if session.is_some() && current != session {
            return None;
        }
        let e = map.remove(agent_id)?;
        drop(map);
        Some(self.gone(agent_id.to_owned(), e))
    }

    fn gone(&self, agent_id: String, e: LiveAgent) -> Gone {
        if e.online {
            self.metrics.opamp.connected_add(e.transport, -1);
        }
        Gone {
            agent_id,
            was_online: e.online,
            session: e.session,
        }
    }

    /// Remove and return every online agent silent since before `cutoff_ms`. (A WebSocket
    /// session that never sent a message is not online; its task enforces the deadline.)
    pub fn take_stale(&self, cutoff_ms: i64) -> Vec<Gone> {
        let mut map = self.lock();
        let stale: Vec<String> = map
            .iter()
            .filter(|(_, e)| e.online && e.last_seen_ms < cutoff_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(stale.len());
        for id in stale {
            if let Some(e) = map.remove(&id) {
                out.push(self.gone(id, e));
            }
        }
        out
    }

    /// `(agent id, last seen)` of agents seen since their last flush, marked flushed.
    pub fn take_unflushed(&self) -> Vec<(String, i64)> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for (id, e) in map.iter_mut() {
            if e.online && e.last_seen_ms > e.flushed_ms {
                e.flushed_ms = e.last_seen_ms;
                out.push((id.clone(), e.last_seen_ms));
            }
        }
        out
    }

    /// Push a message to a connected WebSocket agent at once. False when the agent has no
    /// live WebSocket session (a plain-HTTP agent gets its data in the next poll response)
    /// or its mailbox is full.
    pub fn push(&self, agent_id: &str, msg: ServerToAgent) -> bool {
        let handle = self.lock().get(agent_id).and_then(|e| e.session.clone());
        match handle {
            Some(h) => h.send(Push::Message(Box::new(msg))),
            None => false,
        }
    }

    /// Close `agent_id`'s WebSocket session, if it has one.
    pub fn close(&self, agent_id: &str, code: u16, reason: CloseReason) -> bool {
        let handle = self.lock().get(agent_id).and_then(|e| e.session.clone());
        handle.is_some_and(|h| h.send(Push::Close(code, reason)))
    }

    /// Ask every WebSocket session to close (server shutdown); returns the agents that were
    /// online, now forgotten.
    pub fn close_all(&self) -> Vec<Gone> {
        let drained: Vec<(String, LiveAgent)> = self.lock().drain().collect();
        drained
            .into_iter()
            .map(|(id, e)| {
                if let Some(s) = &e.session {
                    s.send(Push::Close(1001, CloseReason::Shutdown));
                }
                self.gone(id, e)
            })
            .collect()
    }

    /// Whether `agent_id` is online in this process.
    pub fn is_online(&self, agent_id: &str) -> bool {
        self.lock().get(agent_id).is_some_and(|e| e.online)
    }

    /// How `agent_id` talks to us, if it is live here.
    pub fn transport(&self, agent_id: &str) -> Option<Transport> {
        self.lock().get(agent_id).map(|e| e.transport)
    }

    /// The capabilities `agent_id` reported last, if it is live here.
    pub fn capabilities(&self, agent_id: &str) -> Option<u64> {
        self.lock().get(agent_id).map(|e| e.state.capabilities)
    }

    /// Agents online in this process.
    pub fn online_ids(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.online)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The instance uid `agent_id` uses now, if it is live here (pushes are addressed to it).
    pub fn instance_uid(&self, agent_id: &str) -> Option<InstanceUid> {
        self.lock().get(agent_id).map(|e| e.state.instance_uid)
    }

    /// The `last_remote_config_hash` `agent_id` last reported, if it is live here and reported one.
    pub fn remote_config_hash(&self, agent_id: &str) -> Option<Vec<u8>> {
        self.lock().get(agent_id).and_then(|e| {
            e.state
                .status
                .remote_config_status
                .as_ref()
                .map(|r| r.last_remote_config_hash.clone())
        })
    }

    /// What the update planner needs of every online agent (see [`UpdateView`]).
    pub fn update_views(&self) -> Vec<UpdateView> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.online)
            .map(|(id, e)| UpdateView::of(id, &e.state))
            .collect()
    }

    /// The [`UpdateView`] of one agent, if it is online here.
    pub fn update_view(&self, agent_id: &str) -> Option<UpdateView> {
        self.lock()
            .get(agent_id)
            .filter(|e| e.online)
            .map(|e| UpdateView::of(agent_id, &e.state))
    }

    /// Agents tracked (online or attached).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmm_opamp::proto::AgentDescription;

    fn msg(uid: InstanceUid, seq: u64) -> AgentToServer {
        AgentToServer {
            instance_uid: uid.to_vec(),
            sequence_num: seq,
            capabilities: 0x2001,
            ..Default::default()
        }
    }

    #[test]
    fn online_counting_gaps_and_staleness() {
        let metrics = Arc::new(Metrics::new());
        let reg = Registry::new(metrics.clone());
        let uid = InstanceUid::new_v7();
        let mut hello = msg(uid, 1);
        hello.agent_description =
            Some(AgentDescription::default().with_identifying("service.name", "x"));
        let (r, _) = reg
            .record("a1", Transport::Http, hello, 1000, |_, _, _| ())
            .unwrap();
        assert!(r.went_online && !r.obs.report_full_state);
        assert_eq!(metrics.opamp.connected(Transport::Http), 1);
        let (r, _) = reg
            .record("a1", Transport::Http, msg(uid, 2), 2000, |_, _, _| ())
            .unwrap();
        assert!(!r.went_online && !r.obs.report_full_state);
        let (r, _) = reg
            .record("a1", Transport::Http, msg(uid, 9), 3000, |_, _, _| ())
            .unwrap();
        assert!(r.obs.report_full_state, "sequence gap asks for full state");
        assert_eq!(reg.take_unflushed(), vec![("a1".to_owned(), 3000)]);
        assert!(reg.take_unflushed().is_empty());
        assert!(reg.take_stale(3000).is_empty());
        let gone = reg.take_stale(3001);
        assert_eq!(gone.len(), 1);
        assert_eq!(metrics.opamp.connected(Transport::Http), 0);
    }

    #[test]
    fn replaced_session_cannot_remove_its_successor() {
        let metrics = Arc::new(Metrics::new());
        let reg = Registry::new(metrics.clone());
        let uid = InstanceUid::new_v7();
        let (old, mut old_rx) = reg.attach("a1", uid);
        let (new, _new_rx) = reg.attach("a1", uid);
        assert!(matches!(
            old_rx.try_recv(),
            Ok(Push::Close(1000, CloseReason::Replaced))
        ));
        assert!(reg.remove("a1", Some(old.id)).is_none());
        reg.record("a1", Transport::WebSocket, msg(uid, 0), 5, |_, _, _| ())
            .unwrap();
        assert_eq!(metrics.opamp.connected(Transport::WebSocket), 1);
        assert!(reg.push("a1", ServerToAgent::ack(uid.as_bytes())));
        assert!(reg.remove("a1", Some(new.id)).is_some());
        assert_eq!(metrics.opamp.connected(Transport::WebSocket), 0);
    }
}
