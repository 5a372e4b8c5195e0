//! What the front door counts of a client's work, and how its latency model holds answers,
//! against what the PostgreSQL protocol says the client sends: a simple `Query` and an
//! extended-protocol batch up to its `Sync` are one round trip each (one `ReadyForQuery`), each
//! `CommandComplete` one statement, an explicit transaction one at its end, and the statements
//! run outside one up to a `ReadyForQuery` one implicit transaction.
#![cfg(feature = "front-door")]

use crate::common;

use std::time::{Duration, Instant};

use app::local::ADMIN_USER;
use app::local::front_door::conflicts::Conflict;
use app::local::front_door::latency::Latency;
use app::local::front_door::traffic::Traffic;
use sqlx::{Connection, PgConnection};

use common::door::{Door, door};
use common::fresh_database;

/// How long a test waits for what must happen before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A test's own front door, and a connection as `admin` through it to a fresh database with
/// a table `t (id int primary key)`.
async fn session(purpose: &str) -> (Door, PgConnection) {
    let door = door().await;
    let database = fresh_database(purpose).await;
    let mut conn = door.session(&database, ADMIN_USER).await;
    run(&mut conn, "CREATE TABLE t (id int PRIMARY KEY)").await;
    (door, conn)
}

/// Runs `sql` as one simple `Query`.
async fn run(conn: &mut PgConnection, sql: &'static str) {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What `door` counted while `work` ran on `conn`.
async fn counted(
    door: &Door,
    conn: &mut PgConnection,
    work: impl AsyncFnOnce(&mut PgConnection),
) -> Traffic {
    let before = door.own().traffic();
    work(conn).await;
    door.own().traffic().since(&before)
}

/// Counts without a modelled delay.
fn traffic(round_trips: u64, statements: u64, transactions: u64) -> Traffic {
    Traffic {
        round_trips,
        statements,
        transactions,
        ..Traffic::default()
    }
}

#[tokio::test]
async fn the_login_is_not_counted_and_a_select_is_one_round_trip_and_implicit_transaction() {
    let door = door().await;
    let database = fresh_database("traffic_login").await;
    let mut conn = door.session(&database, ADMIN_USER).await;
    assert_eq!(door.own().traffic(), Traffic::default(), "the login");
    assert_eq!(door.own().latency(), None, "the model is off by default");
    let select = counted(&door, &mut conn, async |c| run(c, "SELECT 1").await).await;
    assert_eq!(select, traffic(1, 1, 1));
    // Two statements in one Query text: one round trip, one implicit transaction.
    let two = counted(&door, &mut conn, async |c| {
        run(c, "SELECT 1; SELECT 2").await
    })
    .await;
    assert_eq!(two, traffic(1, 2, 1));
}

#[tokio::test]
async fn an_autocommit_insert_is_one_round_trip_and_one_write_commit() {
    let (door, mut conn) = session("traffic_autocommit").await;
    let insert = counted(&door, &mut conn, async |c| {
        run(c, "INSERT INTO t VALUES (1)").await;
    })
    .await;
    assert_eq!(
        insert,
        Traffic {
            write_commits: 1,
            ..traffic(1, 1, 1)
        }
    );
    // A DELETE of no row writes nothing.
    let nothing = counted(&door, &mut conn, async |c| {
        run(c, "DELETE FROM t WHERE id = 2").await;
    })
    .await;
    assert_eq!(nothing, traffic(1, 1, 1));
}

#[tokio::test]
async fn begin_insert_commit_as_three_queries_is_three_round_trips_and_one_commit() {
    let (door, mut conn) = session("traffic_explicit").await;
    let one_commit = Traffic {
        commits: 1,
        write_commits: 1,
        ..traffic(3, 3, 1)
    };
    let simple = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "INSERT INTO t VALUES (1)").await;
        run(c, "COMMIT").await;
    })
    .await;
    assert_eq!(simple, one_commit);
    // sqlx's own transaction sends the same BEGIN and COMMIT queries.
    let sqlx_transaction = counted(&door, &mut conn, async |c| {
        let mut tx = c.begin().await.expect("BEGIN");
        run(&mut tx, "INSERT INTO t VALUES (2)").await;
        tx.commit().await.expect("COMMIT");
    })
    .await;
    assert_eq!(sqlx_transaction, one_commit);
}

