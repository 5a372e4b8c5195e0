//! The link between vets and specialties. One row per pair, enforced by a unique index on
//! `(vet_id, specialty_name)`; neither column is a database foreign key.

use sea_orm::entity::prelude::*;

/// One row of `vet_specialty`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vet_specialty")]
pub struct Model {
    /// Client-generated key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The vet. Not a database foreign key.
    pub vet_id: Uuid,
    /// The specialty's name. Not a database foreign key.
    #[sea_orm(column_type = "String(StringLen::N(80))")]
    pub specialty_name: String,
    /// The vet (ORM relation, `skip_fk`).
    #[sea_orm(belongs_to, from = "vet_id", to = "id", skip_fk)]
    pub vet: BelongsTo<super::vet::Entity>,
    /// The specialty (ORM relation, `skip_fk`).
    #[sea_orm(belongs_to, from = "specialty_name", to = "name", skip_fk)]
    pub specialty: BelongsTo<super::specialty::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
