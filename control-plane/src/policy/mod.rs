//! Policies: typed JSON documents of the agent's configuration, assigned at global, client,
//! site or agent scope, merged into each agent's effective configuration and pushed to it.
//!
//! - [`schema`]: schema v1, validation naming the field, the JSON Schema
//! - [`merge`]: the merge with provenance (pure)
//! - [`render`]: the effective configuration as the TOML file the agent receives, and its hash
//! - [`push`]: recomputing after changes and sending to agents (in process and across
//!   replicas through PostgreSQL `LISTEN/NOTIFY`)

pub mod merge;
pub mod push;
pub mod render;
pub mod schema;
