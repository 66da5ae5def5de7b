//! `rmm-agent`: collects host and top-process metrics and exports them.
//!
//! How a cycle flows:
//!
//! ```text
//! config ──▶ collect::Collectors ──(one Snapshot per interval, own thread)──▶ watch channel
//!                                                                              │
//!            export::model::from_snapshot (OTel-named families) ◀──────────────┘
//!                 └──▶ export::prometheus: rendered once per snapshot, served on GET /metrics
//! ```
//!
//! Modules:
//! - [`config`]: the TOML file and `RMM_AGENT_*` overrides.
//! - [`control`]: enrollment and the OpAMP session with the control plane.
//! - [`host`]: where `/proc`, `/sys`, `/etc` are (injectable for tests), kernel constants, host facts.
//! - [`collect`]: one collector per file, producing a [`snapshot::Snapshot`].
//! - [`snapshot`]: the one data item passed from collection to export.
//! - [`export`]: the neutral metric model and the exporters.
//! - [`agent`]: the collection thread ([`Agent`]) and [`run`].
//! - [`reload`]: the parts a configuration change swaps live.
//! - [`table`]: the human-readable view of `rmm-agent collect --format table`.
//! - [`update`]: self-update from signed package offers: download, verify, swap, trial, rollback.
//! - [`version`](mod@version): the running version, stampable into a built binary.

pub mod agent;
pub mod collect;
pub mod config;
pub mod control;
pub mod export;
pub mod host;
pub mod reload;
pub mod snapshot;
pub mod table;
pub mod update;
mod util;
pub mod version;

pub use agent::{run, Agent, SnapshotReceiver};
pub use config::AgentConfig;
pub use snapshot::Snapshot;

/// The agent's version (`service.version`, `rmm_agent_build_info{version}`, the user agent):
/// the one stamped into the binary ([`version`](mod@version)), else `CARGO_PKG_VERSION`.
pub use version::version;

/// `rmm-agent/<version>`, the user agent of every HTTP request.
pub fn user_agent() -> String {
    format!("rmm-agent/{}", version())
}
