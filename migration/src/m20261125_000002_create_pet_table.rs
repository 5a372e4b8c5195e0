use sea_orm_migration::prelude::*;

use crate::{PET_STATUS_VALUES, uuid_primary_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `owner_id` has no `REFERENCES`: the relation lives in the ORM. `status` is a string with a
/// `CHECK` listing its values, since DSQL has no `CREATE TYPE … AS ENUM`. It is declared with the
/// table: added later, DSQL wants `ADD CONSTRAINT … NOT VALID` and an asynchronous validation.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Pet::Table)
                    .if_not_exists()
                    .col(uuid_primary_key(Pet::Id))
                    .col(ColumnDef::new(Pet::Name).string_len(30).not_null())
                    .col(ColumnDef::new(Pet::BirthDate).date().not_null())
                    .col(ColumnDef::new(Pet::OwnerId).uuid().null())
                    .col(
                        ColumnDef::new(Pet::Status)
                            .string_len(20)
                            .not_null()
                            .default(PET_STATUS_VALUES[0])
                            .check(Expr::col(Pet::Status).is_in(PET_STATUS_VALUES)),
                    )
                    .col(ColumnDef::new(Pet::Metadata).json_binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Pet::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Pet {
    Table,
    Id,
    Name,
    BirthDate,
    OwnerId,
    Status,
    Metadata,
}
