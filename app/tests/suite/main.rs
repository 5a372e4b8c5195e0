//! The app's integration tests, one binary: each module is one area, all share the fixtures in
//! [`common`] (one local PostgreSQL server and one front door for the whole binary, a fresh
//! database per test), so the server starts once and the crate links once.
//!
//! Real-cluster tests are `#[ignore]`d with the reason; run them with `--ignored`.

mod common;

mod architecture;
mod cli;
mod clinic;
mod commit_faults;
mod config;
mod conformance;
mod default_logging;
mod dsql_rules;
mod fault_properties;
mod fault_tolerance;
mod front_door;
mod front_door_random;
mod front_door_rules;
mod front_door_traffic;
mod hostile_login;
mod hostile_sql;
mod lifted_pattern;
mod migrations;
mod new_migration;
mod pool_refresh;
mod real_clients;
mod real_cluster;
mod secrets_in_logs;
mod server_lifecycle;
mod server_os_user;
mod token;
mod users;
