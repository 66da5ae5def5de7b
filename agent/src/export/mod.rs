//! Exporters: each turns the [`Snapshot`](crate::snapshot::Snapshot)s the collection loop
//! publishes into something outside the agent.
//!
//! - [`model`]: the neutral OpenTelemetry-named metric model every exporter starts from.
//! - [`prometheus`]: the `/metrics` text endpoint.
//!
//! An exporter subscribes with [`Agent::subscribe`](crate::Agent::subscribe) and reacts to each
//! new snapshot; any number can run side by side.

pub mod model;
pub mod prometheus;
