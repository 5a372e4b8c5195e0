//! The pet clinic on Aurora DSQL with SeaORM.
//!
//! - [`config`]: where to connect, from the environment, checked before any connection.
//! - [`session`]: one connected session, the same code for DSQL, a URL and the local stand-in.
//! - [`retry`]: running a transaction again after an optimistic-concurrency conflict.
//! - [`clinic`]: the clinic's data operations; [`demo`]: the walkthrough that uses them.
//! - [`users`]: onboarding a non-admin user the DSQL way.
//! - [`url`]: a connection URL with a fresh token, for the tools that take one.
//! - [`dsql`]: endpoints, IAM tokens and the token-refreshing pool.
//! - [`local`]: a throwaway PostgreSQL that refuses what DSQL refuses, so everything runs and is
//!   tested without an AWS account.
//! - [`bench`](mod@bench): benchmarks of the app's data functions against raw sqlx.
//! - [`catalog`]: the schema read back from the server.
//! - [`logging`]: the log filter, with the targets that would log secrets capped.
//! - [`secret`]: passwords and tokens that never show up in logs or `Debug` output.
//! - [`error`]: the library's error type.

pub mod bench;
pub mod catalog;
pub mod clinic;
pub mod config;
pub mod demo;
pub mod dsql;
pub mod error;
pub mod local;
pub mod logging;
pub mod retry;
pub mod secret;
pub mod session;
pub mod url;
pub mod users;

pub use error::{Error, Result};
