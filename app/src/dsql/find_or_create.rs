//! Race-free find-or-create, the replacement for Sequelize's `findOrCreate` (which needs
//! PL/pgSQL, absent on DSQL).
//!
//! Each try is one retried transaction that looks for the row and, if it is missing, inserts it
//! with `INSERT … ON CONFLICT DO NOTHING`. If that inserted nothing, a concurrent caller won the
//! race, and its row is invisible to this transaction's snapshot (repeatable read, DSQL's only
//! level), so the next try — a fresh transaction with a fresh snapshot — finds it. All callers
//! therefore end up with the same single row.

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use super::error::{Error, Result};
use super::retry::{Idempotency, Retried, RetryPolicy, Work, transaction};

/// Whether a find-or-create found the row or wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// It was there already (possibly written by a concurrent caller).
    Existing,
    /// This call inserted it.
    Created,
}

/// Runs `attempt` — find, else insert without overwriting — in a fresh transaction until it
/// returns a row, at most `policy.max_attempts` times; each of those runs is itself retried on
/// conflicts by [`transaction`]. `attempt` returns `None` when its insert wrote nothing because
/// a concurrent caller's row won. The work is idempotent (an insert that may have committed is
/// found by the next try), so a lost `COMMIT` is retried too.
///
/// The attempts counted are all transactions started. If every try loses the race (rows
/// being created and removed concurrently), the error is [`Error::RetriesExhausted`] naming
/// `what`.
pub async fn find_or_create<T, F>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<Retried<(T, Found)>>
where
    T: Send,
    F: for<'c> FnMut(&'c DatabaseTransaction) -> Work<'c, Option<(T, Found)>>,
{
    let mut attempts = 0;
    for _ in 0..policy.max_attempts.max(1) {
        let retried = transaction(db, policy, Idempotency::Idempotent, &mut attempt).await?;
        attempts += retried.attempts;
        if let Some(value) = retried.value {
            return Ok(Retried { value, attempts });
        }
    }
    Err(Error::RetriesExhausted {
        attempts,
        last: DbErr::RecordNotFound(format!(
            "{what} kept being created and removed concurrently"
        )),
    })
}
