//! Custom messages from agents. The server takes one: the user inventory
//! (`io.rmm.inventory` / `users`), stored per agent and shown by `GET agents/{id}/users`.
//! Anything else is counted and ignored. A message is never answered with an error: the
//! agent cannot do anything about a bad report but log it, so the server logs it instead
//! and keeps the last good inventory.

use rmm_opamp::proto::{CustomCapabilities, CustomMessage};

use super::metrics::CustomOutcome;
use crate::store::inventory;
use crate::AppState;

/// The custom capabilities this server supports, announced in replies.
pub fn capabilities() -> CustomCapabilities {
    CustomCapabilities {
        capabilities: vec![inventory::CAPABILITY.to_owned()],
    }
}

/// Handle one custom message of `agent_id`.
pub async fn handle(st: &AppState, agent_id: &str, msg: &CustomMessage) {
    let outcome = if msg.capability != inventory::CAPABILITY
        || msg.r#type != inventory::MESSAGE_TYPE
    {
        tracing::debug!(agent = agent_id, capability = %msg.capability, r#type = %msg.r#type, "ignoring a custom message this server does not take");
        CustomOutcome::Ignored
    } else {
        let now = u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0);
        match inventory::parse(&msg.data, now) {
            Ok(report) => match inventory::store(&st.db, agent_id, &report).await {
                Ok(()) => {
                    tracing::debug!(
                        agent = agent_id,
                        users = report.users.len(),
                        sessions = report.sessions.len(),
                        "user inventory stored"
                    );
                    CustomOutcome::Stored
                }
                Err(e) => {
                    tracing::warn!(agent = agent_id, error = %e, "cannot store the user inventory");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(agent = agent_id, error = %e, "refusing an invalid user inventory; the last good one stays");
                CustomOutcome::Rejected
            }
        }
    };
    st.metrics.opamp.custom_message(outcome);
}
