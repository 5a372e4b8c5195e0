//! DSQL-safe migrations of the pet-clinic schema, and the runner that applies them.
//!
//! Every migration is a [`Plan`] of [`Step`]s: one DDL statement per step, each in its own
//! transaction, never DDL and DML together, every statement retried on `40001` (see [`dsql`]).
//! Keys are UUIDs (no sequences, no identity), there are no foreign keys, and indexes are built
//! with `CREATE INDEX ASYNC` where the server is DSQL. All sea-orm-migration commands, including
//! `fresh`, `refresh` and `reset`, go through the DSQL-safe [`runner`].
// `MigrationTrait` takes `&SchemaManager` without a lifetime; with `rust_2018_idioms` that warns,
// and `&SchemaManager<'_>` does not match the trait.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

pub mod dsql;
pub mod runner;
pub mod step;

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

pub use step::{
    Backfill, DsqlMigration, IndexSpec, MAX_ROWS_PER_TRANSACTION, Plan, Step, Steps,
    uuid_primary_key,
};

/// Tracing target of the runner's progress lines; the same as sea-orm-migration's, so its CLI
/// shows them without `-v`.
pub const LOG_TARGET: &str = "sea_orm_migration";

/// The values the `CHECK` constraint on `pet.status` allows, as of the migration that created
/// it. A test keeps them equal to `entity::pet_status::PetStatus::DB_VALUES`.
pub const PET_STATUS_VALUES: [&str; 3] = ["waiting", "in_treatment", "discharged"];

/// Every migration, oldest first, as steps.
pub fn plan() -> Vec<Box<dyn DsqlMigration>> {
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

/// The pet-clinic migrator. Its commands are sea-orm-migration's, made DSQL-safe by [`runner`].
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        plan()
            .into_iter()
            .map(|migration| Box::new(Steps(migration)) as Box<dyn MigrationTrait>)
            .collect()
    }

    async fn install<C>(db: &C) -> Result<(), DbErr>
    where
        C: ConnectionTrait,
    {
        runner::install(db, Self::migration_table_name()).await
    }

    async fn get_migration_models<C>(
        db: &C,
    ) -> Result<Vec<sea_orm_migration::seaql_migrations::Model>, DbErr>
    where
        C: ConnectionTrait,
    {
        Self::install(db).await?;
        runner::applied(db, Self::migration_table_name()).await
    }

    async fn uninstall<'c, C>(db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        runner::uninstall(&db.into_database_executor(), Self::migration_table_name()).await
    }

    async fn up<'c, C>(db: C, steps: Option<u32>) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        runner::up::<Self>(&SchemaManager::new(db), steps).await
    }

    async fn down<'c, C>(db: C, steps: Option<u32>) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        runner::down::<Self>(&SchemaManager::new(db), steps).await
    }

    async fn fresh<'c, C>(db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        runner::fresh::<Self>(&SchemaManager::new(db)).await
    }

    async fn refresh<'c, C>(db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        let manager = SchemaManager::new(db);
        runner::down::<Self>(&manager, None).await?;
        runner::up::<Self>(&manager, None).await
    }

    async fn reset<'c, C>(db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        let manager = SchemaManager::new(db);
        runner::down::<Self>(&manager, None).await?;
        runner::uninstall(manager.get_connection(), Self::migration_table_name()).await
    }
}
