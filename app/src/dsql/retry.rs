//! Running a transaction again when Aurora DSQL says it may succeed on another attempt.
//!
//! DSQL uses optimistic concurrency: nothing blocks, and a transaction that lost a race fails —
//! usually at `COMMIT` — with SQLSTATE `40001`. The cure is to run the whole transaction again
//! on a fresh snapshot. [`transaction`] does that: each attempt gets a new transaction on a
//! connection from the pool, attempts are bounded, and the wait between them grows
//! exponentially with jitter so that colliding clients spread out. [`autocommit`] does the
//! same for one statement that is its own transaction: one round trip instead of a `BEGIN`,
//! the work and a `COMMIT`, which on DSQL is the biggest saving there is.
//!
//! What is retried is decided from SQLSTATEs and driver error kinds, and for DSQL's schema
//! conflict from the `(OC001)` token its connectors match; never from the rest of a message:
//!
//! | class | errors | why |
//! |---|---|---|
//! | conflict | `40001` (DSQL's `OC000` data conflict; PostgreSQL's serialization failure) | the loser of a race; a fresh snapshot usually wins |
//! | schema changed | `40001` with `(OC001)` | the session's catalog cache went stale after DDL; retried at once and not counted against `max_attempts` (see [`MAX_SCHEMA_RETRIES`]) |
//! | transient | `53300` too many connections, `53400` connection rate exceeded | DSQL refuses the connection before any work: retried |
//! | unavailable | `XX000` server unavailable | DSQL's "retry the whole transaction": retried before `COMMIT`; answering `COMMIT` it leaves the outcome unknown, as below |
//! | connection lost before `COMMIT` | I/O errors, `08xxx`, `57P01`–`57P03` | nothing was committed, so running again is safe |
//! | connection lost during `COMMIT` | the same, raised by `COMMIT` itself | the outcome is unknown: [`Error::OutcomeUnknown`], retried only when the caller declares the work [`Idempotency::Idempotent`] |
//!
//! A `40001` answering `COMMIT` is not an unknown outcome: DSQL reports the transaction
//! aborted, so it is retried whatever the work.
//!
//! Everything else (a unique violation, a check constraint, the 3,000-row limit `54000`, …) is
//! returned at once: running it again would fail the same way. When the attempts run out the
//! error is [`Error::RetriesExhausted`], with the attempt count and the last cause.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use migration::dsql::MAX_SCHEMA_RETRIES;
use migration::dsql::{Backoff, is_schema_conflict, sqlstate};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr, TransactionTrait};
use sqlx::{AssertSqlSafe, PgConnection};
use tracing::{debug, warn};

use super::error::{Error, Result};
use super::pool::hold_all;

/// How many attempts, and how long to wait between them.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waits from 20 ms doubling to at most 1 s (half fixed, half random).
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): [`Backoff`] from `base_delay` to
    /// `max_delay`, half of each step fixed, the other half random ("equal jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        Backoff {
            first: self.base_delay,
            max: self.max_delay,
        }
        .wait(attempt)
    }
}

/// Whether running the work twice is harmless, which decides what a lost `COMMIT` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Running it again after an attempt that did commit cannot apply it twice, and still
    /// returns what the caller should see (e.g. an insert with a key generated once per call,
    /// `ON CONFLICT (key) DO NOTHING`, then the row read back; upserts; absolute updates). A
    /// plain `INSERT` is not: run again, it meets its own key (`23505`).
    Idempotent,
    /// Running it again could apply it twice (e.g. `n = n + 1`): a lost `COMMIT` is reported.
    NotIdempotent,
}

/// How an error from an attempt is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// `40001`: lost an optimistic-concurrency race.
    Conflict,
    /// `40001 … (OC001)`: the session's catalog was stale; the next attempt refreshes it.
    SchemaChanged,
    /// `53300`, `53400`: DSQL refused the connection; try again.
    Transient,
    /// `XX000`: DSQL's server unavailable. Try again, unless it answered `COMMIT`: then
    /// whether the transaction committed is unknown.
    Unavailable,
    /// The connection broke.
    ConnectionLost,
    /// Anything else: returned to the caller.
    Permanent,
}

