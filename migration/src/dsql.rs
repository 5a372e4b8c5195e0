//! What a migration needs to know about the server: SQLSTATEs, the retry on optimistic-concurrency
//! conflicts, and whether the server builds indexes asynchronously.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, RuntimeErr};
use tracing::warn;

use crate::LOG_TARGET;

/// SQLSTATE of a serialization failure. Aurora DSQL reports both of its optimistic-concurrency
/// conflicts with it: `OC000` (a concurrent write to the same rows) and `OC001` (the catalog
/// changed under the transaction, which follows any DDL anywhere in the cluster).
pub const SERIALIZATION_FAILURE: &str = "40001";

/// How many times one statement is tried before a conflict is returned to the caller.
pub const MAX_ATTEMPTS: u32 = 8;

/// The SQLSTATE the server sent with this error, if it came from the server.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|db| db.code())
            .map(|code| code.into_owned()),
        _ => None,
    }
}

/// True when the error is an optimistic-concurrency conflict (SQLSTATE `40001`) that a fresh
/// attempt of the same statement can clear.
pub fn is_conflict(err: &DbErr) -> bool {
    sqlstate(err).as_deref() == Some(SERIALIZATION_FAILURE)
}

/// Runs `attempt` until it succeeds, fails with anything but a conflict, or has failed
/// [`MAX_ATTEMPTS`] times; waits 20 ms, 40 ms, … (at most 1 s) between attempts.
///
/// Each call of `attempt` must be one whole transaction (one autocommit statement here), so
/// running it again is safe: migrations use `IF [NOT] EXISTS` everywhere for that reason.
pub async fn retry_on_conflict<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(err) if is_conflict(&err) && tries < MAX_ATTEMPTS => {
                let wait =
                    Duration::from_millis(20 << (tries - 1).min(6)).min(Duration::from_secs(1));
                warn!(target: LOG_TARGET, %err, attempt = tries, "{what}: conflict, retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Asks the server whether it is Aurora DSQL (or a stand-in of it), i.e. whether it has the
/// `sys.jobs` view of asynchronous jobs.
///
/// The probe is an ordinary query: "no such schema/table" (`3F000`, `42P01`) means plain
/// PostgreSQL, any other error is returned.
pub async fn is_dsql<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    match db
        .execute_unprepared("SELECT job_id FROM sys.jobs LIMIT 0")
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if matches!(sqlstate(&err).as_deref(), Some("3F000" | "42P01")) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Whether indexes must be built with `CREATE INDEX ASYNC`: on DSQL they must (a plain
/// `CREATE INDEX` is refused), and PostgreSQL does not know that syntax.
pub async fn builds_indexes_async<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    is_dsql(db).await
}
