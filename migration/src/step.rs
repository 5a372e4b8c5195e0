//! DSQL-safe migration steps.
//!
//! Aurora DSQL allows one DDL statement per transaction and no DDL and DML in the same
//! transaction. A migration here is therefore a list of [`Step`]s, each run on its own in
//! autocommit and retried on conflicts, instead of free-form code: what a step sends can be
//! rendered without a database (the tests lint every statement with `dsql-lint`) and nothing can
//! slip two statements into one transaction.

use sea_orm::sea_query::{
    ColumnDef, Expr, ExprTrait, Index, IntoIden, PostgresQueryBuilder, Query,
    SchemaStatementBuilder, SimpleExpr,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager, async_trait};
use tracing::info;

use crate::LOG_TARGET;
use crate::dsql::{builds_indexes_async, retry_on_conflict};

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

/// A migration written as steps. Implement this (with `#[derive(DeriveMigrationName)]`) and list
/// the migration in [`crate::plan`]; the runner wraps it into a [`MigrationTrait`].
pub trait DsqlMigration: MigrationName + Send + Sync {
    /// What `up` and `down` do.
    fn plan(&self) -> Plan;
}

/// The steps of one migration, both ways.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Run in order by `up`.
    pub up: Vec<Step>,
    /// Run in order by `down`; undoes `up`.
    pub down: Vec<Step>,
}

impl Plan {
    /// Creates a table with `statement` (which should say `IF NOT EXISTS`); `down` drops it.
    pub fn create_table(statement: &impl SchemaStatementBuilder, table: &str) -> Self {
        Self {
            up: vec![Step::ddl(statement)],
            down: vec![Step::Ddl(format!("DROP TABLE IF EXISTS {}", quote(table)))],
        }
    }

    /// Builds an index; `down` drops it.
    pub fn create_index(index: IndexSpec) -> Self {
        Self {
            down: vec![Step::Ddl(format!(
                "DROP INDEX IF EXISTS {}",
                quote(index.name)
            ))],
            up: vec![Step::CreateIndex(index)],
        }
    }
}

/// One unit of work that runs in a transaction of its own.
#[derive(Clone, Debug)]
pub enum Step {
    /// One DDL statement, sent as it is.
    Ddl(String),
    /// An index: `CREATE [UNIQUE] INDEX ASYNC` and a wait for its job on DSQL, a plain
    /// `CREATE [UNIQUE] INDEX` on PostgreSQL (the server is asked which it is).
    CreateIndex(IndexSpec),
    /// An `UPDATE` repeated in batches until no row is left to change.
    Backfill(Backfill),
}

impl Step {
    /// A DDL step from a sea-query schema statement, rendered for PostgreSQL.
    pub fn ddl(statement: &impl SchemaStatementBuilder) -> Self {
        Self::Ddl(statement.to_string(PostgresQueryBuilder))
    }

    /// The SQL this step sends, as it would be sent to a server that does (`async_indexes`)
    /// or does not build indexes asynchronously. A backfill is shown as one of its batches.
    pub fn sql(&self, async_indexes: bool) -> String {
        match self {
            Self::Ddl(sql) => sql.clone(),
            Self::CreateIndex(index) => index.sql(async_indexes),
            Self::Backfill(backfill) => backfill.batch_sql(),
        }
    }

    /// Runs the step on `db`, each statement in its own transaction, retried on conflicts.
    pub async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        match self {
            Self::Ddl(sql) => {
                info!(target: LOG_TARGET, "{sql}");
                retry_on_conflict(sql, || db.execute_unprepared(sql)).await?;
                Ok(())
            }
            Self::CreateIndex(index) => index.create(db).await,
            Self::Backfill(backfill) => backfill.run(db).await.map(|_| ()),
        }
    }
}

/// A B-tree index on plain columns.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    /// Index name (unqualified: DSQL refuses a schema-qualified index name).
    pub name: &'static str,
    /// Table name.
    pub table: &'static str,
    /// Key columns, in order.
    pub columns: &'static [&'static str],
    /// Whether the index is unique.
    pub unique: bool,
}

