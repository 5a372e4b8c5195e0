//! A local stand-in for Aurora DSQL: a throwaway PostgreSQL that refuses what DSQL refuses.
//!
//! [`LocalServer::start`] finds the PostgreSQL server programs on this machine
//! ([`ServerBinaries::find`]), creates a fresh data directory in a new temporary directory, and
//! starts `postgres` on a free loopback port — as the `postgres` OS user when this process is
//! root, since `initdb` refuses root. Dropping the server stops it and removes the directory;
//! if this process dies instead, a watcher does the same (see [`process::ServerProcess`]): it
//! is armed before the directory exists. For fault tests, the server can be stopped and
//! started again in place ([`LocalServer::stop_in_place`], [`LocalServer::start_in_place`]):
//! same data, same port, still guarded by the watcher.
//!
//! The server's OS user is not trusted with anything: when it is another user than this
//! process (`postgres`, when this process is root), whatever runs as it — a program started
//! through the server, another cluster's server — must neither log in to the server nor
//! change what this process reads later. So:
//! - the server has no Unix socket; every login, over loopback TCP, needs the role's password
//!   (`scram-sha-256`, in a `pg_hba.conf` the server's OS user cannot change, named on the
//!   command line, which no configuration file overrides). Every role's password, the
//!   superuser's too, derives from a secret only this process holds ([`RolePasswords`]); the
//!   server and initdb only ever get SCRAM verifiers, which cannot log in;
//! - the directory belongs to this process's user (mode 0711 when the server runs as another
//!   user, so that it can reach its own part, else 0700) and holds the files this process
//!   writes and others trust — `pg_hba.conf`, the server's log, the CA certificate, the AWS
//!   credentials file, the password file; the server's OS user owns only `server/` in it (the
//!   data directory).
//!
//! That OS user does own the data directory and the server's processes, so it can always stop
//! the server, or change its data; the stand-in is a development tool that trusts the
//! machine's root, not a boundary against its own server.
//!
//! Inside the server, `dsql_rules.sql` (an event trigger and per-table triggers) enforces the
//! rules of DSQL that need the transaction's state (one DDL, no DDL with DML, 3,000 rows), with
//! DSQL's SQLSTATE and wording; repeatable read is the default isolation, as on DSQL. The rules
//! one statement's text decides are the front door's (`front_door::rules`), their one list: built
//! without the front door, the bare server enforces only the transaction rules.
//!
//! Like DSQL, the server has an `admin` role that owns the `postgres` database and its `public`
//! schema; [`LocalServer::grant_login`] lets a role onboarded the DSQL way log in.
//!
//! This module is self-contained: it imports nothing from the rest of the app, which uses it.

mod aws_credentials;
#[cfg(feature = "front-door")]
pub mod backend;
mod binaries;
pub mod error;
#[cfg(feature = "front-door")]
pub mod front_door;
#[cfg(feature = "front-door")]
pub mod hosts_file;
mod process;
mod role_passwords;
mod scram;
#[cfg(feature = "front-door")]
pub mod stand_in;

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use tracing::{debug, info};

pub use aws_credentials::fixed_credentials;
#[cfg(feature = "front-door")]
pub use backend::Backend;
pub use binaries::ServerBinaries;
pub use process::{ServerProcess, ServerUser};
pub use role_passwords::RolePasswords;

pub use error::{Error, Result};
use migration::dsql::quote_identifier;
use secrecy::{ExposeSecret, SecretString};

/// The SQL that makes a database enforce DSQL's transaction rules. Run by the superuser in
/// `template1` (so every later database inherits it) and in `postgres`.
pub const DSQL_RULES_SQL: &str = include_str!("dsql_rules.sql");

/// The `server_version` DSQL reports (`environment.json`); the front door answers it in place of
/// the backend's, read from the server setting `dsql_local.server_version`.
pub const DSQL_SERVER_VERSION: &str = "16.15";
/// The `server_version_num` DSQL reports (`environment.json`), as `dsql_local.server_version_num`.
pub const DSQL_SERVER_VERSION_NUM: &str = "160015";

/// The database DSQL offers (it has only this one).
pub const DATABASE: &str = "postgres";
/// DSQL's administrator role, which the stand-in creates like a cluster has it.
pub const ADMIN_USER: &str = "admin";

/// The stand-in's endpoint name: shaped like a cluster's (a 26-character cluster id of
/// lowercase letters and digits, `.dsql.`, a Region, `.on.aws`), so that every DSQL client
/// takes it as a host and reads its Region from it, as AWS's connectors do (they expand any
/// other name, e.g. `localhost`, into `localhost.dsql.<region>.on.aws`). Tokens are signed
/// and checked for it, and the stand-in's certificate names it. It resolves to the loopback
/// only where a hosts file says so (`app local` prints the line).
pub const STAND_IN_HOST: &str = "localstandin00000000000000.dsql.us-east-1.on.aws";
/// The stand-in's AWS Region: the one in [`STAND_IN_HOST`], the Region its tokens must be
/// signed for.
pub const STAND_IN_REGION: &str = "us-east-1";
/// Where the stand-in listens (and what its certificate names besides [`STAND_IN_HOST`]): the
/// address to dial for it without a hosts-file entry.
pub const STAND_IN_ADDRESS: &str = "127.0.0.1";

