//! Shared by the integration tests: one local server for the test binary (it is stopped by its
//! dead man's switch when the binary exits), a fresh database per test, and [`eventually`] for
//! every wait.
#![allow(dead_code, missing_docs)]

pub mod clock;
#[cfg(feature = "front-door")]
pub mod door;
#[cfg(feature = "front-door")]
pub mod hosts;
pub mod logs;
#[cfg(feature = "front-door")]
pub mod raw;
pub mod recordings;
#[cfg(feature = "front-door")]
pub mod tags;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use app::local::{Credentials, LocalServer};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

/// How often [`eventually`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `check` until it answers `Some`, and returns that; panics naming `what` was awaited if
/// `within` passes first. The one way the tests wait for something to happen: `within` is a
/// guard against a hang, never the thing tested, so it can be generous.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`eventually`] for a test without a runtime: `check` runs on the calling thread.
pub fn eventually_blocking<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// A port of 127.0.0.1 that nothing listened on a moment ago: where nothing answers.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The test binary's server, started on first use.
pub async fn server() -> &'static LocalServer {
    SERVER
        .get_or_init(|| async {
            LocalServer::start()
                .await
                .expect("start the local PostgreSQL (are the server binaries installed?)")
        })
        .await
}

/// A new, empty database with the DSQL rules, owned by `admin`.
pub async fn fresh_database(purpose: &str) -> String {
    let name = format!(
        "t{}_{purpose}",
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    server()
        .await
        .create_database(&name)
        .await
        .expect("create a test database");
    name
}

/// A fresh database with a new non-admin role of its own (roles are server-wide, so it is
/// named after the database, which is unique).
pub async fn database_with_user(purpose: &str) -> (String, Credentials) {
    let database = fresh_database(purpose).await;
    let user = app::users::onboard_local(server().await, &database, &format!("{database}_user"))
        .await
        .expect("create the user");
    (database, user)
}

/// How the tests reach `database` as `who`: through the binary's shared front door with an
/// IAM token, as the app reaches DSQL (built without the front door: directly, with the
/// password).
pub async fn options_for(database: &str, who: &Credentials) -> PgConnectOptions {
    #[cfg(feature = "front-door")]
    {
        door::shared()
            .await
            .options_with_token(database, &who.user)
            .await
    }
    #[cfg(not(feature = "front-door"))]
    {
        server().await.connect_options(database, who)
    }
}

/// A `DATABASE_URL` for `database` as `admin`, as other tools take one: through the binary's
/// front door with an IAM token (built without the front door: directly, with the password).
pub async fn admin_url(database: &str) -> String {
    #[cfg(feature = "front-door")]
    {
        door::shared()
            .await
            .url(database, app::local::ADMIN_USER)
            .await
    }
    #[cfg(not(feature = "front-door"))]
    {
        let server = server().await;
        let admin = server.admin();
        format!(
            "postgres://{}:{}@{}:{}/{database}",
            admin.user,
            secrecy::ExposeSecret::expose_secret(&admin.password),
            server.host(),
            server.port()
        )
    }
}

/// A single connection to `database` as `who` ([`options_for`]).
pub async fn connect(database: &str, who: &Credentials) -> PgConnection {
    PgConnection::connect_with(&options_for(database, who).await)
        .await
        .expect("connect to the test database")
}

/// A SeaORM connection to `database` as `admin` straight to the server, past any front door:
/// for what the front door would refuse (a `DO` block, plain PostgreSQL's behaviour).
pub async fn direct_admin_db(database: &str) -> DatabaseConnection {
    let server = server().await;
    let pool = server
        .pool(database, server.admin())
        .await
        .expect("admin's pool straight to the server");
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
}

/// A SeaORM connection (a small pool) to `database` as `admin` ([`options_for`]).
pub async fn admin_db(database: &str) -> DatabaseConnection {
    let admin = server().await.admin().clone();
    pool(options_for(database, &admin).await).await
}

/// Onboards the non-admin user `name` in `database` and connects as it, in `myschema`
/// ([`options_for`]).
pub async fn user_db(database: &str, name: &str) -> DatabaseConnection {
    let user = app::users::onboard_local(server().await, database, name)
        .await
        .expect("onboard the user");
    let options = options_for(database, &user)
        .await
        .options([("search_path", app::dsql::USER_SCHEMA)]);
    pool(options).await
}

/// A SeaORM connection over a pool of at most 8 connections with `options`.
async fn pool(options: PgConnectOptions) -> DatabaseConnection {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .expect("connect to the test database");
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
}

/// Runs `sql` (the simple protocol: one statement or several) on `conn`; panics naming the
/// statement and the error if it fails.
pub async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The SQLSTATE and message `sql` (the simple protocol) is refused with on `conn` (panics if it
/// succeeds, [`database_error`]).
pub async fn refused(conn: &mut PgConnection, sql: &str) -> (String, String) {
    database_error(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await)
}

/// The first column of the one row `sql` answers on `db` (SeaORM, any connection or
/// transaction).
pub async fn one_value<T: sea_orm::TryGetable>(db: &impl sea_orm::ConnectionTrait, sql: &str) -> T {
    let statement = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql);
    let row = db
        .query_one_raw(statement)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get_by_index(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The SQLSTATE and message of a failed statement (panics on success or a non-database error).
pub fn database_error<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> (String, String) {
    let err = result.expect_err("the statement should have been refused");
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("expected a database error, got {err}"));
    (
        db.code().map(|c| c.into_owned()).unwrap_or_default(),
        db.message().to_owned(),
    )
}
