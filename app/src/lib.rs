//! The pet clinic on Aurora DSQL with SeaORM.
//!
//! - [`dsql`]: the pattern a new project copies — endpoints, IAM tokens, the token-refreshing
//!   pool, the OCC retry and the DSQL-safe query helpers. It depends on nothing else here.
//! - [`clinic`]: the clinic's data operations; [`demo`]: the walkthrough that uses them;
//!   [`users`]: onboarding a non-admin user the DSQL way.
//! - [`config`]: where to connect, from the environment; [`session`]: one connected session,
//!   wired from the configuration; [`url`]: a connection URL with a fresh token.
//! - [`local`]: a throwaway PostgreSQL behind a DSQL front door, so everything runs and is
//!   tested without an AWS account. Self-contained: it depends on nothing else here.
//! - [`catalog`]: the schema read back from the server; [`logging`]: the log filter, with the
//!   targets that would log secrets capped; [`error`]: the app's error type.
//!
//! Dependencies point one way: `dsql` and `local` at the bottom, `clinic`, `users` and
//! `config` on them, `session`, `demo` and `url` on top (docs/architecture.md draws the graph).

pub mod catalog;
pub mod clinic;
pub mod config;
pub mod demo;
pub mod dsql;
pub mod error;
pub mod local;
pub mod logging;
pub mod session;
pub mod url;
pub mod users;

pub use error::{Error, Result};
