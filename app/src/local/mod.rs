//! A local stand-in for Aurora DSQL: a throwaway PostgreSQL that refuses what DSQL refuses.
//!
//! [`LocalServer::start`] finds the PostgreSQL server programs on this machine
//! ([`ServerBinaries::find`]), creates a fresh data directory in a new temporary directory, and
//! starts `postgres` on a free loopback port — as the `postgres` OS user when this process is
//! root, since `initdb` refuses root. Every TCP login needs a password (`scram-sha-256`).
//! Dropping the server stops it and removes the directory; if this process dies instead, a
//! watcher does the same (see [`process::ServerProcess`]). For fault tests, the server can be
//! stopped and started again in place ([`LocalServer::stop_in_place`],
//! [`LocalServer::start_in_place`]): same data, same port, still guarded by the watcher.
//!
//! Inside the server, `dsql_rules.sql` (an event trigger and per-table triggers) enforces the
//! rules of DSQL that need the transaction's state (one DDL, no DDL with DML, 3,000 rows), with
//! DSQL's SQLSTATE and wording; repeatable read is the default isolation, as on DSQL. The rules
//! one statement's text decides are the front door's (`front_door::rules`). Built without the
//! front door, the server enforces those it can see itself (`dsql_statement_rules.sql`: event
//! triggers, a TRUNCATE trigger, no DO); rules that need the statement text (`SET` parameters,
//! `SAVEPOINT`, locking clauses, …) are then not enforced.
//!
//! Like DSQL, the server has an `admin` role that owns the `postgres` database and its `public`
//! schema; [`LocalServer::create_user`] adds a non-admin role whose only schema is `myschema`.

mod binaries;
#[cfg(feature = "front-door")]
pub mod front_door;
mod process;
#[cfg(feature = "front-door")]
pub mod stand_in;

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use tracing::{debug, info};

pub use binaries::ServerBinaries;
pub use process::{ServerProcess, ServerUser};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// A [`LocalServer`]'s Unix socket, where every role logs in without a password: what the
/// front door connects its sessions to.
#[derive(Clone, Debug)]
pub struct Backend {
    dir: PathBuf,
    port: u16,
}

impl Backend {
    /// The socket file, `<dir>/.s.PGSQL.<port>`.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// Options to log in to `database` as the server's superuser over the socket, statements
    /// not logged.
    pub fn superuser_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(&self.dir)
            .port(self.port)
            .username(SUPERUSER)
            .database(database)
            .disable_statement_logging()
    }
}

/// The SQL that makes a database enforce DSQL's transaction rules. Run by the superuser in
/// `template1` (so every later database inherits it) and in `postgres`.
pub const DSQL_RULES_SQL: &str = include_str!("dsql_rules.sql");

/// The SQL that makes a database refuse the statements DSQL refuses, as far as the server can
/// see them; installed after [`DSQL_RULES_SQL`] only in a build without the front door, which
/// otherwise refuses them itself.
#[cfg(not(feature = "front-door"))]
pub const DSQL_STATEMENT_RULES_SQL: &str = include_str!("dsql_statement_rules.sql");

/// The `server_version` DSQL reports (`environment.json`); the front door answers it in place of
/// the backend's, read from the server setting `dsql_local.server_version`.
pub const DSQL_SERVER_VERSION: &str = "16.15";
/// The `server_version_num` DSQL reports (`environment.json`), as `dsql_local.server_version_num`.
pub const DSQL_SERVER_VERSION_NUM: &str = "160015";

/// The database DSQL offers (it has only this one).
pub const DATABASE: &str = "postgres";
pub use crate::config::{ADMIN_USER, USER_SCHEMA};

