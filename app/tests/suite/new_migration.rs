//! A new project's first migration, made the SeaORM way: `sea-orm-cli migrate generate` (its
//! own code) on a throwaway copy of this workspace leaves it building, and the stub, filled in
//! as SeaORM's documentation writes migrations, applies and rolls back on the stand-in through
//! the DSQL-safe runner. Migrations that DSQL (or this project) refuses stop before their first
//! statement and are not recorded.
#![cfg(feature = "front-door")]
// `MigrationTrait` takes `&SchemaManager` without a lifetime, as in every migration file.
#![allow(elided_lifetimes_in_paths)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use migration::runner;
use migration::sea_orm::{ConnectionTrait, SqlxPostgresConnector, Statement};
use sea_orm_migration::async_trait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{pk_auto, pk_uuid, uuid};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

use common::door;

const NAME: &str = "add_visit";

/// What a user writes into the generated stub: a table and an index, as SeaORM's
/// documentation writes them, and their removal.
const FILLED_UP: &str = r#"manager
            .create_table(
                Table::create()
                    .table("visit")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("pet_id"))
                    .col(string("note"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("visit_pet_id_idx")
                    .table("visit")
                    .col("pet_id")
                    .to_owned(),
            )
            .await"#;
const FILLED_DOWN: &str = r#"manager
            .drop_index(Index::drop().name("visit_pet_id_idx").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("visit").to_owned())
            .await"#;
/// The body the generator writes into `up` and `down`.
const STUB_BODY: &str =
    "// Replace the sample below with your own migration scripts\n        todo!();";

#[tokio::test]
async fn a_generated_migration_builds_applies_and_rolls_back_on_the_stand_in() {
    let copy = tempfile::tempdir().expect("a directory for the copy");
    copy_workspace(copy.path());
    let migration_dir = copy.path().join("migration");
    sea_orm_cli::run_migrate_generate(migration_dir.to_str().expect("a UTF-8 path"), NAME, true)
        .expect("sea-orm-cli migrate generate");
    let lib = std::fs::read_to_string(migration_dir.join("src/lib.rs")).expect("lib.rs");
    let stub_path = generated_file(&migration_dir);
    let version = stub_path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .expect("the migration's name")
        .to_owned();
    assert!(lib.contains("pub struct Migrator;"), "{lib}");
    assert!(
        lib.contains(&format!("Box::new({version}::Migration),")),
        "{lib}"
    );
    // The generated stub builds as it is.
    let binary = build_migration_binary(copy.path());

    let stub = std::fs::read_to_string(&stub_path).expect("the stub");
    let filled = stub
        .replace("_manager", "manager")
        .replacen(STUB_BODY, FILLED_UP, 1)
        .replacen(STUB_BODY, FILLED_DOWN, 1);
    assert!(
        !filled.contains("todo!"),
        "the stub's shape changed:\n{stub}"
    );
    std::fs::write(&stub_path, filled).expect("fill the stub");
    let binary = {
        let rebuilt = build_migration_binary(copy.path());
        assert_eq!(rebuilt, binary);
        rebuilt
    };

    let database = common::fresh_database("generated").await;
    let url = door::shared().await.url(&database, "admin").await;
    let admin = SqlxPostgresConnector::from_sqlx_postgres_pool(
        sqlx::PgPool::connect_with(
            door::shared()
                .await
                .options_with_token(&database, "admin")
                .await,
        )
        .await
        .expect("admin's pool"),
    );

    run(&binary, &url, &["up"]);
    assert!(exists(&admin, "SELECT 1 FROM pg_tables WHERE tablename = 'visit'").await);
    assert!(
        exists(
            &admin,
            "SELECT 1 FROM pg_indexes WHERE indexname = 'visit_pet_id_idx'"
        )
        .await
    );
    // Built the DSQL way: an asynchronous job, waited for.
    assert!(exists(&admin, "SELECT 1 FROM sys.jobs WHERE status = 'completed'").await);
    let recorded = format!("SELECT 1 FROM seaql_migrations WHERE version = '{version}'");
    assert!(exists(&admin, &recorded).await);

    run(&binary, &url, &["down", "-n", "1"]);
    assert!(!exists(&admin, "SELECT 1 FROM pg_tables WHERE tablename = 'visit'").await);
    assert!(!exists(&admin, &recorded).await);
    // The project's own migrations are still applied.
    assert!(exists(&admin, "SELECT 1 FROM pg_tables WHERE tablename = 'pet'").await);
}

/// Creates a table, then sends `second`, which the guard refuses.
async fn table_then(
    manager: &SchemaManager<'_>,
    second: TableCreateStatement,
) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table("first_table")
                .if_not_exists()
                .col(pk_uuid("id"))
                .to_owned(),
        )
        .await?;
    manager.create_table(second).await
}

/// An identity key as `pk_auto` makes it: no DSQL cache size.
#[derive(Default, DeriveMigrationName)]
struct IdentityKey;

