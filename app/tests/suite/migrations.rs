//! The DSQL-safe migration runner on the local DSQL-strict server: every command works, is
//! idempotent where it should be, and the schema it builds is the one `entity/` describes.

use crate::common;

use app::catalog;
use clap::Parser;
use common::{admin_db, admin_url, fresh_database, user_db};
use migration::dsql::{builds_indexes_async, retry_on_conflict};
use migration::{Backfill, Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

const CLINIC_TABLES: [&str; 5] = ["owner", "pet", "specialty", "vet", "vet_specialty"];

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let mut names: Vec<String> = catalog::columns(db)
        .await
        .expect("read the catalog")
        .into_iter()
        .map(|c| c.table_name)
        .collect();
    names.dedup();
    names
}

/// The current schema's columns, indexes and constraints, as the catalog describes them.
async fn schema(
    db: &DatabaseConnection,
) -> (
    Vec<catalog::ColumnInfo>,
    Vec<catalog::IndexInfo>,
    Vec<catalog::ConstraintInfo>,
) {
    (
        catalog::columns(db).await.expect("read the columns"),
        catalog::indexes(db).await.expect("read the indexes"),
        catalog::constraints(db)
            .await
            .expect("read the constraints"),
    )
}

async fn applied(db: &DatabaseConnection) -> usize {
    Migrator::get_applied_migrations(db)
        .await
        .expect("read applied migrations")
        .len()
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index(0).expect("a number")
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Inserts `n` pets, at most 3,000 per statement (the server refuses more per transaction).
async fn insert_pets(db: &DatabaseConnection, n: i64) {
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(3_000);
        exec(
            db,
            &format!(
                "INSERT INTO pet (name, birth_date) \
                 SELECT 'Pet ' || i, DATE '2020-01-01' FROM generate_series(1, {batch}) AS i"
            ),
        )
        .await;
        done += batch;
    }
}

#[tokio::test]
async fn up_builds_the_clinic_schema_and_a_second_up_changes_nothing() {
    let db = admin_db(&fresh_database("up").await).await;
    Migrator::up(&db, None).await.expect("first up");
    let tables = table_names(&db).await;
    for table in CLINIC_TABLES {
        assert!(
            tables.contains(&table.to_owned()),
            "{table} missing: {tables:?}"
        );
    }
    assert_eq!(applied(&db).await, Migrator::migrations().len());
    let before = catalog::columns(&db).await.expect("catalog");

    Migrator::up(&db, None).await.expect("second up");
    assert_eq!(catalog::columns(&db).await.expect("catalog"), before);
    assert_eq!(applied(&db).await, Migrator::migrations().len());
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .is_empty()
    );
    Migrator::status(&db).await.expect("status");
}

#[tokio::test]
async fn down_all_then_up_restores_the_same_schema() {
    let db = admin_db(&fresh_database("down_up").await).await;
    Migrator::up(&db, None).await.expect("up");
    let migrated = schema(&db).await;
    let (_, indexes, constraints) = &migrated;
    // The comparison below covers the migrations' indexes and the tables' keys and checks.
    assert!(
        indexes.iter().any(|i| i.index_name == "owner_email_idx"),
        "{indexes:?}"
    );
    assert!(
        constraints
            .iter()
            .any(|c| c.definition.starts_with("CHECK") && c.definition.contains("status")),
        "{constraints:?}"
    );

    Migrator::down(&db, Some(1)).await.expect("down one");
    assert_eq!(applied(&db).await, Migrator::migrations().len() - 1);
    Migrator::down(&db, None).await.expect("down all");
    assert_eq!(table_names(&db).await, ["seaql_migrations"]);
    assert_eq!(applied(&db).await, 0);

    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(schema(&db).await, migrated);
}

#[tokio::test]
async fn fresh_refresh_and_reset_work_one_statement_at_a_time() {
    let db = admin_db(&fresh_database("fresh").await).await;
    Migrator::up(&db, None).await.expect("up");
    let migrated = catalog::columns(&db).await.expect("catalog");
    insert_pets(&db, 10).await;
    exec(&db, "CREATE TABLE leftover (id uuid PRIMARY KEY)").await;

    Migrator::fresh(&db).await.expect("fresh");
    assert_eq!(catalog::columns(&db).await.expect("catalog"), migrated);
    assert_eq!(count(&db, "SELECT count(*) FROM pet").await, 0);

    insert_pets(&db, 10).await;
    Migrator::refresh(&db).await.expect("refresh");
    assert_eq!(catalog::columns(&db).await.expect("catalog"), migrated);
    assert_eq!(count(&db, "SELECT count(*) FROM pet").await, 0);

    Migrator::reset(&db).await.expect("reset");
    assert!(table_names(&db).await.is_empty());
}

