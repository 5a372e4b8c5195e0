use sea_orm_migration::prelude::*;

use crate::uuid_primary_key;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The many-to-many link. Neither `vet_id` nor `specialty_name` references its table; one row
/// per pair is enforced by a unique index built by a later migration.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VetSpecialty::Table)
                    .if_not_exists()
                    .col(uuid_primary_key(VetSpecialty::Id))
                    .col(ColumnDef::new(VetSpecialty::VetId).uuid().not_null())
                    .col(
                        ColumnDef::new(VetSpecialty::SpecialtyName)
                            .string_len(80)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(VetSpecialty::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum VetSpecialty {
    Table,
    Id,
    VetId,
    SpecialtyName,
}
