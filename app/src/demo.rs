//! The walkthrough of the Sequelize sample, the SeaORM way: every step prints one line.
//!
//! It leaves the database as it found it (it deletes its rows at the end, and rows left by an
//! interrupted earlier run at the start), so it can run again and again on the same database.

use std::sync::Arc;

use entity::pet_metadata::PetMetadata;
use entity::pet_status::PetStatus;
use entity::{owner, pet, specialty, vet, vet_specialty};
use migration::{Migrator, MigratorTrait};
use sea_orm::prelude::Date as NaiveDate;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, Statement,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clinic::owners::{self, Found, NewOwner};
use crate::clinic::pets::{self, NewPet};
use crate::clinic::vets;
use crate::dsql::batch::delete_all;
use crate::dsql::locking::find_for_update;
use crate::dsql::retry::{Idempotency, RetryPolicy, refresh_catalogs, transaction};
use crate::error::{Error, Result};

/// What the demo found, for callers that check it (the tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Attempts each of the two concurrent visits took (the loser needs more than one).
    pub visit_attempts: [u32; 2],
    /// `pet.visit_count` after both visits.
    pub visit_count: i32,
    /// Whether find-or-create kept the existing owner row.
    pub kept_existing_owner: bool,
    /// Rows deleted at the end.
    pub deleted: u64,
}

const JOHN: &str = "john.doe@example.com";
const MARY: &str = "mary.major@example.com";

fn date(year: i32, month: u32, day: u32) -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| Error::Invalid(format!("no such date {year}-{month}-{day}")))
}

/// A read that touches every clinic table, for [`refresh_catalogs`] after the migrations.
pub const CLINIC_TABLES_READ: &str =
    "SELECT 1 FROM owner, pet, vet, specialty, vet_specialty LIMIT 0";

/// Applies the clinic's migrations on `db`, then takes the `OC001` that each of the pool's other
/// connections owes after their DDL ([`refresh_catalogs`]), so that [`run`]'s first statements,
/// which are not all retried, meet none.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    Ok(refresh_catalogs(db, CLINIC_TABLES_READ).await?)
}

