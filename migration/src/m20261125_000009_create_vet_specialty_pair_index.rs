use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Unique: one link per vet and specialty; also serves lookups by vet.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("vet_specialty_vet_id_specialty_name_idx")
                    .table("vet_specialty")
                    .col("vet_id")
                    .col("specialty_name")
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("vet_specialty_vet_id_specialty_name_idx")
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