#[tokio::test]
async fn a_non_admin_user_migrates_its_own_schema() {
    let database = fresh_database("user_schema").await;
    let db = user_db(&database, "clinic_user_migrations").await;
    Migrator::up(&db, None).await.expect("up as the user");
    let schemas = count(
        &db,
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = 'myschema' AND table_name IN \
         ('owner', 'pet', 'vet', 'specialty', 'vet_specialty', 'seaql_migrations')",
    )
    .await;
    assert_eq!(schemas, 6);
}

#[tokio::test]
async fn adding_a_column_backfills_existing_rows_in_batches_within_the_row_limit() {
    let db = admin_db(&fresh_database("backfill").await).await;
    let before_visit_count = u32::try_from(Migrator::migrations().len() - 1).expect("count");
    Migrator::up(&db, Some(before_visit_count))
        .await
        .expect("up to the visit_count migration");
    insert_pets(&db, 7_000).await;

    // The server refuses more than 3,000 changed rows per transaction, so this only passes if
    // the backfill really works in batches.
    Migrator::up(&db, None)
        .await
        .expect("the visit_count migration");
    assert_eq!(
        count(&db, "SELECT count(*) FROM pet WHERE visit_count = 0").await,
        7_000
    );
    exec(
        &db,
        "INSERT INTO pet (name, birth_date) VALUES ('New', DATE '2024-01-01')",
    )
    .await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM pet WHERE visit_count IS NULL").await,
        0,
        "rows inserted after the migration get the default"
    );

    exec(
        &db,
        "CREATE TABLE tally (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int)",
    )
    .await;
    for _ in 0..3 {
        exec(
            &db,
            "INSERT INTO tally (n) SELECT NULL FROM generate_series(1, 2000)",
        )
        .await;
    }
    exec(
        &db,
        "INSERT INTO tally (n) SELECT NULL FROM generate_series(1, 1000)",
    )
    .await;
    let batches = Backfill::new("tally", "id", "n", 1)
        .run(&db)
        .await
        .expect("backfill");
    assert_eq!(batches, [3_000, 3_000, 1_000]);
}

#[tokio::test]
async fn a_conflicting_statement_is_retried_until_it_commits() {
    let db = admin_db(&fresh_database("retry").await).await;
    exec(
        &db,
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
    )
    .await;
    exec(&db, "INSERT INTO counter VALUES (1, 0)").await;
    let attempts = AtomicU32::new(0);
    retry_on_conflict("increment", || async {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let txn = sea_orm::TransactionTrait::begin(&db).await?;
        txn.execute_unprepared("SELECT n FROM counter WHERE id = 1")
            .await?;
        if attempt == 1 {
            // Another session changes the row after this snapshot was taken: under repeatable
            // read the update below fails with 40001, as a DSQL commit would.
            exec(&db, "UPDATE counter SET n = n + 1 WHERE id = 1").await;
        }
        txn.execute_unprepared("UPDATE counter SET n = n + 1 WHERE id = 1")
            .await?;
        txn.commit().await
    })
    .await
    .expect("the retry succeeds");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(count(&db, "SELECT n::bigint FROM counter").await, 2);
}

#[tokio::test]
async fn plain_postgresql_builds_indexes_synchronously_and_the_front_door_asynchronously() {
    let database = fresh_database("index_mode").await;
    let plain = common::direct_admin_db(&database).await;
    assert!(!builds_indexes_async(&plain).await.expect("probe"));
    // The first login through the front door gives the database DSQL's `sys` schema.
    #[cfg(feature = "front-door")]
    assert!(
        builds_indexes_async(&admin_db(&database).await)
            .await
            .expect("probe")
    );
}

/// A column as `sea-orm-cli generate entity` writes it: nullability and column type.
#[derive(Debug, PartialEq)]
struct GeneratedColumn {
    nullable: bool,
    column_type: String,
}

