use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, IndexSpec, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Unique: one link per vet and specialty; also serves lookups by vet.
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_index(IndexSpec::unique(
            "vet_specialty_vet_id_specialty_name_idx",
            "vet_specialty",
            &["vet_id", "specialty_name"],
        ))
    }
}
