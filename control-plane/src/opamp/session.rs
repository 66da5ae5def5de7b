//! Handling of one `AgentToServer`, shared by both transports: find (or enroll) the agent,
//! apply the message to its live state, persist what changed, and build the one
//! `ServerToAgent` that answers it.

use std::time::Duration;

use rmm_opamp::capabilities::{agent, has, server};
use rmm_opamp::proto::{
    AgentToServer, ConnectionSettingsOffers, Headers, OpAmpConnectionSettings,
    ServerErrorResponseType, ServerToAgent,
};
use rmm_opamp::{AgentState, InstanceUid, Observation};

use super::auth::Credential;
use super::describe;
use super::metrics::CloseReason;
use super::registry::Transport;
use crate::secrets::{self, AGENT_SECRET_PREFIX};
use crate::store::agent_status::{self, Online, StatusWrite};
use crate::store::agents::AgentIdentity;
use crate::store::enrollment::{self, EnrollError};
use crate::store::now_ms;
use crate::AppState;

/// What this server does: it takes status, effective config and package statuses, and
/// offers connection settings (credentials at enrollment), remote config (policies) and
/// packages (agent updates).
pub const SERVER_CAPABILITIES: u64 = server::ACCEPTS_STATUS
    | server::ACCEPTS_EFFECTIVE_CONFIG
    | server::ACCEPTS_PACKAGES_STATUS
    | server::OFFERS_CONNECTION_SETTINGS
    | server::OFFERS_REMOTE_CONFIG
    | server::OFFERS_PACKAGES;

/// The agent a message belongs to, once credentials and enrollment are settled.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub agent: AgentIdentity,
    /// A secret just issued by enrolling; offered through connection settings.
    pub new_secret: Option<String>,
    /// The agent's id differs from the instance uid the client used: offer it.
    pub new_uid: Option<InstanceUid>,
}

/// The answer to one message.
#[derive(Debug)]
pub struct Answer {
    pub reply: ServerToAgent,
    /// End the session after sending the reply (WebSocket), and why.
    pub end: Option<CloseReason>,
}

impl Answer {
    fn end(reply: ServerToAgent, reason: CloseReason) -> Self {
        Answer {
            reply,
            end: Some(reason),
        }
    }
}

/// Settle who sent `msg`: the agent behind the credential, an agent enrolled earlier with
/// the presented enrollment token, or a new agent enrolled now from the message's
/// description. `Err` carries the answer when no agent can be named yet (a token holder's
/// first message without a description is asked for its full state; a refused enrollment).
pub async fn resolve(
    st: &AppState,
    cred: &Credential,
    msg: &AgentToServer,
    uid: InstanceUid,
    ip: Option<String>,
) -> Result<Resolved, Answer> {
    let (token, token_hash) = match cred {
        Credential::Agent(a) => {
            return Ok(Resolved {
                agent: a.clone(),
                new_secret: None,
                new_uid: None,
            })
        }
        Credential::Enrollment { token, token_hash } => (token, token_hash),
    };
    let uid_text = uid.to_string();
    let facts = msg
        .agent_description
        .as_ref()
        .map(|d| describe::host_facts(d, &uid_text));
    let known = agent_status::enrolled_with_token(
        &st.db,
        &token.id,
        &uid_text,
        facts.as_ref().map(|f| f.host_id.as_str()),
    )
    .await
    .map_err(|e| unavailable(uid, &e))?;
    if let Some(agent) = known {
        return Ok(Resolved {
            agent,
            new_secret: None,
            new_uid: None,
        });
    }
    let Some(facts) = facts else {
        // Enrollment needs host facts: ask for the description.
        let reply = ServerToAgent::builder(uid)
            .capabilities(SERVER_CAPABILITIES)
            .report_full_state()
            .build();
        return Err(Answer { reply, end: None });
    };
    let secret = secrets::new_token(AGENT_SECRET_PREFIX);
    let result = enrollment::enroll_as(
        &st.db,
        token_hash,
        &secrets::token_hash(&secret),
        &facts,
        ip,
        Some(&uid_text),
    )
    .await;
    let (label, message) = match result {
        Ok(e) => {
            st.metrics.enrollment("success");
            tracing::info!(agent = %e.agent_id, new = e.new_agent, hostname = %facts.hostname, "agent enrolled over OpAMP");
            let new_uid = match e.agent_id.parse::<InstanceUid>() {
                Ok(id) if id != uid => Some(id),
                _ => None,
            };
            let agent = AgentIdentity {
                id: e.agent_id,
                client_id: e.client_id,
                site_id: e.site_id,
            };
            return Ok(Resolved {
                agent,
                new_secret: Some(secret),
                new_uid,
            });
        }
        Err(EnrollError::Invalid) => ("token_invalid", "the enrollment token is not valid"),
        Err(EnrollError::Expired) => ("token_expired", "the enrollment token has expired"),
        Err(EnrollError::Revoked) => ("token_revoked", "the enrollment token has been revoked"),
        Err(EnrollError::Exhausted) => ("token_exhausted", "the enrollment token has been used up"),
        Err(EnrollError::Store(e)) => return Err(unavailable(uid, &e)),
    };
    st.metrics.enrollment(label);
    tracing::info!(instance = %uid, result = label, "OpAMP enrollment refused");
    let reply = ServerToAgent::error_response(uid, ServerErrorResponseType::Unknown, message, None);
    Err(Answer::end(reply, CloseReason::Refused))
}

