//! Exporters: each turns the [`Snapshot`](crate::snapshot::Snapshot)s the collection loop
//! publishes into something outside the agent.
//!
//! - [`model`]: the neutral OpenTelemetry-named metric model every exporter starts from.
//! - [`prometheus`]: the `/metrics` text endpoint.
//! - [`otlp`]: OTLP/HTTP and OTLP/gRPC pushes, buffered through receiver outages.
//!
//! An exporter subscribes with [`Agent::subscribe`](crate::Agent::subscribe) and reacts to each
//! new snapshot; any number can run side by side.

pub mod model;
pub mod otlp;
pub mod prometheus;
