//! The front door reached like Aurora DSQL: TLS `verify-full` against the stand-in's own CA, an
//! IAM token signed by the app's own token source as the password, and the app's refreshing
//! pool on top. Refused logins get DSQL's SQLSTATEs before any backend session exists.
#![cfg(feature = "front-door")]

use crate::common;

use std::time::Duration;

use app::dsql::pool::PoolSettings;
use app::dsql::token::{IamTokenSource, Token, TokenSource};
use app::local::front_door::conflicts::Conflict;
use app::local::front_door::relay::Limits;
use app::local::front_door::tls::LocalCa;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgSslMode;
use sqlx::{Connection, PgConnection};

use common::clock::{ManualClock, new_connection, refreshes};
use common::door::{HOST, admin_in_fresh_database, door};
use common::{database_error, database_with_user, exec, refused, server};
use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

/// Sessions ever established to `database`, from the server's statistics, read on `observer`
/// (a pool of one connection, whose session is counted once, at its start) once every other
/// session of the database has ended, and so has reported its statistics.
async fn sessions_established(observer: &sqlx::PgPool, database: &str) -> i64 {
    common::eventually(
        Duration::from_secs(10),
        "the database's other sessions to end",
        || async {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(database)
            .fetch_one(observer)
            .await
            .expect("count sessions");
            (others == 0).then_some(())
        },
    )
    .await;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(observer)
        .await
        .expect("a fresh statistics snapshot");
    sqlx::query_scalar("SELECT sessions FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(observer)
        .await
        .expect("count sessions")
}

/// The app's IAM tokens for one user: first `first` (signed to expire soon, but said to last 15
/// minutes, so that only the test's clock brings the refresh), then tokens from `later`.
struct ExpiredFirst {
    first: std::sync::Mutex<Option<SecretString>>,
    later: IamTokenSource,
}

impl TokenSource for ExpiredFirst {
    async fn token(&self) -> app::dsql::Result<Token> {
        let first = self.first.lock().expect("first").take();
        match first {
            Some(secret) => Ok(Token {
                secret,
                valid_for: Some(Duration::from_secs(900)),
            }),
            None => self.later.token().await,
        }
    }
}

/// The backend of `conn`, after checking that it sees the relay's loopback connection logged
/// in as `user`.
async fn relayed_backend(conn: &mut PgConnection, user: &str) -> i32 {
    let (user_name, pid, via_loopback): (String, i32, bool) = sqlx::query_as(
        "SELECT current_user::text, pg_backend_pid(), inet_client_addr() = '127.0.0.1'",
    )
    .fetch_one(conn)
    .await
    .expect("a query through the relay");
    assert_eq!(user_name, user);
    assert!(via_loopback);
    pid
}

/// The pool logs in with a token that then expires (the front door refuses it from then on);
/// each refresh, brought by the test's clock, installs a new token that the next new
/// connection logs in with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_refreshing_pool_works_through_tls_and_iam_tokens() {
    let door = door().await;
    let (database, user) = database_with_user("front_door_pool").await;
    // Signed for 5 s, trusted for at least 4 (X-Amz-Date has whole seconds): the pool's first
    // login, at once, gets in; then the front door's clock moves past it.
    let short = door
        .tokens(&user.user, &door.secret, Duration::from_secs(5))
        .await;
    let first = short.token().await.expect("a token").secret;
    let source = ExpiredFirst {
        first: std::sync::Mutex::new(Some(first.clone())),
        later: door.good_tokens(&user.user).await,
    };
    let (pool, clock) = door
        .pool_on_manual_clock(&database, &user.user, source)
        .await;
    let status = pool.status();
    let mut seen = std::collections::HashSet::new();
    seen.insert(relayed_backend(&mut *new_connection(pool.pool()).await, &user.user).await);
    // Past the first token's 5 s (and the second X-Amz-Date rounds off), without waiting;
    // the later tokens, valid for 15 minutes, stay valid.
    door.own().advance_clock(Duration::from_secs(7));
    let login = door
        .options(&database, &user.user)
        .password(first.expose_secret());
    let (code, _) = database_error::<()>(PgConnection::connect_with(&login).await.map(drop));
    assert_eq!(
        code, "28P01",
        "the expired token is refused as DSQL refuses it"
    );
    for refresh in 1..=2 {
        clock.advance_once_asleep(Duration::from_secs(900)).await;
        refreshes(&status, refresh).await;
        let mut conn = new_connection(pool.pool()).await;
        let pid = relayed_backend(&mut conn, &user.user).await;
        assert!(seen.insert(pid), "refresh {refresh}: a new connection");
    }
    assert_eq!(status.failures(), 0);
    pool.close().await;
}

