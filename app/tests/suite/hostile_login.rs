//! The front door against a hostile client: a refusal before login says what DSQL says and
//! nothing that tells one failed check from another; a check that cannot decide refuses; and
//! no stranger or logged-in client makes it hold connections or memory without bound.
#![cfg(feature = "front-door")]

use crate::common;
use common::{eventually, exec};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::dsql::endpoint::Endpoint;
use app::dsql::token::{IamTokenSource, TokenSource};
use app::local::fixed_credentials;
use app::local::front_door::relay::Limits;
use app::local::front_door::wire;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use common::door::{Door, HOST, admin_in_fresh_database, door, door_with, endpoint};
use common::raw;

/// DSQL's refusal of a login (dsql-facts.md §3.5: `FATAL: unable to accept connection, access
/// denied`, no hint for a wrong key, region or permission). Its SQLSTATE is not recorded:
/// 28P01 (`invalid_password`) is the stand-in's choice.
fn dsqls_access_denied() -> Vec<u8> {
    wire::error_response(
        "FATAL",
        "28P01",
        "unable to accept connection, access denied",
        None,
    )
}

/// A token for `user` signed for `endpoint` by `access_key`/`secret`, valid for `lifetime`.
async fn token(
    endpoint: &Endpoint,
    user: &str,
    access_key: &str,
    secret: &SecretString,
    lifetime: Duration,
) -> String {
    let sdk_config =
        fixed_credentials(endpoint.region(), access_key, secret.expose_secret(), None).await;
    let source = IamTokenSource::with_sdk_config(endpoint, user, lifetime, sdk_config)
        .expect("a token source");
    source
        .token()
        .await
        .expect("a token")
        .secret
        .expose_secret()
        .to_owned()
}

/// What the front door answers `password` for `user` when it refuses it, up to the end of the
/// connection; `None` when it logs the user in.
async fn answer(door: &Door, user: &str, database: &str, password: &str) -> Option<Vec<u8>> {
    let mut stream = raw::send_password(door, user, database, password).await;
    let mut first = Vec::new();
    wire::read_frame(&mut stream, 1 << 20, &mut first)
        .await
        .expect("an answer to the password");
    if first.first() != Some(&b'E') {
        return None;
    }
    first.extend(raw::read_until_closed(&mut stream, Duration::from_secs(10)).await);
    Some(first)
}

/// Whether the bytes contain a run of 8 digits (a `yyyymmdd` date, as in a SigV4 time).
fn has_a_date(bytes: &[u8]) -> bool {
    bytes
        .windows(8)
        .any(|run| run.iter().all(u8::is_ascii_digit))
}