/// Runs sea-orm-cli's `generate entity` (the library call the command makes) and reads each
/// model's columns back from the generated source.
async fn generate_entities(url: &str) -> BTreeMap<String, BTreeMap<String, GeneratedColumn>> {
    let out = tempfile::tempdir().expect("temp dir");
    let out_dir = out.path().to_str().expect("utf-8 path");
    let cli = sea_orm_cli::Cli::try_parse_from([
        "sea-orm-cli",
        "generate",
        "entity",
        "--database-url",
        url,
        "--output-dir",
        out_dir,
        "--ignore-tables",
        "seaql_migrations",
    ])
    .expect("parse the generate command");
    let sea_orm_cli::Commands::Generate { command } = cli.command else {
        panic!("not a generate command");
    };
    sea_orm_cli::run_generate_command(command, false)
        .await
        .expect("generate entities");
    let mut tables = BTreeMap::new();
    for table in CLINIC_TABLES {
        let source = std::fs::read_to_string(out.path().join(format!("{table}.rs")))
            .expect("generated file");
        tables.insert(table.to_owned(), parse_model(&source));
    }
    tables
}

/// `pub field: Type` lines of the `Model` struct, with the `column_type` attribute above them
/// (or the column type sea-orm derives from the Rust type).
fn parse_model(source: &str) -> BTreeMap<String, GeneratedColumn> {
    let model = source
        .split("pub struct Model {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("a Model struct");
    let mut columns = BTreeMap::new();
    let mut column_type = None;
    for line in model.lines().map(str::trim) {
        if let Some(attr) = line.split("column_type = \"").nth(1) {
            column_type = attr.split('"').next().map(|t| t.replace("StringLen::", ""));
        }
        let Some((name, rust_type)) = line
            .strip_prefix("pub ")
            .and_then(|field| field.trim_end_matches(',').split_once(": "))
        else {
            continue;
        };
        let nullable = rust_type.starts_with("Option<");
        let base = rust_type
            .trim_start_matches("Option<")
            .trim_end_matches('>');
        let derived = match base {
            "Uuid" => "Uuid",
            "Date" => "Date",
            "i32" => "Integer",
            other => other,
        };
        columns.insert(
            name.to_owned(),
            GeneratedColumn {
                nullable,
                column_type: column_type.take().unwrap_or_else(|| derived.to_owned()),
            },
        );
    }
    columns
}

/// The same description of one of our entities, plus the length of each string column.
/// sea-orm-cli writes `String` for `varchar(n)`, so lengths are compared with the catalog.
fn entity_columns<E: EntityTrait>() -> (BTreeMap<String, GeneratedColumn>, Vec<(String, u32)>) {
    use sea_orm::sea_query::StringLen;
    use sea_orm::{ColumnTrait, ColumnType, IdenStatic, Iterable};
    let mut lengths = Vec::new();
    let columns = E::Column::iter()
        .map(|column| {
            let def = column.def();
            let column_type = match def.get_column_type() {
                ColumnType::String(len) => {
                    if let StringLen::N(n) = len {
                        lengths.push((column.as_str().to_owned(), *n));
                    }
                    "String".to_owned()
                }
                other => format!("{other:?}"),
            };
            let name = column.as_str().to_owned();
            let generated = GeneratedColumn {
                nullable: def.is_null(),
                column_type,
            };
            (name, generated)
        })
        .collect();
    (columns, lengths)
}

#[tokio::test]
async fn generated_entities_have_the_columns_of_the_entity_crate() {
    let database = fresh_database("codegen").await;
    Migrator::up(&admin_db(&database).await, None)
        .await
        .expect("up");
    // The URL a user passes to `sea-orm-cli generate entity` (`app url` prints one like it).
    let generated = generate_entities(&admin_url(&database).await).await;
    let ours = [
        ("owner", entity_columns::<entity::owner::Entity>()),
        ("pet", entity_columns::<entity::pet::Entity>()),
        ("specialty", entity_columns::<entity::specialty::Entity>()),
        ("vet", entity_columns::<entity::vet::Entity>()),
        (
            "vet_specialty",
            entity_columns::<entity::vet_specialty::Entity>(),
        ),
    ];
    let catalog = catalog::columns(&admin_db(&database).await)
        .await
        .expect("catalog");
    for (table, (columns, lengths)) in ours {
        assert_eq!(generated[table], columns, "columns of {table}");
        for (column, length) in lengths {
            let info = catalog
                .iter()
                .find(|c| c.table_name == table && c.column_name == column)
                .unwrap_or_else(|| panic!("{table}.{column} not in the catalog"));
            assert_eq!(info.data_type, format!("character varying({length})"));
        }
    }
}