#[tokio::test]
async fn an_admin_token_logs_admin_in_and_statements_relay_both_ways() {
    let (_door, _database, mut conn) = admin_in_fresh_database("front_door_admin").await;
    // Simple and extended protocol, an error, and the session still usable afterwards.
    exec(
        &mut conn,
        "CREATE TABLE relayed (id uuid PRIMARY KEY, note text)",
    )
    .await;
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
    // A token that expires a second after it is signed, signed first so that it has expired
    // by the time it is sent (waited for below if not).
    let expired = door
        .tokens(&user.user, &door.secret, Duration::from_secs(1))
        .await
        .token()
        .await
        .expect("a token");
    let server = server().await;
    let observer = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(server.connect_options(&database, server.admin()))
        .await
        .expect("an observer");
    // A first good login, so that the front door's one-time install of `sys` in the database
    // (a session of its own) is done before counting.
    let good = door.good_tokens(&user.user).await;
    let conn = door
        .connect(&database, &user.user, &good)
        .await
        .expect("a good login");
    conn.close().await.expect("close");
    let before = sessions_established(&observer, &database).await;
    let signed = |source: IamTokenSource| async move { source.token().await.expect("a token") };
    let cases = [
        // A token signed with a secret the stand-in does not know.
        (
            "wrong secret",
            signed(
                door.tokens(
                    &user.user,
                    &app::local::random_secret(),
                    Duration::from_secs(900),
                )
                .await,
            )
            .await,
            user.user.as_str(),
            "28P01",
        ),
        // A DbConnect token for admin, who needs DbConnectAdmin.
        (
            "wrong action",
            signed(door.good_tokens(&user.user).await).await,
            "admin",
            "28P01",
        ),
        // A valid token for the server's superuser, not a role DSQL has.
        (
            "superuser",
            signed(door.good_tokens("postgres").await).await,
            "postgres",
            "28P01",
        ),
        // A token that expired a second after it was signed.
        ("expired", expired, user.user.as_str(), "28P01"),
    ];
    for (what, token, login_as, expected) in cases {
        if what == "expired" {
            // Past its second (and the second X-Amz-Date rounds off), without waiting.
            door.own().advance_clock(Duration::from_secs(3));
        }
        let result = PgConnection::connect_with(
            &door
                .options(&database, login_as)
                .password(token.secret.expose_secret()),
        )
        .await;
        let (code, message) = database_error(result);
        assert_eq!(code, expected, "{what}: {message}");
        assert_eq!(
            message, "unable to accept connection, access denied",
            "{what}"
        );
        assert!(!message.contains(token.secret.expose_secret()), "{what}");
    }
    assert_eq!(sessions_established(&observer, &database).await, before);
    // The count does see a session through the front door: one good login adds one (as admin:
    // a non-admin login also adds the front door's own check of its IAM mapping).
    let conn = door.session(&database, "admin").await;
    conn.close().await.expect("close");
    assert_eq!(sessions_established(&observer, &database).await, before + 1);
}

#[tokio::test]
async fn a_connection_without_tls_or_with_another_ca_is_refused() {
    let door = door().await;
    let database = common::fresh_database("front_door_tls").await;
    let source = door.good_tokens("admin").await;
    let token = source.token().await.expect("a token");
    let plain = door
        .options(&database, "admin")
        .ssl_mode(PgSslMode::Disable)
        .password(token.secret.expose_secret());
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
        .password(token.secret.expose_secret());
    let error = PgConnection::connect_with(&untrusted)
        .await
        .expect_err("a certificate from an unknown CA");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

/// A simple query on a logged-in raw session, and the value of its one row's one column.
async fn select_one(stream: &mut common::raw::Stream) -> Vec<u8> {
    use app::local::front_door::wire;
    use tokio::io::AsyncWriteExt;
    let mut query = Vec::new();
    wire::put_message(&mut query, b'Q', b"SELECT 1\0");
    stream.write_all(&query).await.expect("send a query");
    let mut value = None;
    loop {
        let message = wire::read_message(stream, 1 << 20)
            .await
            .expect("read")
            .expect("the query's answers");
        assert_ne!(message.tag, b'E', "the query failed");
        match message.tag {
            // DataRow: a column count (2 bytes), then each column's length (4) and bytes.
            b'D' => value = Some(message.body[6..].to_vec()),
            b'Z' => return value.expect("a row"),
            _ => {}
        }
    }
}

/// Direct TLS, as libpq 17's `sslnegotiation=direct` and AWS's connectors open it (a
/// ClientHello first, ALPN `postgresql`), logs in and queries as after an `SSLRequest`, on both
/// loopback addresses; so does the `SSLRequest` way.
#[tokio::test]
async fn direct_tls_and_an_ssl_request_both_log_in_on_both_loopback_addresses() {
    use common::raw::{Opening, logged_in_on, tls_by};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    let door = door().await;
    let database = common::fresh_database("front_door_direct_tls").await;
    let direct = Opening::Direct(vec![b"postgresql"]);
    for address in [
        IpAddr::from(Ipv4Addr::LOCALHOST),
        IpAddr::from(Ipv6Addr::LOCALHOST),
    ] {
        for opening in [direct.clone(), Opening::SslRequest] {
            let stream = tls_by(&door, opening.clone(), address)
                .await
                .unwrap_or_else(|error| panic!("{opening:?} on {address}: {error}"));
            let mut session = logged_in_on(&door, stream, &database).await;
            assert_eq!(
                select_one(&mut session).await,
                b"1",
                "{opening:?} on {address}"
            );
        }
    }
}

/// As PostgreSQL 17: direct TLS without ALPN is closed without a word, and with another
/// protocol than `postgresql` the handshake itself fails (`no_application_protocol`).
#[tokio::test]
async fn direct_tls_without_alpn_postgresql_gets_nowhere() {
    use common::raw::{Opening, read_until_closed, tls_by};
    use std::net::{IpAddr, Ipv4Addr};

    let door = door().await;
    let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
    let mut stream = tls_by(&door, Opening::Direct(vec![]), loopback)
        .await
        .expect("the handshake itself succeeds");
    {
        use tokio::io::AsyncWriteExt;
        let startup = app::local::front_door::wire::startup_message([("user", "admin")]);
        // The front door may have closed already; what counts is that nothing comes back.
        let _ = stream.write_all(&startup).await;
    }
    let received = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(received.is_empty(), "answered {received:?}");

    let error = tls_by(&door, Opening::Direct(vec![b"http/1.1"]), loopback)
        .await
        .expect_err("no protocol in common");
    let alert = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    assert_eq!(
        alert,
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::NoApplicationProtocol
        )),
        "{error}"
    );
}

