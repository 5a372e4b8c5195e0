//! The connection every migration runs on: it judges each statement before the server sees it.
//!
//! A migration is written as SeaORM's documentation writes them (`manager.create_table(…)`,
//! `create_index`, `alter_table`, `drop_*`). The runner hands it a [`SchemaManager`](sea_orm_migration::SchemaManager) over a
//! guarded connection (a SeaORM proxy connection), which makes each statement DSQL-safe:
//! - every statement runs on its own, in autocommit, and is retried on conflicts (`40001`);
//!   asking for a transaction (`manager.begin()`) is refused, since DSQL allows one DDL
//!   statement per transaction and the runner already gives each statement its own;
//! - `CREATE [UNIQUE] INDEX` becomes `CREATE [UNIQUE] INDEX ASYNC` on DSQL, and the runner waits
//!   for its job (a plain `CREATE INDEX` is refused there);
//! - a statement DSQL refuses (`dsql-lint`'s rules: an identity or sequence without a DSQL cache
//!   size, `serial`, `ADD COLUMN` with a constraint, …) or that breaks this project's rules (a
//!   foreign key: relations live in the entities) is refused before it is sent, with the fix.
//!
//! The runner first *rehearses* a migration on a guard that sends nothing (reads excepted), so
//! a refusal anywhere in the migration stops it before its first statement reaches the server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::sqlx::postgres::{PgPool, PgRow};
use sea_orm::sqlx::{AssertSqlSafe, Column, Row, TypeInfo};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, ProxyDatabaseTrait,
    ProxyExecResult, ProxyRow, RuntimeErr, Statement, Value, Values,
};
use sea_query_sqlx::SqlxValues;
use tracing::debug;

use crate::LOG_TARGET;
use crate::async_index::build_index;
use crate::dsql::{Retries, retry_counted};

/// What the guard does with one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as it is.
    Send,
    /// Build this index: the statement with `ASYNC` (`dsql`) and without (`plain`).
    BuildIndex {
        /// `CREATE [UNIQUE] INDEX ASYNC …`, what DSQL runs.
        dsql: String,
        /// The statement as the migration wrote it, what PostgreSQL runs.
        plain: String,
    },
    /// Do not send it; the message says why and what to write instead.
    Refuse(String),
}

/// Judges one statement of a migration (see the module documentation). Pure: the same text
/// gets the same verdict on any server.
pub fn judge(sql: &str) -> Verdict {
    let index = as_async_index(sql);
    let dsql_form = index.as_deref().unwrap_or(sql);
    if let Some(keyword) = foreign_key_keyword(dsql_form) {
        return Verdict::Refuse(format!(
            "`{keyword}` declares a foreign key, which this project's schema does not use: \
             relations live in the entities (`belongs_to … skip_fk` / `has_many`) and the \
             application checks the owner in the same transaction. Remove the foreign key \
             (`.foreign_key(…)` / `ForeignKey::create()`) from the migration. Statement: {sql}"
        ));
    }
    let refusals: Vec<String> = dsql_lint::lint_sql(dsql_form)
        .into_iter()
        .filter(|diagnostic| diagnostic.rule != dsql_lint::LintRule::ParseError)
        .map(|diagnostic| format!("{} Fix: {}", diagnostic.message, diagnostic.suggestion))
        .collect();
    if !refusals.is_empty() {
        return Verdict::Refuse(format!(
            "Aurora DSQL would refuse this statement: {} Statement: {sql}",
            refusals.join(" ")
        ));
    }
    match index {
        Some(dsql) => Verdict::BuildIndex {
            dsql,
            plain: sql.to_owned(),
        },
        None => Verdict::Send,
    }
}

