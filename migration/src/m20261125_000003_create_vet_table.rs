use sea_orm_migration::prelude::*;

use crate::uuid_primary_key;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Vet::Table)
                    .if_not_exists()
                    .col(uuid_primary_key(Vet::Id))
                    .col(ColumnDef::new(Vet::Name).string_len(30).not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Vet::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Vet {
    Table,
    Id,
    Name,
}
