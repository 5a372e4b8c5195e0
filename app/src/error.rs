//! The one error type of the `app` library.

use std::path::PathBuf;

/// Everything that can go wrong in the library. Messages say what to do about it, and never
/// contain a password or token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No PostgreSQL server binaries to start the local stand-in with.
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin; \
         install them (Debian/Ubuntu: `apt-get install postgresql`), or point the app at a \
         database instead: CLUSTER_ENDPOINT for Aurora DSQL, DATABASE_URL for PostgreSQL"
    )]
    NoPostgresBinaries,
    /// Running as root without an unprivileged OS user to run PostgreSQL as.
    #[error(
        "running as root, but there is no `postgres` OS user to run the server as (initdb refuses \
         root); `apt-get install postgresql` creates it, or run as an ordinary user"
    )]
    NoUnprivilegedUser,
    /// A file-system or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, e.g. "create the data directory".
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server program (initdb) exited with an error.
    #[error("{program} failed ({status}): {output}")]
    ServerProgram {
        /// The program's path.
        program: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
    /// The local server did not start accepting connections.
    #[error("the local PostgreSQL server did not start: {reason}; its log ends with:\n{log_tail}")]
    ServerStart {
        /// Why we gave up.
        reason: String,
        /// The last lines of the server's log.
        log_tail: String,
    },
    /// The local front door cannot listen on the port asked for: another program has it.
    #[error(
        "port {port} is taken on the loopback: stop the program listening there, or \
         start the stand-in on another port: `app local --port N`, or `app local` without \
         --port for any free one"
    )]
    PortTaken {
        /// The port asked for.
        port: u16,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// A configuration value is missing or malformed; checked before any connection.
    #[error("{variable}: {problem}")]
    Config {
        /// The environment variable (or setting) at fault.
        variable: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// An IAM authentication token could not be generated. Never contains the token.
    #[error("could not generate a DSQL authentication token: {0}")]
    Token(String),
    /// The local front door's TLS set-up failed: minting its certificates or building the
    /// rustls configuration. Never contains a private key.
    #[error("TLS set-up of the local front door failed: {0}")]
    Tls(String),
    /// Input refused by validation before it reached the database.
    #[error("invalid input: {0}")]
    Invalid(String),
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
    /// The first connection to the database failed: nothing listens at the address, it did not
    /// answer in time, or it refused the login. Names the address and user, never the password.
    #[error("could not connect to {address} as {user}: {source}")]
    Connect {
        /// `host:port` (or the socket path) that was tried.
        address: String,
        /// The database user.
        user: String,
        /// Why it failed.
        source: sqlx::Error,
    },
    /// A database error from sqlx.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// A database error from SeaORM.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `action`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}
