//! SeaORM on Aurora DSQL: everything a new project copies, and nothing of this app.
//!
//! This module tree depends on external crates only (and `migration::dsql`, the SQLSTATE
//! classification and backoff the migrations share), so it can be lifted into another project
//! as it is:
//!
//! - [`endpoint`]: a cluster's host name and Region, checked before any connection.
//! - [`token`]: IAM authentication tokens, the passwords DSQL takes.
//! - [`pool`]: a sqlx pool whose token is refreshed in the background, as a SeaORM connection.
//! - [`retry`]: running a transaction again after an optimistic-concurrency conflict, with
//!   what a lost `COMMIT` means.
//! - [`batch`], [`locking`], [`find_or_create`], [`idempotent`]: the DSQL-safe ways to delete
//!   everything, lock a row, find-or-create and insert once, generic over SeaORM entities.
//! - [`error`]: what all of it can fail with.
//!
//! DSQL forces two choices here: the `admin` role works in `public` and every other role in a
//! schema of its own (DSQL refuses schema-level grants on `public`), and there is only one
//! database, `postgres`.

pub mod batch;
pub mod endpoint;
pub mod error;
pub mod find_or_create;
pub mod idempotent;
pub mod locking;
pub mod pool;
pub mod retry;
pub mod token;

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

pub use error::{Error, Result};
pub use migration::dsql::quote_identifier;

/// The one database a DSQL cluster offers.
pub const DATABASE: &str = "postgres";
/// DSQL's built-in administrator role; its tokens are signed for `dsql:DbConnectAdmin`.
pub const ADMIN_USER: &str = "admin";
/// The schema of the `admin` user. DSQL's `public` belongs to `admin`.
pub const ADMIN_SCHEMA: &str = "public";
/// The schema of every other user. DSQL refuses schema-level grants on `public`, so other
/// roles get a schema of their own.
pub const USER_SCHEMA: &str = "myschema";

/// The schema `user` works in: `public` for `admin`, `myschema` for anyone else.
pub fn schema_for(user: &str) -> &'static str {
    if user == ADMIN_USER {
        ADMIN_SCHEMA
    } else {
        USER_SCHEMA
    }
}

/// The schema every new connection of `user` puts on `search_path`: none for `admin`
/// (`public` is already there), `myschema` for anyone else.
pub fn search_path_for(user: &str) -> Option<&'static str> {
    (user != ADMIN_USER).then(|| schema_for(user))
}

/// Whether `name` matches `^[a-z_][a-z0-9_]{0,62}$`, ignoring case: a role name that is safe
/// to put into SQL and fits PostgreSQL's 63-byte limit.
pub fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= 63
        && (first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How to reach a DSQL endpoint (a cluster, or anything that answers like one) at its
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
        .application_name("seaorm-dsql");
    match root_cert {
        Some(root) => options.ssl_root_cert(root),
        None => options,
    }
}
