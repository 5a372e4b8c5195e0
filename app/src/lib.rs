//! The pet clinic on Aurora DSQL with SeaORM.
//!
//! - [`config`]: where to connect, from the environment, checked before any connection.
//! - [`dsql`]: endpoints, IAM tokens and the token-refreshing pool.
//! - [`local`]: a throwaway PostgreSQL that refuses what DSQL refuses, so everything runs and is
//!   tested without an AWS account.
//! - [`catalog`]: the schema read back from the server.
//! - [`secret`]: passwords and tokens that never show up in logs or `Debug` output.
//! - [`error`]: the library's error type.

pub mod catalog;
pub mod clinic;
pub mod config;
pub mod demo;
pub mod dsql;
pub mod error;
pub mod local;
pub mod retry;
pub mod secret;
pub mod session;
pub mod users;

pub use error::{Error, Result};
