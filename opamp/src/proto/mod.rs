//! OpAMP protobuf messages, hand-written from the spec's field tables
//! (opamp-spec `main`, ≈ v0.18.0 + `ComponentHealth.attributes`; proto package
//! `opamp.proto.v1`).
//!
//! Every type derives [`prost::Message`] (or `Oneof`/`Enumeration`), so encode
//! and decode with [`prost::Message::encode_to_vec`] / [`prost::Message::decode`],
//! or — preferably, because they enforce size limits and framing — with
//! [`crate::ws`] and [`crate::http`].
//!
//! Conventions: `bytes` fields are `Vec<u8>`; `map<..>` fields are
//! [`BTreeMap`](std::collections::BTreeMap) so that encoding is deterministic
//! (sorted keys); enum fields are `i32` (open enums); capability and flag fields
//! are `u64` bitmasks. Unknown fields are skipped on decode.

mod agent_to_server;
mod anyvalue;
mod config;
mod connection;
mod custom;
mod enums;
mod server_to_agent;

pub use agent_to_server::*;
pub use anyvalue::*;
pub use config::*;
pub use connection::*;
pub use custom::*;
pub use enums::*;
pub use server_to_agent::*;
