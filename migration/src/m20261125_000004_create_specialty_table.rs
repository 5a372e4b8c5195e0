use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_table(
            Table::create().table(Specialty::Table).if_not_exists().col(
                ColumnDef::new(Specialty::Name)
                    .string_len(80)
                    .not_null()
                    .primary_key(),
            ),
            "specialty",
        )
    }
}

#[derive(DeriveIden)]
enum Specialty {
    Table,
    Name,
}
