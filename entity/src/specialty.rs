//! A specialty, keyed by its name (a natural key: there are few, and they are looked up by name).

use sea_orm::entity::prelude::*;

/// One row of `specialty`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "specialty")]
pub struct Model {
    /// Name, at most 80 characters; the primary key.
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "String(StringLen::N(80))"
    )]
    pub name: String,
    /// Vets with this specialty (ORM relation through `vet_specialty`).
    #[sea_orm(has_many, via = "vet_specialty")]
    pub vets: HasMany<super::vet::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
