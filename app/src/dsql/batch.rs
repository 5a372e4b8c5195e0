//! Deleting every row, in batches DSQL accepts, in place of `TRUNCATE`.
//!
//! DSQL has no `TRUNCATE` and lets a transaction change at most 3,000 rows, so "delete
//! everything" is a loop of `DELETE … WHERE <pk> IN (SELECT <pk> … LIMIT 3000)`, each batch its
//! own retried transaction, until a batch deletes nothing.

use migration::MAX_ROWS_PER_TRANSACTION;
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, Iterable, PrimaryKeyToColumn, QueryFilter,
};

use super::error::Result;
use super::retry::{Idempotency, RetryPolicy, transaction};

/// Deletes all rows of `E` in batches of at most `batch_size` (capped at 3,000) rows per
/// transaction; returns how many rows were deleted. Safe to rerun: a batch deletes whatever is
/// left, so it is retried even when its `COMMIT` answer was lost. The rows of such a batch are
/// gone but not counted: the count comes from the answers that arrived.
pub async fn delete_all<E>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    batch_size: u64,
) -> Result<u64>
where
    E: EntityTrait,
{
    let key = E::PrimaryKey::iter()
        .next()
        .map(PrimaryKeyToColumn::into_column)
        .ok_or_else(|| DbErr::Custom(format!("{} has no primary key", E::default().as_str())))?;
    let limit = batch_size.clamp(1, MAX_ROWS_PER_TRANSACTION);
    let mut deleted = 0;
    loop {
        let batch = Query::select()
            .column(key)
            .from(E::default())
            .limit(limit)
            .to_owned();
        let retried = transaction(db, policy, Idempotency::Idempotent, |txn| {
            let batch = batch.clone();
            Box::pin(async move {
                let result = E::delete_many()
                    .filter(key.in_subquery(batch))
                    .exec(txn)
                    .await?;
                Ok(result.rows_affected)
            })
        })
        .await?;
        if retried.value == 0 {
            return Ok(deleted);
        }
        deleted += retried.value;
    }
}