/// `CREATE [UNIQUE] INDEX …` with `ASYNC` put after `INDEX`, for a synchronous index build as
/// sea-query renders it; `None` for any other statement.
fn as_async_index(sql: &str) -> Option<String> {
    let sql = sql.trim_start();
    let words: Vec<&str> = sql.split_ascii_whitespace().take(4).collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let after_index = match upper.as_slice() {
        [create, index, next, ..] if create == "CREATE" && index == "INDEX" => next,
        [create, unique, index, next]
            if create == "CREATE" && unique == "UNIQUE" && index == "INDEX" =>
        {
            next
        }
        _ => return None,
    };
    if after_index == "ASYNC" || after_index == "CONCURRENTLY" {
        return None;
    }
    let at = sql.to_ascii_uppercase().find(" INDEX ")? + " INDEX ".len();
    Some(format!("{}ASYNC {}", &sql[..at], &sql[at..]))
}

/// `FOREIGN KEY` or `REFERENCES`, when the statement uses either outside string literals and
/// quoted identifiers.
fn foreign_key_keyword(sql: &str) -> Option<&'static str> {
    let mut bare = String::with_capacity(sql.len());
    let mut quote = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                bare.push(' ');
            }
            None => bare.push(c.to_ascii_uppercase()),
        }
    }
    let words: Vec<&str> = bare
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    if words.windows(2).any(|pair| pair == ["FOREIGN", "KEY"]) {
        Some("FOREIGN KEY")
    } else if words.contains(&"REFERENCES") {
        Some("REFERENCES")
    } else {
        None
    }
}

/// Where a guard sends what it lets through.
#[derive(Debug)]
enum Target {
    /// The real server: statements run, reads answered.
    Live {
        db: DatabaseConnection,
        pool: PgPool,
    },
    /// Nothing is sent but reads, which go to `pool` when there is one (and are answered with
    /// no rows otherwise).
    Rehearsal { pool: Option<PgPool> },
}

/// The proxy behind a guarded connection.
#[derive(Debug)]
struct Guard {
    target: Target,
    /// Whether the server builds indexes asynchronously (DSQL).
    async_indexes: bool,
    state: Mutex<State>,
    /// Conflicts retried on the way.
    retries: Retries,
}

/// What a guard saw.
#[derive(Debug, Default)]
struct State {
    in_transaction: bool,
    /// Every statement judged, in the form that would be sent.
    statements: Vec<String>,
    /// The first refusal, if any.
    refusal: Option<String>,
}

/// A guarded connection and a view of what its guard saw.
pub struct Guarded {
    /// The connection to build a [`sea_orm_migration::SchemaManager`] on.
    pub connection: DatabaseConnection,
    guard: Arc<Guard>,
}

impl Guarded {
    /// A connection that sends what it lets through to `db` (a pooled PostgreSQL connection).
    pub async fn live(db: &DatabaseConnection, async_indexes: bool) -> Result<Self, DbErr> {
        let pool = db.get_postgres_connection_pool().clone();
        Self::new(
            Target::Live {
                db: db.clone(),
                pool,
            },
            async_indexes,
        )
        .await
    }

    /// A connection that sends nothing but reads (to `db`, when given): for judging a whole
    /// migration before it runs, and for listing what it would send.
    pub async fn rehearsal(
        db: Option<&DatabaseConnection>,
        async_indexes: bool,
    ) -> Result<Self, DbErr> {
        let pool = db.map(|db| db.get_postgres_connection_pool().clone());
        Self::new(Target::Rehearsal { pool }, async_indexes).await
    }

    async fn new(target: Target, async_indexes: bool) -> Result<Self, DbErr> {
        let guard = Arc::new(Guard {
            target,
            async_indexes,
            state: Mutex::default(),
            retries: Retries::default(),
        });
        let proxy: Arc<Box<dyn ProxyDatabaseTrait>> = Arc::new(Box::new(Proxy(Arc::clone(&guard))));
        let connection = Database::connect_proxy(DbBackend::Postgres, proxy).await?;
        Ok(Self { connection, guard })
    }

    /// Every statement judged so far, as it was (or would have been) sent.
    pub fn statements(&self) -> Vec<String> {
        self.guard.state().statements.clone()
    }

