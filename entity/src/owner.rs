//! A pet owner. `email` is unique (a unique index built by the migrations), which is what the
//! upsert and find-or-create of the demo key on.

use sea_orm::entity::prelude::*;

/// One row of `owner`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "owner")]
pub struct Model {
    /// Client-generated key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Display name, at most 30 characters.
    #[sea_orm(column_type = "String(StringLen::N(30))")]
    pub name: String,
    /// City, at most 80 characters.
    #[sea_orm(column_type = "String(StringLen::N(80))")]
    pub city: String,
    /// Optional telephone number, at most 20 characters.
    #[sea_orm(column_type = "String(StringLen::N(20))", nullable)]
    pub telephone: Option<String>,
    /// E-mail address, at most 255 characters, unique across owners.
    #[sea_orm(column_type = "String(StringLen::N(255))", unique)]
    pub email: String,
    /// The owner's pets (ORM relation; no foreign key in the database).
    #[sea_orm(has_many)]
    pub pets: HasMany<super::pet::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