impl IndexSpec {
    /// A non-unique index.
    pub const fn new(
        name: &'static str,
        table: &'static str,
        columns: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            table,
            columns,
            unique: false,
        }
    }

    /// A unique index.
    pub const fn unique(
        name: &'static str,
        table: &'static str,
        columns: &'static [&'static str],
    ) -> Self {
        Self {
            unique: true,
            ..Self::new(name, table, columns)
        }
    }

    /// `CREATE [UNIQUE] INDEX [ASYNC] IF NOT EXISTS …`. sea-query cannot emit DSQL's `ASYNC`, so
    /// it is put after the `INDEX` keyword of sea-query's rendering.
    pub fn sql(&self, async_build: bool) -> String {
        let mut index = Index::create();
        index.name(self.name).table(self.table).if_not_exists();
        for column in self.columns {
            index.col(*column);
        }
        if self.unique {
            index.unique();
        }
        let sql = index.to_string(PostgresQueryBuilder);
        if async_build {
            sql.replacen(" INDEX ", " INDEX ASYNC ", 1)
        } else {
            sql
        }
    }

    /// Builds the index and, on DSQL, waits for its job: a job that does not end `completed`
    /// (a unique index over duplicates, say) fails the step.
    pub async fn create<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let async_build = builds_indexes_async(db).await?;
        let sql = self.sql(async_build);
        info!(target: LOG_TARGET, "{sql}");
        if !async_build {
            retry_on_conflict(&sql, || db.execute_unprepared(&sql)).await?;
            return Ok(());
        }
        // The job id comes back as a row, so this must be a query, not an `execute`.
        let statement = Statement::from_string(DbBackend::Postgres, sql.clone());
        let row = retry_on_conflict(&sql, || db.query_one_raw(statement.clone())).await?;
        let Some(row) = row else {
            // `IF NOT EXISTS` found the index: there is no job to wait for.
            return Ok(());
        };
        let job_id: String = row.try_get("", "job_id")?;
        info!(target: LOG_TARGET, job_id, "waiting for index {}", self.name);
        let wait = wait_for_job_sql(&job_id)?;
        retry_on_conflict(&wait, || db.execute_unprepared(&wait)).await?;
        let status = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status, details FROM sys.jobs WHERE job_id = $1",
            [job_id.clone().into()],
        );
        let row =
            retry_on_conflict("read the index job", || db.query_one_raw(status.clone())).await?;
        let (status, details): (String, Option<String>) = match row {
            Some(row) => (row.try_get("", "status")?, row.try_get("", "details")?),
            None => ("unknown".to_owned(), None),
        };
        if status == "completed" {
            Ok(())
        } else {
            Err(DbErr::Migration(format!(
                "index {} (job {job_id}) ended {status}: {}",
                self.name,
                details.unwrap_or_default()
            )))
        }
    }
}

/// Longest job id [`wait_for_job_sql`] accepts. DSQL's ids are 26 characters.
const MAX_JOB_ID_LEN: usize = 64;

/// `CALL sys.wait_for_job('<job_id>')`, with the id as a string literal. DSQL's documented form
/// takes a literal and refuses a subquery argument (`sys_call_wait_for_job` in the DSQL
/// recordings). The id comes from the server, but it is checked before it goes into SQL: it
/// must be 1 to [`MAX_JOB_ID_LEN`] characters of `A-Z`, `a-z`, `0-9`, `_` and `-`.
fn wait_for_job_sql(job_id: &str) -> Result<String, DbErr> {
    let well_formed = !job_id.is_empty()
        && job_id.len() <= MAX_JOB_ID_LEN
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(DbErr::Migration(format!(
            "CREATE INDEX ASYNC answered the job id {job_id:?}, which is not 1 to \
             {MAX_JOB_ID_LEN} characters of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(format!("CALL sys.wait_for_job('{job_id}')"))
}

/// Sets `column` to `value` wherever it is `NULL`, at most [`MAX_ROWS_PER_TRANSACTION`] rows at
/// a time, each batch its own retried transaction, until no row is left.
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
        info!(target: LOG_TARGET, "{sql} (repeated until no row is left)");
        let mut batches = Vec::new();
        loop {
            let changed = retry_on_conflict(&sql, || db.execute_unprepared(&sql))
                .await?
                .rows_affected();
            if changed == 0 {
                return Ok(batches);
            }
            batches.push(changed);
            info!(
                target: LOG_TARGET,
                rows = batches.iter().sum::<u64>(),
                "backfilled {}.{}",
                self.table,
                self.column
            );
        }
    }
}

/// Wraps a [`DsqlMigration`] so sea-orm-migration can run it. Never asks for a transaction:
/// each step manages its own.
pub struct Steps(
    /// The migration whose [`Plan`] `up` and `down` run, one step at a time.
    pub Box<dyn DsqlMigration>,
);

impl MigrationName for Steps {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Steps {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(&self.0.plan().up, manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(&self.0.plan().down, manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}

async fn run_all(steps: &[Step], manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for step in steps {
        step.run(manager.get_connection()).await?;
    }
    Ok(())
}

/// A double-quoted SQL identifier.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::{MAX_JOB_ID_LEN, wait_for_job_sql};

    #[test]
    fn a_job_id_goes_into_the_call_as_a_string_literal() {
        // A job id as DSQL answered one (`create_index_async` in the DSQL recordings).
        assert_eq!(
            wait_for_job_sql("srnwmlngyfhcndf5g2e6f3a3xm")
                .ok()
                .as_deref(),
            Some("CALL sys.wait_for_job('srnwmlngyfhcndf5g2e6f3a3xm')")
        );
        let longest = "A-_9".repeat(MAX_JOB_ID_LEN / 4);
        assert_eq!(
            wait_for_job_sql(&longest).ok(),
            Some(format!("CALL sys.wait_for_job('{longest}')"))
        );
    }

    #[test]
    fn a_malformed_job_id_is_refused_before_it_reaches_sql() {
        let too_long = "a".repeat(MAX_JOB_ID_LEN + 1);
        for job_id in [
            "",
            too_long.as_str(),
            "x'); DROP TABLE pet; --",
            "it's",
            "with space",
            "tab\t",
            "dot.ted",
            "\u{e9}t\u{e9}",
        ] {
            let err = wait_for_job_sql(job_id).expect_err(job_id);
            assert!(err.to_string().contains("job id"), "{job_id:?}: {err}");
        }
    }
}