#[tokio::test]
async fn create_index_async_answers_a_job_that_sys_jobs_shows_and_wait_for_job_waits_for() {
    let (_door, _database, mut conn) = admin_in_fresh_database("front_door_async_index").await;
    exec(
        &mut conn,
        "CREATE TABLE pets (id uuid PRIMARY KEY, name text)",
    )
    .await;
    // DSQL's answer to a plain index (index.json, create_index_sync).
    let (code, message) = database_error(
        sqlx::query("CREATE INDEX pets_name ON pets (name)")
            .execute(&mut conn)
            .await,
    );
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("0A000", "unsupported mode. please use CREATE INDEX ASYNC.")
    );
    // Extended protocol: one `job_id` row, 26 lower-case base32 characters (index.json).
    let job_id: String = sqlx::query_scalar("CREATE INDEX ASYNC pets_name ON pets (name)")
        .fetch_one(&mut conn)
        .await
        .expect("a job id");
    assert_eq!(job_id.len(), 26, "{job_id}");
    assert!(
        job_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{job_id}"
    );
    let (status, job_type, object_name): (String, String, String) =
        sqlx::query_as("SELECT status, job_type, object_name FROM sys.jobs WHERE job_id = $1")
            .bind(&job_id)
            .fetch_one(&mut conn)
            .await
            .expect("the job in sys.jobs");
    assert_eq!(
        (status.as_str(), job_type.as_str(), object_name.as_str()),
        ("completed", "INDEX_BUILD", "pets_name")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CALL sys.wait_for_job('{job_id}')"
    )))
    .execute(&mut conn)
    .await
    .expect("wait for the job");
    let indexes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'pets_name'")
            .fetch_one(&mut conn)
            .await
            .expect("count indexes");
    assert_eq!(indexes, 1, "the index exists");
    // Simple protocol, in a transaction, unique, with IF NOT EXISTS: a new index answers a
    // job; the same statement again builds nothing and answers no row.
    let unique =
        "BEGIN; CREATE UNIQUE INDEX ASYNC IF NOT EXISTS pets_id_name ON pets (id, name); COMMIT";
    let rows = sqlx::raw_sql(unique)
        .fetch_all(&mut conn)
        .await
        .expect("a unique async index");
    assert_eq!(rows.len(), 1, "one job row");
    let again = sqlx::raw_sql(unique)
        .fetch_all(&mut conn)
        .await
        .expect("the same again");
    assert!(again.is_empty(), "no job when the index exists");
    // index.json, sys_call_wait_for_job_literal.
    let (code, message) = refused(&mut conn, "CALL sys.wait_for_job('no-such-job')").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("22P02", "Unable to convert text to UUID")
    );
    conn.close().await.expect("close");
}

#[tokio::test]
async fn the_migrations_build_their_indexes_the_dsql_way_through_the_front_door() {
    let door = door().await;
    let (database, user) = database_with_user("front_door_migrations").await;
    let source = door.good_tokens(&user.user).await;
    let pool = door
        .pool(&database, &user.user, &PoolSettings::default(), source)
        .await;
    let db = pool.database();
    app::demo::migrate(&db)
        .await
        .expect("migrate as an onboarded user");
    // Every index of the migrations (five) came from CREATE INDEX ASYNC: each is a job.
    let jobs: Vec<String> = sqlx::query_scalar(
        "SELECT object_name FROM sys.jobs WHERE job_type = 'INDEX_BUILD' AND status = 'completed' ORDER BY object_name",
    )
    .fetch_all(pool.pool())
    .await
    .expect("read sys.jobs");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'myschema' AND indexname NOT LIKE '%_pkey' ORDER BY 1",
    )
    .fetch_all(pool.pool())
    .await
    .expect("read the indexes");
    assert_eq!(jobs.len(), 5, "{jobs:?}");
    assert_eq!(jobs, indexes);
    Migrator::down(&db, None).await.expect("and down again");
    pool.close().await;
}

