//! Vets and their specialties, linked many-to-many through `vet_specialty`.

use entity::{specialty, vet, vet_specialty};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ModelTrait,
    QueryOrder, TryInsert, TryInsertResult,
};
use uuid::Uuid;

use crate::dsql::find_or_create::{Found, find_or_create};
use crate::dsql::retry::{Retried, RetryPolicy};
use crate::error::Result;

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
    specialty_if_new(name).exec_without_returning(db).await?;
    Ok(())
}

/// Returns the specialty `name`, creating it if there is none; race-free (see
/// [`crate::dsql::find_or_create`]), so concurrent callers end up with the one row, in one
/// round trip when it exists. The name is the whole row, so a row written by an earlier
/// attempt whose answer was lost cannot be told from a concurrent caller's: it is reported as
/// `Existing`.
pub async fn find_or_create_specialty(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    name: &str,
) -> Result<Retried<(specialty::Model, Found)>> {
    let what = format!("specialty {name}");
    let found = find_or_create(
        db,
        policy,
        &what,
        |db| {
            let name = name.to_owned();
            Box::pin(async move {
                let existing = specialty::Entity::find_by_id(name).one(db).await?;
                Ok(existing.map(|row| (row, Found::Existing)))
            })
        },
        |db| {
            let name = name.to_owned();
            Box::pin(async move {
                Ok(
                    match specialty_if_new(&name).exec_without_returning(db).await? {
                        TryInsertResult::Inserted(1) => Some(specialty::Model { name }),
                        _ => None,
                    },
                )
            })
        },
    )
    .await?;
    Ok(found)
}

/// `INSERT INTO specialty (name) VALUES (name) ON CONFLICT DO NOTHING`.
fn specialty_if_new(name: &str) -> TryInsert<specialty::ActiveModel> {
    specialty::Entity::insert(specialty::ActiveModel {
        name: Set(name.to_owned()),
    })
    .on_conflict_do_nothing()
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