    /// How many conflicts were retried on the way.
    pub fn retries(&self) -> u32 {
        self.guard.retries.count()
    }

    /// The first statement refused, with the reason and the fix.
    pub fn refusal(&self) -> Option<String> {
        self.guard.state().refusal.clone()
    }
}

impl Guard {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Judges `statement` and notes it; an error for a refusal or a statement in a
    /// transaction.
    fn admit(&self, statement: &Statement) -> Result<Verdict, DbErr> {
        let mut state = self.state();
        let verdict = if state.in_transaction {
            Verdict::Refuse(
                "a migration may not open a transaction (`manager.begin()`): Aurora DSQL allows \
                 one DDL statement per transaction and no DDL with DML, so the runner runs each \
                 statement in a transaction of its own. Call the statements on `manager` directly."
                    .to_owned(),
            )
        } else {
            judge(&statement.sql)
        };
        match &verdict {
            Verdict::Refuse(reason) => {
                let reason = reason.clone();
                state.refusal.get_or_insert_with(|| reason.clone());
                return Err(DbErr::Migration(reason));
            }
            Verdict::BuildIndex { dsql, plain } => state.statements.push(if self.async_indexes {
                dsql.clone()
            } else {
                plain.clone()
            }),
            Verdict::Send => state.statements.push(statement.sql.clone()),
        }
        Ok(verdict)
    }
}

/// The guard as SeaORM's proxy connection sees it.
#[derive(Debug)]
struct Proxy(Arc<Guard>);

impl std::ops::Deref for Proxy {
    type Target = Guard;

