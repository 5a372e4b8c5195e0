//! The one runner behind every command (`up`, `down`, `status`, `fresh`, `refresh`, `reset`).
//!
//! sea-orm-migration 2.0.4's own commands are not DSQL-safe: `fresh` drops every table in one
//! transaction and reads `pg_type`, and `refresh`/`reset` call private helpers that bypass an
//! overridden `up`/`down`. Here every command goes through [`up`] and [`down`], which run each
//! migration without a surrounding transaction and write its bookkeeping row on its own, so no
//! transaction ever holds two DDL statements or DDL and DML together. A migration runs on a
//! guarded connection ([`crate::guard`]): it is rehearsed first, so a statement DSQL would
//! refuse stops it before anything is sent, then run with every statement judged, sent on its
//! own and retried on `40001`. A migration that fails is not recorded as applied.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, IntoIden, Order, Query, Table, TableCreateStatement, TableDropStatement,
};
use sea_orm::{
    ActiveValue, ConnectionTrait, DatabaseConnection, DatabaseExecutor, DbBackend, DbErr, DynIden,
    EntityTrait, FromQueryResult, Iterable, QueryFilter, QueryTrait, Schema,
};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager, seaql_migrations};
use tracing::{debug, info};

use crate::LOG_TARGET;
use crate::dsql::{Retries, builds_indexes_async, retry_counted, retry_on_conflict, sqlstate};
use crate::guard::Guarded;

const UNIQUE_VIOLATION: &str = "23505";

/// The statement [`install`] sends: `CREATE TABLE IF NOT EXISTS` of the bookkeeping table
/// `table`, with sea-orm-migration's columns, for `backend`.
pub fn install_statement(backend: DbBackend, table: DynIden) -> TableCreateStatement {
    let mut create = Schema::new(backend).create_table_from_entity(seaql_migrations::Entity);
    create.table(table).if_not_exists();
    create
}

/// The statement [`uninstall`] sends for the bookkeeping table, and [`fresh`] for each table:
/// `DROP TABLE IF EXISTS`.
pub fn drop_table_statement(table: impl IntoIden) -> TableDropStatement {
    Table::drop().table(table).if_exists().to_owned()
}

/// Creates the bookkeeping table if it is missing (one DDL statement, retried).
pub async fn install<C: ConnectionTrait>(db: &C, table: DynIden) -> Result<(), DbErr> {
    let create = install_statement(db.get_database_backend(), table);
    retry_on_conflict("install migration table", || db.execute(&create)).await?;
    Ok(())
}

/// Drops the bookkeeping table (one DDL statement, retried).
pub async fn uninstall<C: ConnectionTrait>(db: &C, table: DynIden) -> Result<(), DbErr> {
    let drop = drop_table_statement(table);
    retry_on_conflict("uninstall migration table", || db.execute(&drop)).await?;
    Ok(())
}

/// The bookkeeping rows, by version: sea-orm-migration's query, retried on conflicts (its
/// own is not, and any session's first read after another session's DDL can get `OC001`).
pub async fn applied<C: ConnectionTrait>(
    db: &C,
    table: DynIden,
) -> Result<Vec<seaql_migrations::Model>, DbErr> {
    let select = Query::select()
        .from(table)
        .columns(seaql_migrations::Column::iter())
        .order_by(seaql_migrations::Column::Version, Order::Asc)
        .to_owned();
    let rows = retry_on_conflict("read applied migrations", || db.query_all(&select)).await?;
    rows.iter()
        .map(|row| seaql_migrations::Model::from_query_result(row, ""))
        .collect()
}

/// Applies pending migrations in order: all of them, or the first `steps`.
pub async fn up<M: MigratorTrait + ?Sized>(
    manager: &SchemaManager<'_>,
    steps: Option<u32>,
) -> Result<(), DbErr> {
    run::<M>(manager, steps, Direction::Up).await
}

