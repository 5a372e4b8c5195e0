//! Race-free find-or-create, the replacement for Sequelize's `findOrCreate` (which needs
//! PL/pgSQL, absent on DSQL), in autocommit statements: no transaction, so no `BEGIN` or
//! `COMMIT` round trip.
//!
//! A try is a find, then, if nothing was found, an `INSERT … ON CONFLICT DO NOTHING` on the
//! unique key. Each runs alone in autocommit ([`autocommit`]), so each reads the latest
//! committed state: if the insert wrote nothing, a concurrent caller's row won the race and the
//! next try's find sees it. The unique key allows one row, so all callers end up with the same
//! one. Both statements are idempotent (a lost `COMMIT` answer of the insert is followed by a
//! find that sees the row), so every error the retry knows is retried.
//!
//! Round trips: one when the row exists, two when this call creates it.

use sea_orm::{DatabaseConnection, DbErr};

use super::error::{Error, Result};
use super::retry::{Idempotency, Retried, RetryPolicy, Work, autocommit};

/// Whether a find-or-create found the row or wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// It was there already (possibly written by a concurrent caller).
    Existing,
    /// This call inserted it.
    Created,
}

/// Tries `find`, then `insert`, each one autocommit statement retried by [`autocommit`], until
/// one returns the row: at most `policy.max_attempts` tries. `find` says whether the row it
/// found is this call's own (an insert whose answer was lost): `Created`, else `Existing`.
/// `insert` returns `None` when its `ON CONFLICT DO NOTHING` skipped the row because another
/// caller's won.
///
/// The attempts counted are all statements sent. If every try loses the race (rows being
/// created and removed concurrently), the error is [`Error::RetriesExhausted`] naming `what`.
pub async fn find_or_create<T, Find, Insert>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    what: &str,
    mut find: Find,
    mut insert: Insert,
) -> Result<Retried<(T, Found)>>
where
    T: Send,
    Find: for<'c> FnMut(&'c DatabaseConnection) -> Work<'c, Option<(T, Found)>>,
    Insert: for<'c> FnMut(&'c DatabaseConnection) -> Work<'c, Option<T>>,
{
    let mut attempts = 0;
    for _ in 0..policy.max_attempts.max(1) {
        let found = autocommit(db, policy, Idempotency::Idempotent, &mut find).await?;
        attempts += found.attempts;
        if let Some(value) = found.value {
            return Ok(Retried { value, attempts });
        }
        let inserted = autocommit(db, policy, Idempotency::Idempotent, &mut insert).await?;
        attempts += inserted.attempts;
        if let Some(row) = inserted.value {
            return Ok(Retried {
                value: (row, Found::Created),
                attempts,
            });
        }
    }
    Err(Error::RetriesExhausted {
        attempts,
        last: DbErr::RecordNotFound(format!(
            "{what} kept being created and removed concurrently"
        )),
    })
}