pub(crate) const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A role name and its password.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Role name.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// A running local server. Dropping it stops the server and deletes its files.
pub struct LocalServer {
    // Field order matters: the process is stopped before the directory is removed.
    process: ServerProcess,
    binaries: ServerBinaries,
    os_user: ServerUser,
    port: u16,
    superuser: Credentials,
    admin: Credentials,
    dir: tempfile::TempDir,
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer")
            .field("pid", &self.process.id())
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Starts a fresh server with the DSQL rules installed and the `admin` role created.
    pub async fn start() -> Result<Self> {
        let binaries = ServerBinaries::find()?;
        let os_user = ServerUser::for_this_process()?;
        // Only the server's OS user (and root) may enter: its Unix socket trusts every login.
        let dir = tempfile::Builder::new()
            .prefix("dsql-local-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(Error::io("create a temporary directory"))?;
        os_user.own(dir.path())?;
        let superuser = Credentials {
            user: SUPERUSER.to_owned(),
            password: Secret::random(),
        };
        init_data_dir(&binaries, os_user, dir.path(), &superuser.password).await?;
        let admin = Credentials {
            user: ADMIN_USER.to_owned(),
            password: Secret::random(),
        };
        let server = Self::launch(binaries, os_user, dir, superuser, admin).await?;
        server.install_dsql_profile().await?;
        Ok(server)
    }

    /// Starts `postgres` on a free port and waits until it takes connections. The port is free
    /// when chosen but another process may take it first, so a server that exits while starting
    /// is tried again on a new port, twice at most.
    async fn launch(
        binaries: ServerBinaries,
        os_user: ServerUser,
        mut dir: tempfile::TempDir,
        superuser: Credentials,
        admin: Credentials,
    ) -> Result<Self> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            info!(port, dir = %dir.path().display(), "starting the local PostgreSQL");
            let command = server_command(&binaries, os_user, dir.path(), port)?;
            let mut server = Self {
                process: ServerProcess::spawn(command, dir.path())?,
                binaries: binaries.clone(),
                os_user,
                port,
                superuser: superuser.clone(),
                admin: admin.clone(),
                dir,
            };
            match server.wait_until_ready().await {
                Err(Error::ServerStart { .. })
                    if attempt < 3 && server.process.exited().is_some() =>
                {
                    attempt += 1;
                    server.process.stop();
                    dir = server.dir;
                }
                other => return other.map(|()| server),
            }
        }
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The server's temporary directory (data directory, log, password file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's Unix socket, `<dir>/.s.PGSQL.<port>`. Logins there need no password, so
    /// only the front door (and tests) connect through it.
    pub fn socket_path(&self) -> PathBuf {
        self.backend().socket_path()
    }

    /// How the front door reaches the server: its Unix socket.
    pub fn backend(&self) -> Backend {
        Backend {
            dir: self.dir.path().to_path_buf(),
            port: self.port,
        }
    }

    /// The server's process id (of its latest start, if it was restarted in place).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The `admin` role's credentials.
    pub fn admin(&self) -> &Credentials {
        &self.admin
    }

