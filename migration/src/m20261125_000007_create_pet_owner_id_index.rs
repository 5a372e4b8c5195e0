use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, IndexSpec, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Finds an owner's pets without a foreign key's index.
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_index(IndexSpec::new("pet_owner_id_idx", "pet", &["owner_id"]))
    }
}