/// Rolls back applied migrations, newest first: all of them, or the last `steps`.
pub async fn down<M: MigratorTrait + ?Sized>(
    manager: &SchemaManager<'_>,
    steps: Option<u32>,
) -> Result<(), DbErr> {
    run::<M>(manager, steps, Direction::Down).await
}

/// Runs migrations `direction`: up, the pending ones in order; down, the applied ones newest
/// first; all of them or `steps`. Each is guarded, then recorded (or forgotten) on its own.
async fn run<M: MigratorTrait + ?Sized>(
    manager: &SchemaManager<'_>,
    steps: Option<u32>,
    direction: Direction,
) -> Result<(), DbErr> {
    let db = connection(manager)?;
    let applied = applied_versions::<M, _>(db).await?;
    let async_indexes = builds_indexes_async(db).await?;
    let mut chosen: Vec<_> = M::migrations()
        .into_iter()
        .filter(|migration| applied.contains(migration.name()) == (direction == Direction::Down))
        .collect();
    if direction == Direction::Down {
        chosen.reverse();
    }
    chosen.truncate(limit(steps));
    let (none, doing, done) = match direction {
        Direction::Up => ("No pending migrations", "Applying", "applied"),
        Direction::Down => ("No applied migrations", "Rolling back", "rolled back"),
    };
    if chosen.is_empty() {
        info!(target: LOG_TARGET, "{none}");
    }
    for migration in chosen {
        debug!(target: LOG_TARGET, "{doing} migration '{}'", migration.name());
        let retries = run_guarded(db, async_indexes, migration.as_ref(), direction).await?
            + match direction {
                Direction::Up => record::<M>(db, migration.as_ref()).await?,
                Direction::Down => forget::<M>(db, migration.name()).await?,
            };
        info!(target: LOG_TARGET, "Migration '{}' has been {done}{}", migration.name(), retried(retries));
    }
    Ok(())
}

/// Drops every table of the current schema, one statement each, then applies all migrations.
pub async fn fresh<M: MigratorTrait + ?Sized>(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = connection(manager)?;
    let tables = sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT table_name::text AS table_name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         ORDER BY table_name",
    );
    let rows = retry_on_conflict("list tables", || db.query_all_raw(tables.clone())).await?;
    for row in rows {
        let name: String = row.try_get("", "table_name")?;
        debug!(target: LOG_TARGET, "Dropping table '{name}'");
        let drop = drop_table_statement(Alias::new(&name));
        retry_on_conflict(&format!("drop table {name}"), || db.execute(&drop)).await?;
    }
    up::<M>(manager, None).await
}

/// Which way a migration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `up`: apply it.
    Up,
    /// `down`: undo it.
    Down,
}

/// The statements one way of `migration` sends to Aurora DSQL, judged but sent nowhere (no
/// database needed); an error names the first statement the guard refuses.
pub async fn statements(
    migration: &dyn MigrationTrait,
    direction: Direction,
) -> Result<Vec<String>, DbErr> {
    let rehearsal = Guarded::rehearsal(None, true).await?;
    run_on(&rehearsal.connection, migration, direction).await?;
    Ok(rehearsal.statements())
}

/// Runs one way of `migration` on a guarded connection to `db`: first a rehearsal that sends
/// nothing but reads, so a refused statement stops the migration before its first statement is
/// sent, then for real. A rehearsal that fails for another reason (a read that needed an
/// earlier statement applied, say) is not an error: the real run judges every statement again.
/// Returns how many conflicts were retried.
async fn run_guarded(
    db: &DatabaseConnection,
    async_indexes: bool,
    migration: &dyn MigrationTrait,
    direction: Direction,
) -> Result<u32, DbErr> {
    let rehearsal = Guarded::rehearsal(Some(db), async_indexes).await?;
    let rehearsed = run_on(&rehearsal.connection, migration, direction).await;
    if let Some(refusal) = rehearsal.refusal() {
        return Err(DbErr::Migration(format!(
            "migration '{}' was not run ({direction:?}): {refusal}",
            migration.name()
        )));
    }
    if let Err(err) = rehearsed {
        debug!(target: LOG_TARGET, %err, "rehearsal of '{}' ended early", migration.name());
    }
    let live = Guarded::live(db, async_indexes).await?;
    run_on(&live.connection, migration, direction).await?;
    Ok(live.retries())
}

