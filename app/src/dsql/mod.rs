//! Reaching Aurora DSQL: the endpoint, IAM authentication tokens, and a sqlx pool whose
//! password is refreshed in the background.

pub mod endpoint;
pub mod pool;
pub mod token;

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::local::DATABASE;

/// How the app reaches a DSQL endpoint (a cluster, or the stand-in's front door) at its
/// [`endpoint::Endpoint::address`]: database `postgres` as `user`, TLS `verify-full` (against
/// `root_cert` if given, else the Mozilla roots compiled in), no password yet (the pool sets
/// the token), no `~/.pgpass`.
pub fn connect_options(
    endpoint: &endpoint::Endpoint,
    port: u16,
    user: &str,
    root_cert: Option<&Path>,
) -> PgConnectOptions {
    let options = PgConnectOptions::new_without_pgpass()
        .host(endpoint.address())
        .port(port)
        .username(user)
        .database(DATABASE)
        .ssl_mode(PgSslMode::VerifyFull)
        .application_name("seaorm-dsql-clinic");
    match root_cert {
        Some(root) => options.ssl_root_cert(root),
        None => options,
    }
}