/// The backend process id of the session `conn` is on.
async fn backend_pid<C: ConnectionTrait>(conn: &C) -> u32 {
    let pid: i64 = common::one_value(conn, "SELECT pg_backend_pid()::bigint").await;
    u32::try_from(pid).expect("a pid fits")
}

#[tokio::test]
async fn a_commit_made_to_fail_answers_dsqls_conflict_rolls_back_and_is_retried() {
    let door = door().await;
    let database = common::fresh_database("front_door_injected_conflicts").await;
    let source = door.good_tokens("admin").await;
    let mut conn = door.session(&database, "admin").await;
    exec(
        &mut conn,
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
    )
    .await;
    exec(&mut conn, "INSERT INTO counter VALUES (1, 0)").await;
    let failures = door.failures.clone();

    // One session, both conflicts: DSQL's code and message at COMMIT, the work undone, the
    // session usable afterwards.
    for (conflict, message) in [
        (
            Conflict::Data,
            "change conflicts with another transaction (OC000)",
        ),
        (
            Conflict::Schema,
            "schema has been updated by another transaction, please retry: (OC001)",
        ),
    ] {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("the pid");
        failures.fail_next_commit(u32::try_from(pid).expect("a pid"), conflict);
        exec(
            &mut conn,
            "BEGIN; UPDATE counter SET n = n + 1 WHERE id = 1",
        )
        .await;
        let (code, got) = refused(&mut conn, "COMMIT").await;
        assert_eq!((code.as_str(), got.as_str()), ("40001", message));
        let n: i32 = sqlx::query_scalar("SELECT n FROM counter WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .expect("the session is idle and usable");
        assert_eq!(n, 0, "the failed commit wrote nothing");
    }
    conn.close().await.expect("close");

    // The app's retry, through a SeaORM pool: the first attempt's commit fails, the second
    // commits; the increment lands once.
    let pool = door
        .pool(&database, "admin", &PoolSettings::default(), source)
        .await;
    let db = pool.database();
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let policy = app::dsql::retry::RetryPolicy {
        base_delay: Duration::from_millis(1),
        ..app::dsql::retry::RetryPolicy::default()
    };
    let retried = app::dsql::retry::transaction(
        &db,
        &policy,
        app::dsql::retry::Idempotency::NotIdempotent,
        |txn| {
            let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let failures = failures.clone();
            Box::pin(async move {
                if attempt == 1 {
                    failures.fail_next_commit(backend_pid(txn).await, Conflict::Schema);
                }
                txn.execute_unprepared("UPDATE counter SET n = n + 1 WHERE id = 1")
                    .await?;
                Ok(())
            })
        },
    )
    .await
    .expect("the second attempt commits");
    assert_eq!(retried.attempts, 2);
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let n: i32 = sqlx::query_scalar("SELECT n FROM counter WHERE id = 1")
        .fetch_one(pool.pool())
        .await
        .expect("read");
    assert_eq!(n, 1, "one increment");
    pool.close().await;
}

/// DSQL's schema conflict as the front door answers it (40001 with `(OC001)`), to a session
/// that uses a relation another session's committed DDL changed: a conflict, classified apart,
/// and cleared by the first retry.
#[tokio::test]
async fn a_real_schema_conflict_is_classified_as_schema_changed() {
    let (door, database, mut ddl) = admin_in_fresh_database("front_door_classify_oc001").await;
    let mut stale = door.session(&database, "admin").await;
    exec(&mut ddl, "CREATE TABLE u (id integer PRIMARY KEY)").await;
    let error = sqlx::raw_sql("SELECT 1 FROM u")
        .execute(&mut stale)
        .await
        .expect_err("OC001 in the second");
    let error = app::dsql::retry::statement_error(error);
    assert_eq!(migration::dsql::sqlstate(&error).as_deref(), Some("40001"));
    assert_eq!(
        app::dsql::retry::classify(&error),
        app::dsql::retry::ErrorClass::SchemaChanged,
        "{error}"
    );
    app::dsql::retry::execute_fresh(&mut ddl, "SELECT 1 FROM u")
        .await
        .expect("the session that changed the schema is not hit");
    exec(&mut stale, "SELECT 1 FROM u").await;
}

/// `UPDATE counter SET n = n + 1 WHERE id = 1` in the app's retry.
async fn increment_counter(
    db: &sea_orm::DatabaseConnection,
    policy: &app::dsql::retry::RetryPolicy,
) -> app::dsql::Result<app::dsql::retry::Retried<()>> {
    app::dsql::retry::transaction(
        db,
        policy,
        app::dsql::retry::Idempotency::NotIdempotent,
        |txn| {
            Box::pin(async move {
                txn.execute_unprepared("UPDATE counter SET n = n + 1 WHERE id = 1")
                    .await?;
                Ok(())
            })
        },
    )
    .await
}

/// One DDL statement makes the catalog of every other pooled connection stale, and each retry
/// may take the next stale one. The app's retry takes schema conflicts at once, without
/// spending its attempts on them: with `max_attempts` 1, a counted retry would give up.
#[tokio::test]
async fn the_retry_passes_a_whole_stale_pool_without_spending_its_attempts() {
    let door = door().await;
    assert!(Limits::default().schema_conflicts, "on by default, as DSQL");
    assert!(
        !Limits::default().schema_conflicts_cluster_wide,
        "per relation by default"
    );
    let database = common::fresh_database("front_door_stale_pool").await;
    let source = door.good_tokens("admin").await;
    let settings = PoolSettings {
        max_connections: 3,
        ..PoolSettings::default()
    };
    let pool = door.pool(&database, "admin", &settings, source).await;
    let mut held = Vec::new();
    for _ in 0..settings.max_connections {
        let mut conn = pool.pool().acquire().await.expect("a pooled connection");
        exec(&mut conn, "SELECT 1").await;
        held.push(conn);
    }
    drop(held);
    let mut ddl = door.session(&database, "admin").await;
    exec(
        &mut ddl,
        "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
    )
    .await;
    exec(&mut ddl, "INSERT INTO counter VALUES (1, 0)").await;

    let policy = app::dsql::retry::RetryPolicy {
        max_attempts: 1,
        ..app::dsql::retry::RetryPolicy::default()
    };
    let retried = increment_counter(&pool.database(), &policy)
        .await
        .expect("committed once every stale connection had its conflict");
    // Every pooled connection was stale, so the first attempt met an OC001; each connection
    // meets at most one.
    assert!(
        (2..=4).contains(&retried.attempts),
        "attempts {}",
        retried.attempts
    );
    let n: i32 = sqlx::query_scalar("SELECT n FROM counter WHERE id = 1")
        .fetch_one(&mut ddl)
        .await
        .expect("read");
    assert_eq!(n, 1, "one increment");

    // After more DDL, refresh_catalogs takes every connection's conflict at once: the next
    // transaction needs one attempt.
    exec(&mut ddl, "ALTER TABLE counter ADD COLUMN note text").await;
    app::dsql::retry::refresh_catalogs(&pool.database(), "SELECT 1 FROM counter LIMIT 0")
        .await
        .expect("every pooled connection refreshed");
    let again = increment_counter(&pool.database(), &policy)
        .await
        .expect("commits");
    assert_eq!(again.attempts, 1, "no stale connection left");
    ddl.close().await.expect("close");
    pool.close().await;
}

#[tokio::test]
async fn the_loser_of_a_real_write_conflict_gets_dsqls_oc000() {
    let (door, database, mut first) = admin_in_fresh_database("front_door_real_conflict").await;
    exec(
        &mut first,
        "CREATE TABLE contested (id int PRIMARY KEY, name text)",
    )
    .await;
    exec(&mut first, "INSERT INTO contested VALUES (1, 'seed')").await;
    // Opened after the DDL, so its catalog is current (no OC001).
    let mut second = door.session(&database, "admin").await;
    // occ_conflict.json, occ_write_write: two writers to one row, one fails with 40001.
    // Both take their snapshot first; PostgreSQL fails the second writer at its statement
    // (DSQL would at its COMMIT).
    for conn in [&mut first, &mut second] {
        exec(&mut *conn, "BEGIN; SELECT name FROM contested WHERE id = 1").await;
    }
    exec(&mut first, "UPDATE contested SET name = 'a' WHERE id = 1").await;
    exec(&mut first, "COMMIT").await;
    let (code, message) =
        refused(&mut second, "UPDATE contested SET name = 'b' WHERE id = 1").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("40001", "change conflicts with another transaction (OC000)")
    );
    exec(&mut second, "ROLLBACK").await;
    let name: String = sqlx::query_scalar("SELECT name FROM contested WHERE id = 1")
        .fetch_one(&mut second)
        .await
        .expect("read");
    assert_eq!(name, "a", "the winner's write");
}