fn unavailable(uid: InstanceUid, err: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %err, "OpAMP: database error");
    Answer::end(
        ServerToAgent::unavailable(
            uid,
            "the server cannot reach its database; retry later",
            Some(Duration::from_secs(30)),
        ),
        CloseReason::Refused,
    )
}

/// Columns to write after `obs`: the online transition and every sub-message that changed.
fn status_write(
    obs: &Observation,
    state: &AgentState,
    went_online: bool,
    transport: Transport,
) -> StatusWrite {
    let mut w = StatusWrite::default();
    let now = now_ms();
    if went_online || obs.new_agent {
        w.online = Some(Online {
            at_ms: now,
            instance_uid: obs.instance_uid.to_string(),
            transport: transport.as_str(),
        });
    }
    if went_online || obs.new_agent || obs.capabilities_changed {
        w.capabilities = Some(state.capabilities);
    }
    let s = &state.status;
    if obs.changed.agent_description {
        if let Some(d) = &s.agent_description {
            w.description = Some(describe::description(d).to_string());
            (w.agent_version, w.hostname, w.os, w.arch) = describe::reported_facts(d);
        }
    }
    if obs.changed.health {
        w.health = s.health.as_ref().map(|h| describe::health(h).to_string());
    }
    if obs.changed.effective_config {
        w.effective_config = s.effective_config.as_ref().map(|c| {
            (
                describe::effective_config(c).to_string(),
                describe::effective_config_hash(c),
            )
        });
    }
    if obs.changed.remote_config_status {
        w.remote_config_status = s
            .remote_config_status
            .as_ref()
            .map(|r| describe::remote_config_status(r).to_string());
    }
    if obs.changed.package_statuses {
        w.package_statuses = s
            .package_statuses
            .as_ref()
            .map(|p| describe::package_statuses(p).to_string());
    }
    w
}

/// The OpAMP URL for connection-settings offers, in the scheme of the transport in use.
fn endpoint(st: &AppState, transport: Transport) -> String {
    let base = &st.public_base;
    match transport {
        Transport::Http => format!("{base}{}", super::PATH),
        Transport::WebSocket => {
            let ws = base
                .strip_prefix("https://")
                .map(|r| format!("wss://{r}"))
                .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")));
            format!("{}{}", ws.unwrap_or_else(|| base.clone()), super::PATH)
        }
    }
}

