//! Pets: create (checking the owner without a foreign key), find, status, metadata, visits.

use entity::pet_status::PetStatus;
use entity::{owner, pet, pet_metadata::PetMetadata};
use sea_orm::prelude::Date;
use sea_orm::sea_query::{Expr, InsertStatement, LockType, OnConflict, Query, Value, ValueTuple};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, IntoActiveModel, Iterable, ModelTrait, QueryFilter,
};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::validated;
use crate::dsql::retry::{Idempotency, Retried, RetryPolicy, autocommit, transaction};
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

/// Creates a pet: [`create_many`] with one.
pub async fn create(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    new: &NewPet,
) -> Result<Retried<pet::Model>> {
    let Retried { value, attempts } = create_many(db, policy, std::slice::from_ref(new)).await?;
    let pet = value
        .into_iter()
        .next()
        .ok_or_else(|| Error::Invalid("no pet was written".to_owned()))?;
    Ok(Retried {
        value: pet,
        attempts,
    })
}

/// Creates pets of one owner (or of none) in one autocommit statement, retried on conflicts:
/// `INSERT INTO pet … SELECT … FROM (VALUES …) WHERE EXISTS (SELECT 1 FROM owner WHERE id = $1
/// FOR KEY SHARE) ON CONFLICT (id) DO NOTHING RETURNING …`. With no foreign key in the
/// database the `EXISTS` is the integrity check, and its lock makes a concurrent delete of the
/// owner conflict with this insert at commit (DSQL's `FOR KEY SHARE` on a primary-key equality;
/// inside a subquery is an assumption the recordings do not cover, checked by the real-cluster
/// tests). One round trip for any number of pets, where a transaction that reads, then writes,
/// takes four.
///
/// Idempotent in fact, as the retry is told: the keys are generated once per call and the
/// insert skips taken keys. When it returns fewer rows than it was given, the rows are read
/// back: all of this call's own (an earlier attempt committed and its answer was lost) is a
/// success; none, with an owner, means the owner does not exist; anything else is an error.
pub async fn create_many(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    news: &[NewPet],
) -> Result<Retried<Vec<pet::Model>>> {
    let Some(first) = news.first() else {
        return Ok(Retried {
            value: Vec::new(),
            attempts: 0,
        });
    };
    let owner_id = first.owner_id;
    if news.iter().any(|new| new.owner_id != owner_id) {
        return Err(Error::Invalid(
            "the pets of one call must have the same owner".to_owned(),
        ));
    }
    let mut written = Vec::with_capacity(news.len());
    for new in news {
        validated(new)?;
        let status: PetStatus = new
            .status
            .parse()
            .map_err(|err: entity::pet_status::InvalidPetStatus| Error::Invalid(err.to_string()))?;
        written.push(pet::Model {
            id: Uuid::new_v4(),
            name: new.name.clone(),
            birth_date: new.birth_date,
            owner_id,
            status,
            metadata: new.metadata.clone(),
            visit_count: Some(0),
        });
    }
    let insert = db
        .get_database_backend()
        .build(&insert_with_owner_check(owner_id, &written)?);
    let retried = autocommit(db, policy, Idempotency::Idempotent, |db| {
        Box::pin(pet::Model::find_by_statement(insert.clone()).all(db))
    })
    .await?;
    let stored = if retried.value.len() == written.len() {
        retried.value
    } else {
        let ids = written.iter().map(|pet| pet.id);
        pet::Entity::find()
            .filter(pet::Column::Id.is_in(ids))
            .all(db)
            .await?
    };
    let ordered: Option<Vec<pet::Model>> = written
        .iter()
        .map(|ours| stored.iter().find(|pet| pet.id == ours.id).cloned())
        .collect();
    match ordered {
        Some(pets) if pets == written => Ok(Retried {
            value: pets,
            attempts: retried.attempts,
        }),
        _ if stored.is_empty() && owner_id.is_some() => Err(Error::Invalid(format!(
            "owner {} does not exist",
            owner_id.unwrap_or_default()
        ))),
        _ => Err(Error::Db(DbErr::Custom(
            "pets under this call's keys exist and are not the ones it wrote".to_owned(),
        ))),
    }
}

/// `INSERT INTO pet (<every column>) SELECT column1, … FROM (VALUES <rows>) AS new_pet [WHERE EXISTS
/// (SELECT 1 FROM owner WHERE id = <owner> FOR KEY SHARE)] ON CONFLICT (id) DO NOTHING
/// RETURNING <every column>`.
fn insert_with_owner_check(owner_id: Option<Uuid>, rows: &[pet::Model]) -> Result<InsertStatement> {
    let values = rows.iter().map(|row| {
        let row = row.clone().into_active_model();
        ValueTuple::Many(
            pet::Column::iter()
                .map(|column| row.get(column).into_value().unwrap_or(Value::Bool(None)))
                .collect(),
        )
    });
    // PostgreSQL names a VALUES list's columns column1, column2, …; the insert needs each.
    let columns = (1..=pet::Column::iter().count()).map(|i| format!("column{i}"));
    let mut select = Query::select();
    select.columns(columns).from_values(values, "new_pet");
    if let Some(owner_id) = owner_id {
        select.and_where(Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(owner::Entity)
                .and_where(owner::Column::Id.eq(owner_id))
                .lock(LockType::KeyShare)
                .to_owned(),
        ));
    }
    let mut insert = Query::insert();
    insert
        .into_table(pet::Entity)
        .columns(pet::Column::iter())
        .select_from(select)
        .map_err(|err| Error::Db(DbErr::Custom(err.to_string())))?
        .on_conflict(OnConflict::column(pet::Column::Id).do_nothing().to_owned())
        .returning_all();
    Ok(insert)
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
