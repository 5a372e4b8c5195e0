use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, IndexSpec, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Finds pets by name.
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_index(IndexSpec::new("pet_name_idx", "pet", &["name"]))
    }
}
