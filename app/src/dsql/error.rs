//! The error type of the DSQL pattern: what reaching DSQL and running work on it can fail with.

/// What can go wrong reaching Aurora DSQL or running a transaction on it. Messages say what to
/// do about it and never contain a token or password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint or region that cannot be a DSQL cluster's; checked before any connection.
    #[error(transparent)]
    Endpoint(#[from] super::endpoint::EndpointError),
    /// A setting of the pattern's own types out of range (e.g. a refresh policy), found when
    /// the pool is built rather than as a panic or busy loop later.
    #[error("{setting}: {problem}")]
    Setting {
        /// The setting at fault, e.g. `RefreshPolicy::at_fraction`.
        setting: &'static str,
        /// What is wrong and what to use instead.
        problem: String,
    },
    /// An IAM authentication token could not be generated. Never contains the token.
    #[error("could not generate a DSQL authentication token: {0}")]
    Token(String),
    /// The first connection failed: nothing listens at the address, it did not answer in
    /// time, or it refused the login. Names the address and user, never the password.
    #[error("could not connect to {address} as {user}: {source}")]
    Connect {
        /// `host:port` that was tried.
        address: String,
        /// The database user.
        user: String,
        /// Why it failed.
        source: sqlx::Error,
    },
    /// A retried transaction kept failing with retryable errors.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// How many times the transaction ran.
        attempts: u32,
        /// The error of the last attempt.
        last: sea_orm::DbErr,
    },
    /// The connection was lost while `COMMIT` was in flight, or DSQL answered it with `XX000`:
    /// the transaction may or may not have committed. Retried only for work declared
    /// idempotent.
    #[error(
        "the outcome of the transaction is unknown (COMMIT lost or failed with XX000, attempt {attempts}): {cause}"
    )]
    OutcomeUnknown {
        /// The attempt during which the commit was lost.
        attempts: u32,
        /// The connection error, or the `XX000`.
        cause: sea_orm::DbErr,
    },
    /// A database error from sqlx.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A database error from SeaORM.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// The pattern's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