/// Classifies an error by SQLSTATE or driver error kind.
pub fn classify(err: &DbErr) -> ErrorClass {
    if is_schema_conflict(err) {
        return ErrorClass::SchemaChanged;
    }
    if let Some(code) = sqlstate(err) {
        return match code.as_str() {
            "40001" | "OC000" => ErrorClass::Conflict,
            "53300" | "53400" => ErrorClass::Transient,
            "XX000" => ErrorClass::Unavailable,
            "57P01" | "57P02" | "57P03" => ErrorClass::ConnectionLost,
            code if code.starts_with("08") => ErrorClass::ConnectionLost,
            _ => ErrorClass::Permanent,
        };
    }
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
            if matches!(**e, sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed) =>
        {
            ErrorClass::ConnectionLost
        }
        _ => ErrorClass::Permanent,
    }
}

/// The work of one attempt: given a fresh transaction, do everything and return the result;
/// [`transaction`] commits it.
pub type Work<'c, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'c>>;

/// A value and how many attempts it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retried<T> {
    /// What the successful attempt returned.
    pub value: T,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

impl<T> Retried<Option<T>> {
    /// The value, or the error `missing` gives when the work found nothing (a row to act on
    /// that did not exist, say).
    pub fn required<E>(self, missing: impl FnOnce() -> E) -> Result<Retried<T>, E> {
        match self.value {
            Some(value) => Ok(Retried {
                value,
                attempts: self.attempts,
            }),
            None => Err(missing()),
        }
    }
}

/// Runs `work` in a transaction and commits it, again in a new transaction while the error is
/// retryable (see the module docs): at most `policy.max_attempts` attempts that fail otherwise
/// than with a schema conflict, and at most [`MAX_SCHEMA_RETRIES`] schema conflicts in a row,
/// retried without waiting.
///
/// `work` must do all of its database work through the transaction it is given, and must not
/// open nested transactions (they need `SAVEPOINT`, which DSQL refuses).
pub async fn transaction<T, F>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    idempotency: Idempotency,
    mut work: F,
) -> Result<Retried<T>>
where
    T: Send,
    F: for<'c> FnMut(&'c DatabaseTransaction) -> Work<'c, T>,
{
    let mut retries = Retries::new(policy, idempotency);
    loop {
        match attempt(db, &mut work).await {
            Ok(value) => return Ok(retries.succeeded(value)),
            Err((err, during_commit)) => retries.failed(err, during_commit).await?,
        }
    }
}

/// Runs `work` — one statement on `db` in autocommit, its own transaction, which the server
/// commits without a `BEGIN` or `COMMIT` round trip — again while the error is retryable, as
/// [`transaction`] does. The statement's answer is its `COMMIT`'s: a lost connection or `XX000`
/// leaves the outcome unknown, so it is retried only for work declared
/// [`Idempotency::Idempotent`]. The cheapest safe write on DSQL: one round trip, where a
/// transaction takes at least three.
pub async fn autocommit<T, F>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    idempotency: Idempotency,
    mut work: F,
) -> Result<Retried<T>>
where
    T: Send,
    F: for<'c> FnMut(&'c DatabaseConnection) -> Work<'c, T>,
{
    let mut retries = Retries::new(policy, idempotency);
    loop {
        match work(db).await {
            Ok(value) => return Ok(retries.succeeded(value)),
            Err(err) => retries.failed(err, true).await?,
        }
    }
}

/// The retry loop's state, shared by [`transaction`] and [`autocommit`]: attempts made, those
/// that count against `max_attempts`, and schema conflicts in a row.
struct Retries<'p> {
    policy: &'p RetryPolicy,
    idempotency: Idempotency,
    attempts: u32,
    counted: u32,
    schema_retries: u32,
}

impl<'p> Retries<'p> {
    /// No attempt made yet.
    fn new(policy: &'p RetryPolicy, idempotency: Idempotency) -> Self {
        Self {
            policy,
            idempotency,
            attempts: 0,
            counted: 0,
            schema_retries: 0,
        }
    }

    /// The attempt succeeded with `value`.
    fn succeeded<T>(&self, value: T) -> Retried<T> {
        Retried {
            value,
            attempts: self.attempts + 1,
        }
    }