/// ` (N conflicts retried)`, or nothing for none: the progress line counts retries that
/// succeeded instead of logging each.
fn retried(retries: u32) -> String {
    match retries {
        0 => String::new(),
        1 => " (1 conflict retried)".to_owned(),
        n => format!(" ({n} conflicts retried)"),
    }
}

async fn run_on(
    db: &DatabaseConnection,
    migration: &dyn MigrationTrait,
    direction: Direction,
) -> Result<(), DbErr> {
    let manager = SchemaManager::new(db);
    match direction {
        Direction::Up => migration.up(&manager).await,
        Direction::Down => migration.down(&manager).await,
    }
}

/// The connection the commands run on. A transaction is refused: DSQL allows one DDL
/// statement per transaction, so the runner gives each statement its own.
fn connection<'a>(manager: &'a SchemaManager<'_>) -> Result<&'a DatabaseConnection, DbErr> {
    match manager.get_connection() {
        DatabaseExecutor::Connection(db) => Ok(db),
        _ => Err(DbErr::Migration(
            "migrations run on a connection, not inside a transaction: Aurora DSQL allows one \
             DDL statement per transaction"
                .to_owned(),
        )),
    }
}

/// Versions recorded as applied; fails, as sea-orm-migration does, when the database knows a
/// version that no migration file has.
async fn applied_versions<M: MigratorTrait + ?Sized, C: ConnectionTrait>(
    db: &C,
) -> Result<HashSet<String>, DbErr> {
    let applied: HashSet<String> = M::get_migration_models(db)
        .await?
        .into_iter()
        .map(|model| model.version)
        .collect();
    let known: HashSet<String> = M::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    let mut missing: Vec<_> = applied.difference(&known).collect();
    missing.sort();
    if let Some(version) = missing.first() {
        return Err(DbErr::Migration(format!(
            "migration '{version}' is recorded as applied but no migration of that name exists"
        )));
    }
    Ok(applied)
}

/// Writes the bookkeeping row in a transaction of its own. A duplicate means an earlier attempt
/// committed although its answer was lost; the row is there, which is all that matters.
/// Returns how many conflicts were retried.
async fn record<M: MigratorTrait + ?Sized>(
    db: &impl ConnectionTrait,
    migration: &dyn MigrationTrait,
) -> Result<u32, DbErr> {
    let applied_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
    let mut insert = seaql_migrations::Entity::insert(seaql_migrations::ActiveModel {
        version: ActiveValue::Set(migration.name().to_owned()),
        applied_at: ActiveValue::Set(applied_at),
    });
    QueryTrait::query(&mut insert).into_table(M::migration_table_name());
    let insert = insert.build(db.get_database_backend());
    let retries = Retries::default();
    match retry_counted("record migration", &retries, || {
        db.execute_raw(insert.clone())
    })
    .await
    {
        Err(err) if sqlstate(&err).as_deref() == Some(UNIQUE_VIOLATION) => Ok(retries.count()),
        other => other.map(|_| retries.count()),
    }
}

/// Deletes the bookkeeping row in a transaction of its own; returns how many conflicts were
/// retried.
async fn forget<M: MigratorTrait + ?Sized>(
    db: &impl ConnectionTrait,
    version: &str,
) -> Result<u32, DbErr> {
    let mut delete = seaql_migrations::Entity::delete_many()
        .filter(Expr::col(seaql_migrations::Column::Version).eq(version));
    QueryTrait::query(&mut delete).from_table(M::migration_table_name());
    let delete = delete.build(db.get_database_backend());
    let retries = Retries::default();
    retry_counted("forget migration", &retries, || {
        db.execute_raw(delete.clone())
    })
    .await?;
    Ok(retries.count())
}

fn limit(steps: Option<u32>) -> usize {
    steps.map_or(usize::MAX, |steps| steps as usize)
}
