//! What a migration needs to know about the server: SQLSTATEs, the retry on optimistic-concurrency
//! conflicts, and whether the server builds indexes asynchronously.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, RuntimeErr};
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::{debug, warn};

use crate::LOG_TARGET;

/// SQLSTATE of a serialization failure. Aurora DSQL reports both of its optimistic-concurrency
/// conflicts with it: `OC000` (a concurrent write to the same rows) and `OC001` (the catalog
/// changed under the transaction, which follows any DDL anywhere in the cluster).
pub const SERIALIZATION_FAILURE: &str = "40001";

/// How many times one statement is tried before a data conflict (`OC000`) is returned to the
/// caller.
pub const MAX_ATTEMPTS: u32 = 8;

/// How many schema conflicts (`OC001`) in a row are retried, at once and on top of
/// [`MAX_ATTEMPTS`]. One DDL statement makes the catalog cache of every other session stale,
/// and each clears on its first retry; but a retry through a pool may take another stale
/// connection, so a pool of N connections can answer N − 1 of them in a row. Waiting does not
/// help (DSQL's advice is to retry at once, and to serialise DDL if it persists), so they are
/// not backed off, only bounded: a pool larger than this is unusual.
pub const MAX_SCHEMA_RETRIES: u32 = 64;

/// The SQLSTATE the server sent with this error, if it came from the server.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    database_error(err)
        .and_then(|db| db.code())
        .map(|code| code.into_owned())
}

/// True when the error is an optimistic-concurrency conflict (SQLSTATE `40001`) that a fresh
/// attempt of the same statement can clear.
pub fn is_conflict(err: &DbErr) -> bool {
    sqlstate(err).as_deref() == Some(SERIALIZATION_FAILURE)
}

/// True when the error is DSQL's schema conflict: SQLSTATE `40001` with the `(OC001)` token in
/// its message (the token, never the whole text, as DSQL's connectors match it), or a raw
/// `OC001` SQLSTATE.
pub fn is_schema_conflict(err: &DbErr) -> bool {
    let Some(db) = database_error(err) else {
        return false;
    };
    match db.code().as_deref() {
        Some("OC001") => true,
        Some(SERIALIZATION_FAILURE) => db.message().contains("(OC001)"),
        _ => false,
    }
}

/// The server's error inside `err`, if it came from the server.
fn database_error(err: &DbErr) -> Option<&(dyn sea_orm::sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e.as_database_error(),
        _ => None,
    }
}

/// Exponential backoff with "equal jitter": each step doubles from `first` up to `max`, and
/// the wait is half the step plus a random part of the other half, so that clients that
/// failed together do not retry in lockstep. The one backoff of the migrations and the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The step before the first retry.
    pub first: Duration,
    /// The largest step; doubling stops here.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first): `first × 2^(retry − 1)`,
    /// at most `max`, jittered between half of that and all of it.
    pub fn wait(&self, retry: u32) -> Duration {
        let step = self
            .first
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// The waits between retries of a conflicting statement: 20 ms, doubling up to 1 s.
const CONFLICT_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(20),
    max: Duration::from_secs(1),
};

/// A count of conflicts retried, for reporting: retries that succeed are counted, not logged
/// above `DEBUG`.
#[derive(Debug, Default)]
pub struct Retries(AtomicU32);

impl Retries {
    /// How many conflicts were retried so far.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `attempt` until it succeeds, fails with anything but a conflict, or has failed
/// [`MAX_ATTEMPTS`] times with data conflicts (waiting up to 20 ms, 40 ms, … 1 s before each
/// retry, see [`Backoff`]) or [`MAX_SCHEMA_RETRIES`] times in a row with schema conflicts (retried at once).
///
/// Each call of `attempt` must be one whole transaction (one autocommit statement here), so
/// running it again is safe: migrations use `IF [NOT] EXISTS` everywhere for that reason.
pub async fn retry_on_conflict<T, F, Fut>(what: &str, attempt: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    retry_counted(what, &Retries::default(), attempt).await
}

/// [`retry_on_conflict`], adding each retry to `retries`. Each retry is logged at `DEBUG`; a
/// conflict still there when the attempts run out is logged as a warning and returned.
pub async fn retry_counted<T, F, Fut>(
    what: &str,
    retries: &Retries,
    mut attempt: F,
) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let (mut tries, mut schema_retries) = (0, 0);
    loop {
        match attempt().await {
            Err(err) if is_schema_conflict(&err) && schema_retries < MAX_SCHEMA_RETRIES => {
                schema_retries += 1;
                debug!(target: LOG_TARGET, %err, schema_retries, "{what}: stale catalog, retrying at once");
            }
            Err(err) if is_conflict(&err) && tries + 1 < MAX_ATTEMPTS => {
                tries += 1;
                schema_retries = 0;
                let wait = CONFLICT_BACKOFF.wait(tries);
                debug!(target: LOG_TARGET, %err, attempt = tries, "{what}: conflict, retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(err) if is_conflict(&err) => {
                warn!(target: LOG_TARGET, %err, attempts = tries + 1, schema_retries, "{what}: conflicts every time, giving up");
                return Err(err);
            }
            other => return other,
        }
        retries.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// `name` as a PostgreSQL quoted identifier, quoted by SeaQuery as it quotes every name it
/// writes for PostgreSQL (in double quotes, inner double quotes doubled): for the statements
/// that must be text, such as `SET search_path` or `CREATE ROLE`.
pub fn quote_identifier(name: &str) -> String {
    use sea_orm::sea_query::{Alias, IntoIden, PostgresQueryBuilder, QuotedBuilder};
    let mut quoted = String::with_capacity(name.len() + 2);
    PostgresQueryBuilder.prepare_iden(&Alias::new(name).into_iden(), &mut quoted);
    quoted
}

/// Asks the server whether it is Aurora DSQL (or a stand-in of it), i.e. whether it has the
/// `sys.jobs` view of asynchronous jobs.
///
/// The probe is an ordinary query: "no such schema/table" (`3F000`, `42P01`) means plain
/// PostgreSQL, any other error is returned; a conflict is retried.
pub async fn is_dsql<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let probe = "SELECT job_id FROM sys.jobs LIMIT 0";
    match retry_on_conflict(probe, || db.execute_unprepared(probe)).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_first_to_max_with_half_of_each_step_random() {
        let backoff = Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(300),
        };
        for (retry, step) in [
            (1, 20),
            (2, 40),
            (3, 80),
            (4, 160),
            (5, 300),
            (9, 300),
            (40, 300),
        ] {
            let wait = backoff.wait(retry);
            let step = Duration::from_millis(step);
            assert!(
                wait >= step / 2 && wait <= step,
                "retry {retry}: {wait:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_identifier("myschema"), "\"myschema\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