#[tokio::test]
async fn a_role_logs_in_only_once_aws_iam_grant_maps_it() {
    let (door, database, mut admin) = admin_in_fresh_database("front_door_iam_grant").await;
    // A role made the plain PostgreSQL way, without AWS IAM GRANT: not onboarded.
    exec(&mut admin, "CREATE ROLE clinic_reader WITH LOGIN").await;
    let reader_tokens = door.good_tokens("clinic_reader").await;
    let not_onboarded = door
        .connect(&database, "clinic_reader", &reader_tokens)
        .await;
    let error = not_onboarded.expect_err("not onboarded");
    let db_error = error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .expect("a database error");
    assert_eq!(db_error.code(), "28000");
    assert_eq!(
        db_error.message(),
        "unable to accept connection, access denied"
    );
    let hint = db_error.hint().unwrap_or_default();
    assert!(
        hint.contains("AWS IAM GRANT"),
        "the hint names the fix: {hint}"
    );

    // DSQL's onboarding statement, as users::onboard sends it.
    let arn = "arn:aws:iam::123456789012:role/clinic-reader";
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "AWS IAM GRANT clinic_reader TO '{arn}'"
    )))
    .execute(&mut admin)
    .await
    .expect("AWS IAM GRANT");
    let conn = door
        .connect(&database, "clinic_reader", &reader_tokens)
        .await
        .expect("an onboarded role logs in");
    conn.close().await.expect("close");
    // A role that does not exist is named.
    let (code, message) = refused(
        &mut admin,
        "AWS IAM GRANT nobody TO 'arn:aws:iam::123456789012:role/x'",
    )
    .await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42704", "role \"nobody\" does not exist")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "AWS IAM REVOKE clinic_reader FROM '{arn}'"
    )))
    .execute(&mut admin)
    .await
    .expect("AWS IAM REVOKE");
    let again = door
        .connect(&database, "clinic_reader", &reader_tokens)
        .await;
    assert!(again.is_err(), "revoked: refused again");
    admin.close().await.expect("close");
}

