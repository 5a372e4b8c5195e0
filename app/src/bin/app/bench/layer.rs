//! The two data layers the benchmarks compare, behind one interface, so that each workload is
//! written once: the app's own (SeaORM, [`app::clinic`], [`app::dsql::retry`]) and hand-written
//! raw sqlx that sends the same SQL text, with the same parameter types, on the same pool.
//!
//! Both sides take the same inputs and return the same entity models, decoded from the rows:
//! what differs is only the client-side work of getting there.

use std::future::Future;

use entity::pet_metadata::PetMetadata;
use entity::pet_status::PetStatus;
use entity::{owner, pet};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ActiveEnum, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use anyhow::{Result, anyhow};
use app::clinic::owners::{self, Found, NewOwner};
use app::clinic::pets::{self, NewPet};
use app::clinic::vets;
use app::dsql::retry::{self, ErrorClass, Idempotency, Retried, RetryPolicy};

/// Which implementation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The project's own code: SeaORM and `app::clinic`.
    App,
    /// Hand-written raw sqlx.
    Raw,
}

/// `SELECT` of every owner column, as SeaORM writes it.
macro_rules! select_owner {
    () => {
        r#"SELECT "owner"."id", "owner"."name", "owner"."city", "owner"."telephone", "owner"."email" FROM "owner" WHERE "owner"."id" = $1 LIMIT $2"#
    };
}

/// `RETURNING` every owner column.
macro_rules! returning_owner {
    () => {
        r#" RETURNING "id", "name", "city", "telephone", "email""#
    };
}

/// `INSERT` of one owner, without the `RETURNING`.
macro_rules! insert_owner {
    () => {
        r#"INSERT INTO "owner" ("id", "name", "city", "telephone", "email") VALUES ($1, $2, $3, $4, $5)"#
    };
}

/// The pet columns in table order, for `INSERT` lists and `RETURNING`.
macro_rules! pet_columns {
    () => {
        r#""id", "name", "birth_date", "owner_id", "status", "metadata", "visit_count""#
    };
}

