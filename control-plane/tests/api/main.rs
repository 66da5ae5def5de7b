//! API tests over real HTTP. Every test that touches the database runs twice, on SQLite and
//! on PostgreSQL (see `common::Backend`).

mod common;

mod agents;
mod bad_input;
mod enrollment;
mod install_reports;
mod openapi;
mod ops;
mod roles;
mod sd;
mod smoke;
