//! Commits made to order at the front door (`CommitFailures`), met by a client as the app
//! sends its work: sqlx's extended protocol with prepared statements, each statement cached
//! after its first run, so that the chosen run is only `Bind`, `Execute` and `Sync` with no SQL
//! text. An autocommit statement commits at its `Sync`; a lost reply or DSQL's `XX000` must
//! find it there as it finds an explicit `COMMIT`, and leave its write applied.
#![cfg(feature = "front-door")]

use crate::common;

use app::local::ADMIN_USER;
use app::local::front_door::conflicts::Conflict;
use sqlx::{Connection, PgConnection};

use common::database_error;
use common::door::{Door, shared};
use common::fresh_database;

/// A connection as `admin` through the shared front door to a fresh database with a table
/// `t (id int primary key)`, its backend process id, and the database's name.
async fn session(purpose: &str) -> (&'static Door, PgConnection, u32, String) {
    let door = shared().await;
    let database = fresh_database(purpose).await;
    let mut conn = door.session(&database, ADMIN_USER).await;
    sqlx::raw_sql("CREATE TABLE t (id int PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .expect("the table");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("the backend's pid");
    let pid = u32::try_from(pid).expect("a pid");
    // Prepared and cached: the runs after this one send no SQL text.
    insert(&mut conn, 0).await.expect("the first insert");
    (door, conn, pid, database)
}

/// Inserts `id` into `t` with the connection's cached prepared statement, in autocommit.
async fn insert(conn: &mut PgConnection, id: i32) -> Result<u64, sqlx::Error> {
    sqlx::query("INSERT INTO t (id) VALUES ($1)")
        .bind(id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
}

/// Whether `id` is in `t`, read on a connection of its own.
async fn stored(door: &Door, database: &str, id: i32) -> bool {
    let mut reader = door.session(database, ADMIN_USER).await;
    let found: Option<i32> = sqlx::query_scalar("SELECT id FROM t WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut reader)
        .await
        .expect("read t");
    reader.close().await.expect("close");
    found.is_some()
}

/// Asserts that `result` is a lost connection, not an answer of the server.
fn assert_connection_lost<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) {
    match result {
        Err(sqlx::Error::Database(error)) => panic!("an answer, not a lost reply: {error}"),
        Err(_) => {}
        Ok(value) => panic!("the reply arrived: {value:?}"),
    }
}

#[tokio::test]
async fn an_autocommit_insert_whose_reply_is_lost_fails_the_connection_and_is_applied() {
    let (door, mut conn, pid, database) = session("lost_autocommit").await;
    door.failures.lose_next_commit_reply(pid);
    assert_connection_lost(insert(&mut conn, 1).await);
    assert!(stored(door, &database, 1).await, "the server committed it");
    // Once: a new session of the same client writes as usual.
    let mut again = door.session(&database, ADMIN_USER).await;
    assert_eq!(insert(&mut again, 2).await.expect("the next insert"), 1);
}

#[tokio::test]
async fn an_autocommit_insert_answered_with_xx000_is_applied_and_the_session_goes_on() {
    let (door, mut conn, pid, database) = session("xx000_autocommit").await;
    door.failures.answer_next_commit_unavailable(pid);
    let (code, message) = database_error(insert(&mut conn, 1).await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("XX000", "server unavailable")
    );
    assert!(stored(door, &database, 1).await, "the server committed it");
    // The session is idle and usable, and the fate was spent.
    assert_eq!(insert(&mut conn, 2).await.expect("the next insert"), 1);
    // A statement's rows are dropped with its tag: the client sees only the error.
    door.failures.answer_next_commit_unavailable(pid);
    let returned = sqlx::query_scalar::<_, i32>("INSERT INTO t (id) VALUES ($1) RETURNING id")
        .bind(3)
        .fetch_all(&mut conn)
        .await;
    assert_eq!(database_error(returned).0, "XX000");
    assert!(stored(door, &database, 3).await);
    // A simple Query commits at the end of its text: the same.
    door.failures.answer_next_commit_unavailable(pid);
    let simple = sqlx::raw_sql("INSERT INTO t (id) VALUES (4)")
        .execute(&mut conn)
        .await;
    assert_eq!(database_error(simple).0, "XX000");
    assert!(stored(door, &database, 4).await);
}

#[tokio::test]
async fn a_round_trip_that_writes_nothing_is_no_write_commit_and_the_fate_waits() {
    let (door, mut conn, pid, database) = session("read_only_autocommit").await;
    door.failures.lose_next_commit_reply(pid);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .expect("a read passes");
    assert_eq!(count, 1);
    let none = sqlx::query("UPDATE t SET id = id WHERE id = $1")
        .bind(-1)
        .execute(&mut conn)
        .await
        .expect("an update of no row passes");
    assert_eq!(none.rows_affected(), 0);
    // A write that fails is rolled back: no commit either.
    assert_eq!(database_error(insert(&mut conn, 0).await).0, "23505");
    assert!(!stored(door, &database, 1).await);
    assert_connection_lost(insert(&mut conn, 1).await);
    assert!(stored(door, &database, 1).await);
}

#[tokio::test]
async fn an_explicit_commit_meets_each_fate_as_before() {
    let (door, mut conn, pid, database) = session("explicit_commit").await;
    // A conflict is for explicit commits only: the autocommit insert passes, the COMMIT fails.
    door.failures.fail_next_commit(pid, Conflict::Data);
    assert_eq!(insert(&mut conn, 1).await.expect("autocommit passes"), 1);
    let mut txn = conn.begin().await.expect("BEGIN");
    insert(&mut txn, 2).await.expect("in the transaction");
    let (code, message) = database_error(txn.commit().await);
    assert_eq!(code, "40001");
    assert!(message.ends_with("(OC000)"), "{message}");
    assert!(!stored(door, &database, 2).await, "rolled back");

    door.failures.answer_next_commit_unavailable(pid);
    let mut txn = conn.begin().await.expect("BEGIN");
    insert(&mut txn, 3).await.expect("in the transaction");
    assert_eq!(database_error(txn.commit().await).0, "XX000");
    assert!(stored(door, &database, 3).await, "committed");
    assert_eq!(insert(&mut conn, 4).await.expect("the session goes on"), 1);

    door.failures.lose_next_commit_reply(pid);
    let mut txn = conn.begin().await.expect("BEGIN");
    insert(&mut txn, 5).await.expect("in the transaction");
    assert_connection_lost(txn.commit().await);
    assert!(stored(door, &database, 5).await, "committed");
}
