use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, Plan, uuid_primary_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The many-to-many link. Neither `vet_id` nor `specialty_name` references its table; one row
/// per pair is enforced by a unique index built by a later migration.
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_table(
            Table::create()
                .table(VetSpecialty::Table)
                .if_not_exists()
                .col(uuid_primary_key(VetSpecialty::Id))
                .col(ColumnDef::new(VetSpecialty::VetId).uuid().not_null())
                .col(
                    ColumnDef::new(VetSpecialty::SpecialtyName)
                        .string_len(80)
                        .not_null(),
                ),
            "vet_specialty",
        )
    }
}

#[derive(DeriveIden)]
enum VetSpecialty {
    Table,
    Id,
    VetId,
    SpecialtyName,
}
