//! The pattern lifted out of the app: `app/src/dsql/` compiled on its own into this test crate
//! (`#[path]`), as a new project would copy it, runs a small program against the stand-in —
//! IAM tokens, the refreshing pool, an idempotent insert in autocommit, a race-free
//! find-or-create, a transaction locking by primary key, and the batched delete. The pattern
//! refers to itself with `super::` only, so an import of anything else of `app` fails to compile
//! here.

#![cfg(feature = "front-door")]

#[path = "../../src/dsql/mod.rs"]
#[allow(dead_code, unused_imports)]
mod dsql;

use std::time::Duration;

use app::local::stand_in::StandIn;
use app::local::{STAND_IN_ADDRESS, STAND_IN_HOST, STAND_IN_REGION};
use dsql::batch::delete_all;
use dsql::endpoint::Endpoint;
use dsql::find_or_create::{Found, find_or_create};
use dsql::idempotent::insert_once;
use dsql::locking::find_for_update;
use dsql::pool::{PoolSettings, RefreshPolicy, RefreshingPool};
use dsql::retry::{Idempotency, RetryPolicy, autocommit, transaction};
use dsql::token::IamTokenSource;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

/// A note: the smallest entity the pattern can work on.
mod note {
    use sea_orm::entity::prelude::*;

    /// One row of `lifted_note`.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "lifted_note")]
    pub struct Model {
        /// Client-generated key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Unique title.
        pub title: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::test]
async fn a_program_built_from_the_pattern_alone_runs_against_the_stand_in() {
    let stand_in = StandIn::start().await.expect("the stand-in starts");
    let endpoint = Endpoint::parse(STAND_IN_HOST, Some(STAND_IN_REGION))
        .expect("the stand-in's endpoint")
        .dialled_at(STAND_IN_ADDRESS);
    let source = IamTokenSource::with_sdk_config(
        &endpoint,
        dsql::ADMIN_USER,
        Duration::from_secs(900),
        stand_in.sdk_config().await,
    )
    .expect("a token source");
    let options = dsql::connect_options(
        &endpoint,
        stand_in.port(),
        dsql::ADMIN_USER,
        Some(stand_in.ca_path()),
    );
    let pool = RefreshingPool::connect(
        options,
        dsql::search_path_for(dsql::ADMIN_USER),
        &PoolSettings::default(),
        source,
        RefreshPolicy::default(),
    )
    .await
    .expect("the pool connects with an IAM token over TLS verify-full");
    let db = pool.database();
    let policy = RetryPolicy::default();

    for ddl in [
        "CREATE TABLE lifted_note (id uuid PRIMARY KEY, title text NOT NULL)",
        "CREATE UNIQUE INDEX ASYNC lifted_note_title ON lifted_note (title)",
    ] {
        autocommit(&db, &policy, Idempotency::NotIdempotent, |db| {
            Box::pin(async move { db.execute_unprepared(ddl).await.map(drop) })
        })
        .await
        .unwrap_or_else(|err| panic!("{ddl}: {err}"));
    }

    let first = note::ActiveModel {
        id: Set(Uuid::new_v4()),
        title: Set("first".to_owned()),
    };
    let inserted = autocommit(&db, &policy, Idempotency::Idempotent, |db| {
        Box::pin(insert_once(db, first.clone()))
    })
    .await
    .expect("an insert in autocommit");
    let again = insert_once(&db, first.clone())
        .await
        .expect("the same insert again returns the row it wrote");
    assert_eq!(inserted.value, again);

    let find_or_create_second = || {
        let ours = Uuid::new_v4();
        find_or_create(
            &db,
            &policy,
            "note second",
            |db| {
                Box::pin(async move {
                    let found = note::Entity::find()
                        .all(db)
                        .await?
                        .into_iter()
                        .find(|row| row.title == "second");
                    Ok(found.map(|row| (row, Found::Existing)))
                })
            },
            move |db| {
                Box::pin(async move {
                    let row = note::ActiveModel {
                        id: Set(ours),
                        title: Set("second".to_owned()),
                    };
                    let inserted = note::Entity::insert(row)
                        .on_conflict_do_nothing_on([note::Column::Title])
                        .exec_without_returning(db)
                        .await?;
                    Ok(
                        matches!(inserted, sea_orm::TryInsertResult::Inserted(1)).then(|| {
                            note::Model {
                                id: ours,
                                title: "second".to_owned(),
                            }
                        }),
                    )
                })
            },
        )
    };
    let (one, other) = tokio::join!(find_or_create_second(), find_or_create_second());
    let (one, other) = (one.expect("one caller").value, other.expect("other").value);
    assert_eq!(one.0, other.0, "both callers get the one row");
    let mut how = [one.1, other.1];
    how.sort_by_key(|found| *found == Found::Existing);
    assert_eq!(how, [Found::Created, Found::Existing]);

    let id = inserted.value.id;
    let renamed = transaction(&db, &policy, Idempotency::Idempotent, |txn| {
        Box::pin(async move {
            let locked = find_for_update::<note::Entity>(txn, id).await?;
            let mut row: note::ActiveModel = locked.expect("the first note").into();
            row.title = Set("renamed".to_owned());
            row.update(txn).await
        })
    })
    .await
    .expect("a transaction locking by primary key");
    assert_eq!(renamed.value.title, "renamed");

    let deleted = delete_all::<note::Entity>(&db, &policy, 1)
        .await
        .expect("the batched delete");
    assert_eq!(deleted, 2, "one row per batch, two batches");
    assert!(
        note::Entity::find()
            .all(&db)
            .await
            .expect("a read")
            .is_empty()
    );
    pool.close().await;
}