const OWNER_BY_ID: &str = select_owner!();
const INSERT_OWNER_ONCE: &str = concat!(
    insert_owner!(),
    r#" ON CONFLICT ("id") DO NOTHING"#,
    returning_owner!()
);
const UPSERT_OWNER: &str = concat!(
    insert_owner!(),
    r#" ON CONFLICT ("email") DO UPDATE SET "name" = "excluded"."name", "city" = "excluded"."city", "telephone" = "excluded"."telephone""#,
    returning_owner!()
);
const OWNER_BY_EMAIL: &str = r#"SELECT "owner"."id", "owner"."name", "owner"."city", "owner"."telephone", "owner"."email" FROM "owner" WHERE "owner"."email" = $1 LIMIT $2"#;
const INSERT_OWNER_IF_NEW: &str = concat!(insert_owner!(), r#" ON CONFLICT ("email") DO NOTHING"#);
/// The pets insert with the owner check, up to its `VALUES` rows.
const INSERT_PETS_CHECKED: &str = concat!(
    r#"INSERT INTO "pet" ("#,
    pet_columns!(),
    r#") SELECT "column1", "column2", "column3", "column4", "column5", "column6", "column7" FROM (VALUES "#
);
const INSERT_PETS: &str = concat!(r#"INSERT INTO "pet" ("#, pet_columns!(), ") ");
const PETS_BY_ID: &str = r#"SELECT "pet"."id", "pet"."name", "pet"."birth_date", "pet"."owner_id", "pet"."status", "pet"."metadata", "pet"."visit_count" FROM "pet" WHERE "pet"."id" IN ("#;
const PET_BY_NAME: &str = r#"SELECT "pet"."id", "pet"."name", "pet"."birth_date", "pet"."owner_id", "pet"."status", "pet"."metadata", "pet"."visit_count" FROM "pet" WHERE "pet"."name" = $1 LIMIT $2"#;
const SPECIALTY_BY_NAME: &str =
    r#"SELECT "specialty"."name" FROM "specialty" WHERE "specialty"."name" = $1 LIMIT $2"#;
const ENSURE_SPECIALTY: &str =
    r#"INSERT INTO "specialty" ("name") VALUES ($1) ON CONFLICT ("name") DO NOTHING"#;
const INCREMENT: &str = r#"UPDATE "bench_counter" SET "n" = "n" + $1 WHERE "id" = $2"#;
const OWNER_WITH_PETS: &str = r#"SELECT "owner"."id" AS "A_id", "owner"."name" AS "A_name", "owner"."city" AS "A_city", "owner"."telephone" AS "A_telephone", "owner"."email" AS "A_email", "pet"."id" AS "B_id", "pet"."name" AS "B_name", "pet"."birth_date" AS "B_birth_date", "pet"."owner_id" AS "B_owner_id", "pet"."status" AS "B_status", "pet"."metadata" AS "B_metadata", "pet"."visit_count" AS "B_visit_count" FROM "owner" LEFT JOIN "pet" ON "owner"."id" = "pet"."owner_id" WHERE "owner"."id" = $1 ORDER BY "owner"."id" ASC"#;

/// The `LIMIT` SeaORM's `one()` binds (as a 64-bit integer).
const ONE: i64 = 1;

/// One side's data operations over the session's pool. Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    side: Side,
    db: DatabaseConnection,
    pool: PgPool,
    policy: RetryPolicy,
}

impl Layer {
    /// `side`'s operations; the app side uses `db` and retries with `policy`, the raw side uses
    /// `pool` (the same pool) and retries (contention only) with the same `policy`.
    pub(crate) fn new(
        side: Side,
        db: DatabaseConnection,
        pool: PgPool,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            side,
            db,
            pool,
            policy,
        }
    }

    /// The same layer, retrying with `policy`.
    pub(crate) fn with_policy(self, policy: RetryPolicy) -> Self {
        Self { policy, ..self }
    }

    /// Untimed, the same on both sides: `ANALYZE owner`, then `ANALYZE pet` (DSQL accepts
    /// `ANALYZE`; it runs the job itself as well). Run between the phases of a pass, so that
    /// each phase is planned on statistics of the rows it reads: without it, whether the
    /// server's autovacuum has analyzed the freshly filled tables yet decides between a scan
    /// and an index lookup, and the phases of one side can be planned worse than the other's.
    pub(crate) async fn analyze(&self) -> Result<()> {
        for statement in ["ANALYZE owner", "ANALYZE pet"] {
            sqlx::raw_sql(statement).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Inserts an owner with a fresh client-generated key in one autocommit statement,
    /// retried on conflicts; returns the stored row. The raw side sends what
    /// [`owners::create`] sends: `INSERT … ON CONFLICT ("id") DO NOTHING RETURNING …`, and,
    /// only when the key is taken (an earlier attempt committed), the row read back by key.
    pub(crate) async fn create_owner(&self, new: &NewOwner) -> Result<owner::Model> {
        match self.side {
            Side::App => Ok(owners::create(&self.db, &self.policy, new).await?.value),
            Side::Raw => {
                let id = Uuid::new_v4();
                let (row, _) = self
                    .raw_retry(Idempotency::Idempotent, || async {
                        bind_owner(sqlx::query(INSERT_OWNER_ONCE), id, new)
                            .fetch_optional(&self.pool)
                            .await
                    })
                    .await?;
                let ours = owner_model(id, new);
                match row {
                    Some(row) => Ok(owner_at(&row, 0)?),
                    None => match self.owner_by_id(id).await? {
                        Some(stored) if stored == ours => Ok(stored),
                        _ => Err(anyhow!("an owner under this call's key is not its own")),
                    },
                }
            }
        }
    }

    /// The owner with primary key `id`.
    pub(crate) async fn owner_by_id(&self, id: Uuid) -> Result<Option<owner::Model>> {
        match self.side {
            Side::App => Ok(owner::Entity::find_by_id(id).one(&self.db).await?),
            Side::Raw => {
                let row = sqlx::query(OWNER_BY_ID)
                    .bind(id)
                    .bind(ONE)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| owner_at(&r, 0)).transpose()?)
            }
        }
    }

    /// Inserts the owner or overwrites name, city and telephone of the one with its e-mail, in
    /// one autocommit statement retried on conflicts (an upsert of absolute values is
    /// idempotent).
    pub(crate) async fn upsert_owner(&self, new: &NewOwner) -> Result<owner::Model> {
        match self.side {
            Side::App => Ok(owners::upsert_by_email(&self.db, &self.policy, new)
                .await?
                .value),
            Side::Raw => {
                let id = Uuid::new_v4();
                let (row, _) = self
                    .raw_retry(Idempotency::Idempotent, || async {
                        bind_owner(sqlx::query(UPSERT_OWNER), id, new)
                            .fetch_one(&self.pool)
                            .await
                    })
                    .await?;
                Ok(owner_at(&row, 0)?)
            }
        }
    }

    /// The owner with the e-mail of `new`, created from `new` if there is none, race-free.
    /// The raw side is what [`owners::find_or_create_by_email`] sends: a find by e-mail, then,
    /// if none, `INSERT … ON CONFLICT ("email") DO NOTHING`, each its own autocommit statement
    /// retried on conflicts, until one of them yields the row.
    pub(crate) async fn find_or_create_owner(
        &self,
        new: &NewOwner,
    ) -> Result<(owner::Model, Found)> {
        match self.side {
            Side::App => Ok(owners::find_or_create_by_email(&self.db, &self.policy, new)
                .await?
                .value),
            Side::Raw => {
                let id = Uuid::new_v4();
                for _ in 0..self.policy.max_attempts.max(1) {
                    let (found, _) = self
                        .raw_retry(Idempotency::Idempotent, || async {
                            sqlx::query(OWNER_BY_EMAIL)
                                .bind(&new.email)
                                .bind(ONE)
                                .fetch_optional(&self.pool)
                                .await
                        })
                        .await?;
                    if let Some(row) = found {
                        let existing = owner_at(&row, 0)?;
                        let found = if existing.id == id {
                            Found::Created
                        } else {
                            Found::Existing
                        };
                        return Ok((existing, found));
                    }
                    let (inserted, _) = self
                        .raw_retry(Idempotency::Idempotent, || async {
                            bind_owner(sqlx::query(INSERT_OWNER_IF_NEW), id, new)
                                .execute(&self.pool)
                                .await
                        })
                        .await?;
                    if inserted.rows_affected() == 1 {
                        return Ok((owner_model(id, new), Found::Created));
                    }
                }
                Err(anyhow!(format!(
                    "owner {} kept being created and removed concurrently",
                    new.email
                )))
            }
        }
    }

    /// Creates pets of one owner in one autocommit statement that checks the owner exists
    /// (`… WHERE EXISTS (SELECT … FROM owner … FOR KEY SHARE)`), retried on conflicts; the app
    /// side is [`pets::create_many`]. The raw side sends the same statement, and reads the
    /// rows back by key only when fewer came back than were sent, as the app does.
    pub(crate) async fn create_pets(&self, news: &[NewPet]) -> Result<Vec<pet::Model>> {
        match self.side {
            Side::App => Ok(pets::create_many(&self.db, &self.policy, news).await?.value),
            Side::Raw => {
                let owner_id = news.first().and_then(|new| new.owner_id);
                let ids: Vec<Uuid> = news.iter().map(|_| Uuid::new_v4()).collect();
                let sql = insert_pets_checked(news.len(), owner_id.is_some());
                let (rows, _) = self
                    .raw_retry(Idempotency::Idempotent, || {
                        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                        for (new, id) in news.iter().zip(&ids) {
                            query = query
                                .bind(*id)
                                .bind(&new.name)
                                .bind(new.birth_date)
                                .bind(owner_id)
                                .bind(&new.status)
                                .bind(new.metadata.as_ref().map(Json))
                                .bind(Some(0_i32));
                        }
                        if let Some(owner_id) = owner_id {
                            query = query.bind(1_i32).bind(owner_id);
                        }
                        query.fetch_all(&self.pool)
                    })
                    .await?;
                let rows = if rows.len() == news.len() {
                    rows
                } else {
                    let sql = pets_by_id(ids.len());
                    let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
                    for id in &ids {
                        query = query.bind(*id);
                    }
                    query.fetch_all(&self.pool).await?
                };
                let mut stored = Vec::with_capacity(rows.len());
                for row in &rows {
                    stored.extend(pet_at(row, 0)?);
                }
                let ordered: Option<Vec<pet::Model>> = ids
                    .iter()
                    .map(|id| stored.iter().find(|pet| pet.id == *id).cloned())
                    .collect();
                ordered
                    .filter(|pets| pets.len() == news.len())
                    .ok_or_else(|| anyhow!("owner {owner_id:?} does not exist"))
            }
        }
    }

    /// The first pet with this name.
    pub(crate) async fn pet_by_name(&self, name: &str) -> Result<Option<pet::Model>> {
        match self.side {
            Side::App => Ok(pets::find_by_name(&self.db, name).await?),
            Side::Raw => {
                let row = sqlx::query(PET_BY_NAME)
                    .bind(name)
                    .bind(ONE)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| pet_at(&r, 0)).transpose()?.flatten())
            }
        }
    }

    /// The specialty `name`, created if there is none, race-free: the app side is
    /// [`vets::find_or_create_specialty`]; the raw side sends the same statements (a find by
    /// key, then, if none, `INSERT … ON CONFLICT DO NOTHING`, each its own autocommit
    /// statement) retried the same way, by hand.
    pub(crate) async fn find_or_create_specialty(&self, name: &str) -> Result<Found> {
        match self.side {
            Side::App => Ok(vets::find_or_create_specialty(&self.db, &self.policy, name)
                .await?
                .value
                .1),
            Side::Raw => {
                for _ in 0..self.policy.max_attempts.max(1) {
                    let (existing, _) = self
                        .raw_retry(Idempotency::Idempotent, || async {
                            sqlx::query(SPECIALTY_BY_NAME)
                                .bind(name)
                                .bind(ONE)
                                .fetch_optional(&self.pool)
                                .await
                        })
                        .await?;
                    if let Some(row) = existing {
                        let _: String = row.try_get(0)?;
                        return Ok(Found::Existing);
                    }
                    let (inserted, _) = self
                        .raw_retry(Idempotency::Idempotent, || async {
                            sqlx::query(ENSURE_SPECIALTY)
                                .bind(name)
                                .execute(&self.pool)
                                .await
                        })
                        .await?;
                    if inserted.rows_affected() == 1 {
                        return Ok(Found::Created);
                    }
                }
                Err(anyhow!(format!(
                    "specialty {name} kept being created and removed concurrently"
                )))
            }
        }
    }

    /// The owner `id` with its pets, in one query (`LEFT JOIN`); the app side is SeaORM's
    /// `find_with_related`.
    pub(crate) async fn owner_with_pets(
        &self,
        id: Uuid,
    ) -> Result<Option<(owner::Model, Vec<pet::Model>)>> {
        match self.side {
            Side::App => Ok(owner::Entity::find_by_id(id)
                .find_with_related(pet::Entity)
                .all(&self.db)
                .await?
                .pop()),
            Side::Raw => {
                let rows = sqlx::query(OWNER_WITH_PETS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                let Some(first) = rows.first() else {
                    return Ok(None);
                };
                let owner = owner_at(first, 0)?;
                let mut pets = Vec::with_capacity(rows.len());
                for row in &rows {
                    pets.extend(pet_at(row, 5)?);
                }
                Ok(Some((owner, pets)))
            }
        }
    }

    /// Inserts `rows` (at most 3,000) with one multi-row `INSERT` in one transaction; the app
    /// side is SeaORM's `insert_many` through [`retry::transaction`]. Returns the rows inserted.
    pub(crate) async fn insert_pets(&self, rows: &[pet::Model]) -> Result<u64> {
        match self.side {
            Side::App => {
                let retried =
                    // A plain multi-row INSERT: run again after a lost COMMIT answer it
                    // would meet its own keys, so it is not declared idempotent.
                    retry::transaction(&self.db, &self.policy, Idempotency::NotIdempotent, |txn| {
                        let models = rows.iter().map(|p| pet::ActiveModel {
                            id: Set(p.id),
                            name: Set(p.name.clone()),
                            birth_date: Set(p.birth_date),
                            owner_id: Set(p.owner_id),
                            status: Set(p.status),
                            metadata: Set(p.metadata.clone()),
                            visit_count: Set(p.visit_count),
                        });
                        let insert = pet::Entity::insert_many(models);
                        Box::pin(async move { insert.exec_without_returning(txn).await })
                    })
                    .await?;
                Ok(retried.value)
            }
            Side::Raw => {
                let mut insert = QueryBuilder::<Postgres>::new(INSERT_PETS);
                insert.push_values(rows, |mut values, p| {
                    values
                        .push_bind(p.id)
                        .push_bind(&p.name)
                        .push_bind(p.birth_date)
                        .push_bind(p.owner_id)
                        .push_bind(p.status.to_value())
                        .push_bind(p.metadata.as_ref().map(Json))
                        .push_bind(p.visit_count);
                });
                let mut tx = self.pool.begin().await?;
                let inserted = insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(inserted.rows_affected())
            }
        }
    }

    /// Adds one to `n` of row `id` of the contention workload's `bench_counter` in its own
    /// transaction, retried on conflicts with this layer's policy as not idempotent. Returns
    /// the attempts it took.
    ///
    /// The app side is [`retry::transaction`] with a sea-query `UPDATE`; the raw side is a
    /// hand-written loop over the same statement that retries what [`retry::classify`] calls
    /// a conflict or transient, after [`RetryPolicy::delay`].
    pub(crate) async fn increment(&self, id: i32) -> Result<u32> {
        match self.side {
            Side::App => {
                // In this block only: its blanket `max` would shadow `Ord::max` below.
                use sea_orm::sea_query::ExprTrait;
                let update = Query::update()
                    .table(Alias::new("bench_counter"))
                    .value(Alias::new("n"), Expr::col(Alias::new("n")).add(1))
                    .and_where(Expr::col(Alias::new("id")).eq(id))
                    .to_owned();
                let retried: Retried<u64> =
                    retry::transaction(&self.db, &self.policy, Idempotency::NotIdempotent, |txn| {
                        let update = update.clone();
                        Box::pin(async move { Ok(txn.execute(&update).await?.rows_affected()) })
                    })
                    .await?;
                Ok(retried.attempts)
            }
            Side::Raw => Ok(self
                .raw_retry(Idempotency::NotIdempotent, || self.raw_increment(id))
                .await?
                .1),
        }
    }

    /// Runs `attempt` (one raw transaction, or one autocommit statement) until it succeeds,
    /// as the app's retry would: again after [`RetryPolicy::delay`] on what
    /// [`retry::classify`] calls a conflict, a stale catalog or transient, and, for
    /// `Idempotent` work, on a lost connection or `XX000` too (the outcome of its commit is
    /// unknown, and running it again is harmless); at most `max_attempts` times. Returns the
    /// value and the attempts it took.
    async fn raw_retry<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<(T, u32)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let max_attempts = self.policy.max_attempts.max(1);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match attempt().await {
                Ok(value) => return Ok((value, attempts)),
                Err(e) => retry::statement_error(e),
            };
            let retryable = match retry::classify(&err) {
                ErrorClass::Conflict | ErrorClass::SchemaChanged | ErrorClass::Transient => true,
                ErrorClass::ConnectionLost | ErrorClass::Unavailable => {
                    idempotency == Idempotency::Idempotent
                }
                ErrorClass::Permanent => false,
            };
            if !retryable {
                return Err(err.into());
            }
            if attempts >= max_attempts {
                return Err(app::dsql::Error::RetriesExhausted {
                    attempts,
                    last: err,
                }
                .into());
            }
            tokio::time::sleep(self.policy.delay(attempts)).await;
        }
    }

    /// One raw attempt of [`increment`](Self::increment): `BEGIN`, the `UPDATE`, `COMMIT`.
    async fn raw_increment(&self, id: i32) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(INCREMENT)
            .bind(1_i32)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// [`INSERT_PETS_CHECKED`] for `rows` pets, with the owner check when `checked`, numbered as
