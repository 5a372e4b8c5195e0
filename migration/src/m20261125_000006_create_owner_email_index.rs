use sea_orm_migration::prelude::*;

use crate::{DsqlMigration, IndexSpec, Plan};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Unique: the upsert and find-or-create of owners key on `email` (`ON CONFLICT (email)`).
impl DsqlMigration for Migration {
    fn plan(&self) -> Plan {
        Plan::create_index(IndexSpec::unique("owner_email_idx", "owner", &["email"]))
    }
}
