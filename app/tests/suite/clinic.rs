//! The clinic's data operations and the demo, on the local DSQL-strict server.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};

use app::clinic::owners::{self, NewOwner};
use app::clinic::pets::{self, NewPet};
use app::dsql::Error as DsqlError;
#[cfg(feature = "front-door")]
use app::dsql::retry::autocommit;
use app::dsql::retry::{Idempotency, RetryPolicy, transaction};
use app::error::Error;
use common::{admin_db, fresh_database, user_db};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, Statement,
};

async fn migrated(purpose: &str) -> DatabaseConnection {
    let db = admin_db(&fresh_database(purpose).await).await;
    Migrator::up(&db, None).await.expect("migrate");
    db
}

fn owner(email: &str) -> NewOwner {
    NewOwner {
        name: "Ann Owner".into(),
        city: "Anytown".into(),
        telephone: None,
        email: email.into(),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(10),
    }
}

async fn owners_count(db: &DatabaseConnection) -> u64 {
    entity::owner::Entity::find()
        .count(db)
        .await
        .expect("count")
}

/// How the demo's lines begin: one per step of the walkthrough (the Sequelize sample's steps
/// plus the DSQL-specific ones), on a database with no rows left from an earlier run.
const DEMO_STEPS: [&str; 12] = [
    "Created owners",
    "Created pets",
    "Found Pet1 by name",
    "Vets with their specialties",
    "Pet1 metadata stored as JSONB and read back unchanged",
    "Pet1 status set to in_treatment; status \"sleeping\" refused before the database",
    "Upsert by e-mail",
    "Find-or-create by e-mail mary.major@example.com: kept the row",
    "Locked Mary Major with SELECT … FOR UPDATE by primary key",
    "A pet for a missing owner was refused",
    "Two concurrent visits to Pet1",
    "Deleted all 12 rows in batches",
];