pub(crate) const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The part of the stand-in's directory that belongs to the server's OS user.
const SERVER_DIR: &str = "server";
/// The server's log, in the stand-in's directory (opened by this process, written by the
/// server through the file it inherits).
const SERVER_LOG: &str = "server.log";
/// The server's client authentication file, in the stand-in's directory.
const HBA_FILE: &str = "pg_hba.conf";
/// Every login needs its role's password, over loopback TCP (the server has no Unix socket).
const HBA: &str = "# TYPE  DATABASE  USER  ADDRESS       METHOD\n\
                   host    all       all   127.0.0.1/32  scram-sha-256\n";

/// A role name and its password.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Role name.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

/// A running local server. Dropping it stops the server and deletes its files.
pub struct LocalServer {
    // Field order matters: the process is stopped before the directory is removed.
    process: ServerProcess,
    binaries: ServerBinaries,
    os_user: ServerUser,
    port: u16,
    passwords: RolePasswords,
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
    /// Each phase is announced at debug level (`start-up phase: …`).
    pub async fn start() -> Result<Self> {
        let binaries = ServerBinaries::find()?;
        let os_user = ServerUser::for_this_process()?;
        let mut server = Self::create_dir(binaries, os_user)?;
        debug!("start-up phase: initdb");
        server.init_data_dir().await?;
        server.launch().await?;
        debug!("start-up phase: profile");
        server.install_dsql_profile().await?;
        Ok(server)
    }