#[tokio::test]
async fn every_bad_token_gets_the_same_refusal_without_clock_or_key() {
    let door = door().await;
    let (database, user) = common::database_with_user("hostile_oracles").await;
    let user = user.user.as_str();
    let day = Duration::from_secs(86_400);
    let good = token(&endpoint(), user, &door.access_key_id, &door.secret, day).await;
    let other_host = Endpoint::parse("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", None)
        .expect("an endpoint");
    let other_region = Endpoint::parse(HOST, Some("eu-west-1")).expect("an endpoint");
    let cases = [
        (
            "an unknown access key",
            user,
            token(&endpoint(), user, "AKIDNOTKNOWNHERE01", &door.secret, day).await,
        ),
        (
            "a bad signature",
            user,
            token(
                &endpoint(),
                user,
                &door.access_key_id,
                &app::local::random_secret(),
                day,
            )
            .await,
        ),
        (
            "another endpoint",
            user,
            token(&other_host, user, &door.access_key_id, &door.secret, day).await,
        ),
        (
            "another region",
            user,
            token(&other_region, user, &door.access_key_id, &door.secret, day).await,
        ),
        // A DbConnect token for admin, who needs DbConnectAdmin.
        ("the wrong action", "admin", good.clone()),
        (
            "a tampered token",
            user,
            good.replacen("Action=", "X=1&Action=", 1),
        ),
        ("no token at all", user, "not-a-token".to_owned()),
        ("the server's superuser", "postgres", good.clone()),
    ];
    let expected = dsqls_access_denied();
    for (what, login_as, password) in &cases {
        let received = answer(&door, login_as, &database, password)
            .await
            .unwrap_or_else(|| panic!("{what}: logged in"));
        assert!(
            received == expected,
            "{what}: {:?}",
            String::from_utf8_lossy(&received)
        );
        assert!(!has_a_date(&received), "{what}");
        let shown = String::from_utf8_lossy(&received);
        assert!(
            !shown.contains("AKID") && !shown.contains(&door.access_key_id),
            "{what}"
        );
    }

    // An expired token: valid at first, refused the same way once its second is over.
    let expiring = token(
        &endpoint(),
        user,
        &door.access_key_id,
        &door.secret,
        Duration::from_secs(1),
    )
    .await;
    // Past its second (and the second X-Amz-Date rounds off), without waiting.
    door.own().advance_clock(Duration::from_secs(3));
    let refused = answer(&door, user, &database, &expiring)
        .await
        .expect("an answer to the expired token");
    assert!(
        refused == expected,
        "an expired token: {:?}",
        String::from_utf8_lossy(&refused)
    );

    // The good token still logs in.
    let options = door.options(&database, user).password(&good);
    let conn = PgConnection::connect_with(&options)
        .await
        .expect("the good token logs in");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_login_whose_mapping_cannot_be_checked_is_refused() {
    let (door, database, mut admin) = admin_in_fresh_database("hostile_onboarding").await;
    for statement in [
        "CREATE ROLE hostile_mapped WITH LOGIN",
        "CREATE ROLE hostile_unmapped WITH LOGIN",
        "AWS IAM GRANT hostile_mapped TO 'arn:aws:iam::123456789012:role/mapped'",
    ] {
        sqlx::raw_sql(statement)
            .execute(&mut admin)
            .await
            .expect("two roles, one mapped");
    }
    let mut superuser = PgConnection::connect_with(
        &common::server()
            .await
            .backend()
            .superuser_options(&database),
    )
    .await
    .expect("the server's superuser");
    let login = |user: &'static str| {
        let door = &door;
        let database = &database;
        async move {
            let source = door.good_tokens(user).await;
            door.connect(database, user, &source).await
        }
    };
    let refusal = |result: Result<PgConnection, sqlx::Error>| {
        let error = result.expect_err("the login must be refused");
        let db_error = error
            .as_database_error()
            .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
            .unwrap_or_else(|| panic!("a refusal from the front door, not {error}"));
        (
            db_error.code().to_owned(),
            db_error.message().to_owned(),
            db_error.hint().map(str::to_owned),
        )
    };

    // The check's own query fails: no login that needs it gets in.
    exec(
        &mut superuser,
        "ALTER TABLE dsql_local.iam_grants RENAME TO iam_grants_elsewhere",
    )
    .await;
    for user in ["hostile_unmapped", "hostile_mapped"] {
        let (code, message, hint) = refusal(login(user).await);
        assert_eq!(
            (code.as_str(), message.as_str(), hint),
            ("28000", "unable to accept connection, access denied", None),
            "{user}"
        );
    }
    // admin needs no mapping.
    door.session(&database, "admin").await;

    // With the table back, the check decides again.
    exec(
        &mut superuser,
        "ALTER TABLE dsql_local.iam_grants_elsewhere RENAME TO iam_grants",
    )
    .await;
    let conn = login("hostile_mapped")
        .await
        .expect("a mapped role logs in");
    conn.close().await.expect("close");
    let (code, _, _) = refusal(login("hostile_unmapped").await);
    assert_eq!(code, "28000");
}

/// A message header (tag, length) announcing a body of `body` bytes.
fn header(tag: u8, body: usize) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&u32::try_from(body + 4).expect("a u32").to_be_bytes());
    out
}

