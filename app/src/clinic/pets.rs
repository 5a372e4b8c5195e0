//! Pets: create (checking the owner without a foreign key), find, status, metadata, visits.

use entity::pet_status::PetStatus;
use entity::{owner, pet, pet_metadata::PetMetadata};
use sea_orm::prelude::Date;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, ModelTrait, QueryFilter, TryIntoModel,
};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::validated;
use crate::dsql::locking::find_for_key_share;
use crate::dsql::retry::{Idempotency, Retried, RetryPolicy, transaction};
use crate::error::{Error, Result};

/// A pet as the user gives it. `status` is free text from the user and is checked against
/// [`PetStatus`] before any SQL is sent.
#[derive(Clone, Debug, Validate)]
pub struct NewPet {
    /// 1 to 30 characters.
    #[validate(length(min = 1, max = 30))]
    pub name: String,
    /// Date of birth.
    pub birth_date: Date,
    /// The owner, who must exist.
    pub owner_id: Option<Uuid>,
    /// One of [`PetStatus`]'s stored values.
    #[validate(custom(function = "valid_status"))]
    pub status: String,
    /// Optional typed details.
    pub metadata: Option<PetMetadata>,
}

fn valid_status(status: &str) -> Result<(), ValidationError> {
    status.parse::<PetStatus>().map(|_| ()).map_err(|err| {
        let mut error = ValidationError::new("pet_status");
        error.message = Some(err.to_string().into());
        error
    })
}

/// Creates a pet in one retried transaction. When it has an owner, the owner row is read
/// `FOR KEY SHARE` first: with no foreign key in the database this is the integrity check, and
/// the lock makes a concurrent delete of the owner conflict with this insert at commit.
///
/// Idempotent in fact, as the retry is told: the key is generated once per call, and the
/// insert is `ON CONFLICT (id) DO NOTHING`. If an earlier attempt committed and its answer was
/// lost, the next attempt inserts nothing, reads the row back and returns it when it is this
/// call's write; a different row under the same key is an error, never reported as created.
pub async fn create(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    new: &NewPet,
) -> Result<Retried<pet::Model>> {
    validated(new)?;
    let status: PetStatus = new
        .status
        .parse()
        .map_err(|err: entity::pet_status::InvalidPetStatus| Error::Invalid(err.to_string()))?;
    let id = Uuid::new_v4();
    let retried = transaction(db, policy, Idempotency::Idempotent, |txn| {
        let new = new.clone();
        Box::pin(async move {
            if let Some(owner_id) = new.owner_id
                && find_for_key_share::<owner::Entity>(txn, owner_id)
                    .await?
                    .is_none()
            {
                return Ok(None);
            }
            let row = pet::ActiveModel {
                id: Set(id),
                name: Set(new.name),
                birth_date: Set(new.birth_date),
                owner_id: Set(new.owner_id),
                status: Set(status),
                metadata: Set(new.metadata),
                visit_count: Set(Some(0)),
            };
            let written: pet::Model = row.clone().try_into_model()?;
            let inserted = pet::Entity::insert(row)
                .on_conflict(OnConflict::column(pet::Column::Id).do_nothing().to_owned())
                .exec_with_returning(txn)
                .await;
            match inserted {
                Ok(model) => Ok(Some(model)),
                // SeaORM's answer to an insert that `DO NOTHING` skipped: the key is taken.
                Err(DbErr::RecordNotFound(_)) => {
                    match pet::Entity::find_by_id(id).one(txn).await? {
                        Some(stored) if stored == written => Ok(Some(stored)),
                        _ => Err(DbErr::Custom(format!(
                            "pet {id} exists and is not the one this call wrote"
                        ))),
                    }
                }
                Err(other) => Err(other),
            }
        })
    })
    .await?;
    retried.required(|| {
        Error::Invalid(format!(
            "owner {} does not exist",
            new.owner_id.unwrap_or_default()
        ))
    })
}

/// The first pet with this name, if any.
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<pet::Model>, DbErr> {
    pet::Entity::find()
        .filter(pet::Column::Name.eq(name))
        .one(db)
        .await
}

/// The pet's owner, through the ORM relation (there is no foreign key to follow).
pub async fn owner_of(
    db: &impl ConnectionTrait,
    pet: &pet::Model,
) -> Result<Option<owner::Model>, DbErr> {
    pet.find_related(owner::Entity).one(db).await
}

/// Sets the status of the pet `id`; returns the updated row.
pub async fn set_status(
    db: &impl ConnectionTrait,
    id: Uuid,
    status: PetStatus,
) -> Result<pet::Model, DbErr> {
    pet::ActiveModel {
        id: Set(id),
        status: Set(status),
        ..Default::default()
    }
    .update(db)
    .await
}

/// Replaces the metadata of the pet `id`; returns the updated row.
pub async fn set_metadata(
    db: &impl ConnectionTrait,
    id: Uuid,
    metadata: PetMetadata,
) -> Result<pet::Model, DbErr> {
    pet::ActiveModel {
        id: Set(id),
        metadata: Set(Some(metadata)),
        ..Default::default()
    }
    .update(db)
    .await
}

/// Counts one visit of the pet `id` in a retried transaction: the row is read by primary key and
/// written back incremented. Two concurrent visits write the same row, so one of them fails
/// with `40001` (at its `UPDATE` on PostgreSQL, at `COMMIT` on DSQL) and runs again on a fresh
/// snapshot: no visit is lost. Not idempotent: a `COMMIT` lost in transit is reported, not
/// retried. Returns the new count.
pub async fn record_visit(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    id: Uuid,
) -> Result<Retried<i32>> {
    record_visit_with(db, policy, id, |_| Box::pin(async {})).await
}

/// [`record_visit`], awaiting `between(attempt)` after the read and before the write — where a
/// demonstration or a test can let a concurrent transaction commit first.
pub async fn record_visit_with<F>(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    id: Uuid,
    between: F,
) -> Result<Retried<i32>>
where
    F: Fn(u32) -> Pin<Box<dyn Future<Output = ()> + Send>> + Sync,
{
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let retried = transaction(db, policy, Idempotency::NotIdempotent, |txn| {
        let attempt = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let pause = between(attempt);
        Box::pin(async move {
            let Some(pet) = pet::Entity::find_by_id(id).one(txn).await? else {
                return Ok(None);
            };
            pause.await;
            let visits = pet.visit_count.unwrap_or(0) + 1;
            pet::ActiveModel {
                id: Set(id),
                visit_count: Set(Some(visits)),
                ..Default::default()
            }
            .update(txn)
            .await?;
            Ok(Some(visits))
        })
    })
    .await?;
    retried.required(|| Error::Invalid(format!("pet {id} does not exist")))
}
