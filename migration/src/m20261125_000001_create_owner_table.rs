use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, Plan, uuid_primary_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_table(
            Table::create()
                .table(Owner::Table)
                .if_not_exists()
                .col(uuid_primary_key(Owner::Id))
                .col(ColumnDef::new(Owner::Name).string_len(30).not_null())
                .col(ColumnDef::new(Owner::City).string_len(80).not_null())
                .col(ColumnDef::new(Owner::Telephone).string_len(20).null())
                .col(ColumnDef::new(Owner::Email).string_len(255).not_null()),
            "owner",
        )
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
