//! A client with a valid IAM token tries to leave DSQL's rules through the front door: to reach a
//! privilege DSQL's roles lack, a server-side file or program, text the front door never judges,
//! or the stand-in's own switches. Each test sends the hostile input through the real front door
//! to the real server (with sqlx, psql, or a raw wire-protocol client where the input is not
//! something a driver would send), asserts it gets nowhere, and that the legitimate neighbour
//! still works.
#![cfg(feature = "front-door")]

use crate::common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use app::local::ADMIN_USER;
use app::local::front_door::tls::client_config;
use app::local::front_door::wire;
use futures_util::TryStreamExt;
use rustls::pki_types::ServerName;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use common::door::{Door, HOST, shared};
use common::{database_error, fresh_database};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A connection to `database` as admin through the shared front door.
async fn admin(database: &str) -> (&'static Door, PgConnection) {
    let door = shared().await;
    (door, door.session(database, ADMIN_USER).await)
}

/// A fresh database with a table `t (id bigint primary key, v text)` holding one row.
async fn database_with_table(purpose: &str) -> String {
    let database = fresh_database(purpose).await;
    let (_, mut conn) = admin(&database).await;
    common::exec(&mut conn, "CREATE TABLE t (id bigint PRIMARY KEY, v text)").await;
    common::exec(&mut conn, "INSERT INTO t VALUES (1, 'one')").await;
    database
}

/// The SQLSTATE and message `sql` is refused with on `conn`.
async fn refused(conn: &mut PgConnection, sql: &str) -> (String, String) {
    database_error(conn.execute(AssertSqlSafe(sql)).await)
}

/// Asserts that `sql` is refused with `code` and a message containing `message`.
async fn assert_refused(conn: &mut PgConnection, sql: &str, code: &str, message: &str) {
    let (got_code, got_message) = refused(conn, sql).await;
    assert_eq!(
        (got_code.as_str(), got_message.contains(message)),
        (code, true),
        "{sql}: refused with {got_code} {got_message:?}, expected {code} containing {message:?}"
    );
}

/// Asserts that DSQL's row cap refuses [`OVER_THE_CAP`] on `conn`.
async fn assert_cap_holds(conn: &mut PgConnection) {
    assert_refused(
        conn,
        OVER_THE_CAP,
        "54000",
        "transaction row limit exceeded",
    )
    .await;
}

/// A fresh database with `t`, and admin's session in it (through the shared front door), after
/// asserting that the session refuses every statement of `statements` (`{database}` in one: the
/// database's name) with `code` and a message containing `message`.
async fn session_refusing(
    purpose: &str,
    statements: &[&str],
    code: &str,
    message: &str,
) -> (String, PgConnection) {
    let database = database_with_table(purpose).await;
    let (_, mut conn) = admin(&database).await;
    for sql in statements {
        let sql = sql.replace("{database}", &database);
        assert_refused(&mut conn, &sql, code, message).await;
    }
    (database, conn)
}

/// The rows of `t`.
async fn rows_of_t(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(conn)
        .await
        .expect("count t")
}

/// A path in a fresh temporary directory that nobody has written yet, readable by the server's
/// OS user, so that a file appearing there proves the server wrote it.
fn unwritten_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("open the directory to the server");
    let path = dir.path().join(name);
    (dir, path)
}

/// Runs psql against the shared front door as admin in `database`, TLS verify-full against
/// the door's CA, with `env` added and `command` (raw bytes) as `-c`.
async fn psql(database: &str, env: &[(&str, &str)], command: &[u8]) -> Output {
    let door = shared().await;
    let token = door.token(ADMIN_USER).await;
    let mut psql = Command::new("psql");
    psql.env_clear()
        .env("PGHOST", HOST)
        .env("PGPORT", door.port().to_string())
        .env("PGUSER", ADMIN_USER)
        .env("PGDATABASE", database)
        .env("PGPASSWORD", token)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", door.ca_file.path())
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(OsStr::from_bytes(command));
    for (name, value) in env {
        psql.env(name, value);
    }
    tokio::task::spawn_blocking(move || psql.output().expect("run psql"))
        .await
        .expect("psql ran")
}

/// Runs [`psql`] and asserts that it fails with `message` on its standard error.
async fn assert_psql_refused(database: &str, env: &[(&str, &str)], command: &[u8], message: &str) {
    let output = psql(database, env, command).await;
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(message),
        "{output:?}"
    );
}

