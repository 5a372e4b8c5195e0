//! A veterinarian, linked to specialties many-to-many through [`super::vet_specialty`].

use sea_orm::entity::prelude::*;

/// One row of `vet`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vet")]
pub struct Model {
    /// Client-generated key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Name, at most 30 characters.
    #[sea_orm(column_type = "String(StringLen::N(30))")]
    pub name: String,
    /// The vet's specialties (ORM relation through `vet_specialty`).
    #[sea_orm(has_many, via = "vet_specialty")]
    pub specialties: HasMany<super::specialty::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
