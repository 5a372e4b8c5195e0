use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Specialty::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Specialty::Name)
                            .string_len(80)
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Specialty::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Specialty {
    Table,
    Name,
}