/// Apply one message from a resolved agent and answer it.
pub async fn process(
    st: &AppState,
    who: &Resolved,
    transport: Transport,
    session: Option<u64>,
    msg: AgentToServer,
) -> Answer {
    let uid_bytes = msg.instance_uid.clone();
    let agent_id = who.agent.id.as_str();
    let recorded = st.opamp.record(
        agent_id,
        transport,
        msg,
        now_ms(),
        |obs, state, went_online| status_write(obs, state, went_online, transport),
    );
    let (rec, write) = match recorded {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(agent = agent_id, error = %e, "OpAMP: malformed message");
            return Answer::end(
                ServerToAgent::bad_request(&uid_bytes, e.to_string()),
                CloseReason::Malformed,
            );
        }
    };
    let obs = rec.obs;
    if rec.went_online {
        tracing::info!(agent = agent_id, instance = %obs.instance_uid, transport = transport.as_str(), "agent online");
    }
    if !write.is_empty() {
        match agent_status::write(&st.db, agent_id, &write, now_ms()).await {
            Ok(true) => {}
            Ok(false) => {
                // Deleted while connected: its credentials no longer exist.
                if let Some(gone) = st.opamp.remove(agent_id, None) {
                    super::count_gone(st, &[gone], CloseReason::Refused);
                }
                let reply = ServerToAgent::error_response(
                    obs.instance_uid,
                    ServerErrorResponseType::Unknown,
                    "this agent has been deleted",
                    None,
                );
                return Answer::end(reply, CloseReason::Refused);
            }
            Err(e) => {
                tracing::warn!(agent = agent_id, error = %e, "OpAMP: cannot store the agent's status")
            }
        }
    }
    if obs.disconnect {
        if let Some(gone) = st.opamp.remove(agent_id, session) {
            super::mark_offline(st, vec![gone], CloseReason::Disconnect).await;
        }
        tracing::info!(agent = agent_id, "agent disconnected");
        return Answer::end(
            ServerToAgent::ack(obs.instance_uid),
            CloseReason::Disconnect,
        );
    }

    if let Some(custom) = &obs.custom_message {
        super::custom::handle(st, agent_id, custom).await;
    }

    let mut reply = obs.reply(SERVER_CAPABILITIES);
    if rec.went_online || obs.capabilities_changed {
        reply = reply.custom_capabilities(super::custom::capabilities());
    }
    if let Some(secret) = &who.new_secret {
        // Offers are gated on the capability (spec); clients without it keep using the
        // enrollment token, which keeps naming this agent.
        if has(rec.capabilities, agent::ACCEPTS_OPAMP_CONNECTION_SETTINGS) {
            let heartbeat = Duration::from_secs(st.config.opamp_heartbeat_interval_seconds);
            let opamp = OpAmpConnectionSettings::new(endpoint(st, transport))
                .with_headers(Headers::bearer(secret))
                .with_heartbeat_interval(heartbeat);
            reply = reply.connection_settings(ConnectionSettingsOffers::new(opamp));
        }
    }
    // The effective configuration (policy::push): on connect, when the reported hash
    // changes, and on every plain-HTTP poll (those agents have no push channel).
    if transport == Transport::Http || rec.went_online || obs.changed.remote_config_status {
        let reported = st.opamp.remote_config_hash(agent_id);
        if let Some(rc) = crate::policy::push::remote_config_for(
            st,
            agent_id,
            rec.capabilities,
            reported.as_deref(),
        )
        .await
        {
            reply = reply.remote_config(rc);
        }
    }
    // Agent updates: map the reported package status, plan on connect, and repeat a pending
    // offer to an agent that just came online (it may have restarted) or polls over HTTP.
    if obs.changed.package_statuses {
        if let Some(ps) = st.opamp.update_view(agent_id).and_then(|v| v.package) {
            crate::releases::offers::on_status(st, agent_id, &ps).await;
        }
    }
    if rec.went_online {
        st.releases.kick();
    }
    if (rec.went_online || transport == Transport::Http)
        && has(rec.capabilities, agent::ACCEPTS_PACKAGES)
    {
        if let Some(p) = crate::releases::offers::pending_offer(st, agent_id).await {
            reply = reply.packages_available(p);
        }
    }
    let assign = who.new_uid.or_else(|| {
        obs.requests_instance_uid
            .then(|| agent_id.parse::<InstanceUid>().ok())
            .flatten()
    });
    if let Some(new_uid) = assign {
        reply = reply.new_instance_uid(new_uid);
        st.opamp.rekey(agent_id, new_uid);
    }
    if let Some(gap) = obs.sequence_gap {
        tracing::debug!(
            agent = agent_id,
            expected = gap.expected,
            received = gap.received,
            "sequence gap: full state requested"
        );
    }
    Answer {
        reply: reply.build(),
        end: None,
    }
}