#[tokio::test]
async fn a_rollback_or_a_failed_commit_counts_as_a_rollback_and_no_write_commit() {
    let (door, mut conn) = session("traffic_rollback").await;
    let one_rollback = Traffic {
        rollbacks: 1,
        ..traffic(3, 3, 1)
    };
    let rolled_back = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "INSERT INTO t VALUES (1)").await;
        run(c, "ROLLBACK").await;
    })
    .await;
    assert_eq!(rolled_back, one_rollback);
    // A COMMIT that meets a conflict: an error, not a CommandComplete.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("the backend's pid");
    let pid = u32::try_from(pid).expect("a pid");
    door.failures.fail_next_commit(pid, Conflict::Data);
    let failed = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "INSERT INTO t VALUES (1)").await;
        let commit = sqlx::raw_sql("COMMIT").execute(&mut *c).await;
        assert!(commit.is_err(), "the conflict");
    })
    .await;
    assert_eq!(
        failed,
        Traffic {
            rollbacks: 1,
            ..traffic(3, 2, 1)
        }
    );
    // A read-only transaction commits, and writes nothing.
    let read_only = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "SELECT id FROM t").await;
        run(c, "COMMIT").await;
    })
    .await;
    assert_eq!(
        read_only,
        Traffic {
            commits: 1,
            ..traffic(3, 3, 1)
        }
    );
}

#[tokio::test]
async fn a_prepared_query_takes_a_round_trip_to_prepare_once_then_one_per_execution() {
    let (door, mut conn) = session("traffic_prepared").await;
    let query = async |c: &mut PgConnection| {
        let one: i32 = sqlx::query_scalar("SELECT $1::int4")
            .bind(1_i32)
            .fetch_one(c)
            .await
            .expect("the prepared query");
        assert_eq!(one, 1);
    };
    // First: Parse, Describe, Sync (no statement completes), then Bind, Execute, Close, Sync.
    let first = counted(&door, &mut conn, &query).await;
    assert_eq!(first, traffic(2, 1, 1));
    // Then the statement is in the connection's cache: Bind, Execute, Close, Sync.
    let second = counted(&door, &mut conn, &query).await;
    assert_eq!(second, traffic(1, 1, 1));
}

#[tokio::test]
async fn the_latency_model_holds_each_answer_and_each_write_commit_more() {
    let (door, mut conn) = session("traffic_latency").await;
    let latency = Latency {
        per_round_trip: Duration::from_millis(2),
        per_commit: Duration::from_millis(10),
    };
    door.own().set_latency(Some(latency));
    assert_eq!(door.own().latency(), Some(latency));
    let started = Instant::now();
    let written = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "INSERT INTO t VALUES (1)").await;
        run(c, "COMMIT").await;
    })
    .await;
    // Three round trips, one commit that wrote; each wait is over before the answer arrives.
    let held = Duration::from_millis(3 * 2 + 10);
    assert_eq!(written.modelled_delay, held);
    assert!(started.elapsed() >= held, "{:?}", started.elapsed());
    let read = counted(&door, &mut conn, async |c| {
        run(c, "BEGIN").await;
        run(c, "SELECT id FROM t").await;
        run(c, "COMMIT").await;
    })
    .await;
    assert_eq!(read.modelled_delay, Duration::from_millis(3 * 2));
    let autocommit = counted(&door, &mut conn, async |c| {
        run(c, "INSERT INTO t VALUES (2)").await;
    })
    .await;
    assert_eq!(autocommit.modelled_delay, Duration::from_millis(2 + 10));
    door.own().set_latency(None);
    let off = counted(&door, &mut conn, async |c| run(c, "SELECT 1").await).await;
    assert_eq!(off, traffic(1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_held_by_the_model_holds_no_other_connection() {
    let door = door().await;
    let database = fresh_database("traffic_held").await;
    let mut held = door.session(&database, ADMIN_USER).await;
    let mut other = door.session(&database, ADMIN_USER).await;
    // An hour per round trip: the held connection's answer does not come in this test.
    door.own().set_latency(Some(Latency {
        per_round_trip: Duration::from_secs(3600),
        per_commit: Duration::ZERO,
    }));
    let before = door.own().traffic().round_trips;
    let waiting = tokio::spawn(async move {
        let _ = sqlx::raw_sql("SELECT 1").execute(&mut held).await;
    });
    // The round trip is counted, and its hold begun, before the answer would be handed on.
    common::eventually(DEADLINE, "the held round trip", || async {
        (door.own().traffic().round_trips > before).then_some(())
    })
    .await;
    door.own().set_latency(None);
    let answered = tokio::time::timeout(DEADLINE, run(&mut other, "SELECT 1")).await;
    assert!(answered.is_ok(), "the other connection was held too");
    assert!(!waiting.is_finished(), "the held answer is still held");
    waiting.abort();
}
