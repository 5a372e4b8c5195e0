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
                    .table(Owner::Table)
                    .if_not_exists()
                    .col(uuid_primary_key(Owner::Id))
                    .col(ColumnDef::new(Owner::Name).string_len(30).not_null())
                    .col(ColumnDef::new(Owner::City).string_len(80).not_null())
                    .col(ColumnDef::new(Owner::Telephone).string_len(20).null())
                    .col(ColumnDef::new(Owner::Email).string_len(255).not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Owner::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Owner {
    Table,
    Id,
    Name,
    City,
    Telephone,
    Email,
}
