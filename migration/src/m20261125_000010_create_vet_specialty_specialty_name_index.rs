use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, IndexSpec, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Finds the vets of a specialty.
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_index(IndexSpec::new(
            "vet_specialty_specialty_name_idx",
            "vet_specialty",
            &["specialty_name"],
        ))
    }
}