/// DSQL's protocol message limit (dsql-facts.md §3.4: ~10 MiB, the connection closes with no
/// error), as the front door applies it to a message's length field.
const DSQL_MESSAGE_LIMIT: usize = 10 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_in_login_are_capped_and_a_good_client_still_logs_in() {
    const MAX_LOGINS: usize = 8;
    const IDLE: usize = 300;
    let door = door_with(Limits {
        max_logins: MAX_LOGINS,
        ..Limits::default()
    })
    .await;
    let database = common::fresh_database("hostile_idle").await;
    // Idle connections that never send a byte, each watched until the front door closes it.
    let closed = Arc::new(AtomicUsize::new(0));
    let mut idle = JoinSet::new();
    for _ in 0..IDLE {
        let mut socket = TcpStream::connect(("127.0.0.1", door.port()))
            .await
            .expect("an idle connection");
        let closed = Arc::clone(&closed);
        idle.spawn(async move {
            let mut byte = [0_u8; 1];
            let _ = socket.read(&mut byte).await;
            closed.fetch_add(1, Ordering::SeqCst);
        });
    }
    eventually(
        Duration::from_secs(30),
        "the front door keeps at most its cap of idle logins",
        || async { (closed.load(Ordering::SeqCst) >= IDLE - MAX_LOGINS).then_some(()) },
    )
    .await;
    // A good client still logs in and runs a query.
    let mut conn = door.session(&database, "admin").await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("a query after the flood");
    assert_eq!(one, 1);
    conn.close().await.expect("close");
    idle.abort_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_announced_messages_hold_only_what_arrived_and_buffers_shrink_after() {
    // The front door's buffer policy: per session, a read and a write buffer of 8 KiB each
    // way; a message's frame grows as its bytes arrive (at most doubling what arrived, from
    // 8 KiB) and keeps at most 64 KiB after a message.
    const FIXED: usize = 4 * 8 * 1024;
    const KEPT: usize = 2 * 64 * 1024;
    const SESSIONS: usize = 4;
    const ARRIVED: usize = 1024 * 1024;
    let door = door().await;
    let database = common::fresh_database("hostile_announce").await;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(raw::logged_in(&door, &database).await);
    }
    let front_door = door.own();
    let idle = front_door.buffered_bytes();
    assert!(
        idle <= SESSIONS * (FIXED + KEPT),
        "{idle} bytes for idle sessions"
    );
    // Each announces a message just under DSQL's limit, and sends 1 MiB of it.
    for client in &mut clients {
        client
            .write_all(&header(b'B', DSQL_MESSAGE_LIMIT - 5))
            .await
            .expect("a header");
        client
            .write_all(&vec![0_u8; ARRIVED])
            .await
            .expect("part of the body");
        client.flush().await.expect("flush");
    }
    eventually(
        Duration::from_secs(30),
        "the front door reads what arrived",
        || async { (front_door.buffered_bytes() >= SESSIONS * ARRIVED).then_some(()) },
    )
    .await;
    let held = front_door.buffered_bytes();
    let bound = SESSIONS * (FIXED + KEPT + 2 * ARRIVED + 8 * 1024);
    assert!(
        held <= bound,
        "{held} bytes held for {SESSIONS} announced {DSQL_MESSAGE_LIMIT}-byte messages, \
         over {bound}"
    );
    drop(clients);

    // A large message that is relayed: its buffer is released after it.
    let mut conn = door.session(&database, "admin").await;
    let large = "x".repeat(DSQL_MESSAGE_LIMIT - 1024);
    let length: i32 = sqlx::query_scalar("SELECT length($1)")
        .bind(&large)
        .fetch_one(&mut conn)
        .await
        .expect("a message just under DSQL's limit is relayed");
    assert_eq!(usize::try_from(length).ok(), Some(large.len()));
    eventually(
        Duration::from_secs(30),
        "the buffers of a large message are released",
        || async { (front_door.buffered_bytes() <= FIXED + KEPT).then_some(()) },
    )
    .await;
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_message_over_dsqls_limit_closes_the_connection_without_an_error() {
    let door = door().await;
    let database = common::fresh_database("hostile_too_large").await;
    // Announced only: the connection closes without a byte of answer, as DSQL closes it.
    let mut client = raw::logged_in(&door, &database).await;
    client
        .write_all(&header(b'Q', DSQL_MESSAGE_LIMIT - 4 + 1))
        .await
        .expect("a header");
    client.flush().await.expect("flush");
    let answer = raw::read_until_closed(&mut client, Duration::from_secs(10)).await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));

    // Through a driver: no database error, and the session is gone.
    let mut conn = door.session(&database, "admin").await;
    let result = sqlx::query_scalar::<_, i32>("SELECT length($1)")
        .bind("x".repeat(DSQL_MESSAGE_LIMIT + 1024))
        .fetch_one(&mut conn)
        .await;
    let error = result.expect_err("a message over DSQL's limit is not relayed");
    assert!(
        error.as_database_error().is_none(),
        "no error message, as on DSQL: {error}"
    );
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    // Others are served.
    door.session(&database, "admin").await;
}

#[tokio::test]
async fn past_the_connection_cap_logins_get_53300_until_a_slot_frees() {
    let door = door_with(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let database = common::fresh_database("hostile_cap").await;
    let first = door.session(&database, "admin").await;
    let _second = door.session(&database, "admin").await;
    let refused = PgConnection::connect_with(&door.options_with_token(&database, "admin").await)
        .await
        .expect_err("a third connection is over the cap");
    let db_error = refused
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .unwrap_or_else(|| panic!("DSQL's refusal, not {refused}"));
    // dsql-facts.md §3.5.
    assert_eq!(
        (db_error.code(), db_error.message()),
        (
            "53300",
            "Unable to accept connection, too many open connections."
        )
    );
    first.close().await.expect("close");
    let options = door.options_with_token(&database, "admin").await;
    let conn = eventually(
        Duration::from_secs(10),
        "a connection slot freed by the closed connection",
        || async { PgConnection::connect_with(&options).await.ok() },
    )
    .await;
    conn.close().await.expect("close");
}
