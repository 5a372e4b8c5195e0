//! A pet. `owner_id` points at [`super::owner`] through an ORM relation only: no foreign key is
//! created, so the application checks the owner exists when it creates a pet.

use sea_orm::entity::prelude::*;

use crate::pet_metadata::PetMetadata;
use crate::pet_status::PetStatus;

/// One row of `pet`.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pet")]
pub struct Model {
    /// Client-generated key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Name, at most 30 characters.
    #[sea_orm(column_type = "String(StringLen::N(30))")]
    pub name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// The owner, if any. Not a database foreign key.
    pub owner_id: Option<Uuid>,
    /// Where the pet is in the clinic, stored as a string and checked by a `CHECK` constraint.
    pub status: PetStatus,
    /// Free-form typed details, stored as JSONB.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub metadata: Option<PetMetadata>,
    /// Number of visits; added by a later migration the DSQL way (a bare nullable column, then
    /// its default, then a batched backfill), so rows written before that migration may read
    /// `None` until the backfill reaches them.
    pub visit_count: Option<i32>,
    /// The owner (ORM relation declared with `skip_fk`: no foreign key in the database).
    #[sea_orm(belongs_to, from = "owner_id", to = "id", skip_fk)]
    pub owner: BelongsTo<Option<super::owner::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}
