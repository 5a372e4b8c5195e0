//! Vets and their specialties, linked many-to-many through `vet_specialty`.

use entity::{specialty, vet, vet_specialty};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, ModelTrait, QueryOrder};
use uuid::Uuid;

/// Inserts a vet named `name`.
pub async fn create(db: &impl ConnectionTrait, name: &str) -> Result<vet::Model, DbErr> {
    vet::Entity::insert(vet::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.to_owned()),
    })
    .exec_with_returning(db)
    .await
}

/// Makes sure the specialty `name` exists (`INSERT … ON CONFLICT DO NOTHING` on its key).
pub async fn ensure_specialty(db: &impl ConnectionTrait, name: &str) -> Result<(), DbErr> {
    specialty::Entity::insert(specialty::ActiveModel {
        name: Set(name.to_owned()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Links the vet to the specialty, once: a second link of the same pair is a no-op (the unique
/// index on `(vet_id, specialty_name)` and `ON CONFLICT DO NOTHING`).
pub async fn add_specialty(
    db: &impl ConnectionTrait,
    vet_id: Uuid,
    specialty_name: &str,
) -> Result<(), DbErr> {
    vet_specialty::Entity::insert(vet_specialty::ActiveModel {
        id: Set(Uuid::new_v4()),
        vet_id: Set(vet_id),
        specialty_name: Set(specialty_name.to_owned()),
    })
    .on_conflict(
        OnConflict::columns([
            vet_specialty::Column::VetId,
            vet_specialty::Column::SpecialtyName,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The vet's specialties in name order, through the many-to-many relation.
pub async fn specialties_of(
    db: &impl ConnectionTrait,
    vet: &vet::Model,
) -> Result<Vec<specialty::Model>, DbErr> {
    vet.find_related(specialty::Entity)
        .order_by_asc(specialty::Column::Name)
        .all(db)
        .await
}
