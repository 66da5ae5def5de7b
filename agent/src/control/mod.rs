//! The agent's side of the control plane: enrollment and the OpAMP session.
//!
//! - [`enroll`]: `rmm-agent enroll` — one HTTPS call trading an enrollment token for an agent
//!   id and secret, stored by [`identity`] in the state directory (secret 0600, dir 0700).
//! - [`session`]: the OpAMP WebSocket session `run` keeps while the agent is enrolled:
//!   description, health, effective config, heartbeats, reconnects with [`backoff`].
//! - [`describe`]: what the agent reports about itself.
//! - [`inventory`]: user accounts and sessions, reported as an OpAMP custom message.
//! - [`remote_config`]: remote configuration layered over the local one, applied live by
//!   [`crate::reload`], kept for the next start.
//! - [`stats`]: `rmm_agent_opamp_*` self-metrics.
//!
//! Without an identity in the state directory the agent is a plain exporter; the session, when
//! there is one, runs as its own task and never holds up collection or `/metrics`.

pub mod backoff;
pub mod config;
pub mod describe;
pub mod enroll;
pub mod identity;
pub mod inventory;
pub mod remote_config;
pub mod session;
pub mod stats;
pub(crate) mod tls;

use std::time::{Duration, SystemTime};

use anyhow::Context;
use rmm_opamp::proto::{PackageStatuses, RemoteConfigStatus};
use rmm_opamp::{ClientState, InstanceUid};
use tokio::sync::{mpsc, watch};

pub use config::ControlConfig;
pub use identity::{Identity, StateDir};
pub use session::{ServerEvent, SessionHandle, StatusUpdate};

use crate::config::AgentConfig;
use crate::host::{HostFacts, HostPaths};

/// How long `run` waits for the session's goodbye on shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The control-plane session of a running agent.
pub struct Control {
    session: SessionHandle,
    events: Option<mpsc::Receiver<ServerEvent>>,
    identity: Identity,
    secret: identity::Secret,
}

impl Control {
    /// Starts the OpAMP session if the agent is enrolled and `[control] enabled`; `None`
    /// otherwise (plain exporter). Must be called within a Tokio runtime. `shutdown` turning
    /// true (or its sender being dropped) ends the session with a disconnect. `packages`:
    /// the package status to start with when self-updates are enabled (which adds the package
    /// capabilities).
    ///
    /// # Errors
    /// A broken state directory (unreadable or invalid identity, missing secret).
    pub fn start(
        config: &AgentConfig,
        remote_config: Option<RemoteConfigStatus>,
        packages: Option<PackageStatuses>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Self>> {
        let c = &config.control;
        if !c.enabled {
            tracing::info!(
                "Control plane disabled ([control] enabled = false); running as a plain exporter."
            );
            return Ok(None);
        }
        let dir = StateDir::new(&c.state_dir);
        let Some((identity, secret)) = dir.load().context("reading the enrollment state")? else {
            tracing::info!(state_dir = %c.state_dir.display(), "Not enrolled (no identity in the state directory); running as a plain exporter. `rmm-agent enroll` connects it to a control plane.");
            return Ok(None);
        };
        let uid: InstanceUid = identity
            .agent_id
            .parse()
            .context("the stored agent id is not a UUID")?;
        let url = session::websocket_url(&identity.opamp_url)
            .map_err(anyhow::Error::msg)
            .context("the stored OpAMP URL")?;
        let facts = HostFacts::detect(&HostPaths::default());
        let mut state = ClientState::new(uid, describe::capabilities(packages.is_some()));
        state.set_agent_description(describe::agent_description(uid, &facts));
        state.set_health(describe::health(SystemTime::now()));
        state.set_effective_config(describe::effective_config(config));
        state.set_custom_capabilities(inventory::capabilities());
        if let Some(status) = remote_config {
            state.set_remote_config_status(status);
        }
        if let Some(packages) = packages {
            state.set_package_statuses(packages);
        }
        let settings = session::SessionSettings::new(
            url.clone(),
            secret.clone(),
            c.heartbeat_interval,
            c.reconnect_min,
            c.reconnect_max,
        );
        tracing::info!(agent_id = %uid, opamp = %url, version = crate::version(), "Enrolled; connecting to the control plane.");
        let (session, events) = session::spawn(settings, state, shutdown);
        stats::publish(Some(session.stats().clone()));
        Ok(Some(Self {
            session,
            events: Some(events),
            identity,
            secret,
        }))
    }

    /// The identity this session runs with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The agent secret (for downloads from the control plane).
    pub fn secret(&self) -> &identity::Secret {
        &self.secret
    }

    /// The session's counters (`connected`).
    pub fn stats(&self) -> std::sync::Arc<stats::Stats> {
        self.session.stats().clone()
    }

    /// Where to send status changes.
    pub fn updates(&self) -> mpsc::Sender<StatusUpdate> {
        self.session.updates()
    }

    /// The server's requests for the agent (remote config, packages, custom messages), for the
    /// part of the agent that handles them. Once only.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<ServerEvent>> {
        self.events.take()
    }

    /// Waits (bounded) for the session to say goodbye after shutdown was signalled.
    pub async fn stop(self) {
        self.session.join(STOP_TIMEOUT).await;
        stats::publish(None);
    }
}