fn assert_demo_steps(lines: &[String]) {
    assert_eq!(lines.len(), DEMO_STEPS.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(DEMO_STEPS) {
        assert!(
            line.starts_with(start),
            "{line:?} should start with {start:?}"
        );
    }
}

#[tokio::test]
async fn the_demo_runs_twice_in_a_row_as_admin() {
    let db = migrated("demo_admin").await;
    for run in 1..=2 {
        let mut lines = Vec::new();
        let summary = app::demo::run(&db, &fast_policy(), |line| lines.push(line))
            .await
            .unwrap_or_else(|e| panic!("demo run {run}: {e}"));
        assert_demo_steps(&lines);
        let mut attempts = summary.visit_attempts;
        attempts.sort_unstable();
        assert_eq!(
            attempts,
            [1, 2],
            "one visit lost the race and was retried once"
        );
        assert_eq!(summary.visit_count, 2, "no visit was lost");
        assert!(summary.kept_existing_owner);
        // 2 owners, 2 pets, 2 vets, 3 specialties, 3 links.
        assert_eq!(summary.deleted, 12);
        assert_eq!(owners_count(&db).await, 0);
    }
}

#[tokio::test]
async fn the_demo_runs_as_a_non_admin_user_in_myschema() {
    let database = fresh_database("demo_user").await;
    let db = user_db(&database, "clinic_demo_user").await;
    Migrator::up(&db, None).await.expect("migrate myschema");
    let mut lines = Vec::new();
    app::demo::run(&db, &fast_policy(), |line| lines.push(line))
        .await
        .expect("demo");
    assert_demo_steps(&lines);
    let pet_tables: i64 = common::one_value(
        &db,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'myschema' AND tablename = 'pet'",
    )
    .await;
    assert_eq!(pet_tables, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_find_or_create_calls_end_with_one_row_and_one_id() {
    let db = migrated("find_or_create").await;
    let policy = RetryPolicy {
        max_attempts: 10,
        ..fast_policy()
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let db = db.clone();
        calls.spawn(async move {
            owners::find_or_create_by_email(&db, &policy, &owner("race@example.com"))
                .await
                .map(|found| found.value.0.id)
        });
    }
    let ids: std::collections::BTreeSet<_> = calls
        .join_all()
        .await
        .into_iter()
        .map(|id| id.expect("find-or-create"))
        .collect();
    assert_eq!(ids.len(), 1, "every caller sees the same id");
    assert_eq!(owners_count(&db).await, 1);
}

#[tokio::test]
async fn upsert_overwrites_the_existing_row_and_keeps_its_id() {
    let db = migrated("upsert").await;
    let first = owners::upsert_by_email(&db, &fast_policy(), &owner("up@example.com"))
        .await
        .expect("insert")
        .value;
    let second = owners::upsert_by_email(
        &db,
        &fast_policy(),
        &NewOwner {
            city: "Othertown".into(),
            telephone: Some("555-0100".into()),
            ..owner("up@example.com")
        },
    )
    .await
    .expect("update")
    .value;
    assert_eq!(second.id, first.id);
    assert_eq!(second.city, "Othertown");
    assert_eq!(second.telephone.as_deref(), Some("555-0100"));
    assert_eq!(owners_count(&db).await, 1);
}

/// Runs a set-up statement, retried on conflicts as the migrations are: after DDL on one
/// pooled connection, the others answer `OC001` once.
async fn exec(db: &DatabaseConnection, sql: &str) {
    migration::dsql::retry_on_conflict(sql, || db.execute_unprepared(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A transaction that reads a counter, lets another session change it, then writes it: under
/// repeatable read (and on DSQL) the write fails with 40001. `conflicting_attempts` says how
/// many attempts get the interference.
async fn increment_with_interference(
    db: &DatabaseConnection,
    policy: &RetryPolicy,
    conflicting_attempts: u32,
    attempts: &AtomicU32,
) -> Result<app::dsql::retry::Retried<()>, DsqlError> {
    transaction(db, policy, Idempotency::NotIdempotent, |txn| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        // The attempt's future may borrow only the transaction (as with SeaORM's own
        // `transaction`), so the other session uses a clone of the pool handle.
        let other_session = db.clone();
        Box::pin(async move {
            txn.execute_unprepared("SELECT n FROM counter WHERE id = 1")
                .await?;
            if attempt <= conflicting_attempts {
                exec(
                    &other_session,
                    "UPDATE counter SET n = n + 100 WHERE id = 1",
                )
                .await;
            }
            txn.execute_unprepared("UPDATE counter SET n = n + 1 WHERE id = 1")
                .await?;
            Ok(())
        })
    })
    .await
}

async fn counter(db: &DatabaseConnection) -> i32 {
    common::one_value(db, "SELECT n FROM counter").await
}

#[tokio::test]
async fn the_retry_fires_on_a_real_conflict_and_gives_up_after_its_bound() {
    let db = migrated("retry").await;
    exec(
        &db,
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
    )
    .await;
    exec(&db, "INSERT INTO counter VALUES (1, 0)").await;
    let policy = fast_policy();

    let attempts = AtomicU32::new(0);
    let retried = increment_with_interference(&db, &policy, 1, &attempts)
        .await
        .expect("second attempt succeeds");
    assert_eq!(retried.attempts, 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        counter(&db).await,
        101,
        "the interfering write and one increment"
    );

    let attempts = AtomicU32::new(0);
    let bounded = RetryPolicy {
        max_attempts: 3,
        ..policy
    };
    match increment_with_interference(&db, &bounded, u32::MAX, &attempts).await {
        Err(DsqlError::RetriesExhausted { attempts: n, last }) => {
            assert_eq!(n, 3);
            assert_eq!(migration::dsql::sqlstate(&last).as_deref(), Some("40001"));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        counter(&db).await,
        401,
        "only the interfering writes landed"
    );
}

#[tokio::test]
async fn a_unique_violation_is_not_retried() {
    let db = migrated("no_retry").await;
    owners::create(&db, &fast_policy(), &owner("dup@example.com"))
        .await
        .expect("first");
    let attempts = AtomicU32::new(0);
    let result = transaction(&db, &fast_policy(), Idempotency::Idempotent, |txn| {
        attempts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            txn.execute_unprepared(
                "INSERT INTO owner (name, city, email) VALUES ('X', 'Y', 'dup@example.com')",
            )
            .await?;
            Ok(())
        })
    })
    .await;
    match result {
        Err(DsqlError::Db(err)) => {
            assert_eq!(migration::dsql::sqlstate(&err).as_deref(), Some("23505"))
        }
        other => panic!("expected the unique violation, got {other:?}"),
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_input_is_refused_before_the_database_and_writes_nothing() {
    let db = migrated("bad_input").await;
    let too_long = NewOwner {
        name: "x".repeat(31),
        ..owner("long@example.com")
    };
    let bad_email = owner("not-an-email");
    for bad in [too_long, bad_email] {
        assert!(matches!(
            owners::create(&db, &fast_policy(), &bad).await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            owners::upsert_by_email(&db, &fast_policy(), &bad).await,
            Err(Error::Invalid(_))
        ));
    }
    assert_eq!(owners_count(&db).await, 0);

    let ann = owners::create(&db, &fast_policy(), &owner("ann@example.com"))
        .await
        .expect("owner")
        .value;
    let bad_pet = NewPet {
        name: "Rex".into(),
        birth_date: sea_orm::prelude::Date::from_ymd_opt(2020, 1, 1).expect("date"),
        owner_id: Some(ann.id),
        status: "sleeping".into(),
        metadata: None,
    };
    match pets::create(&db, &fast_policy(), &bad_pet).await {
        Err(Error::Invalid(message)) => assert!(message.contains("sleeping"), "{message}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let long_pet = NewPet {
        name: "p".repeat(31),
        status: "waiting".into(),
        ..bad_pet
    };
    assert!(matches!(
        pets::create(&db, &fast_policy(), &long_pet).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        entity::pet::Entity::find().count(&db).await.expect("count"),
        0
    );
}

#[tokio::test]
async fn a_connection_lost_before_commit_is_retried_on_a_new_connection() {
    let db = migrated("lost_connection").await;
    let attempts = AtomicU32::new(0);
    let retried = transaction(&db, &fast_policy(), Idempotency::NotIdempotent, |txn| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let other_session = db.clone();
        Box::pin(async move {
            if attempt == 1 {
                // Another session kills this transaction's backend before it commits.
                let row = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT pg_backend_pid()",
                    ))
                    .await?
                    .expect("a row");
                let pid: i32 = row.try_get_by_index(0)?;
                exec(
                    &other_session,
                    &format!("SELECT pg_terminate_backend({pid})"),
                )
                .await;
            }
            txn.execute_unprepared(
                "INSERT INTO owner (name, city, email) VALUES ('Lost', 'Town', 'lost@example.com')",
            )
            .await?;
            Ok(())
        })
    })
    .await
    .expect("the second attempt, on a new connection, commits");
    assert_eq!(retried.attempts, 2);
    assert_eq!(owners_count(&db).await, 1, "written exactly once");
}

/// The backend process id of the connection `pool` hands out next (its only one).
#[cfg(feature = "front-door")]
async fn next_session(pool: &sqlx::PgPool) -> u32 {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("the pid");
    u32::try_from(pid).expect("a pid")
}

/// A COMMIT that applied and whose answer never arrived, through the app's own pool (one
/// connection, so the session chosen is the one the data function gets) and its retry: every
/// data function declared idempotent succeeds once, on its second attempt, leaving exactly the
/// rows it was asked for; the one that is not idempotent says the outcome is unknown after one
/// attempt, and its write did land.
#[cfg(feature = "front-door")]
#[tokio::test]
async fn a_lost_commit_reply_is_one_success_for_idempotent_work_and_unknown_otherwise() {
    use app::clinic::owners::Found;
    use app::clinic::vets::find_or_create_specialty;
    use app::dsql::batch::delete_all;
    use app::dsql::pool::PoolSettings;

    let door = common::door::shared().await;
    let database = fresh_database("lost_commit_reply").await;
    let tokens = door
        .tokens("admin", &door.secret, std::time::Duration::from_secs(3600))
        .await;
    let settings = PoolSettings {
        max_connections: 1,
        ..PoolSettings::default()
    };
    let refreshing = door.pool(&database, "admin", &settings, tokens).await;
    let db = refreshing.database();
    Migrator::up(&db, None).await.expect("migrate");
    let pool = refreshing.pool();
    let policy = fast_policy();
    let lose_the_next_reply = async || {
        door.failures
            .lose_next_commit_reply(next_session(pool).await)
    };

    lose_the_next_reply().await;
    let ann = owners::create(&db, &policy, &owner("ann@example.com"))
        .await
        .expect("owners::create succeeds once its reply was lost");
    assert_eq!(ann.attempts, 2);
    assert_eq!(owners_count(&db).await, 1, "Ann, once");
    let ann = ann.value;

    lose_the_next_reply().await;
    let moved = owners::upsert_by_email(
        &db,
        &policy,
        &NewOwner {
            city: "Othertown".into(),
            ..owner("ann@example.com")
        },
    )
    .await
    .expect("the upsert succeeds once its reply was lost");
    assert_eq!(moved.attempts, 2);
    assert_eq!(
        (moved.value.id, moved.value.city.as_str()),
        (ann.id, "Othertown")
    );

    let rex = NewPet {
        name: "Rex".into(),
        birth_date: sea_orm::prelude::Date::from_ymd_opt(2020, 1, 1).expect("a date"),
        owner_id: Some(ann.id),
        status: "waiting".into(),
        metadata: None,
    };
    lose_the_next_reply().await;
    let created = pets::create(&db, &policy, &rex)
        .await
        .expect("pets::create succeeds once its reply was lost");
    assert_eq!(created.attempts, 2);
    let stored = entity::pet::Entity::find().all(&db).await.expect("pets");
    assert_eq!(
        stored,
        std::slice::from_ref(&created.value),
        "exactly the one pet"
    );

    lose_the_next_reply().await;
    let bob = owners::find_or_create_by_email(&db, &policy, &owner("bob@example.com"))
        .await
        .expect("find-or-create succeeds once its reply was lost");
    // A find, the insert whose reply was lost, the insert again (which skips the row now
    // there), a find that sees this call's own row.
    assert_eq!(bob.attempts, 4);
    assert_eq!(bob.value.1, Found::Created, "this call wrote it");
    assert_eq!(owners_count(&db).await, 2, "Ann and one Bob");

    lose_the_next_reply().await;
    let surgery = find_or_create_specialty(&db, &policy, "surgery")
        .await
        .expect("the specialty succeeds once its reply was lost");
    assert_eq!(surgery.attempts, 4, "as for Bob");
    assert_eq!(
        entity::specialty::Entity::find()
            .count(&db)
            .await
            .expect("count"),
        1
    );

    lose_the_next_reply().await;
    let visited = pets::record_visit(&db, &policy, created.value.id).await;
    assert!(
        matches!(
            visited,
            Err(Error::Dsql(DsqlError::OutcomeUnknown { attempts: 1, .. }))
        ),
        "{visited:?}"
    );
    let rex_now = entity::pet::Entity::find_by_id(created.value.id)
        .one(&db)
        .await
        .expect("read")
        .expect("Rex");
    assert_eq!(rex_now.visit_count, Some(1), "the visit did land, once");

    lose_the_next_reply().await;
    delete_all::<entity::pet::Entity>(&db, &policy, 3000)
        .await
        .expect("delete_all succeeds once its reply was lost");
    assert_eq!(
        entity::pet::Entity::find().count(&db).await.expect("count"),
        0
    );
    refreshing.close().await;
}

/// Makes the next commit that touches `commit_fault` fail with `XX000` again.
#[cfg(feature = "front-door")]
const REARM_COMMIT_FAULT: &str = "SELECT setval('commit_fault_once', 1, false)";

/// `result` is an unknown outcome after one attempt, and the work ran once (`runs`).
#[cfg(feature = "front-door")]
fn assert_unknown_after_one_attempt<T: std::fmt::Debug>(
    result: &Result<T, DsqlError>,
    runs: &AtomicU32,
) {
    assert!(
        matches!(result, Err(DsqlError::OutcomeUnknown { attempts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "not run again");
}

/// DSQL's "retry the whole transaction" `XX000`, answering a `COMMIT`: whether the commit
/// applied is unknown, so non-idempotent work is reported after one attempt rather than run
/// again, while idempotent work is retried. (The server here answers the first `COMMIT` that
/// touches the table with `XX000`, from a deferred trigger set up behind the front door.)
#[cfg(feature = "front-door")]
#[tokio::test]
async fn an_xx000_answering_commit_is_unknown_unless_the_work_is_idempotent() {
    use sqlx::Connection;

    let database = fresh_database("xx000_at_commit").await;
    let options = common::server()
        .await
        .backend()
        .superuser_options(&database);
    let mut superuser = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("the server's superuser");
    sqlx::raw_sql(
        "CREATE TABLE commit_fault (id int PRIMARY KEY, n int NOT NULL);
         INSERT INTO commit_fault VALUES (1, 0);
         GRANT SELECT, UPDATE ON commit_fault TO admin;
         CREATE SEQUENCE commit_fault_once;
         CREATE FUNCTION commit_fault_fail() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
           AS $$ BEGIN
             IF nextval('commit_fault_once') = 1 THEN
               RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = 'server unavailable';
             END IF;
             RETURN NULL;
           END $$;
         CREATE CONSTRAINT TRIGGER commit_fault_at_commit AFTER UPDATE ON commit_fault
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_fault_fail();",
    )
    .execute(&mut superuser)
    .await
    .expect("the fault");
    let db = admin_db(&database).await;
    let n =
        async || -> i32 { common::one_value(&db, "SELECT n FROM commit_fault WHERE id = 1").await };

    let attempts = AtomicU32::new(0);
    let increment = transaction(&db, &fast_policy(), Idempotency::NotIdempotent, |txn| {
        attempts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            txn.execute_unprepared("UPDATE commit_fault SET n = n + 1 WHERE id = 1")
                .await?;
            Ok(())
        })
    })
    .await;
    assert_unknown_after_one_attempt(&increment, &attempts);
    assert_eq!(
        n().await,
        0,
        "this server rolled it back; DSQL might not have"
    );

    common::exec(&mut superuser, REARM_COMMIT_FAULT).await;
    let set = transaction(&db, &fast_policy(), Idempotency::Idempotent, |txn| {
        Box::pin(async move {
            txn.execute_unprepared("UPDATE commit_fault SET n = 5 WHERE id = 1")
                .await?;
            Ok(())
        })
    })
    .await
    .expect("idempotent work is retried");
    assert_eq!(set.attempts, 2);
    assert_eq!(n().await, 5);

    // The same, for one statement in autocommit: its answer is its commit's.
    common::exec(&mut superuser, REARM_COMMIT_FAULT).await;
    let tries = AtomicU32::new(0);
    let increment = autocommit(&db, &fast_policy(), Idempotency::NotIdempotent, |db| {
        tries.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            db.execute_unprepared("UPDATE commit_fault SET n = n + 1 WHERE id = 1")
                .await
                .map(drop)
        })
    })
    .await;
    assert_unknown_after_one_attempt(&increment, &tries);
    common::exec(&mut superuser, REARM_COMMIT_FAULT).await;
    let set = autocommit(&db, &fast_policy(), Idempotency::Idempotent, |db| {
        Box::pin(async move {
            db.execute_unprepared("UPDATE commit_fault SET n = 7 WHERE id = 1")
                .await
                .map(drop)
        })
    })
    .await
    .expect("an idempotent statement is retried");
    assert_eq!(set.attempts, 2);
    assert_eq!(n().await, 7);
    superuser.close().await.expect("close");
}

/// The owner check of new pets holds under a race. While a transaction that deletes the owner
/// is open, `pets::create_many`'s one statement waits on its `FOR KEY SHARE` (PostgreSQL waits
/// where DSQL would fail one of the two at commit); once the delete commits, the statement
/// fails with `40001`, and the retry runs it again on a fresh snapshot, which has no owner:
/// the pets are refused and none is written. The first attempt saw the owner, so only a second
/// one can answer that it does not exist: the answer proves the retry fired.
#[cfg(feature = "front-door")]
#[tokio::test]
async fn pets_of_an_owner_deleted_meanwhile_are_refused_after_a_retry_and_none_is_written() {
    let database = fresh_database("owner_deleted_meanwhile").await;
    let db = admin_db(&database).await;
    Migrator::up(&db, None).await.expect("migrate");
    let ann = owners::create(&db, &fast_policy(), &owner("ann@example.com"))
        .await
        .expect("an owner")
        .value;
    let mut deleter = common::door::shared()
        .await
        .session(&database, "admin")
        .await;
    common::exec(&mut deleter, "BEGIN").await;
    common::exec(
        &mut deleter,
        &format!("DELETE FROM owner WHERE id = '{}'", ann.id),
    )
    .await;

    let pets = ["Rex", "Fido"].map(|name| NewPet {
        name: name.into(),
        birth_date: sea_orm::prelude::Date::from_ymd_opt(2020, 1, 1).expect("a date"),
        owner_id: Some(ann.id),
        status: "waiting".into(),
        metadata: None,
    });
    let writer = {
        let db = db.clone();
        tokio::spawn(async move { pets::create_many(&db, &fast_policy(), &pets).await })
    };
    let probe = common::direct_admin_db(&database).await;
    common::eventually(
        std::time::Duration::from_secs(30),
        "the pets' insert to wait on the owner's row",
        || async {
            let waiting: i64 = common::one_value(
                &probe,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
            (waiting > 0).then_some(())
        },
    )
    .await;
    common::exec(&mut deleter, "COMMIT").await;

    match writer.await.expect("the writer") {
        Err(Error::Invalid(message)) => assert!(message.contains("does not exist"), "{message}"),
        other => panic!("expected the owner to be missing, got {other:?}"),
    }
    let pets = entity::pet::Entity::find().count(&db).await.expect("count");
    assert_eq!(pets, 0, "no pet without its owner");
}

/// A clinic iteration — the benchmark's story: an owner, its two pets, a pet by name, its
/// owner by key, an upsert of the owner, a find-or-create of a specialty, the owner with its
/// pets — in round trips counted at the front door: one per step, no transaction, 7 where the
/// seed's Sequelize stack takes 8, and 8 when the specialty is new (a find, then an insert).
/// Counted on a pool of one connection after a first iteration has prepared the statements.
/// Besides, sqlx's pool checks each connection returned to it with a bare `Sync` (a ping, off
/// the caller's path, which sqlx 0.9 does on every release): at most one per statement.
#[cfg(feature = "front-door")]
#[tokio::test]
async fn a_clinic_iteration_takes_seven_round_trips_and_no_transaction() {
    use app::clinic::vets::find_or_create_specialty;
    use app::dsql::pool::PoolSettings;
    use entity::{owner as owner_entity, pet};

    let door = common::door::door().await;
    let database = fresh_database("round_trips").await;
    let settings = PoolSettings {
        max_connections: 1,
        ..PoolSettings::default()
    };
    let refreshing = door
        .pool(
            &database,
            "admin",
            &settings,
            door.good_tokens("admin").await,
        )
        .await;
    let db = refreshing.database();
    Migrator::up(&db, None).await.expect("migrate");
    let policy = fast_policy();
    let iteration = async |i: u32, specialty: &str| {
        let new = owner(&format!("owner{i}@example.com"));
        let ann = owners::create(&db, &policy, &new)
            .await
            .expect("owner")
            .value;
        let pets = ["a", "b"].map(|suffix| NewPet {
            name: format!("Pet {i}{suffix}"),
            birth_date: sea_orm::prelude::Date::from_ymd_opt(2020, 1, 1).expect("a date"),
            owner_id: Some(ann.id),
            status: "waiting".into(),
            metadata: None,
        });
        pets::create_many(&db, &policy, &pets).await.expect("pets");
        let pet = pets::find_by_name(&db, &format!("Pet {i}a"))
            .await
            .expect("a read")
            .expect("the pet");
        owner_entity::Entity::find_by_id(pet.owner_id.expect("an owner"))
            .one(&db)
            .await
            .expect("a read")
            .expect("the owner");
        owners::upsert_by_email(
            &db,
            &policy,
            &NewOwner {
                city: "Othertown".into(),
                ..new
            },
        )
        .await
        .expect("upsert");
        find_or_create_specialty(&db, &policy, specialty)
            .await
            .expect("specialty");
        let with_pets = owner_entity::Entity::find_by_id(ann.id)
            .find_with_related(pet::Entity)
            .all(&db)
            .await
            .expect("owner with pets");
        assert_eq!(with_pets[0].1.len(), 2);
    };
    iteration(0, "S0").await;
    for (i, specialty, round_trips) in [(1, "S0", 7), (2, "S1", 8)] {
        let before = door.own().traffic();
        iteration(i, specialty).await;
        let spent = door.own().traffic().since(&before);
        assert_eq!(
            spent.round_trips - spent.pings,
            round_trips,
            "{specialty}: {spent:?}"
        );
        assert!(spent.pings <= round_trips, "{spent:?}");
        assert_eq!(
            spent.statements, round_trips,
            "one statement each: {spent:?}"
        );
        assert_eq!(spent.transactions, round_trips, "each its own: {spent:?}");
        assert_eq!(spent.commits + spent.rollbacks, 0, "no BEGIN: {spent:?}");
    }
    refreshing.close().await;
}
