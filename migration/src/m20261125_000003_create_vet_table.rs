use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, Plan, uuid_primary_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_table(
            Table::create()
                .table(Vet::Table)
                .if_not_exists()
                .col(uuid_primary_key(Vet::Id))
                .col(ColumnDef::new(Vet::Name).string_len(30).not_null()),
            "vet",
        )
    }
}

#[derive(DeriveIden)]
enum Vet {
    Table,
    Id,
    Name,
}