    /// Options to connect to `database` as `credentials`.
    pub fn connect_options(&self, database: &str, credentials: &Credentials) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(self.host())
            .port(self.port)
            .database(database)
            .username(&credentials.user)
            .password(credentials.password.expose())
    }

    /// A pool connected to `database` as `credentials`.
    pub async fn pool(&self, database: &str, credentials: &Credentials) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(8)
            .connect_with(self.connect_options(database, credentials))
            .await?)
    }

    /// Creates an empty database owned by `admin`, with the DSQL rules and a `public` schema
    /// that `admin` owns and only it may create in (both inherited from `template1`). DSQL itself has only `postgres`; separate databases let tests run side by
    /// side on one server.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let mut conn = self.superuser_connection(DATABASE).await?;
        let sql = format!(
            "CREATE DATABASE {} OWNER {ADMIN_USER} TEMPLATE template1",
            quote_identifier(name)
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Creates a non-admin login role in `database` the way DSQL wants it
    /// ([`crate::users::onboard`]: the role, the schema `myschema`, usage and create rights on
    /// it, one statement per transaction, as `admin`), then gives it a random password — the
    /// stand-in's substitute for an IAM token — and an IAM identity, as `AWS IAM GRANT` would,
    /// so that the front door lets it in. The role gets no rights on `public`.
    pub async fn create_user(&self, database: &str, name: &str) -> Result<Credentials> {
        let pool = self.pool(database, &self.admin).await?;
        let admin = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
        crate::users::onboard(&admin, name, None).await?;
        admin.close().await?;
        let credentials = Credentials {
            user: name.to_owned(),
            password: Secret::random(),
        };
        self.set_password(database, &credentials).await?;
        self.map_iam_identity(database, name).await?;
        Ok(credentials)
    }

    /// Records what `AWS IAM GRANT {name} TO 'arn:aws:iam::000000000000:role/{name}'` records
    /// (the stand-in has no IAM), so the role may log in through the front door.
    async fn map_iam_identity(&self, database: &str, name: &str) -> Result<()> {
        let mut conn = self.superuser_connection(database).await?;
        sqlx::query("INSERT INTO dsql_local.iam_grants VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(format!("arn:aws:iam::000000000000:role/{name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// Sets the password of the role `credentials.user`, as `admin`, over a connection that
    /// does not log its statements (the statement holds the password).
    pub async fn set_password(&self, database: &str, credentials: &Credentials) -> Result<()> {
        let options = self
            .connect_options(database, &self.admin)
            .disable_statement_logging();
        let mut conn = PgConnection::connect_with(&options).await?;
        let sql = format!(
            "ALTER ROLE {} WITH PASSWORD '{}'",
            quote_identifier(&credentials.user),
            credentials.password.expose().replace('\'', "''")
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Writes a libpq password file for `admin` (mode 0600) and returns its path, so psql,
    /// sqlx and sea-orm-cli can log in with `PGPASSFILE` and no password on the command line.
    pub fn write_pgpass(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("pgpass");
        let line = format!(
            "{}:{}:*:{}:{}\n",
            self.host(),
            self.port,
            self.admin.user,
            self.admin.password.expose()
        );
        write_private_file(&path, &line)?;
        Ok(path)
    }

    /// Stops the server and removes its directory (what dropping it does, made explicit).
    pub fn stop(self) {
        drop(self);
    }

    /// Stops the server (a fast shutdown: open transactions are rolled back, clients are
    /// disconnected, committed data is flushed) but keeps its data directory and port, for
    /// [`start_in_place`](Self::start_in_place). Until then connections are refused. The dead
    /// man's switch stays armed: if this process dies meanwhile, the directory is still removed,
    /// and dropping the value still removes it. Returns once the server has exited.
    pub async fn stop_in_place(&mut self) -> Result<()> {
        info!(port = self.port, "stopping the local PostgreSQL in place");
        self.process.halt().await
    }

    /// Starts the server again on the same data directory and port after
    /// [`stop_in_place`](Self::stop_in_place) (a running server is stopped first), with the same
    /// roles, passwords and data, and waits until it takes connections. Fails with
    /// [`Error::ServerStart`] if it does not come up — for instance because another process
    /// took the port meanwhile.
    pub async fn start_in_place(&mut self) -> Result<()> {
        info!(
            port = self.port,
            "starting the local PostgreSQL again in place"
        );
        let command = server_command(&self.binaries, self.os_user, self.dir.path(), self.port)?;
        self.process.restart(command).await?;
        self.wait_until_ready().await
    }

    /// A superuser connection. Its statements are not logged: setup statements hold passwords.
    async fn superuser_connection(&self, database: &str) -> Result<PgConnection> {
        let options = self
            .connect_options(database, &self.superuser)
            .disable_statement_logging();
        Ok(PgConnection::connect_with(&options).await?)
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                return Err(self.start_error(format!("postgres exited ({status})")));
            }
            match self.superuser_connection(DATABASE).await {
                Ok(conn) => {
                    conn.close().await?;
                    debug!(elapsed = ?started.elapsed(), "local PostgreSQL is ready");
                    return Ok(());
                }
                Err(err) if started.elapsed() > START_TIMEOUT => {
                    return Err(self.start_error(format!("no connection after 60 s ({err})")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn start_error(&self, reason: String) -> Error {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        Error::ServerStart {
            reason,
            log_tail: lines[lines.len().saturating_sub(20)..].join("\n"),
        }
    }

    /// Creates `admin` as DSQL has it (owner of `postgres` and its `public` schema, may create
    /// roles, not a superuser) and, in `template1` and `postgres`, gives it `public` and
    /// installs the rules. `public` is handed over explicitly, with `CREATE` on it taken from
    /// everyone else: before PostgreSQL 15 it belongs to the bootstrap superuser and everyone
    /// may create in it. Databases made from `template1` inherit both.
    async fn install_dsql_profile(&self) -> Result<()> {
        let mut conn = self.superuser_connection(DATABASE).await?;
        for sql in [
            format!(
                "CREATE ROLE {ADMIN_USER} WITH LOGIN CREATEROLE PASSWORD '{}'",
                self.admin.password.expose()
            ),
            format!("ALTER DATABASE {DATABASE} OWNER TO {ADMIN_USER}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        }
        conn.close().await?;
        let public_schema = format!(
            "ALTER SCHEMA public OWNER TO {ADMIN_USER}; REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        );
        for database in ["template1", DATABASE] {
            let mut conn = self.superuser_connection(database).await?;
            sqlx::raw_sql(AssertSqlSafe(public_schema.as_str()))
                .execute(&mut conn)
                .await?;
            sqlx::raw_sql(DSQL_RULES_SQL).execute(&mut conn).await?;
            #[cfg(not(feature = "front-door"))]
            sqlx::raw_sql(DSQL_STATEMENT_RULES_SQL)
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// Runs `initdb`: UTF-8, C collation and UTC as on DSQL, password logins only.
async fn init_data_dir(
    binaries: &ServerBinaries,
    os_user: ServerUser,
    dir: &Path,
    superuser_password: &Secret,
) -> Result<()> {
    let pwfile = dir.join("superuser.pw");
    write_private_file(&pwfile, superuser_password.expose())?;
    os_user.own(&pwfile)?;
    let mut command = os_user.command(&binaries.initdb);
    command
        .arg("--pgdata")
        .arg(dir.join("data"))
        .arg("--username")
        .arg(SUPERUSER)
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            // Passwords for every TCP login. The Unix socket, in the server's own directory
            // (mode 0700: only this process's user, or root and `postgres`, can reach it), is
            // trusted: it is how the front door, which checks IAM tokens itself, reaches the
            // server.
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .map_err(Error::io("run initdb"));
    let _ = std::fs::remove_file(&pwfile);
    let output = output?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::ServerProgram {
        program: binaries.initdb.clone(),
        status: output.status,
        output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned(),
    })
}

/// The `postgres` command line: loopback only, no durability (a throwaway server), DSQL's
/// default isolation, its log in the server directory without statement texts (a failed
/// `CREATE ROLE … PASSWORD` would otherwise put the password there).
fn server_command(
    binaries: &ServerBinaries,
    os_user: ServerUser,
    dir: &Path,
    port: u16,
) -> Result<std::process::Command> {
    let log_path = dir.join("server.log");
    // Appended to, so that a restart in place keeps the earlier runs' lines.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(Error::io("open the server log"))?;
    os_user.own(&log_path)?;
    let mut command = os_user.command(&binaries.postgres);
    command
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .arg("-c")
        .arg(format!("dsql_local.server_version={DSQL_SERVER_VERSION}"))
        .arg("-c")
        .arg(format!(
            "dsql_local.server_version_num={DSQL_SERVER_VERSION_NUM}"
        ))
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "default_transaction_isolation=repeatable read",
            "-c",
            "timezone=UTC",
            "-c",
            "max_connections=200",
            "-c",
            "log_min_error_statement=panic",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .stdout(log.try_clone().map_err(Error::io("open the server log"))?)
        .stderr(log);
    Ok(command)
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::io("find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(Error::io("find a free port"))?
        .port())
}

/// Creates `path` with mode 0600 and writes `contents`.
pub(crate) fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let action = || format!("write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(action()))?;
    file.write_all(contents.as_bytes())
        .map_err(Error::io(action()))
}

/// `name` as a double-quoted SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
