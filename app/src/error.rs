//! The error type of the app: its configuration, its input, and what the parts it uses report.

/// Everything that can go wrong in the app. Messages say what to do about it, and never
/// contain a password or token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is missing or malformed; checked before any connection.
    #[error("{variable}: {problem}")]
    Config {
        /// The environment variable (or setting) at fault.
        variable: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Input refused by validation before it reached the database.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Reaching DSQL or running a transaction on it failed.
    #[error(transparent)]
    Dsql(#[from] crate::dsql::Error),
    /// The local stand-in failed.
    #[error(transparent)]
    Local(#[from] crate::local::Error),
    /// A database error from SeaORM.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// A database error from sqlx.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// The app's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