/// sea-query numbers it: the rows' parameters first, then the check's `1` and owner key.
fn insert_pets_checked(rows: usize, checked: bool) -> String {
    let mut sql = INSERT_PETS_CHECKED.to_owned();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=7).map(|c| format!("${}", r * 7 + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    sql.push_str(&values.join(", "));
    sql.push_str(r#") AS "new_pet""#);
    if checked {
        let next = rows * 7;
        sql.push_str(&format!(
            r#" WHERE EXISTS(SELECT ${} FROM "owner" WHERE "owner"."id" = ${} FOR KEY SHARE)"#,
            next + 1,
            next + 2
        ));
    }
    sql.push_str(r#" ON CONFLICT ("id") DO NOTHING RETURNING *"#);
    sql
}

/// [`PETS_BY_ID`] for `ids` keys.
fn pets_by_id(ids: usize) -> String {
    let params: Vec<String> = (1..=ids).map(|i| format!("${i}")).collect();
    format!("{PETS_BY_ID}{})", params.join(", "))
}

/// Binds `id` and the owner's columns to an owner `INSERT`.
fn bind_owner<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    id: Uuid,
    new: &'q NewOwner,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(id)
        .bind(&new.name)
        .bind(&new.city)
        .bind(&new.telephone)
        .bind(&new.email)
}

/// The owner row `new` describes, with key `id`.
fn owner_model(id: Uuid, new: &NewOwner) -> owner::Model {
    owner::Model {
        id,
        name: new.name.clone(),
        city: new.city.clone(),
        telephone: new.telephone.clone(),
        email: new.email.clone(),
    }
}

/// The owner in the five columns from `at`.
fn owner_at(row: &PgRow, at: usize) -> Result<owner::Model, sqlx::Error> {
    Ok(owner::Model {
        id: row.try_get(at)?,
        name: row.try_get(at + 1)?,
        city: row.try_get(at + 2)?,
        telephone: row.try_get(at + 3)?,
        email: row.try_get(at + 4)?,
    })
}

/// The pet in the seven columns from `at`, or `None` when its key is `NULL` (a `LEFT JOIN`
/// that found no pet).
fn pet_at(row: &PgRow, at: usize) -> Result<Option<pet::Model>, sqlx::Error> {
    let Some(id) = row.try_get::<Option<Uuid>, _>(at)? else {
        return Ok(None);
    };
    let status: String = row.try_get(at + 4)?;
    let metadata: Option<Json<PetMetadata>> = row.try_get(at + 5)?;
    Ok(Some(pet::Model {
        id,
        name: row.try_get(at + 1)?,
        birth_date: row.try_get(at + 2)?,
        owner_id: row.try_get(at + 3)?,
        status: status
            .parse::<PetStatus>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        metadata: metadata.map(|Json(m)| m),
        visit_count: row.try_get(at + 6)?,
    }))
}

/// Reads a count (`SELECT count(*)` or a sum cast to `bigint`) back for a check.
pub(crate) async fn count(pool: &PgPool, sql: &'static str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app's statement for two pets of one owner ([`pets::create_many`]), as sqlx logs it.
    const APP_PETS_INSERT: &str = r#"INSERT INTO "pet" ("id", "name", "birth_date", "owner_id", "status", "metadata", "visit_count") SELECT "column1", "column2", "column3", "column4", "column5", "column6", "column7" FROM (VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)) AS "new_pet" WHERE EXISTS(SELECT $15 FROM "owner" WHERE "owner"."id" = $16 FOR KEY SHARE) ON CONFLICT ("id") DO NOTHING RETURNING *"#;

    #[test]
    fn the_raw_pets_insert_is_the_apps_statement() {
        assert_eq!(insert_pets_checked(2, true), APP_PETS_INSERT);
        assert!(!insert_pets_checked(1, false).contains("EXISTS"));
        assert_eq!(
            pets_by_id(2),
            format!(r#"{PETS_BY_ID}$1, $2)"#),
            "the read-back after a lost answer"
        );
    }
}