    fn deref(&self) -> &Guard {
        &self.0
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl ProxyDatabaseTrait for Proxy {
    async fn query(&self, statement: Statement) -> Result<Vec<ProxyRow>, DbErr> {
        let verdict = self.admit(&statement)?;
        match (&self.target, verdict) {
            (Target::Live { db, .. }, Verdict::BuildIndex { dsql, plain }) => {
                build_index(db, &dsql, &plain, self.async_indexes, &self.retries).await?;
                Ok(Vec::new())
            }
            (Target::Live { pool, .. }, _) => fetch(pool, &statement, &self.retries).await,
            (Target::Rehearsal { pool: Some(pool) }, Verdict::Send) if is_read(&statement.sql) => {
                fetch(pool, &statement, &self.retries).await
            }
            (Target::Rehearsal { .. }, _) => Ok(Vec::new()),
        }
    }

    async fn execute(&self, statement: Statement) -> Result<ProxyExecResult, DbErr> {
        let verdict = self.admit(&statement)?;
        let Target::Live { db, .. } = &self.target else {
            return Ok(ProxyExecResult::default());
        };
        if let Verdict::BuildIndex { dsql, plain } = verdict {
            build_index(db, &dsql, &plain, self.async_indexes, &self.retries).await?;
            return Ok(ProxyExecResult::default());
        }
        debug!(target: LOG_TARGET, "{}", statement.sql);
        let result = retry_counted(&statement.sql, &self.retries, || {
            db.execute_raw(statement.clone())
        })
        .await?;
        Ok(ProxyExecResult::new(0, result.rows_affected()))
    }

    async fn begin(&self) {
        self.state().in_transaction = true;
    }

    async fn commit(&self) {
        self.state().in_transaction = false;
    }

    async fn rollback(&self) {
        self.state().in_transaction = false;
    }
}

/// A plain `SELECT` (what a rehearsal may send: `has_table`, `has_column` and the like).
fn is_read(sql: &str) -> bool {
    sql.trim_start()
        .get(..7)
        .is_some_and(|head| head.eq_ignore_ascii_case("SELECT "))
}

/// Runs a query with its bound values, retried on conflicts, and hands its rows back as
/// values.
async fn fetch(
    pool: &PgPool,
    statement: &Statement,
    retries: &Retries,
) -> Result<Vec<ProxyRow>, DbErr> {
    debug!(target: LOG_TARGET, "{}", statement.sql);
    let rows = retry_counted(&statement.sql, retries, || async {
        let values = statement.values.clone().unwrap_or(Values(Vec::new()));
        sea_orm::sqlx::query_with(AssertSqlSafe(statement.sql.as_str()), SqlxValues(values))
            .fetch_all(pool)
            .await
            .map_err(query_error)
    })
    .await?;
    rows.iter().map(proxy_row).collect()
}

/// A sqlx error as SeaORM's query error, so that the conflict check can read its SQLSTATE.
fn query_error(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

/// One row as SeaORM values, for the column types a migration's reads return.
fn proxy_row(row: &PgRow) -> Result<ProxyRow, DbErr> {
    let mut values = BTreeMap::new();
    for (index, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "BOOL" => Value::Bool(row.try_get(index).map_err(query_error)?),
            "INT2" => Value::SmallInt(row.try_get(index).map_err(query_error)?),
            "INT4" => Value::Int(row.try_get(index).map_err(query_error)?),
            "INT8" => Value::BigInt(row.try_get(index).map_err(query_error)?),
            "FLOAT4" => Value::Float(row.try_get(index).map_err(query_error)?),
            "FLOAT8" => Value::Double(row.try_get(index).map_err(query_error)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
                Value::String(row.try_get(index).map_err(query_error)?)
            }
            "UUID" => Value::Uuid(row.try_get(index).map_err(query_error)?),
            "BYTEA" => Value::Bytes(row.try_get(index).map_err(query_error)?),
            other => {
                return Err(DbErr::Migration(format!(
                    "a migration's query returned column {} of type {other}; reads inside a \
                     migration may return bool, integer, float, text, uuid and bytea columns",
                    column.name()
                )));
            }
        };
        values.insert(column.name().to_owned(), value);
    }
    Ok(ProxyRow::new(values))
}

#[cfg(test)]
mod tests {
    use super::{Verdict, judge};

    #[test]
    fn a_plain_index_is_built_async_on_dsql() {
        let sql = r#"CREATE UNIQUE INDEX IF NOT EXISTS "owner_email_idx" ON "owner" ("email")"#;
        assert_eq!(
            judge(sql),
            Verdict::BuildIndex {
                dsql: r#"CREATE UNIQUE INDEX ASYNC IF NOT EXISTS "owner_email_idx" ON "owner" ("email")"#
                    .to_owned(),
                plain: sql.to_owned(),
            }
        );
    }

    #[test]
    fn a_foreign_key_is_refused_with_the_fix() {
        for sql in [
            r#"CREATE TABLE "pet" ("id" uuid PRIMARY KEY, "owner_id" uuid REFERENCES "owner" ("id"))"#,
            r#"ALTER TABLE "pet" ADD CONSTRAINT "fk" FOREIGN KEY ("owner_id") REFERENCES "owner" ("id")"#,
        ] {
            let Verdict::Refuse(reason) = judge(sql) else {
                panic!("not refused: {sql}");
            };
            assert!(reason.contains("skip_fk"), "{reason}");
        }
        // A string that merely mentions the words is no foreign key.
        assert_eq!(
            judge(r#"COMMENT ON TABLE "pet" IS 'REFERENCES owner, no FOREIGN KEY'"#),
            Verdict::Send
        );
    }

    #[test]
    fn an_identity_without_a_dsql_cache_size_is_refused() {
        // What sea-query renders for `pk_auto`, which DSQL refuses without `CACHE`.
        let sql = r#"CREATE TABLE "post" ("id" integer GENERATED BY DEFAULT AS IDENTITY NOT NULL PRIMARY KEY)"#;
        let Verdict::Refuse(reason) = judge(sql) else {
            panic!("not refused: {sql}");
        };
        assert!(reason.to_ascii_lowercase().contains("cache"), "{reason}");
    }
}
