//! Agent releases (issue 7): offline signing of builds and the pure rules that decide which
//! agents are offered an update when.
//!
//! - [`signing`]: Ed25519 key pairs, signatures over a build's SHA-256, their text formats
//! - [`rollout`]: cohorts, percentages, concurrency cap, maintenance windows, auto-pause,
//!   downgrade checks — pure functions, the caller passes the time in
//! - [`store`]: the release catalog (table `releases`), signatures verified at insert
//! - [`cli`]: `rmm-control-plane release keygen|sign|verify`

pub mod cli;
pub mod rollout;
pub mod signing;
pub mod store;
