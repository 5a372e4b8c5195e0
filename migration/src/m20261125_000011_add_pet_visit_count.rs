use sea_orm_migration::prelude::*;

use crate::Backfill;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Adds `pet.visit_count` to a table that may already hold rows, the DSQL way: DSQL refuses
/// `ADD COLUMN` with a default or a constraint (`0A000 ALTER TABLE ADD COLUMN with constraint not
/// supported`), so the column is added bare (not even an explicit `NULL`, which PostgreSQL's grammar
/// and so DSQL's parse as a constraint), then its default is set, then existing rows are
/// filled in batches of at most 3,000 rows per transaction.
///
/// The default is set before the backfill, not after: a row inserted between the two then gets
/// the default, where the other order would leave it `NULL` for good.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pet::Table)
                    .add_column_if_not_exists(ColumnDef::new(Pet::VisitCount).integer())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Pet::Table)
                    .modify_column(ColumnDef::new(Pet::VisitCount).default(0))
                    .to_owned(),
            )
            .await?;
        Backfill::new("pet", "id", "visit_count", 0)
            .run(manager.get_connection())
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Pet::Table)
                    .drop_column_if_exists(Pet::VisitCount)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Pet {
    Table,
    VisitCount,
}