#[tokio::test]
async fn dsqls_limits_hold_with_seconds_for_minutes() {
    let door = common::door::door_with(Limits {
        transaction_age: Duration::from_secs(1),
        connection_lifetime: Duration::from_secs(3),
        ..Limits::default()
    })
    .await;
    let database = common::fresh_database("front_door_limits").await;
    let mut first = door.session(&database, "admin").await;
    let mut second = door.session(&database, "admin").await;

    // A transaction older than its limit: DSQL's 54000 at the next statement; ROLLBACK ends it.
    exec(&mut first, "BEGIN").await;
    let first = tokio::sync::Mutex::new(first);
    let (code, message) = common::eventually(
        Duration::from_secs(10),
        "the transaction to pass its age limit",
        || async {
            match sqlx::raw_sql("SELECT 1")
                .execute(&mut *first.lock().await)
                .await
            {
                Ok(_) => None,
                Err(error) => Some(database_error::<()>(Err(error))),
            }
        },
    )
    .await;
    let mut first = first.into_inner();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("54000", "transaction age limit of 1s exceeded")
    );
    exec(&mut first, "ROLLBACK").await;

    // After the first session's DDL, the second's first use of the table gets one OC001.
    exec(&mut first, "CREATE TABLE limits_seen (id int PRIMARY KEY)").await;
    let (code, message) = refused(&mut second, "SELECT count(*) FROM limits_seen").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "40001",
            "schema has been updated by another transaction, please retry: (OC001)"
        )
    );
    exec(&mut second, "SELECT count(*) FROM limits_seen").await;
    exec(&mut first, "SELECT 1").await;

    // A connection past its lifetime is closed once idle: every statement until then
    // completes, and the first one after finds the connection closed, not an error.
    let first = tokio::sync::Mutex::new(first);
    let closed = common::eventually(
        Duration::from_secs(10),
        "the front door to close the session after its lifetime",
        || async {
            sqlx::raw_sql("SELECT 1")
                .execute(&mut *first.lock().await)
                .await
                .err()
        },
    )
    .await;
    assert!(
        closed.as_database_error().is_none(),
        "closed, not refused: {closed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_outlives_short_connection_lifetimes_and_token_refreshes() {
    // Connections closed by the front door after 3 s (DSQL: 1 h) and the pool retiring
    // connections after 1 s: as the app keeps its pool's lifetime below DSQL's (55 min), so a
    // connection is never closed under a statement. (A pool that outlives the front door's
    // limit loses statements sent on a connection just closed, as on DSQL.) A token refresh,
    // brought by the test's clock, after every run of the demo.
    let door = common::door::door_with(Limits {
        connection_lifetime: Duration::from_secs(3),
        ..Limits::default()
    })
    .await;
    let (database, user) = database_with_user("front_door_lifetime").await;
    let source = door.good_tokens(&user.user).await;
    let settings = PoolSettings {
        max_connections: 2,
        max_lifetime: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
    };
    let clock = ManualClock::new();
    let pool = door
        .pool_on(&database, &user.user, &settings, source, clock.shared())
        .await;
    let status = pool.status();
    let db = pool.database();
    app::demo::migrate(&db).await.expect("migrate");
    let policy = app::dsql::retry::RetryPolicy::default();
    let pids = std::sync::Mutex::new(std::collections::HashSet::new());
    let runs = common::eventually(
        Duration::from_secs(60),
        "the front door to retire connections under the pool",
        || async {
            app::demo::run(&db, &policy, |_| {})
                .await
                .expect("no operation fails");
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(pool.pool())
                .await
                .expect("a query");
            clock.advance_once_asleep(Duration::from_secs(900)).await;
            let mut pids = pids.lock().expect("pids");
            pids.insert(pid);
            (pids.len() > 2).then(|| status.successes())
        },
    )
    .await;
    assert!(
        runs > 1,
        "the demo ran and the token was refreshed more than once"
    );
    assert_eq!(status.failures(), 0);
    pool.close().await;
}

