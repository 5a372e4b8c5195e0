//! Shared by the integration tests: one local server per test binary (it is stopped by its
//! dead man's switch when the binary exits), and a fresh database per test.
#![allow(dead_code, missing_docs)]

#[cfg(feature = "front-door")]
pub mod door;
pub mod recordings;

use std::sync::atomic::{AtomicU32, Ordering};

use app::local::{Credentials, LocalServer};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

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
    let user = server()
        .await
        .create_user(&database, &format!("{database}_user"))
        .await
        .expect("create the user");
    (database, user)
}

/// A single connection to `database` as `who`.
pub async fn connect(database: &str, who: &Credentials) -> PgConnection {
    let options = server().await.connect_options(database, who);
    PgConnection::connect_with(&options)
        .await
        .expect("connect to the test database")
}

/// A SeaORM connection (a small pool) to `database` as `admin`.
pub async fn admin_db(database: &str) -> DatabaseConnection {
    let server = server().await;
    let pool = server
        .pool(database, server.admin())
        .await
        .expect("connect as admin");
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
}

/// Onboards the non-admin user `name` in `database` and connects as it, in `myschema`.
pub async fn user_db(database: &str, name: &str) -> DatabaseConnection {
    let server = server().await;
    let user = server
        .create_user(database, name)
        .await
        .expect("onboard the user");
    let options = server
        .connect_options(database, &user)
        .options([("search_path", app::local::USER_SCHEMA)]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("connect as the user");
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
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
