//! What a migration of this project calls besides SeaORM's own schema helpers.

use sea_orm::sea_query::{
    ColumnDef, Expr, ExprTrait, IntoIden, PostgresQueryBuilder, Query, SimpleExpr,
};
use sea_orm::{ConnectionTrait, DbErr};
use tracing::debug;

use crate::LOG_TARGET;

/// Most rows DSQL lets one transaction change; a larger change fails with `54000`.
pub const MAX_ROWS_PER_TRANSACTION: u64 = 3_000;

/// A UUID primary-key column whose default is `gen_random_uuid()`. The application generates
/// keys itself (so a retried insert is idempotent); the default serves hand-written SQL.
pub fn uuid_primary_key(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .uuid()
        .not_null()
        .primary_key()
        .default(Expr::cust("gen_random_uuid()"))
        .to_owned()
}

/// Sets `column` to `value` wherever it is `NULL`, at most [`MAX_ROWS_PER_TRANSACTION`] rows at
/// a time, each batch its own transaction, until no row is left. Run on a migration's
/// `manager.get_connection()`, each batch is retried on conflicts by the runner's guard.
#[derive(Clone, Debug)]
pub struct Backfill {
    /// Table to update.
    pub table: &'static str,
    /// Its primary-key column, used to pick each batch.
    pub key: &'static str,
    /// Column to fill.
    pub column: &'static str,
    /// Value to fill it with.
    pub value: SimpleExpr,
    /// Rows per batch, at most [`MAX_ROWS_PER_TRANSACTION`].
    pub batch_size: u64,
}

impl Backfill {
    /// A backfill in batches of the largest size DSQL allows.
    pub fn new(
        table: &'static str,
        key: &'static str,
        column: &'static str,
        value: impl Into<SimpleExpr>,
    ) -> Self {
        Self {
            table,
            key,
            column,
            value: value.into(),
            batch_size: MAX_ROWS_PER_TRANSACTION,
        }
    }

    /// The `UPDATE` one batch sends.
    pub fn batch_sql(&self) -> String {
        let batch = Query::select()
            .column(self.key)
            .from(self.table)
            .and_where(Expr::col(self.column).is_null())
            .limit(Ord::min(self.batch_size, MAX_ROWS_PER_TRANSACTION))
            .to_owned();
        Query::update()
            .table(self.table)
            .value(self.column, self.value.clone())
            .and_where(Expr::col(self.key).in_subquery(batch))
            .to_string(PostgresQueryBuilder)
    }

    /// Runs batches until one changes nothing; returns how many rows were changed per batch
    /// (the last, empty batch not included).
    pub async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<Vec<u64>, DbErr> {
        let sql = self.batch_sql();
        let mut batches = Vec::new();
        loop {
            let changed = db.execute_unprepared(&sql).await?.rows_affected();
            if changed == 0 {
                return Ok(batches);
            }
            batches.push(changed);
            debug!(
                target: LOG_TARGET,
                rows = batches.iter().sum::<u64>(),
                "backfilled {}.{}",
                self.table,
                self.column
            );
        }
    }
}
