//! DSQL-safe migrations of the pet-clinic schema, and the runner that applies them.
//!
//! Migrations are written as SeaORM's documentation writes them (`manager.create_table(…)`,
//! `create_index`, `alter_table`, `drop_*`), one file each, listed in [`Migrator`] — so
//! `sea-orm-cli migrate generate NAME` adds a new one as usual. Every command, `fresh`,
//! `refresh` and `reset` included, goes through the DSQL-safe [`runner`]: each statement on its
//! own in autocommit, never DDL and DML together, retried on `40001`, indexes built with
//! `CREATE INDEX ASYNC` on DSQL, and what DSQL (or this project: no foreign keys) refuses stopped
//! before it is sent ([`guard`]). Keys are UUIDs ([`uuid_primary_key`]); existing rows are
//! filled in batches DSQL accepts ([`Backfill`]).
// `MigrationTrait` takes `&SchemaManager` without a lifetime; with `rust_2018_idioms` that warns,
// and `&SchemaManager<'_>` does not match the trait.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod async_index;
pub mod dsql;
pub mod guard;
mod helpers;
pub mod runner;

pub use helpers::{Backfill, MAX_ROWS_PER_TRANSACTION, uuid_primary_key};

/// Tracing target of the runner's progress lines; the same as sea-orm-migration's, so its CLI
/// shows them without `-v`.
pub const LOG_TARGET: &str = "sea_orm_migration";

/// The values the `CHECK` constraint on `pet.status` allows, as of the migration that created
/// it. A test keeps them equal to the values of `entity::pet_status::PetStatus`.
pub const PET_STATUS_VALUES: [&str; 3] = ["waiting", "in_treatment", "discharged"];

mod m20261125_000001_create_owner_table;
mod m20261125_000002_create_pet_table;
mod m20261125_000003_create_vet_table;
mod m20261125_000004_create_specialty_table;
mod m20261125_000005_create_vet_specialty_table;
mod m20261125_000006_create_owner_email_index;
mod m20261125_000007_create_pet_owner_id_index;
mod m20261125_000008_create_pet_name_index;
mod m20261125_000009_create_vet_specialty_pair_index;
mod m20261125_000010_create_vet_specialty_specialty_name_index;
mod m20261125_000011_add_pet_visit_count;

/// The pet-clinic migrator: sea-orm-migration's commands, made DSQL-safe by [`runner`].
///
/// `sea-orm-cli migrate generate` rewrites the list in `migrations`, which therefore comes last
/// in this file.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    async fn install<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
        runner::install(db, Self::migration_table_name()).await
    }

    async fn get_migration_models<C: ConnectionTrait>(
        db: &C,
    ) -> Result<Vec<sea_orm_migration::seaql_migrations::Model>, DbErr> {
        Self::install(db).await?;
        runner::applied(db, Self::migration_table_name()).await
    }

    async fn uninstall<'c, C: IntoSchemaManagerConnection<'c>>(db: C) -> Result<(), DbErr> {
        runner::uninstall(&db.into_database_executor(), Self::migration_table_name()).await
    }

    async fn up<'c, C: IntoSchemaManagerConnection<'c>>(
        db: C,
        n: Option<u32>,
    ) -> Result<(), DbErr> {
        runner::up::<Self>(&SchemaManager::new(db), n).await
    }

    async fn down<'c, C: IntoSchemaManagerConnection<'c>>(
        db: C,
        n: Option<u32>,
    ) -> Result<(), DbErr> {
        runner::down::<Self>(&SchemaManager::new(db), n).await
    }

    async fn fresh<'c, C: IntoSchemaManagerConnection<'c>>(db: C) -> Result<(), DbErr> {
        runner::fresh::<Self>(&SchemaManager::new(db)).await
    }

    async fn refresh<'c, C: IntoSchemaManagerConnection<'c>>(db: C) -> Result<(), DbErr> {
        let manager = SchemaManager::new(db);
        runner::down::<Self>(&manager, None).await?;
        runner::up::<Self>(&manager, None).await
    }

    async fn reset<'c, C: IntoSchemaManagerConnection<'c>>(db: C) -> Result<(), DbErr> {
        let manager = SchemaManager::new(db);
        runner::down::<Self>(&manager, None).await?;
        runner::uninstall(manager.get_connection(), Self::migration_table_name()).await
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_owner_table::Migration),
            Box::new(m20261125_000002_create_pet_table::Migration),
            Box::new(m20261125_000003_create_vet_table::Migration),
            Box::new(m20261125_000004_create_specialty_table::Migration),
            Box::new(m20261125_000005_create_vet_specialty_table::Migration),
            Box::new(m20261125_000006_create_owner_email_index::Migration),
            Box::new(m20261125_000007_create_pet_owner_id_index::Migration),
            Box::new(m20261125_000008_create_pet_name_index::Migration),
            Box::new(m20261125_000009_create_vet_specialty_pair_index::Migration),
            Box::new(m20261125_000010_create_vet_specialty_specialty_name_index::Migration),
            Box::new(m20261125_000011_add_pet_visit_count::Migration),
        ]
    }
}
