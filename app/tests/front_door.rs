//! The front door reached like Aurora DSQL: TLS `verify-full` against the stand-in's own CA, an
//! IAM token signed by the app's own token source as the password, and the app's refreshing
//! pool on top. Refused logins get DSQL's SQLSTATEs before any backend session exists.
#![cfg(feature = "front-door")]

mod common;

use std::time::Duration;

use app::config::PoolSettings;
use app::dsql::pool::{RefreshPolicy, RefreshingPool};
use app::dsql::token::TokenSource;
use app::local::front_door::tls::LocalCa;
use app::secret::Secret;
use sqlx::postgres::PgSslMode;
use sqlx::{Connection, PgConnection};

use common::door::{HOST, door};
use common::{database_error, database_with_user, server};

/// Sessions ever established to `database`, from the server's statistics, read on `conn`
/// (whose own session is counted once, at its start).
async fn sessions_established(conn: &mut PgConnection, database: &str) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .expect("a fresh statistics snapshot");
    sqlx::query_scalar("SELECT sessions FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(conn)
        .await
        .expect("count sessions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_refreshing_pool_works_through_tls_and_iam_tokens() {
    let door = door().await;
    let (database, user) = database_with_user("front_door_pool").await;
    // Tokens signed for 2 s, trusted for 1 s (X-Amz-Date has whole seconds), refreshed at
    // 0.8 s: the test sees refreshes, and a connection opened
    // after the first token expired proves the new one is used.
    let source = door
        .tokens(&user.user, &door.secret, Duration::from_secs(2))
        .await;
    let settings = PoolSettings {
        max_connections: 2,
        max_lifetime: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
    };
    let pool = RefreshingPool::connect(
        door.options(&database, &user.user),
        Some(app::local::USER_SCHEMA),
        &settings,
        source,
        RefreshPolicy::default(),
    )
    .await
    .expect("connect through the front door");
    let status = pool.status();
    let mut seen = std::collections::HashSet::new();
    // A guard against a hang only: failing refreshes end the test instead of looping.
    tokio::time::timeout(Duration::from_secs(60), async {
        while status.successes() < 2 {
            // The backend sees a Unix-socket client (no address): the relay, not the app.
            let (user_name, pid, via_socket): (String, i32, bool) = sqlx::query_as(
                "SELECT current_user::text, pg_backend_pid(), inet_client_addr() IS NULL",
            )
            .fetch_one(pool.pool())
            .await
            .expect("a query through the relay");
            assert_eq!(user_name, user.user);
            assert!(via_socket);
            seen.insert(pid);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("two refreshes within 60 s");
    assert!(seen.len() > 2, "new connections kept opening: {seen:?}");
    assert_eq!(status.failures(), 0);
    pool.close().await;
}

#[tokio::test]
async fn an_admin_token_logs_admin_in_and_statements_relay_both_ways() {
    let door = door().await;
    let database = common::fresh_database("front_door_admin").await;
    let source = door
        .tokens("admin", &door.secret, Duration::from_secs(900))
        .await;
    let mut conn = door
        .connect(&database, "admin", &source)
        .await
        .expect("admin logs in with DbConnectAdmin");
    // Simple and extended protocol, an error, and the session still usable afterwards.
    sqlx::raw_sql("CREATE TABLE relayed (id uuid PRIMARY KEY, note text)")
        .execute(&mut conn)
        .await
        .expect("DDL through the relay");
    let inserted = sqlx::query("INSERT INTO relayed VALUES (gen_random_uuid(), $1)")
        .bind("through the front door")
        .execute(&mut conn)
        .await
        .expect("a bound insert");
    assert_eq!(inserted.rows_affected(), 1);
    let (code, _) = database_error(
        sqlx::query("SELECT nosuchcolumn FROM relayed")
            .execute(&mut conn)
            .await,
    );
    assert_eq!(code, "42703");
    let note: String = sqlx::query_scalar("SELECT note FROM relayed")
        .fetch_one(&mut conn)
        .await
        .expect("a read");
    assert_eq!(note, "through the front door");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_backend_session_opens() {
    let door = door().await;
    let (database, user) = database_with_user("front_door_refusals").await;
    let mut observer = PgConnection::connect_with(
        &server()
            .await
            .connect_options(&database, server().await.admin()),
    )
    .await
    .expect("an observer");
    let before = sessions_established(&mut observer, &database).await;
    let cases = [
        // A token signed with a secret the stand-in does not know.
        (
            "wrong secret",
            door.tokens(&user.user, &Secret::random(), Duration::from_secs(900))
                .await,
            user.user.as_str(),
            "28P01",
        ),
        // A DbConnect token for admin, who needs DbConnectAdmin.
        (
            "wrong action",
            door.tokens(&user.user, &door.secret, Duration::from_secs(900))
                .await,
            "admin",
            "28000",
        ),
        // A valid token for the server's superuser, whom the Unix socket would trust.
        (
            "superuser",
            door.tokens("postgres", &door.secret, Duration::from_secs(900))
                .await,
            "postgres",
            "28000",
        ),
        // A token that expired a second after it was signed.
        (
            "expired",
            door.tokens(&user.user, &door.secret, Duration::from_secs(1))
                .await,
            user.user.as_str(),
            "28P01",
        ),
    ];
    for (what, source, login_as, expected) in cases {
        let token = source.token().await.expect("a token");
        if what == "expired" {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let result = PgConnection::connect_with(
            &door
                .options(&database, login_as)
                .password(token.secret.expose()),
        )
        .await;
        let (code, message) = database_error(result);
        assert_eq!(code, expected, "{what}: {message}");
        assert_eq!(
            message, "unable to accept connection, access denied",
            "{what}"
        );
        assert!(!message.contains(token.secret.expose()), "{what}");
    }
    // Statistics reach the shared counters within a second of a session's end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sessions_established(&mut observer, &database).await, before);
    // The count does see a session through the front door: one good login adds one.
    let good = door
        .tokens(&user.user, &door.secret, Duration::from_secs(900))
        .await;
    let conn = door
        .connect(&database, &user.user, &good)
        .await
        .expect("a good login");
    conn.close().await.expect("close");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        sessions_established(&mut observer, &database).await,
        before + 1
    );
}

#[tokio::test]
async fn a_connection_without_tls_or_with_another_ca_is_refused() {
    let door = door().await;
    let database = common::fresh_database("front_door_tls").await;
    let source = door
        .tokens("admin", &door.secret, Duration::from_secs(900))
        .await;
    let token = source.token().await.expect("a token");
    let plain = door
        .options(&database, "admin")
        .ssl_mode(PgSslMode::Disable)
        .password(token.secret.expose());
    let (code, message) = database_error(PgConnection::connect_with(&plain).await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("28000", "SSL/TLS is required")
    );

    let other = LocalCa::generate(&[HOST]).expect("another CA");
    let other_file = tempfile::NamedTempFile::new().expect("a file");
    other.write_ca(other_file.path()).expect("write it");
    let untrusted = door
        .options(&database, "admin")
        .ssl_root_cert(other_file.path())
        .password(token.secret.expose());
    let error = PgConnection::connect_with(&untrusted)
        .await
        .expect_err("a certificate from an unknown CA");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}
