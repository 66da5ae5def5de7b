//! OpAMP series of the control plane's `/metrics` (rendered by [`crate::metrics::Metrics`]):
//!
//! - `rmm_cp_agents_connected{transport}` gauge: agents online in this process, by transport
//!   (`websocket`, `http`); a plain-HTTP agent counts until it misses its liveness deadline
//! - `rmm_cp_opamp_messages_total{direction}` counter: `received` AgentToServer and `sent`
//!   ServerToAgent messages
//! - `rmm_cp_opamp_sessions_closed_total{reason}` counter: see [`CloseReason`]
//! - `rmm_cp_opamp_custom_messages_total{result}` counter: custom messages `stored`,
//!   `rejected` (invalid content) or `ignored` (a capability or type this server does not take)

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::registry::Transport;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The agent sent `agent_disconnect`.
    Disconnect,
    /// The WebSocket closed (or failed) without `agent_disconnect`.
    ConnectionClosed,
    /// No message within the offline timeout.
    Timeout,
    /// A message could not be decoded or was out of order.
    Malformed,
    /// A message exceeded the size limit.
    TooBig,
    /// A newer connection of the same agent took over.
    Replaced,
    /// The agent was deleted, or its enrollment refused.
    Refused,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Disconnect,
        CloseReason::ConnectionClosed,
        CloseReason::Timeout,
        CloseReason::Malformed,
        CloseReason::TooBig,
        CloseReason::Replaced,
        CloseReason::Refused,
        CloseReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Disconnect => "agent_disconnect",
            CloseReason::ConnectionClosed => "connection_closed",
            CloseReason::Timeout => "heartbeat_timeout",
            CloseReason::Malformed => "malformed",
            CloseReason::TooBig => "too_big",
            CloseReason::Replaced => "replaced",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

/// What became of a custom message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomOutcome {
    Stored,
    Rejected,
    Ignored,
}

impl CustomOutcome {
    pub const ALL: [CustomOutcome; 3] = [
        CustomOutcome::Stored,
        CustomOutcome::Rejected,
        CustomOutcome::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CustomOutcome::Stored => "stored",
            CustomOutcome::Rejected => "rejected",
            CustomOutcome::Ignored => "ignored",
        }
    }
}

/// Lock-free counters; the hot path (one heartbeat) touches two atomics.
#[derive(Debug, Default)]
pub struct OpampMetrics {
    connected: [AtomicI64; 2],
    received: AtomicU64,
    sent: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    custom: [AtomicU64; CustomOutcome::ALL.len()],
}

impl OpampMetrics {
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn custom_message(&self, outcome: CustomOutcome) {
        self.custom[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connected_add(&self, transport: Transport, delta: i64) {
        self.connected[transport as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// Agents online over `transport` right now.
    pub fn connected(&self, transport: Transport) -> i64 {
        self.connected[transport as usize].load(Ordering::Relaxed)
    }

    /// Append the OpAMP series to a text exposition.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP rmm_cp_agents_connected Agents with a live OpAMP session in this process, by transport.\n");
        out.push_str("# TYPE rmm_cp_agents_connected gauge\n");
        for t in [Transport::WebSocket, Transport::Http] {
            let _ = writeln!(
                out,
                "rmm_cp_agents_connected{{transport=\"{}\"}} {}",
                t.as_str(),
                self.connected(t)
            );
        }
        out.push_str("# HELP rmm_cp_opamp_messages_total OpAMP messages, by direction (received AgentToServer, sent ServerToAgent).\n");
        out.push_str("# TYPE rmm_cp_opamp_messages_total counter\n");
        let _ = writeln!(
            out,
            "rmm_cp_opamp_messages_total{{direction=\"received\"}} {}",
            self.received.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "rmm_cp_opamp_messages_total{{direction=\"sent\"}} {}",
            self.sent.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP rmm_cp_opamp_sessions_closed_total OpAMP sessions ended, by reason.\n",
        );
        out.push_str("# TYPE rmm_cp_opamp_sessions_closed_total counter\n");
        for r in CloseReason::ALL {
            let _ = writeln!(
                out,
                "rmm_cp_opamp_sessions_closed_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.closed[r.index()].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP rmm_cp_opamp_custom_messages_total OpAMP custom messages, by result (stored, rejected as invalid, ignored as unknown).\n");
        out.push_str("# TYPE rmm_cp_opamp_custom_messages_total counter\n");
        for o in CustomOutcome::ALL {
            let _ = writeln!(
                out,
                "rmm_cp_opamp_custom_messages_total{{result=\"{}\"}} {}",
                o.as_str(),
                self.custom[o as usize].load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = OpampMetrics::default();
        m.received();
        m.sent();
        m.sent();
        m.closed(CloseReason::TooBig);
        m.connected_add(Transport::Http, 1);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("rmm_cp_agents_connected{transport=\"websocket\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("rmm_cp_agents_connected{transport=\"http\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("rmm_cp_opamp_messages_total{direction=\"sent\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("rmm_cp_opamp_sessions_closed_total{reason=\"too_big\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("rmm_cp_opamp_sessions_closed_total{reason=\"heartbeat_timeout\"} 0"),
            "{out}"
        );
    }
}
