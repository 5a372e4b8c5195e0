//! Every statement the migrations and the runner's own bookkeeping send, as sent to Aurora DSQL,
//! passes `dsql-lint`; and the `CHECK` on `pet.status` allows exactly the entity's values.

use migration::runner::{self, Direction};
use migration::sea_orm::DbBackend;
use migration::{Alias, Migrator, MigratorTrait, PET_STATUS_VALUES, PostgresQueryBuilder};

/// Every statement of every migration, both ways, as the runner's guard sends it to DSQL.
async fn dsql_statements() -> Vec<(String, String)> {
    let mut statements = Vec::new();
    for migration in Migrator::migrations() {
        for direction in [Direction::Up, Direction::Down] {
            let sent = runner::statements(migration.as_ref(), direction)
                .await
                .unwrap_or_else(|err| panic!("{} {direction:?}: {err}", migration.name()));
            statements.extend(
                sent.into_iter()
                    .map(|sql| (migration.name().to_owned(), sql)),
            );
        }
    }
    statements
}

/// The runner's own DDL: the bookkeeping table's `CREATE` (`install`) and `DROP`
/// (`uninstall`), and the `DROP TABLE` that `fresh` sends for each table (shown for `pet`).
fn runner_statements() -> Vec<(String, String)> {
    let table = Migrator::migration_table_name();
    [
        runner::install_statement(DbBackend::Postgres, table.clone())
            .to_string(PostgresQueryBuilder),
        runner::drop_table_statement(table).to_string(PostgresQueryBuilder),
        runner::drop_table_statement(Alias::new("pet")).to_string(PostgresQueryBuilder),
    ]
    .into_iter()
    .map(|sql| ("runner".to_owned(), sql))
    .collect()
}

#[tokio::test]
async fn every_migration_and_runner_statement_passes_dsql_lint() {
    let statements = dsql_statements().await;
    assert!(statements.len() >= 2 * Migrator::migrations().len());
    let mut failures = Vec::new();
    for (migration, sql) in statements.iter().chain(&runner_statements()) {
        // Each statement runs in its own transaction, so each is linted on its own.
        for diagnostic in dsql_lint::lint_sql(sql) {
            failures.push(format!(
                "{migration}: {sql}\n  {:?}: {}",
                diagnostic.rule, diagnostic.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn indexes_are_built_async_on_dsql() {
    let indexes: Vec<String> = dsql_statements()
        .await
        .into_iter()
        .map(|(_, sql)| sql)
        .filter(|sql| sql.starts_with("CREATE UNIQUE INDEX") || sql.starts_with("CREATE INDEX"))
        .collect();
    assert_eq!(indexes.len(), 5, "{indexes:#?}");
    assert!(
        indexes.contains(
            &r#"CREATE UNIQUE INDEX ASYNC IF NOT EXISTS "owner_email_idx" ON "owner" ("email")"#
                .to_owned()
        ),
        "{indexes:#?}"
    );
    // dsql-lint agrees that only the ASYNC form is DSQL's.
    for sql in &indexes {
        assert!(sql.contains(" INDEX ASYNC "), "{sql}");
        assert!(
            dsql_lint::lint_sql(&sql.replacen(" ASYNC", "", 1)).len() == 1,
            "{sql}"
        );
    }
}

#[tokio::test]
async fn no_migration_creates_a_foreign_key_serial_or_identity() {
    for (migration, sql) in dsql_statements().await {
        let upper = sql.to_uppercase();
        for forbidden in [
            "REFERENCES",
            "FOREIGN KEY",
            "SERIAL",
            "IDENTITY",
            "SEQUENCE",
        ] {
            assert!(!upper.contains(forbidden), "{migration}: {sql}");
        }
    }
}

#[tokio::test]
async fn the_status_check_lists_exactly_the_entity_values() {
    assert_eq!(
        PET_STATUS_VALUES.map(str::to_owned).to_vec(),
        <entity::pet_status::PetStatus as sea_orm::ActiveEnum>::values()
    );
    let create_pet = dsql_statements()
        .await
        .into_iter()
        .find(|(_, sql)| sql.starts_with("CREATE TABLE IF NOT EXISTS \"pet\""))
        .expect("the pet table");
    assert!(
        create_pet
            .1
            .contains(r#"CHECK ("status" IN ('waiting', 'in_treatment', 'discharged'))"#),
        "{}",
        create_pet.1
    );
}

#[test]
fn the_runner_creates_and_drops_its_bookkeeping_table_if_needed() {
    let sql: Vec<String> = runner_statements()
        .into_iter()
        .map(|(_, sql)| sql)
        .collect();
    assert!(
        sql[0].starts_with(r#"CREATE TABLE IF NOT EXISTS "seaql_migrations" ("#),
        "{}",
        sql[0]
    );
    assert_eq!(sql[1], r#"DROP TABLE IF EXISTS "seaql_migrations""#);
    assert_eq!(sql[2], r#"DROP TABLE IF EXISTS "pet""#);
}
