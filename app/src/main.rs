//! The `app` command: the clinic demo, and the local DSQL stand-in.

use anyhow::{Context, Result};
use app::local::{ADMIN_USER, DATABASE, LocalServer};
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use tracing_subscriber::EnvFilter;

/// SeaORM on Amazon Aurora DSQL: the pet-clinic demo.
///
/// With no database configured, the app starts a local DSQL stand-in (a throwaway PostgreSQL
/// that refuses what DSQL refuses) and stops it afterwards. Logging follows RUST_LOG
/// (default: info).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database as `admin` and print its tables (the default).
    Demo,
    /// Start the local DSQL stand-in, print how to connect to it, and keep it running until
    /// Ctrl-C.
    Local,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let command = cli.command.unwrap_or(Command::Demo);
    // Ctrl-C drops the work in progress, and with it any local server, which stops it.
    tokio::select! {
        result = run(&command) => result,
        signal = tokio::signal::ctrl_c() => {
            signal.context("listening for Ctrl-C")?;
            match command {
                Command::Local => Ok(()),
                Command::Demo => anyhow::bail!("interrupted"),
            }
        }
    }
}

async fn run(command: &Command) -> Result<()> {
    match command {
        Command::Demo => demo().await,
        Command::Local => local().await,
    }
}

async fn demo() -> Result<()> {
    let server = LocalServer::start()
        .await
        .context("starting the local DSQL stand-in")?;
    let db = admin_connection(&server).await?;
    Migrator::up(&db, None)
        .await
        .context("migrating the database")?;
    let columns = app::catalog::columns(&db)
        .await
        .context("reading the schema")?;
    println!(
        "Schema of database {DATABASE:?} after migrating as {ADMIN_USER:?}:\n\n{}",
        app::catalog::render(&columns)
    );
    db.close().await.context("closing the connections")?;
    server.stop();
    Ok(())
}

async fn local() -> Result<()> {
    let server = LocalServer::start()
        .await
        .context("starting the local DSQL stand-in")?;
    let pgpass = server.write_pgpass().context("writing the password file")?;
    let (host, port) = (server.host(), server.port());
    println!(
        "Local DSQL stand-in running (PostgreSQL on {host}:{port}, files in {dir}).\n\
         The admin password is in {pgpass}; point libpq, sqlx and sea-orm-cli at it:\n\n\
         export PGPASSFILE={pgpass}\n\
         export DATABASE_URL=postgres://{ADMIN_USER}@{host}:{port}/{DATABASE}\n\n\
         psql \"$DATABASE_URL\"\n\
         sea-orm-cli migrate up      # or: cargo run -p migration -- up\n\
         sea-orm-cli migrate status\n\n\
         Press Ctrl-C to stop it and delete its files.",
        dir = server.dir().display(),
        pgpass = pgpass.display(),
    );
    // Runs until Ctrl-C, which drops the server (see `main`).
    std::future::pending::<()>().await;
    drop(server);
    Ok(())
}

async fn admin_connection(server: &LocalServer) -> Result<DatabaseConnection> {
    let pool = server
        .pool(DATABASE, server.admin())
        .await
        .context("connecting as admin")?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}
