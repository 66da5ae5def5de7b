//! # rmm-opamp
//!
//! The [OpAMP](https://opentelemetry.io/docs/specs/opamp/) protocol (Open Agent
//! Management Protocol) as used between the rmm control plane and its agents —
//! and with third-party OpAMP clients and servers. **No I/O**: this crate has
//! the messages, the framing, size limits, typed views and the pure session
//! logic; the control plane and the agent bring their own HTTP/WebSocket stack.
//!
//! Spec version: opamp-spec `main` (≈ v0.18.0 plus `ComponentHealth.attributes`),
//! proto package `opamp.proto.v1`. `instance_uid` is 16 bytes (since v0.10.0);
//! peers that still send a string ULID are rejected by [`InstanceUid::from_bytes`].
//!
//! ## Modules
//!
//! | module | what |
//! | --- | --- |
//! | [`proto`] | every message, oneof and enum as hand-written `prost` types |
//! | [`ws`] | WebSocket framing: varint header `0x00` + protobuf |
//! | [`http`] | plain HTTP: content type, gzip, body encode/decode |
//! | [`limits`] | size limits (64 MiB default) |
//! | [`instance_uid`] | [`InstanceUid`] ⇄ bytes ⇄ [`uuid::Uuid`] ⇄ text |
//! | [`capabilities`] | capability and flag bits |
//! | [`typed`] | presence-based typed views (package state, commands, errors, …) |
//! | [`builders`] | `ServerToAgent` builder and constructors, hash helpers |
//! | [`status`] | the status sub-message set shared by both sides |
//! | [`server`] | [`SessionTracker`]: full-state decisions and status merging |
//! | [`client`] | [`ClientState`]: builds `AgentToServer`, applies `ServerToAgent` |
//!
//! ## Transports
//!
//! Both use the path `/v1/opamp` by default ([`http::DEFAULT_PATH`], port
//! [`http::DEFAULT_PORT`] 4320). A server tells them apart by `Content-Type`:
//! exactly `application/x-protobuf` → plain HTTP; otherwise a WebSocket upgrade.
//!
//! * **WebSocket** ([`ws`]): full duplex. Each binary message is a protobuf
//!   varint *header* followed by the protobuf message. The header is 0 in this
//!   spec version (one `0x00` byte); a non-zero header is malformed. The client
//!   sends `AgentToServer`, the server `ServerToAgent`. Oversized messages: close
//!   with 1009.
//! * **Plain HTTP** ([`http`]): the client `POST`s a *bare* `AgentToServer` (no
//!   header), optionally gzipped (`Content-Encoding: gzip`); the server answers
//!   200 with a bare `ServerToAgent` and `Content-Type: application/x-protobuf`
//!   exactly (no parameters — the Elastic Node client compares strings). Polling
//!   doubles as heartbeat (30 s default). Oversized bodies: 413.
//!
//! Every received message is held to a size limit after decompression
//! ([`Limits`], 64 MiB by default).
//!
//! ## Message rules that matter
//!
//! * The server answers every `AgentToServer` with exactly one `ServerToAgent`
//!   echoing `instance_uid` ([`proto::ServerToAgent::ack`] is enough).
//! * `AgentToServer.capabilities` is set in every message; `sequence_num` grows
//!   by one per message. A server that sees a gap (or an unknown agent) sets
//!   ReportFullState — [`server::SessionTracker`] decides this.
//! * **Status compression**: unchanged status sub-messages are omitted; an
//!   absent sub-message means "unchanged", not "empty" —
//!   [`status::AgentStatus::merge_from`] keeps the previous value.
//! * `error_response` is exclusive with everything but `instance_uid`; `command`
//!   travels only with `instance_uid` and `capabilities` — the constructors in
//!   [`builders`] enforce this, [`proto::ServerToAgent::check_exclusivity`]
//!   verifies received messages.
//!
//! ## Presence, not zero values
//!
//! Proto3 cannot tell an unset enum from its zero value, and several OpAMP enums
//! have a meaningful zero (`PackageStatusEnum_Installed`, `CommandType_Restart`,
//! `PackageType_TopLevel`, `ServerErrorResponseType_Unknown`). Decide on the
//! presence of the *enclosing message*: [`proto::ServerToAgent::command_kind`]
//! is `None` unless `command` is present; [`proto::PackageStatus::state`] is only
//! meaningful for an entry that exists. See [`typed`].
//!
//! ## Example: one plain-HTTP exchange, both sides
//!
//! ```
//! use rmm_opamp::{client::ClientState, server::SessionTracker, http, Limits, InstanceUid};
//! use rmm_opamp::capabilities::{agent, server};
//! use rmm_opamp::proto::{AgentDescription, ServerToAgent};
//!
//! let limits = Limits::default();
//! // agent
//! let mut client = ClientState::new(InstanceUid::new_v7(), agent::REPORTS_STATUS | agent::REPORTS_HEARTBEAT);
//! client.set_agent_description(AgentDescription::default().with_identifying("service.name", "rmm-agent"));
//! let body = http::encode_body(&client.next_message(), false);
//! // server
//! let mut tracker = SessionTracker::new();
//! let req = http::decode_agent_to_server(&body, None, &limits).unwrap();
//! let obs = tracker.observe(req).unwrap();
//! let reply = ServerToAgent::builder(obs.instance_uid)
//!     .capabilities(server::ACCEPTS_STATUS)
//!     .report_full_state_if(obs.report_full_state)
//!     .build();
//! let resp = http::encode_body(&reply, false);
//! // agent
//! let reply = http::decode_server_to_agent(&resp, None, &limits).unwrap();
//! let effects = client.apply(reply).unwrap();
//! assert!(!effects.report_full_state);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod builders;
pub mod capabilities;
pub mod client;
pub mod http;
pub mod instance_uid;
pub mod limits;
pub mod proto;
pub mod server;
pub mod status;
pub mod typed;
pub mod ws;

pub use builders::{config_hash, ServerToAgentBuilder};
pub use client::{ApplyError, ClientState, IgnoredOffer, ServerEffects};
pub use instance_uid::{InstanceUid, InstanceUidError};
pub use limits::{Limits, DEFAULT_MAX_MESSAGE_SIZE};
pub use server::{AgentState, Observation, SequenceGap, SessionError, SessionTracker};
pub use status::{AgentStatus, StatusChanges};
pub use typed::{
    ApplyState, Command, ExclusivityError, PackageKind, PackageState, ServerError, ServerErrorKind,
};

/// Re-export of `prost` so users can call [`prost::Message`] methods without a
/// direct dependency of matching version.
pub use prost;
pub use uuid;