/// An `ErrorResponse`'s SQLSTATE and message.
type Refusal = (String, String);

/// A raw wire-protocol session through the front door (TLS, then a startup message with any
/// parameters, then the token): for what no driver sends.
struct Raw {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    frame: Vec<u8>,
}

impl Raw {
    /// Logs in as admin to `database` with the extra startup `parameters`; the login's refusal
    /// if it is refused.
    async fn login(database: &str, parameters: &[(&str, &str)]) -> Result<Self, Refusal> {
        let door = shared().await;
        let mut tcp = TcpStream::connect(("127.0.0.1", door.port()))
            .await
            .expect("reach the front door");
        tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
            .await
            .expect("SSLRequest");
        assert_eq!(tcp.read_u8().await.expect("TLS answer"), b'S');
        let ca = std::fs::read_to_string(door.ca_file.path()).expect("the CA");
        let tls = TlsConnector::from(client_config(&ca).expect("a client configuration"));
        let host = ServerName::try_from(HOST.to_owned()).expect("a host name");
        let stream = tls.connect(host, tcp).await.expect("TLS to the front door");
        let mut raw = Self {
            stream,
            frame: Vec::new(),
        };
        let mut all = vec![("user", ADMIN_USER), ("database", database)];
        all.extend_from_slice(parameters);
        let startup = wire::startup_message(all);
        raw.stream.write_all(&startup).await.expect("startup");
        let token = door.token(ADMIN_USER).await;
        loop {
            match raw.next().await {
                Some(b'R') if raw.frame[5..9] == [0, 0, 0, 3] => {
                    let mut body = token.as_bytes().to_vec();
                    body.push(0);
                    let mut message = Vec::new();
                    wire::put_message(&mut message, b'p', &body);
                    raw.stream.write_all(&message).await.expect("password");
                }
                Some(b'E') => return Err(raw.error()),
                Some(b'Z') => return Ok(raw),
                Some(_) => {}
                None => panic!("the front door closed the login without an answer"),
            }
        }
    }

    /// The next message's tag (its frame in `self.frame`), or `None` at the end.
    async fn next(&mut self) -> Option<u8> {
        wire::read_frame(&mut self.stream, 1 << 30, &mut self.frame)
            .await
            .expect("read a message")
            .then(|| self.frame[0])
    }

    /// Asserts that `t` still holds its one row, read on this session.
    async fn assert_t_untouched(&mut self) {
        assert_eq!(
            self.query(b"SELECT count(*) FROM t").await,
            Ok(vec!["1".into()])
        );
    }

    /// The SQLSTATEs of the errors that come before the next `ready` `ReadyForQuery`s.
    async fn errors_until_ready(&mut self, ready: usize) -> Vec<String> {
        let mut errors = Vec::new();
        let mut seen = 0;
        while seen < ready {
            match self.next().await.expect("an answer") {
                b'E' => errors.push(self.error().0),
                b'Z' => seen += 1,
                _ => {}
            }
        }
        errors
    }

    /// The SQLSTATE and message of the `ErrorResponse` in `self.frame`.
    fn error(&self) -> Refusal {
        let mut fields = self.frame[5..].split(|&b| b == 0);
        let mut code = String::new();
        let mut message = String::new();
        for field in fields.by_ref() {
            match field.split_first() {
                Some((b'C', value)) => code = String::from_utf8_lossy(value).into_owned(),
                Some((b'M', value)) => message = String::from_utf8_lossy(value).into_owned(),
                _ => {}
            }
        }
        (code, message)
    }

    /// Asserts that `text` (any bytes) is refused with `code`; the refusal's message.
    async fn assert_refused(&mut self, text: &[u8], code: &str) -> String {
        let (got, message) = self.query(text).await.expect_err("refused");
        assert_eq!(got, code, "{message}");
        message
    }

    /// Asserts that each of `texts` is refused with `code`.
    async fn assert_all_refused(&mut self, texts: &[String], code: &str) {
        for text in texts {
            self.assert_refused(text.as_bytes(), code).await;
        }
    }