    /// Arms the watcher, then creates the stand-in's directory (see the module
    /// documentation), its `server/` part and `pg_hba.conf`; the server is not started yet.
    fn create_dir(binaries: ServerBinaries, os_user: ServerUser) -> Result<Self> {
        let name = format!(
            "dsql-local-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let parent = std::env::temp_dir();
        let process = ServerProcess::arm(&parent.join(&name))?;
        let mode = if os_user.is_another_user() {
            0o711
        } else {
            0o700
        };
        let dir = tempfile::Builder::new()
            .prefix(&name)
            .rand_bytes(0)
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempdir_in(&parent)
            .map_err(Error::io("create a temporary directory"))?;
        debug!("start-up phase: directory {}", dir.path().display());
        let server_dir = dir.path().join(SERVER_DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&server_dir)
            .map_err(Error::io("create the server's directory"))?;
        os_user.own(&server_dir)?;
        // Readable by the server's OS user, writable only by this process's.
        write_new_file(&dir.path().join(HBA_FILE), HBA, 0o644)?;
        let passwords = RolePasswords::random();
        let credentials = |user: &str| Credentials {
            user: user.to_owned(),
            password: passwords.of(user),
        };
        Ok(Self {
            process,
            binaries,
            os_user,
            port: 0,
            superuser: credentials(SUPERUSER),
            admin: credentials(ADMIN_USER),
            passwords,
            dir,
        })
    }

    /// Runs `initdb` under the watcher: UTF-8, C collation and UTC as on DSQL, password
    /// logins only. The superuser's password reaches it as a SCRAM verifier, in a file that
    /// only the server's OS user may read, removed right after.
    async fn init_data_dir(&mut self) -> Result<()> {
        let pwfile = self.dir.path().join("superuser.scram");
        let file = write_private_file(&pwfile, &scram::verifier(&self.superuser.password))?;
        self.os_user.own_file(&file)?;
        let log_path = self.dir.path().join("initdb.log");
        let log = std::fs::File::create_new(&log_path).map_err(Error::io("open initdb's log"))?;
        let mut command = self.os_user.command(&self.binaries.initdb);
        command
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--username")
            .arg(SUPERUSER)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                // The server is started with its own pg_hba.conf; this one is not used.
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .stdout(log.try_clone().map_err(Error::io("open initdb's log"))?)
            .stderr(log);
        let status = self.process.run(command).await;
        let _ = std::fs::remove_file(&pwfile);
        let status = status?;
        if status.success() {
            return Ok(());
        }
        Err(Error::ServerProgram {
            program: self.binaries.initdb.clone(),
            status,
            output: std::fs::read_to_string(&log_path).unwrap_or_default(),
        })
    }

    /// Starts `postgres` on a free port and waits until it takes connections. The port is free
    /// when chosen but another process may take it first, so a server that exits while starting
    /// is tried again on a new port, twice at most.
    async fn launch(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            self.port = free_port()?;
            info!(port = self.port, dir = %self.dir.path().display(), "starting the local PostgreSQL");
            let command = self.server_command()?;
            self.process.start(command)?;
            debug!("start-up phase: server");
            match self.wait_until_ready().await {
                Err(Error::ServerStart { .. })
                    if attempt < 3 && self.process.exited().is_some() =>
                {
                    attempt += 1;
                }
                other => return other,
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

    /// The stand-in's temporary directory: the server's part (`server/`, with the data
    /// directory), its log and `pg_hba.conf`, and the files written for clients (password
    /// file, CA certificate, AWS credentials), all removed with it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's data directory, in the part of [`dir`](Self::dir) its OS user owns.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join(SERVER_DIR).join("data")
    }

    /// How the front door reaches the server: loopback TCP, as each client's role with its
    /// stand-in password.
    #[cfg(feature = "front-door")]
    pub fn backend(&self) -> Backend {
        Backend::new(self.port, self.passwords.clone())
    }

    /// The server's process id (of its latest start, if it was restarted in place).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The `admin` role's credentials.
    pub fn admin(&self) -> &Credentials {
        &self.admin
    }

    /// `role`'s stand-in credentials: the password the front door logs in with, which
    /// [`grant_login`](Self::grant_login) gives and the front door sets on a role's first
    /// login through it.
    pub fn credentials_of(&self, role: &str) -> Credentials {
        Credentials {
            user: role.to_owned(),
            password: self.passwords.of(role),
        }
    }

    /// Options to connect to `database` as `credentials`.
    pub fn connect_options(&self, database: &str, credentials: &Credentials) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(self.host())
            .port(self.port)
            .database(database)
            .username(&credentials.user)
            .password(credentials.password.expose_secret())
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

    /// Lets the existing role `name` log in to `database`: gives it a random password — the
    /// stand-in's substitute for an IAM token — and an IAM identity, as `AWS IAM GRANT` would,
    /// so that the front door lets it in. Creating the role and its schema is the onboarding's
    /// business, as on DSQL (`app::users::onboard`).
    pub async fn grant_login(&self, database: &str, name: &str) -> Result<Credentials> {
        let credentials = self.credentials_of(name);
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

    /// Sets the password of the role `credentials.user`, as `admin`; the server gets only
    /// its SCRAM verifier. A role that logs in through the front door as well should keep
    /// the password [`grant_login`](Self::grant_login) gave it: the front door sets that one
    /// again when it meets another.
    pub async fn set_password(&self, database: &str, credentials: &Credentials) -> Result<()> {
        let options = self
            .connect_options(database, &self.admin)
            .disable_statement_logging();
        let mut conn = PgConnection::connect_with(&options).await?;
        let sql = format!(
            "ALTER ROLE {} WITH PASSWORD '{}'",
            quote_identifier(&credentials.user),
            scram::verifier(&credentials.password)
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
            self.admin.password.expose_secret()
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
        let command = self.server_command()?;
        self.process.restart(command).await?;
        self.wait_until_ready().await
    }

    /// The `postgres` command line: loopback TCP only and no Unix socket, this stand-in's
    /// `pg_hba.conf`, no durability (a throwaway server), DSQL's default isolation, its log
    /// without statement texts.
    fn server_command(&self) -> Result<std::process::Command> {
        // Appended to, so that a restart in place keeps the earlier runs' lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(SERVER_LOG))
            .map_err(Error::io("open the server log"))?;
        let mut command = self.os_user.command(&self.binaries.postgres);
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!(
                "hba_file={}",
                self.dir.path().join(HBA_FILE).display()
            ))
            .arg("-c")
            .arg(format!("dsql_local.server_version={DSQL_SERVER_VERSION}"))
            .arg("-c")
            .arg(format!(
                "dsql_local.server_version_num={DSQL_SERVER_VERSION_NUM}"
            ))
            .args([
                "-c",
                "unix_socket_directories=",
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
        let log = std::fs::read_to_string(self.dir.path().join(SERVER_LOG)).unwrap_or_default();
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
                scram::verifier(&self.admin.password)
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
            conn.close().await?;
        }
        Ok(())
    }
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

/// Creates `path` with mode 0600 (never through an existing file or link) and writes
/// `contents`; returns the file, still open.
pub(crate) fn write_private_file(path: &Path, contents: &str) -> Result<std::fs::File> {
    write_new_file(path, contents, 0o600)
}

/// Creates `path` readable by all, writable by this process's user only (mode 0644, never
/// through an existing file or link), and writes `contents`: for certificates other programs
/// trust.
#[cfg(feature = "front-door")]
pub(crate) fn write_public_file(path: &Path, contents: &str) -> Result<()> {
    write_new_file(path, contents, 0o644).map(drop)
}

/// Creates `path` with `mode` (never through an existing file or link) and writes
/// `contents`; returns the file, still open.
fn write_new_file(path: &Path, contents: &str, mode: u32) -> Result<std::fs::File> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let action = || format!("write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io(action()))?;
    file.write_all(contents.as_bytes())
        .map_err(Error::io(action()))?;
    Ok(file)
}

/// A fresh random secret of 32 hexadecimal characters (122 random bits, from a v4 UUID).
pub fn random_secret() -> SecretString {
    SecretString::from(uuid::Uuid::new_v4().simple().to_string())
}