/// The front door logs in to the server as the client's own role, with that role's stand-in
/// password: a role whose server password was changed behind its back still logs in through
/// the front door, which gives it its stand-in password again.
#[tokio::test]
async fn a_role_whose_server_password_changed_still_logs_in_through_the_front_door() {
    let door = door().await;
    let server = server().await;
    let (database, user) = database_with_user("front_door_password_reset").await;
    let other = app::local::Credentials {
        user: user.user.clone(),
        password: app::local::random_secret(),
    };
    server
        .set_password(&database, &other)
        .await
        .expect("another password");
    let mut conn = door.session(&database, &user.user).await;
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .expect("a query through the front door");
    assert_eq!(me, user.user);
    conn.close().await.expect("close");
    let direct = server.connect_options(&database, &server.credentials_of(&user.user));
    PgConnection::connect_with(&direct)
        .await
        .expect("a direct login with the stand-in password")
        .close()
        .await
        .expect("close");
}

/// A session the front door opened logged in as the client's role, so it has no other
/// identity to return to: whatever resets it tries, it stays `admin`, not a superuser.
#[tokio::test]
async fn a_front_door_session_cannot_reset_itself_into_the_superuser() {
    let door = door().await;
    let mut conn = door.session("postgres", "admin").await;
    for reset in [
        "RESET ROLE",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "DISCARD ALL",
        "SELECT set_config('role', 'none', false)",
    ] {
        // Refused or accepted, the session's identity must not change.
        let _ = sqlx::raw_sql(reset).execute(&mut conn).await;
        let (session_user, current_user, superuser): (String, String, bool) = sqlx::query_as(
            "SELECT session_user::text, current_user::text, \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        )
        // Unnamed: DISCARD ALL drops named prepared statements.
        .persistent(false)
        .fetch_one(&mut conn)
        .await
        .expect("who am I");
        assert_eq!(
            (session_user.as_str(), current_user.as_str(), superuser),
            ("admin", "admin", false),
            "after {reset}"
        );
    }
    conn.close().await.expect("close");
}

/// `version()` answers DSQL's text (`environment.json`), whether the client names its schema
/// (SQLAlchemy's `select pg_catalog.version()`) or not, and a user cannot replace it.
#[tokio::test]
async fn version_answers_dsqls_text_however_it_is_called() {
    let (_door, _database, mut admin) = admin_in_fresh_database("front_door_version").await;
    for sql in ["SELECT version()", "SELECT pg_catalog.version()"] {
        let version: String = sqlx::query_scalar(sql)
            .fetch_one(&mut admin)
            .await
            .expect("the version");
        assert_eq!(version, "PostgreSQL 16", "{sql}");
    }
    let (code, _) = refused(&mut admin, "DROP FUNCTION pg_catalog.version()").await;
    assert_eq!(code, "42501", "pg_catalog's version() is not the user's");
    admin.close().await.expect("close");
}

/// After `AWS IAM GRANT`, DSQL's view of the mappings shows it, with the columns AWS's
/// documentation gives; `AWS IAM REVOKE` removes it.
#[tokio::test]
async fn iam_pg_role_mappings_shows_what_aws_iam_grant_mapped() {
    let (_door, _database, mut admin) = admin_in_fresh_database("front_door_role_mappings").await;
    let arn = "arn:aws:iam::123456789012:role/mapped";
    exec(&mut admin, "CREATE ROLE mapped WITH LOGIN").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "AWS IAM GRANT mapped TO '{arn}'"
    )))
    .execute(&mut admin)
    .await
    .expect("AWS IAM GRANT");
    let rows: Vec<(i64, String, bool, String, bool, String)> = sqlx::query_as(
        "SELECT iam_oid::bigint, arn, pg_role_oid = 'mapped'::regrole, pg_role_name::text, \
         grantor_pg_role_oid = 'admin'::regrole, grantor_pg_role_name::text \
         FROM sys.iam_pg_role_mappings WHERE pg_role_name = 'mapped'",
    )
    .fetch_all(&mut admin)
    .await
    .expect("the mappings");
    let [(iam_oid, mapped_arn, role_oid, role, grantor_oid, grantor)] = rows.as_slice() else {
        panic!("one mapping: {rows:?}");
    };
    assert!(*iam_oid > 0);
    assert_eq!(mapped_arn, arn);
    assert!(*role_oid && *grantor_oid);
    assert_eq!((role.as_str(), grantor.as_str()), ("mapped", "admin"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "AWS IAM REVOKE mapped FROM '{arn}'"
    )))
    .execute(&mut admin)
    .await
    .expect("AWS IAM REVOKE");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sys.iam_pg_role_mappings WHERE pg_role_name = 'mapped'",
    )
    .fetch_one(&mut admin)
    .await
    .expect("the mappings");
    assert_eq!(left, 0);
    admin.close().await.expect("close");
}