    /// Sends `text` (any bytes) as a simple query; its first error, or the first column of its
    /// rows.
    async fn query(&mut self, text: &[u8]) -> Result<Vec<String>, Refusal> {
        let mut body = text.to_vec();
        body.push(0);
        let mut message = Vec::new();
        wire::put_message(&mut message, b'Q', &body);
        self.stream.write_all(&message).await.expect("send a query");
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next().await.expect("an answer") {
                b'D' => {
                    let len = i32::from_be_bytes(self.frame[7..11].try_into().expect("4 bytes"));
                    let value = usize::try_from(len)
                        .map(|len| String::from_utf8_lossy(&self.frame[11..11 + len]).into_owned())
                        .unwrap_or_default();
                    rows.push(value);
                }
                b'E' => {
                    error.get_or_insert_with(|| self.error());
                }
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Privileges DSQL's roles lack, server files and programs.

/// DSQL's refusal of anything that touches PostgreSQL's predefined `pg_*` roles.
const SYSTEM_ENTITY: &str = "feature not supported on system entity";

#[tokio::test]
async fn admin_cannot_grant_itself_server_programs_nor_run_one() {
    let database = database_with_table("hostile_program").await;
    let (dir, marker) = unwritten_path("ran");
    let (_, mut conn) = admin(&database).await;
    assert_refused(
        &mut conn,
        "GRANT pg_execute_server_program TO admin",
        "0A000",
        SYSTEM_ENTITY,
    )
    .await;
    let member: bool =
        sqlx::query_scalar("SELECT pg_has_role('admin', 'pg_execute_server_program', 'MEMBER')")
            .fetch_one(&mut conn)
            .await
            .expect("ask for membership");
    assert!(
        !member,
        "admin became a member of pg_execute_server_program"
    );
    for sql in [
        format!("COPY t FROM PROGRAM 'touch {}'", marker.display()),
        format!("COPY t TO PROGRAM 'touch {}'", marker.display()),
        format!(
            "COPY (SELECT 1) TO PROGRAM 'touch {}' WITH (FORMAT csv)",
            marker.display()
        ),
        "COPY t FROM PROGRAM 'id'".to_owned(),
    ] {
        assert_refused(&mut conn, &sql, "0A000", "unsupported COPY statement").await;
    }
    assert!(!marker.exists(), "a program ran on the server");
    // The same chain through psql, the way an attacker types it.
    let chain = format!(
        "GRANT pg_execute_server_program TO admin; COPY t FROM PROGRAM 'touch {}'",
        marker.display()
    );
    assert_psql_refused(&database, &[], chain.as_bytes(), SYSTEM_ENTITY).await;
    assert!(!marker.exists(), "a program ran on the server");
    drop(dir);
}

/// Role attributes DSQL's roles never have, given or asked for (`{prefix}`: a name of the
/// test's own).
const ROLE_ATTRIBUTES: &[&str] = &[
    "CREATE ROLE {prefix}_su SUPERUSER",
    "CREATE ROLE {prefix}_rep WITH LOGIN REPLICATION",
    "CREATE ROLE {prefix}_rls BYPASSRLS",
    "ALTER ROLE admin SUPERUSER",
    "ALTER ROLE admin WITH REPLICATION",
    "ALTER USER admin BYPASSRLS",
];

/// PostgreSQL's predefined roles, joined or granted every way (`{prefix}`: a name of the
/// test's own).
const PREDEFINED_ROLES: &[&str] = &[
    "CREATE ROLE {prefix}_y IN ROLE pg_read_server_files",
    "CREATE ROLE {prefix}_y2 IN GROUP pg_write_server_files",
    "CREATE ROLE {prefix}_y3 ROLE pg_monitor",
    "CREATE ROLE {prefix}_y4 ADMIN pg_signal_backend",
    "GRANT pg_read_server_files TO admin",
    "GRANT pg_write_server_files TO admin WITH ADMIN OPTION",
    "GRANT \"pg_execute_server_program\" TO admin",
    "ALTER GROUP pg_read_server_files ADD USER admin",
    "GRANT admin TO pg_monitor",
];

#[tokio::test]
async fn no_role_gains_an_attribute_or_a_predefined_role_dsql_roles_lack() {
    let database = fresh_database("hostile_roles").await;
    let (_, mut conn) = admin(&database).await;
    let prefix = database.clone();
    for sql in ROLE_ATTRIBUTES {
        let sql = sql.replace("{prefix}", &prefix);
        assert_refused(&mut conn, &sql, "0A000", "not supported").await;
    }
    for sql in PREDEFINED_ROLES {
        let sql = sql.replace("{prefix}", &prefix);
        assert_refused(&mut conn, &sql, "0A000", SYSTEM_ENTITY).await;
    }
    // The neighbours DSQL has: an ordinary role, granted and given the attributes DSQL's have.
    conn.execute(AssertSqlSafe(format!("CREATE ROLE {prefix}_plain")))
        .await
        .expect("an ordinary role");
    conn.execute(AssertSqlSafe(format!("GRANT {prefix}_plain TO admin")))
        .await
        .expect("an ordinary grant");
    conn.execute(AssertSqlSafe(format!(
        "ALTER ROLE {prefix}_plain WITH LOGIN"
    )))
    .await
    .expect("an ordinary attribute");
    let gained: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_roles r
          WHERE (r.rolname = 'admin' OR r.rolname LIKE $1)
            AND (r.rolsuper OR r.rolreplication OR r.rolbypassrls
                 OR EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles p ON p.oid = m.roleid
                             WHERE m.member = r.oid AND p.rolname LIKE 'pg\\_%'))",
    )
    .bind(format!("{prefix}\\_%"))
    .fetch_one(&mut conn)
    .await
    .expect("read the roles");
    assert_eq!(gained, 0);
}

#[tokio::test]
async fn copy_of_a_server_file_is_refused_while_stdin_and_stdout_work() {
    let database = database_with_table("hostile_copy").await;
    let (dir, written) = unwritten_path("copied");
    let (_, mut conn) = admin(&database).await;
    for sql in [
        format!("COPY t TO '{}'", written.display()),
        format!(
            "COPY (SELECT * FROM t) TO '{}' WITH (FORMAT csv)",
            written.display()
        ),
        format!("copy t (id, v) to '{}'", written.display()),
        "COPY t FROM '/etc/passwd'".to_owned(),
        "COPY t FROM '/etc/hostname' WITH (FORMAT text)".to_owned(),
    ] {
        assert_refused(&mut conn, &sql, "0A000", "unsupported COPY statement").await;
    }
    assert!(!written.exists(), "the server wrote a file");
    drop(dir);
    // COPY FROM STDIN and TO STDOUT work as on DSQL.
    let mut copy = conn
        .copy_in_raw("COPY t FROM STDIN")
        .await
        .expect("COPY FROM STDIN");
    copy.send(b"2\ttwo\n".as_slice()).await.expect("send a row");
    assert_eq!(copy.finish().await.expect("finish the copy"), 1);
    let out: Vec<_> = conn
        .copy_out_raw("COPY t TO STDOUT")
        .await
        .expect("COPY TO STDOUT")
        .try_collect()
        .await
        .expect("the copied rows");
    assert_eq!(out.concat(), b"1\tone\n2\ttwo\n".to_vec());
}

/// Calls of server-file functions, in every form and place a caller may write them.
const FILE_CALLS: &[&str] = &[
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_file('/etc/passwd')",
    "SELECT PG_READ_FILE('/etc/passwd')",
    "SELECT \"pg_read_file\"('/etc/passwd')",
    "SELECT U&\"pg\\005fread_file\"('/etc/passwd')",
    "SELECT * FROM pg_read_file('/etc/passwd', 0, 10)",
    "SELECT pg_read_binary_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT pg_stat_file('postgresql.conf')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT pg_current_logfile()",
    "WITH x AS (SELECT pg_read_file('/etc/passwd') AS f) SELECT f FROM x",
    "SELECT (SELECT pg_read_file('/etc/passwd'))",
    "SELECT 1 WHERE EXISTS (SELECT pg_ls_dir('/'))",
    "CREATE TABLE d (a text DEFAULT pg_read_file('/etc/passwd'))",
    "ALTER TABLE t ALTER COLUMN v SET DEFAULT pg_read_file('/etc/passwd')",
    "CREATE VIEW leak AS SELECT pg_read_file('/etc/passwd')",
    "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('/etc/passwd') $$",
    "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS 'SELECT pg_read_file(''/etc/passwd'')'",
    "CREATE FUNCTION leak() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT pg_read_file('/etc/passwd'); END",
    "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')",
    "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO admin",
    "CREATE AGGREGATE leak(text) (sfunc = textcat, stype = text, finalfunc = 'pg_read_file')",
];

#[tokio::test]
async fn server_file_functions_are_refused_however_they_are_called() {
    let (_, mut conn) =
        session_refusing("hostile_files", FILE_CALLS, "0A000", "not supported").await;
    assert_refused(
        &mut conn,
        "LOAD 'plugins/anything'",
        "0A000",
        "unsupported statement: Load",
    )
    .await;
    // A quoted name in capitals is another function, which does not exist; the server says so.
    assert_refused(
        &mut conn,
        "SELECT \"PG_READ_FILE\"('/etc/passwd')",
        "42883",
        "does not exist",
    )
    .await;
    // The neighbours: a column, a string and an ordinary function of the same words.
    let row: (String, String) = sqlx::query_as(
        "SELECT 'pg_read_file' AS pg_read_file, upper('lo_import') FROM t WHERE id = 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("words are not calls");
    assert_eq!(row, ("pg_read_file".to_owned(), "LO_IMPORT".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Text that must be judged.

#[tokio::test]
async fn text_that_is_not_utf8_is_refused_and_never_runs() {
    let database = database_with_table("hostile_encoding").await;
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    // "é" in LATIN1: one byte 0xe9, not UTF-8.
    for text in [
        b"TRUNCATE t /* \xe9 */".as_slice(),
        b"DO $$ BEGIN DELETE FROM t; END $$ /* \xe9 */",
        b"SELECT '\xe9'; DELETE FROM t",
    ] {
        let message = raw.assert_refused(text, "22021").await;
        assert!(message.starts_with("invalid byte sequence for encoding \"UTF8\": 0xe9"));
    }
    raw.assert_t_untouched().await;
    // UTF-8 text passes.
    assert_eq!(
        raw.query("SELECT 'é'".as_bytes()).await,
        Ok(vec!["é".to_owned()])
    );
    // psql sending the same bytes in a UTF8 session.
    let utf8 = [("PGCLIENTENCODING", "UTF8")];
    let text = b"TRUNCATE t /* \xe9 */";
    assert_psql_refused(&database, &utf8, text, "invalid byte sequence").await;
}

#[tokio::test]
async fn client_encodings_other_than_utf8_are_refused_by_every_route() {
    let database = database_with_table("hostile_client_encoding").await;
    let not_supported = "setting configuration parameter \"client_encoding\" not supported";
    // psql with a LATIN1 terminal: refused at login, nothing runs.
    let latin1 = [("PGCLIENTENCODING", "LATIN1")];
    assert_psql_refused(&database, &latin1, b"TRUNCATE t /* \xe9 */", not_supported).await;
    for parameters in [
        [("client_encoding", "LATIN1")],
        [("options", "-c client_encoding=WIN1252")],
    ] {
        let refusal = Raw::login(&database, &parameters).await.err();
        assert_eq!(
            refusal,
            Some(("0A000".to_owned(), not_supported.to_owned())),
            "{parameters:?}"
        );
    }
    let (_, mut conn) = admin(&database).await;
    for sql in [
        "SET client_encoding = 'LATIN1'",
        "SET NAMES 'WIN1252'",
        "SET LOCAL client_encoding TO 'euc_jp'",
        "SELECT set_config('client_encoding', 'LATIN1', false)",
    ] {
        assert_refused(&mut conn, sql, "0A000", not_supported).await;
    }
    // UTF-8 under each of its names stays possible, at login and later, and SQL_ASCII, in
    // which the server reads and checks the same UTF-8 bytes.
    conn.execute("SET client_encoding = 'SQL_ASCII'; SET client_encoding = 'UTF8'")
        .await
        .expect("SQL_ASCII and UTF8");
    let mut raw = Raw::login(&database, &[("client_encoding", "utf-8")])
        .await
        .expect("UTF-8 at login");
    assert_eq!(
        raw.query(b"SET client_encoding = 'UNICODE'; SELECT pg_client_encoding()")
            .await,
        Ok(vec!["UTF8".to_owned()])
    );
    assert_eq!(rows_of_t(&mut conn).await, 1);
}

/// `1+1+…` with `terms` terms.
fn terms(terms: usize) -> String {
    vec!["1"; terms].join("+")
}

/// `SELECT 1+1+…` with `terms` terms.
fn long_sum(n: usize) -> String {
    format!("SELECT {}", terms(n))
}

/// `depth` nested scalar subqueries around `SELECT 1`.
fn nested_subqueries(depth: usize) -> String {
    format!("SELECT {}1{}", "(SELECT ".repeat(depth), ")".repeat(depth))
}

#[tokio::test]
async fn deep_valid_text_is_judged_and_accepted() {
    let database = database_with_table("hostile_depth").await;
    let (_, mut conn) = admin(&database).await;
    // PostgreSQL 15 itself runs sums of up to about 4,000 terms and 2,000 nested subqueries.
    for n in [60, 4_000] {
        let sum: i32 = sqlx::query_scalar(AssertSqlSafe(long_sum(n)))
            .fetch_one(&mut conn)
            .await
            .expect("a long sum is valid SQL");
        assert_eq!(sum, i32::try_from(n).expect("small"));
    }
    for depth in [40, 2_000] {
        let one: i32 = sqlx::query_scalar(AssertSqlSafe(nested_subqueries(depth)))
            .fetch_one(&mut conn)
            .await
            .expect("nested subqueries are valid SQL");
        assert_eq!(one, 1);
    }
    // Hidden behind the depth, the refused statement is still found, and nothing runs.
    let hidden = [
        format!("{}; TRUNCATE t", nested_subqueries(40)),
        format!("{}; DELETE FROM t; SAVEPOINT s", long_sum(60)),
        format!("{}; TRUNCATE t", nested_subqueries(2_000)),
        format!("DELETE FROM t; {}; SAVEPOINT s", long_sum(4_000)),
    ];
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    raw.assert_all_refused(&hidden, "0A000").await;
    assert_eq!(rows_of_t(&mut conn).await, 1);
}

#[tokio::test]
async fn text_beyond_the_judges_limits_is_refused_and_the_door_survives() {
    let database = database_with_table("hostile_limits").await;
    let too_deep = [
        // Deep, and not a query: only the parser could judge it.
        format!("DELETE FROM t WHERE id = {}", terms(4_000)),
        // A deep query naming what only the tree can judge.
        format!("SELECT {}, pg_read_file('/etc/passwd')", terms(4_000)),
        format!("SELECT {} INTO copy_of_t", terms(4_000)),
        format!("WITH x AS ({}) SELECT * FROM t FOR SHARE", long_sum(4_000)),
    ];
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    raw.assert_all_refused(&too_deep, "54001").await;
    // The session is still there, and nothing ran.
    raw.assert_t_untouched().await;
    // A text over DSQL's protocol message limit (10 MiB) is never judged nor relayed: the
    // connection is closed, as DSQL closes it. The door serves the next login.
    let mut body = format!("SELECT '{}'", "x".repeat(11 * 1024 * 1024)).into_bytes();
    body.push(0);
    let mut message = Vec::new();
    wire::put_message(&mut message, b'Q', &body);
    // The door may close before it has read all of it.
    let _ = raw.stream.write_all(&message).await;
    let answer = wire::read_frame(&mut raw.stream, 1 << 30, &mut raw.frame).await;
    assert!(
        !matches!(answer, Ok(true)),
        "the connection was closed without an answer"
    );
    let mut raw = Raw::login(&database, &[]).await.expect("log in again");
    raw.assert_t_untouched().await;
}

// ---------------------------------------------------------------------------------------------
// The stand-in's own switches.

/// Inserts 3,001 rows in one statement: DSQL's row cap refuses it.
const OVER_THE_CAP: &str = "INSERT INTO t SELECT g, 'x' FROM generate_series(10, 3010) g";

#[tokio::test]
async fn startup_parameters_pass_what_dsql_accepts_and_nothing_internal() {
    let database = database_with_table("hostile_startup").await;
    let door = shared().await;
    // What DSQL accepts in `options`: a search path.
    let options = door
        .options_with_token(&database, ADMIN_USER)
        .await
        .options([("search_path", "myschema,public")]);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("-c search_path is accepted");
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .expect("the search path");
    assert_eq!(path, "myschema,public");
    // The stand-in's switches and what DSQL refuses, in `options` and as startup keys of their
    // own: the login is refused.
    let refused = [
        ("options", "-c dsql_local.internal=on"),
        (
            "options",
            "-c search_path=public -c DSQL_LOCAL.rows=-100000",
        ),
        ("options", "--dsql_local.internal=on"),
        ("options", "-cdsql_local.internal=on"),
        ("options", "-c statement_timeout=5s"),
        ("options", "-c lc_numeric=C"),
        ("options", "-c standard_conforming_strings=off"),
        ("options", "-d 5"),
        ("dsql_local.internal", "on"),
        ("standard_conforming_strings", "off"),
        ("statement_timeout", "1000"),
    ];
    for parameter in refused {
        let refusal = Raw::login(&database, &[parameter]).await.err();
        assert!(
            matches!(&refusal, Some((code, _)) if code == "0A000"),
            "{parameter:?}: {refusal:?}"
        );
    }
    // The cap holds in a session whose options were filtered.
    assert_cap_holds(&mut conn).await;
    // Through psql as an attacker types it.
    let options = [("PGOPTIONS", "-c dsql_local.internal=on")];
    let internal = "setting configuration parameter \"dsql_local.internal\" not supported";
    assert_psql_refused(&database, &options, OVER_THE_CAP.as_bytes(), internal).await;
    assert_eq!(rows_of_t(&mut conn).await, 1);
}

/// Every way a statement could set the stand-in's internal switches, or a setting DSQL refuses
/// (`{database}`: the test's database).
const SWITCH_ROUTES: &[&str] = &[
    "SET dsql_local.internal = on",
    "SET SESSION dsql_local.internal TO 'on'",
    "SET LOCAL dsql_local.rows = '-100000'",
    "SET \"DSQL_LOCAL\".\"INTERNAL\" = on",
    "RESET dsql_local.rows",
    "SET dsql_local.ddl TO DEFAULT",
    "SELECT set_config('dsql_local.internal', 'on', false)",
    "SELECT pg_catalog.set_config('DSQL_LOCAL.INTERNAL', 'on', false)",
    "WITH s AS (SELECT set_config('dsql_local.rows', '-100000', true)) SELECT * FROM s",
    "SELECT set_config(n, 'on', false) FROM (VALUES ('dsql_local.internal')) v (n)",
    "SELECT set_config('dsql_local' || '.internal', 'on', false)",
    "ALTER ROLE admin SET dsql_local.internal = on",
    "ALTER ROLE admin IN DATABASE {database} SET dsql_local.internal = on",
    "ALTER ROLE ALL IN DATABASE {database} SET dsql_local.internal = on",
    "ALTER ROLE ALL SET dsql_local.internal = on",
    // An aggregate whose state function is set_config, named as an identifier or a string.
    "CREATE AGGREGATE lift(text, boolean) \
     (sfunc = set_config, stype = text, initcond = 'dsql_local.internal')",
    "CREATE AGGREGATE lift(text, boolean) \
     (sfunc = 'pg_catalog.set_config', stype = text, initcond = 'dsql_local.internal')",
    "ALTER DATABASE {database} SET dsql_local.internal = on",
    "CREATE FUNCTION lift() RETURNS void LANGUAGE sql SET dsql_local.internal = on AS 'SELECT'",
    "CREATE FUNCTION lift() RETURNS text LANGUAGE sql \
     AS $$ SELECT set_config('dsql_local.internal', 'on', false) $$",
    "SET standard_conforming_strings = off",
    "SELECT set_config('standard_conforming_strings', 'off', false)",
];

#[tokio::test]
async fn no_statement_reaches_the_internal_switches() {
    let (database, mut conn) =
        session_refusing("hostile_switches", SWITCH_ROUTES, "0A000", "not supported").await;
    // The cap still holds, in one statement and across a transaction.
    assert_cap_holds(&mut conn).await;
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    let text = "BEGIN; INSERT INTO t SELECT g, 'x' FROM generate_series(10, 2009) g; RESET ALL; \
                INSERT INTO t SELECT g, 'x' FROM generate_series(3000, 4999) g; COMMIT";
    assert!(raw.query(text.as_bytes()).await.is_err());
    let _ = raw.query(b"ROLLBACK").await;
    assert_eq!(rows_of_t(&mut conn).await, 1);
    // The neighbours DSQL accepts.
    conn.execute("SET search_path = public; SET application_name = 'x'")
        .await
        .expect("ordinary settings");
    conn.execute("RESET search_path")
        .await
        .expect("RESET of a setting");
    assert_refused(&mut conn, "RESET ALL", "0A000", "not supported").await;
    let name: String = sqlx::query_scalar("SELECT set_config('application_name', 'y', false)")
        .fetch_one(&mut conn)
        .await
        .expect("set_config of an ordinary setting");
    assert_eq!(name, "y");
}

/// Opens a transaction on `raw` and makes it fail.
async fn fail_a_transaction(raw: &mut Raw) {
    raw.query(b"BEGIN").await.expect("BEGIN");
    raw.query(b"SELECT 1/0")
        .await
        .expect_err("division by zero");
}

#[tokio::test]
async fn a_failed_transaction_lets_no_refused_text_through() {
    let database = database_with_table("hostile_failed_transaction").await;
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    // In one text: the ROLLBACK would end the failed transaction, then TRUNCATE would run.
    fail_a_transaction(&mut raw).await;
    raw.assert_refused(b"ROLLBACK; TRUNCATE t", "25P02").await;
    raw.query(b"ROLLBACK").await.expect("ROLLBACK");
    // Pipelined: the TRUNCATE arrives while the session still looks failed.
    fail_a_transaction(&mut raw).await;
    let mut pipelined = Vec::new();
    for text in [b"ROLLBACK\0".as_slice(), b"TRUNCATE t\0"] {
        wire::put_message(&mut pipelined, b'Q', text);
    }
    raw.stream.write_all(&pipelined).await.expect("send");
    let errors = raw.errors_until_ready(2).await;
    assert_eq!(errors, ["0A000".to_owned()], "only the TRUNCATE is refused");
    raw.assert_t_untouched().await;
}

#[tokio::test]
async fn the_rules_hold_whatever_functions_the_search_path_puts_first() {
    let database = database_with_table("hostile_search_path").await;
    let (_, mut conn) = admin(&database).await;
    // The in-server rules read their switches with current_setting: a function of the same
    // name earlier in the search path would answer for it.
    conn.execute(
        "CREATE FUNCTION public.current_setting(text, boolean) RETURNS text \
         LANGUAGE sql AS $$ SELECT 'on' $$",
    )
    .await
    .expect("an ordinary SQL function");
    conn.execute("SET search_path = public, pg_catalog")
        .await
        .expect("a search path DSQL accepts");
    assert_cap_holds(&mut conn).await;
    assert_refused(
        &mut conn,
        "BEGIN; CREATE TABLE a (id bigint PRIMARY KEY); CREATE TABLE b (id bigint PRIMARY KEY)",
        "0A000",
        "multiple ddl statements not supported in a transaction",
    )
    .await;
    conn.execute("ROLLBACK").await.expect("ROLLBACK");
    assert_eq!(rows_of_t(&mut conn).await, 1);
}

#[tokio::test]
async fn a_fastpath_function_call_reaches_no_function() {
    let database = database_with_table("hostile_fastpath").await;
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    // FunctionCall ('F') of set_config (OID 2078): three text arguments, a text result.
    let mut body = 2078_u32.to_be_bytes().to_vec();
    body.extend_from_slice(&0_u16.to_be_bytes());
    body.extend_from_slice(&3_u16.to_be_bytes());
    for arg in [b"dsql_local.internal".as_slice(), b"on", b"false"] {
        body.extend_from_slice(&u32::try_from(arg.len()).expect("short").to_be_bytes());
        body.extend_from_slice(arg);
    }
    body.extend_from_slice(&0_u16.to_be_bytes());
    let mut call = Vec::new();
    wire::put_message(&mut call, b'F', &body);
    raw.stream.write_all(&call).await.expect("send the call");
    assert_eq!(raw.errors_until_ready(1).await, ["0A000".to_owned()]);
    let (code, _) = raw
        .query(OVER_THE_CAP.as_bytes())
        .await
        .expect_err("the cap holds");
    assert_eq!(code, "54000");
    raw.assert_t_untouched().await;
}

#[tokio::test]
async fn text_the_judge_cannot_parse_never_reaches_the_server() {
    let database = database_with_table("hostile_grammar").await;
    let mut raw = Raw::login(&database, &[]).await.expect("log in");
    // PostgreSQL 16 and later (DSQL's grammar, and the judge's) refuse a number followed by
    // letters; the PostgreSQL 15 behind the front door reads `1abc` as `1 AS abc` and would
    // run the rest.
    let message = raw
        .assert_refused(b"SELECT 1abc; TRUNCATE t", "42601")
        .await;
    assert!(message.contains("trailing junk"), "{message}");
    raw.assert_t_untouched().await;
    // An ordinary syntax error keeps PostgreSQL's message.
    let message = raw.assert_refused(b"SELEC 1; TRUNCATE t", "42601").await;
    assert_eq!(message, "syntax error at or near \"SELEC\"");
}
