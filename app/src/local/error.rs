//! The error type of the local stand-in.

use std::path::PathBuf;

/// What can go wrong starting or running the local stand-in. Messages say what to do about it,
/// and never contain a password, token or key.
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
    /// The local front door's TLS set-up failed: minting its certificates or building the
    /// rustls configuration. Never contains a private key.
    #[error("TLS set-up of the local front door failed: {0}")]
    Tls(String),
    /// A database error from sqlx, talking to the stand-in's own server.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// The stand-in's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `action`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}
