//! Owners: create, find, upsert by e-mail, and a race-free find-or-create.

use entity::owner;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, TryInsertResult,
};
use uuid::Uuid;
use validator::Validate;

use super::validated;
pub use crate::dsql::find_or_create::Found;
use crate::dsql::find_or_create::find_or_create;
use crate::dsql::idempotent::insert_once;
use crate::dsql::retry::{Idempotency, Retried, RetryPolicy, autocommit};
use crate::error::Result;

/// An owner as the user gives it, checked against the schema's limits before any SQL is sent.
#[derive(Clone, Debug, Validate)]
pub struct NewOwner {
    /// 1 to 30 characters.
    #[validate(length(min = 1, max = 30))]
    pub name: String,
    /// 1 to 80 characters.
    #[validate(length(min = 1, max = 80))]
    pub city: String,
    /// At most 20 characters.
    #[validate(length(max = 20))]
    pub telephone: Option<String>,
    /// A valid e-mail address of at most 255 characters; unique among owners.
    #[validate(email, length(max = 255))]
    pub email: String,
}

impl NewOwner {
    /// An active model with a fresh client-generated key. Generating the key here makes a
    /// retried insert idempotent: the second attempt writes the same row, not a new one.
    fn active_model(&self) -> owner::ActiveModel {
        owner::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(self.name.clone()),
            city: Set(self.city.clone()),
            telephone: Set(self.telephone.clone()),
            email: Set(self.email.clone()),
        }
    }
}

/// Inserts a new owner (validated first) in one autocommit statement, retried on conflicts.
/// The key is generated once per call and the insert skips a taken key ([`insert_once`]), so
/// a retry after a lost `COMMIT` answer returns the row the first attempt wrote.
pub async fn create(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    new: &NewOwner,
) -> Result<Retried<owner::Model>> {
    validated(new)?;
    let row = new.active_model();
    Ok(autocommit(db, policy, Idempotency::Idempotent, |db| {
        Box::pin(insert_once(db, row.clone()))
    })
    .await?)
}

/// The owner with this e-mail address, if any.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<owner::Model>, DbErr> {
    owner::Entity::find()
        .filter(owner::Column::Email.eq(email))
        .one(db)
        .await
}

/// Inserts the owner, or, when one with the same e-mail exists, overwrites its name, city and
/// telephone — in one autocommit statement (`INSERT … ON CONFLICT (email) DO UPDATE …
/// RETURNING`), so there is no window between a read and a write, retried on conflicts (an
/// upsert of absolute values can run twice). Returns the row as stored (the existing id is
/// kept).
pub async fn upsert_by_email(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    new: &NewOwner,
) -> Result<Retried<owner::Model>> {
    validated(new)?;
    let on_conflict = OnConflict::column(owner::Column::Email)
        .update_columns([
            owner::Column::Name,
            owner::Column::City,
            owner::Column::Telephone,
        ])
        .to_owned();
    let row = new.active_model();
    Ok(autocommit(db, policy, Idempotency::Idempotent, |db| {
        let upsert = owner::Entity::insert(row.clone()).on_conflict(on_conflict.clone());
        Box::pin(upsert.exec_with_returning(db))
    })
    .await?)
}

/// Returns the owner with `new.email`, creating it from `new` if there is none; an existing row
/// is kept as it is. Safe under concurrency: all callers end up with the same single row (see
/// [`crate::dsql::find_or_create`]); one round trip when the owner exists. The key is
/// generated once per call, so a row found with it is this call's own (an insert whose answer
/// was lost): `Created`.
pub async fn find_or_create_by_email(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    new: &NewOwner,
) -> Result<Retried<(owner::Model, Found)>> {
    validated(new)?;
    let ours = new.active_model();
    let id = ours.id.as_ref().to_owned();
    let what = format!("owner {}", new.email);
    let found = find_or_create(
        db,
        policy,
        &what,
        |db| {
            let email = new.email.clone();
            Box::pin(async move {
                Ok(find_by_email(db, &email).await?.map(|existing| {
                    let found = if existing.id == id {
                        Found::Created
                    } else {
                        Found::Existing
                    };
                    (existing, found)
                }))
            })
        },
        |db| {
            let row = ours.clone();
            Box::pin(async move {
                // Without RETURNING: SeaORM 2.0.4 reports an empty RETURNING as an error.
                let inserted = owner::Entity::insert(row.clone())
                    .on_conflict_do_nothing_on([owner::Column::Email])
                    .exec_without_returning(db)
                    .await?;
                Ok(match inserted {
                    TryInsertResult::Inserted(1) => Some(owner::Model::try_from(row)?),
                    _ => None,
                })
            })
        },
    )
    .await?;
    Ok(found)
}
