//! Agent releases (issue 7): offline signing of builds and the pure rules that decide which
//! agents are offered an update when.
//!
//! - [`signing`]: Ed25519 key pairs, signatures over a build's SHA-256, their text formats
//! - [`rollout`]: cohorts, percentages, concurrency cap, maintenance windows, auto-pause,
//!   downgrade checks — pure functions, the caller passes the time in
//! - [`store`]: the release catalog (table `releases`), signatures verified at insert
//! - [`builds`]: build files streamed into storage, checked (ELF architecture), verified
//! - [`rollout_store`]: rollouts and per-agent update state (migration 0008)
//! - [`offers`]: the offer loop between the planner, the database and OpAMP
//! - [`metrics`]: update status and latest release series of `/metrics`
//! - [`cli`]: `rmm-control-plane release keygen|sign|verify`

pub mod builds;
pub mod cli;
pub mod metrics;
pub mod offers;
pub mod rollout;
pub mod rollout_store;
pub mod signing;
pub mod store;