    /// The attempt failed with `err` (`during_commit`: as the answer to its commit). Returns
    /// once the next attempt may start, having waited as the policy says; or the error to
    /// give up with.
    async fn failed(&mut self, err: DbErr, during_commit: bool) -> Result<()> {
        self.attempts += 1;
        let attempts = self.attempts;
        let class = classify(&err);
        if class == ErrorClass::Permanent {
            return Err(err.into());
        }
        if class == ErrorClass::SchemaChanged && self.schema_retries < MAX_SCHEMA_RETRIES {
            self.schema_retries += 1;
            debug!(attempt = attempts, %err, "stale catalog; retrying at once");
            return Ok(());
        }
        (self.counted, self.schema_retries) = (self.counted + 1, 0);
        if during_commit
            && leaves_outcome_unknown(class)
            && self.idempotency == Idempotency::NotIdempotent
        {
            warn!(attempts, %err, "the connection failed during COMMIT: outcome unknown");
            return Err(Error::OutcomeUnknown {
                attempts,
                cause: err,
            });
        }
        if self.counted >= self.policy.max_attempts.max(1) {
            warn!(attempts, ?class, %err, "transaction failed on every attempt; giving up");
            return Err(Error::RetriesExhausted {
                attempts,
                last: err,
            });
        }
        let wait = self.policy.delay(self.counted);
        debug!(attempt = attempts, ?class, %err, ?wait, "transaction failed; retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Whether an error of `class` answering `COMMIT` leaves unknown whether the transaction
/// committed: a lost connection, or DSQL's `XX000` (the server may have applied the commit
/// before it failed). A conflict or any other refusal at `COMMIT` means it was rolled back.
fn leaves_outcome_unknown(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::ConnectionLost | ErrorClass::Unavailable)
}

/// Takes, now, the `OC001` that each of `db`'s pooled connections owes after DDL on another one:
/// holds all of its connections at once (opening any not yet open) and has each run `read`, a
/// statement that touches the changed tables, with [`execute_fresh`]. DSQL fails a stale
/// session's first statement that touches a changed object, once; a process that has just run
/// its migrations calls this so that its next work does not meet those conflicts one pooled
/// connection at a time.
pub async fn refresh_catalogs(db: &DatabaseConnection, read: &str) -> Result<()> {
    for mut conn in hold_all(db.get_postgres_connection_pool()).await? {
        execute_fresh(&mut conn, read).await?;
    }
    Ok(())
}

/// Runs `sql` on `conn`, once more if the connection's catalog was stale (`OC001`): the
/// conflict refreshes it, so a second one is an error like any other.
pub async fn execute_fresh(conn: &mut PgConnection, sql: &str) -> Result<()> {
    let run = async |conn: &mut PgConnection| {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map(drop)
            .map_err(statement_error)
    };
    match run(conn).await {
        Err(err) if classify(&err) == ErrorClass::SchemaChanged => Ok(run(conn).await?),
        other => Ok(other?),
    }
}

/// A raw sqlx error as SeaORM wraps a failed statement's, so that [`classify`] reads it.
pub fn statement_error(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

/// One attempt; on failure, the error and whether it came from `COMMIT`.
async fn attempt<T, F>(db: &DatabaseConnection, work: &mut F) -> Result<T, (DbErr, bool)>
where
    F: for<'c> FnMut(&'c DatabaseTransaction) -> Work<'c, T>,
{
    let txn = db.begin().await.map_err(|err| (err, false))?;
    match work(&txn).await {
        Ok(value) => {
            txn.commit().await.map_err(|err| (err, true))?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = txn.rollback().await {
                debug!(%rollback, "rollback after a failed attempt failed");
            }
            Err((err, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn io_error() -> DbErr {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(io))))
    }

    #[test]
    fn only_a_lost_connection_or_xx000_at_commit_leaves_the_outcome_unknown() {
        let unknown = [ErrorClass::ConnectionLost, ErrorClass::Unavailable];
        for class in [
            ErrorClass::Conflict,
            ErrorClass::SchemaChanged,
            ErrorClass::Transient,
            ErrorClass::Unavailable,
            ErrorClass::ConnectionLost,
            ErrorClass::Permanent,
        ] {
            assert_eq!(leaves_outcome_unknown(class), unknown.contains(&class));
        }
    }

    #[test]
    fn a_broken_connection_is_classified_as_lost() {
        assert_eq!(classify(&io_error()), ErrorClass::ConnectionLost);
    }

    #[test]
    fn errors_without_a_sqlstate_or_connection_cause_are_permanent() {
        assert_eq!(
            classify(&DbErr::RecordNotFound("x".into())),
            ErrorClass::Permanent
        );
        assert_eq!(classify(&DbErr::Custom("x".into())), ErrorClass::Permanent);
    }
}