/// Runs every step on `db`, calling `say` with one line per step.
pub async fn run(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    mut say: impl FnMut(String),
) -> Result<Summary> {
    let leftovers = delete_everything(db, policy).await?;
    if leftovers > 0 {
        say(format!(
            "Removed {leftovers} rows left by an earlier, interrupted run"
        ));
    }

    // Owners and pets.
    let john = owners::create(
        db,
        policy,
        &NewOwner {
            name: "John Doe".into(),
            city: "Anytown".into(),
            telephone: Some("555-555-5555".into()),
            email: JOHN.into(),
        },
    )
    .await?
    .value;
    let mary = owners::create(
        db,
        policy,
        &NewOwner {
            name: "Mary Major".into(),
            city: "Anycity".into(),
            telephone: None,
            email: MARY.into(),
        },
    )
    .await?
    .value;
    say(format!(
        "Created owners {} (telephone {}) and {} (no telephone)",
        john.name,
        john.telephone.as_deref().unwrap_or("-"),
        mary.name
    ));
    for (name, born, owner) in [
        ("Pet1", date(2006, 10, 25)?, &john),
        ("Pet2", date(2021, 7, 23)?, &mary),
    ] {
        let new = NewPet {
            name: name.into(),
            birth_date: born,
            owner_id: Some(owner.id),
            status: PetStatus::Waiting.to_string(),
            metadata: None,
        };
        pets::create(db, policy, &new).await?;
    }
    say("Created pets Pet1 and Pet2, each in one statement that checks its owner exists, FOR KEY SHARE (no foreign key)".into());

    let pet1 = pets::find_by_name(db, "Pet1")
        .await?
        .ok_or_else(|| Error::Invalid("Pet1 vanished".into()))?;
    let owner = pets::owner_of(db, &pet1).await?;
    say(format!(
        "Found Pet1 by name; its owner through the ORM relation is {}",
        owner.map_or_else(|| "nobody".to_owned(), |o| o.name)
    ));

    // Vets and specialties, many-to-many.
    let mut lines = Vec::new();
    for (name, specialties) in [
        ("Akua Mansa", &["Exotic"][..]),
        ("Carlos Salazar", &["Dogs", "Cats"][..]),
    ] {
        let vet = vets::create(db, name).await?;
        for specialty in specialties {
            vets::ensure_specialty(db, specialty).await?;
            vets::add_specialty(db, vet.id, specialty).await?;
        }
        let names: Vec<String> = vets::specialties_of(db, &vet)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        lines.push(format!("{} ({})", vet.name, names.join(", ")));
    }
    say(format!(
        "Vets with their specialties, read back through vet_specialty in name order: {}",
        lines.join("; ")
    ));

    // Typed JSON metadata.
    let metadata = PetMetadata {
        species: "dog".into(),
        breed: Some("Beagle".into()),
        weight_kg: Some(11.5),
        vaccinations: vec!["rabies".into(), "distemper".into()],
    };
    pets::set_metadata(db, pet1.id, metadata.clone()).await?;
    let stored = pets::find_by_name(db, "Pet1")
        .await?
        .and_then(|p| p.metadata);
    say(format!(
        "Pet1 metadata stored as JSONB and read back {}: {}",
        if stored.as_ref() == Some(&metadata) {
            "unchanged"
        } else {
            "CHANGED"
        },
        serde_json::to_string(&stored).unwrap_or_default()
    ));

    // Enum as string, with validation and the CHECK constraint.
    let updated = pets::set_status(db, pet1.id, PetStatus::InTreatment).await?;
    let refused = pets::create(
        db,
        policy,
        &NewPet {
            name: "Pet3".into(),
            birth_date: date(2020, 1, 1)?,
            owner_id: Some(john.id),
            status: "sleeping".into(),
            metadata: None,
        },
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_else(|| "NOT refused".into());
    let raw = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE pet SET status = 'sleeping' WHERE id = $1",
            [pet1.id.into()],
        ))
        .await
        .err()
        .and_then(|e| migration::dsql::sqlstate(&e))
        .unwrap_or_else(|| "none: NOT refused".into());
    say(format!(
        "Pet1 status set to {}; status \"sleeping\" refused before the database ({refused}) and, sent raw, by the CHECK constraint (SQLSTATE {raw})",
        updated.status
    ));

    // Upsert and find-or-create instead of findOrCreate.
    let upserted = owners::upsert_by_email(
        db,
        policy,
        &NewOwner {
            name: "John Doe".into(),
            city: "Othertown".into(),
            telephone: Some("555-555-5555".into()),
            email: JOHN.into(),
        },
    )
    .await?
    .value;
    say(format!(
        "Upsert by e-mail {JOHN} (INSERT … ON CONFLICT DO UPDATE … RETURNING): city {} -> {}, same id: {}",
        john.city,
        upserted.city,
        upserted.id == john.id
    ));
    let found = owners::find_or_create_by_email(
        db,
        policy,
        &NewOwner {
            name: "Mary M.".into(),
            city: "Elsewhere".into(),
            telephone: None,
            email: MARY.into(),
        },
    )
    .await?;
    let (kept, how) = &found.value;
    say(format!(
        "Find-or-create by e-mail {MARY}: {} the row (name {}, id unchanged: {})",
        if *how == Found::Existing {
            "kept"
        } else {
            "created"
        },
        kept.name,
        kept.id == mary.id
    ));

    // FOR UPDATE by primary key.
    let mary_id = mary.id;
    transaction(db, policy, Idempotency::Idempotent, |txn| {
        Box::pin(async move {
            let Some(locked) = find_for_update::<owner::Entity>(txn, mary_id).await? else {
                return Ok(());
            };
            let mut row: owner::ActiveModel = locked.into();
            row.telephone = Set(Some("555-555-0199".into()));
            row.update(txn).await?;
            Ok(())
        })
    })
    .await?;
    say("Locked Mary Major with SELECT … FOR UPDATE by primary key in a transaction and set her telephone".into());

    let orphan = pets::create(
        db,
        policy,
        &NewPet {
            name: "Stray".into(),
            birth_date: date(2022, 2, 2)?,
            owner_id: Some(Uuid::new_v4()),
            status: PetStatus::Waiting.to_string(),
            metadata: None,
        },
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_else(|| "NOT refused".into());
    say(format!("A pet for a missing owner was refused: {orphan}"));

    // A real optimistic-concurrency conflict.
    let (visit_attempts, visit_count) = concurrent_visits(db, policy, pet1.id).await?;
    say(format!(
        "Two concurrent visits to Pet1 wrote the same row: one failed with SQLSTATE 40001 and was retried; attempts {} and {}, visit_count now {visit_count}",
        visit_attempts[0], visit_attempts[1]
    ));

    let deleted = delete_everything(db, policy).await?;
    say(format!(
        "Deleted all {deleted} rows in batches of at most {} per transaction (DSQL has no TRUNCATE)",
        migration::MAX_ROWS_PER_TRANSACTION
    ));
    Ok(Summary {
        visit_attempts,
        visit_count,
        kept_existing_owner: *how == Found::Existing,
        deleted,
    })
}

/// Two visits of the same pet at once. The first reads the row, then waits until the second
/// has committed its own visit before writing: a lost update in the making, which the database
/// refuses with `40001` and [`pets::record_visit`]'s retry turns into a second attempt.
async fn concurrent_visits(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    pet_id: Uuid,
) -> Result<([u32; 2], i32)> {
    let first_has_read = Arc::new(Notify::new());
    let second_done = Arc::new(Notify::new());
    let first = async {
        let (read, done) = (first_has_read.clone(), second_done.clone());
        let result = pets::record_visit_with(db, policy, pet_id, move |attempt| {
            let (read, done) = (read.clone(), done.clone());
            Box::pin(async move {
                if attempt == 1 {
                    read.notify_one();
                    done.notified().await;
                }
            })
        })
        .await;
        // Should the first visit fail before its read, the second must not wait for it.
        first_has_read.notify_one();
        result
    };
    let second = async {
        first_has_read.notified().await;
        let result = pets::record_visit(db, policy, pet_id).await;
        second_done.notify_one();
        result
    };
    let (first, second) = tokio::join!(first, second);
    let (first, second) = (first?, second?);
    Ok((
        [first.attempts, second.attempts],
        first.value.max(second.value),
    ))
}

/// Deletes every row of every clinic table, children first; returns how many.
async fn delete_everything(db: &DatabaseConnection, policy: &RetryPolicy) -> Result<u64> {
    let batch = migration::MAX_ROWS_PER_TRANSACTION;
    Ok(
        delete_all::<vet_specialty::Entity>(db, policy, batch).await?
            + delete_all::<pet::Entity>(db, policy, batch).await?
            + delete_all::<vet::Entity>(db, policy, batch).await?
            + delete_all::<specialty::Entity>(db, policy, batch).await?
            + delete_all::<owner::Entity>(db, policy, batch).await?,
    )
}