/// After another session's DDL, DSQL fails only a statement that uses the changed relation,
/// once: a pooled connection's reset (`DEALLOCATE ALL`) and a read of another table pass.
#[tokio::test]
async fn only_a_statement_using_a_changed_table_gets_oc001_and_only_once() {
    let (door, database, mut ddl) = admin_in_fresh_database("front_door_oc001_scope").await;
    for sql in [
        "CREATE TABLE changed (id int PRIMARY KEY)",
        "CREATE TABLE unrelated (id int PRIMARY KEY)",
    ] {
        sqlx::raw_sql(sql).execute(&mut ddl).await.expect("a table");
    }
    let mut other = door.session(&database, "admin").await;
    exec(&mut other, "SELECT * FROM changed; SELECT * FROM unrelated").await;
    exec(&mut ddl, "ALTER TABLE changed ADD COLUMN note text").await;
    for sql in [
        "DEALLOCATE ALL",
        "SELECT 1",
        "SELECT count(*) FROM unrelated",
        "BEGIN",
        "COMMIT",
    ] {
        sqlx::raw_sql(sql)
            .execute(&mut other)
            .await
            .unwrap_or_else(|e| panic!("{sql} uses nothing that changed: {e}"));
    }
    let (code, message) = refused(&mut other, "SELECT * FROM public.changed").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "40001",
            "schema has been updated by another transaction, please retry: (OC001)"
        )
    );
    let notes: Vec<Option<String>> = sqlx::query_scalar("SELECT note FROM changed")
        .fetch_all(&mut other)
        .await
        .expect("once: the retry sees the new column");
    assert!(notes.is_empty());
    other.close().await.expect("close");
    ddl.close().await.expect("close");
}

/// The cluster-wide reading, as a switch: any DDL fails the first statement of every other
/// session's next transaction, whatever it uses, once.
#[tokio::test]
async fn cluster_wide_schema_conflicts_fail_even_a_pooled_reset_once() {
    let door = common::door::door_with(Limits {
        schema_conflicts_cluster_wide: true,
        ..Limits::default()
    })
    .await;
    let database = common::fresh_database("front_door_oc001_cluster").await;
    let mut ddl = door.session(&database, "admin").await;
    let mut other = door.session(&database, "admin").await;
    exec(&mut ddl, "CREATE TABLE elsewhere (id int PRIMARY KEY)").await;
    let (code, _) = refused(&mut other, "DEALLOCATE ALL").await;
    assert_eq!(code, "40001");
    exec(&mut other, "DEALLOCATE ALL").await;
    other.close().await.expect("close");
    ddl.close().await.expect("close");
}

/// A sequence or identity `CACHE` other than 1 or at least 65536 gets DSQL's own message (its
/// SQLSTATE, 22023, is assumed: see `rules.rs`); a missing one, DSQL's recorded refusal.
#[tokio::test]
async fn a_wrong_cache_size_and_a_missing_one_get_dsqls_two_answers() {
    let (_door, _database, mut admin) = admin_in_fresh_database("front_door_cache_sizes").await;
    let wrong = |n: u32| {
        (
            "22023".to_owned(),
            format!("CACHE ({n}) must be greater than or equal to 65536 or equal to 1"),
        )
    };
    for n in [2, 1000, 65535] {
        for sql in [
            format!("CREATE TABLE c{n} (id bigint GENERATED ALWAYS AS IDENTITY (CACHE {n}))"),
            format!("CREATE SEQUENCE s{n} CACHE {n}"),
        ] {
            let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut admin)
                .await;
            assert_eq!(database_error(refused), wrong(n), "{sql}");
        }
    }
    let missing = sqlx::raw_sql("CREATE TABLE c (id bigint GENERATED ALWAYS AS IDENTITY)")
        .execute(&mut admin)
        .await;
    assert_eq!(
        database_error(missing),
        (
            "0A000".to_owned(),
            "identity column is not supported without an explicit cache size. please define \
             CACHE greater than or equal to 65536 or equal to 1"
                .to_owned()
        )
    );
    exec(
        &mut admin,
        "CREATE TABLE c (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 65536))",
    )
    .await;
    admin.close().await.expect("close");
}

/// A statement a client prepared once and binds again (sqlx's statement cache) meets a schema
/// conflict as its text would: one `OC001` once its table changed, then it runs.
#[tokio::test]
async fn a_cached_prepared_statement_on_a_changed_table_gets_oc001_once() {
    let (door, database, mut ddl) = admin_in_fresh_database("front_door_oc001_prepared").await;
    exec(&mut ddl, "CREATE TABLE prepared_on (id int PRIMARY KEY)").await;
    let mut other = door.session(&database, "admin").await;
    let read = async |conn: &mut PgConnection| {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM prepared_on")
            .fetch_one(conn)
            .await
    };
    assert_eq!(read(&mut other).await.expect("prepared and run"), 0);
    exec(&mut ddl, "ALTER TABLE prepared_on ADD COLUMN note text").await;
    let (code, message) = database_error(read(&mut other).await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "40001",
            "schema has been updated by another transaction, please retry: (OC001)"
        )
    );
    assert_eq!(read(&mut other).await.expect("once"), 0);
    other.close().await.expect("close");
    ddl.close().await.expect("close");
}