#[async_trait::async_trait]
impl MigrationTrait for IdentityKey {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        table_then(
            manager,
            Table::create()
                .table("counter")
                .col(pk_auto("id"))
                .to_owned(),
        )
        .await
    }
}

/// A foreign key, which this project's schema does not use.
#[derive(Default, DeriveMigrationName)]
struct ForeignKeyToPet;

#[async_trait::async_trait]
impl MigrationTrait for ForeignKeyToPet {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let visit = Table::create()
            .table("visit")
            .col(pk_uuid("id"))
            .col(uuid("pet_id"))
            .foreign_key(ForeignKey::create().from("visit", "pet_id").to("pet", "id"))
            .to_owned();
        table_then(manager, visit).await
    }
}

/// A migrator of the one migration `M`.
struct Only<M>(std::marker::PhantomData<M>);

#[async_trait::async_trait]
impl<M: MigrationTrait + Default + 'static> MigratorTrait for Only<M> {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M::default())]
    }
}

#[tokio::test]
async fn a_migration_dsql_refuses_stops_before_its_first_statement_and_is_not_recorded() {
    check_refused::<IdentityKey>("CACHE").await;
    check_refused::<ForeignKeyToPet>("skip_fk").await;
}

async fn check_refused<M: MigrationTrait + Default + 'static>(fix: &str) {
    let database = common::fresh_database("refused").await;
    let admin = common::admin_db(&database).await;
    let err = runner::up::<Only<M>>(&SchemaManager::new(&admin), None)
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(message.contains(fix), "{message}");
    assert!(message.contains("was not run"), "{message}");
    // Not even the statement before the refused one was sent, and nothing is recorded.
    assert!(
        !exists(
            &admin,
            "SELECT 1 FROM pg_tables WHERE tablename = 'first_table'"
        )
        .await
    );
    assert!(!exists(&admin, "SELECT 1 FROM seaql_migrations").await);
}

/// Copies what a build of the workspace needs (sources and manifests, no build output).
fn copy_workspace(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), to.join(file)).expect("copy a manifest");
    }
    for (dir, parts) in [
        ("entity", &["Cargo.toml", "src"][..]),
        ("migration", &["Cargo.toml", "src"][..]),
        ("app", &["Cargo.toml", "src"][..]),
    ] {
        for part in parts {
            copy_tree(&root.join(dir).join(part), &to.join(dir).join(part));
        }
    }
    // The copy's binary gets a name of its own, so that it does not replace this workspace's
    // `migration` in the shared target directory.
    let manifest = to.join("migration/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("the manifest");
    text.push_str("\n[[bin]]\nname = \"generated-migration\"\npath = \"src/main.rs\"\n");
    std::fs::write(&manifest, text).expect("name the copy's binary");
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_file() {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("a directory");
        std::fs::copy(from, to).expect("copy a file");
        return;
    }
    for entry in std::fs::read_dir(from).expect("read a directory") {
        let entry = entry.expect("a directory entry");
        copy_tree(&entry.path(), &to.join(entry.file_name()));
    }
}

/// The file `migrate generate` wrote: the one migration file not in this workspace.
fn generated_file(migration_dir: &Path) -> PathBuf {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migration/src");
    std::fs::read_dir(migration_dir.join("src"))
        .expect("the copy's migrations")
        .map(|entry| entry.expect("an entry").path())
        .find(|path| !ours.join(path.file_name().expect("a name")).exists())
        .expect("a generated migration file")
}

/// Builds the copy's migration binary in this build's target directory (so only the copy's
/// own crate is compiled) and returns its path.
fn build_migration_binary(workspace: &Path) -> PathBuf {
    let target = Path::new(env!("CARGO_BIN_EXE_app"))
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--offline",
            "--locked",
            "-p",
            "migration",
            "--bin",
            "generated-migration",
        ])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "the copy does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("debug/generated-migration")
}

/// Runs the copy's migration command with `DATABASE_URL`, which must succeed.
fn run(binary: &Path, url: &str, args: &[&str]) {
    let output = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .output()
        .expect("run the migration command");
    assert!(
        output.status.success(),
        "migration {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn exists(db: &impl ConnectionTrait, sql: &str) -> bool {
    let statement = Statement::from_string(db.get_database_backend(), sql.to_owned());
    for _ in 0..10 {
        match db.query_one_raw(statement.clone()).await {
            Ok(row) => return row.is_some(),
            // A stale catalog after the other process's DDL: once per pooled connection.
            Err(err) if migration::dsql::is_conflict(&err) => continue,
            Err(err)
                if sql.contains("seaql_migrations")
                    && err.to_string().contains("does not exist") =>
            {
                return false;
            }
            Err(err) => panic!("{sql}: {err}"),
        }
    }
    panic!("{sql}: conflicts ten times in a row");
}
