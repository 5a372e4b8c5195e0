//! Conformance: every case recorded from a live Aurora DSQL cluster (`tests/dsql-conformance/`)
//! replayed through the local stand-in's front door ([`StandIn`]) the way the recording client
//! sent it, with the agreement printed per file and every disagreement on a line of its own.
//! The cases the stand-in does not agree with are listed, each with its reason, in
//! [`KNOWN_MISSES`] (and in docs/stand-in.md): a new disagreement fails the test, and so does a
//! listed case that starts agreeing.
//!
//! Each recording file gets a stand-in of its own (a second or two to start), so that its
//! cases run in `postgres`, the only database DSQL has, with exactly the fixtures DSQL had when
//! the file was recorded (`fixtures.json`). Cases run in the recorded order, since some read
//! what earlier ones committed, each on a connection of its own. The two sessions of a
//! conflict case take turns, step by step, the first session first; a step that waits on a
//! lock the other session holds (seen in `pg_stat_activity`) lets the other one go on, so
//! every run interleaves the sessions the same way.
//!
//! sqlx shows a command tag only as its row count, so each session goes through a tap
//! ([`common::tags`]) that notes the tags the front door sends: a tag is compared whole
//! (`COMMIT` answered `ROLLBACK` disagrees).
#![cfg(feature = "front-door")]

use crate::common;
use secrecy::ExposeSecret;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use app::dsql::token::{IamTokenSource, TokenSource};
use app::local::stand_in::StandIn;
use app::local::{ADMIN_USER, DATABASE};
use common::recordings::{Case, Fixtures, Observation, Recording, read_json, recording_files};
use common::tags::{Tags, Tap};
use futures_util::StreamExt;
use sqlx::postgres::{PgColumn, PgSslMode, PgValueFormat, PgValueRef};
use sqlx::{
    AssertSqlSafe, Column, Connection, Decode, Either, Executor, PgConnection, Postgres, Row,
    SqlSafeStr, Statement, TypeInfo, ValueRef,
};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::timeout;

/// The recorded cases the stand-in answers otherwise than DSQL did, each with the reason.
/// Every other case must agree, and each of these must still disagree.
const KNOWN_MISSES: &[(&str, &str)] = &[
    (
        "alter_drop_pk_column",
        "DSQL refuses to drop a primary-key column (0A000); telling one needs the catalog",
    ),
    (
        "alter_add_column_storage",
        "ADD COLUMN … STORAGE is PostgreSQL 16 syntax; the stand-in's PostgreSQL 15 cannot parse it",
    ),
    (
        "alter_unique_using_index",
        "the stand-in builds an ASYNC index at once, so it is valid when DSQL's is still building",
    ),
    (
        "q_lateral_left_outer_ref",
        "DSQL fails a whole-row LEFT JOIN LATERAL with 42804; PostgreSQL answers it",
    ),
    (
        "q_lateral_left_no_outer_where",
        "DSQL fails a whole-row LEFT JOIN LATERAL with 42804; PostgreSQL answers it",
    ),
    (
        "q_lateral_left_outer_ref_cast",
        "DSQL fails a whole-row LEFT JOIN LATERAL with 42804; PostgreSQL answers it",
    ),
    (
        "occ_for_update_vs_write",
        "PostgreSQL's FOR UPDATE only locks: the writer waits, then commits too; DSQL fails one",
    ),
    (
        "occ_for_key_share_vs_delete",
        "PostgreSQL's FOR KEY SHARE only locks: the delete waits, then commits too; DSQL fails one",
    ),
];

/// How long a step, or a login, may take; longer counts as a disagreement.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the `admin` IAM tokens are signed for.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// What a step did, or what DSQL recorded for it.
#[derive(Debug)]
enum Outcome {
    /// What each statement returned.
    Ok(Vec<Returned>),
    /// A database error (a recording may lack the message).
    Error {
        /// The SQLSTATE.
        sqlstate: String,
        /// The message, if known.
        message: Option<String>,
    },
    /// No answer from the database: a timeout, a failed login, a lost connection.
    Failed(String),
}

/// What one statement returned.
#[derive(Debug, Default)]
struct Returned {
    /// Its command tag (`None` where the recording has no tag).
    tag: Option<String>,
    /// The column names (none for a statement without rows).
    columns: Vec<String>,
    /// The rows, each value as the recording client printed it ([`render`]).
    rows: Vec<Vec<String>>,
}

/// One line: `ok [tag columns rows]…` (one bracket per statement), `error SQLSTATE message`,
/// or `no answer: why`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok(returned) => {
                write!(f, "ok")?;
                for r in returned {
                    let tag = r.tag.as_deref().unwrap_or("-");
                    write!(f, " [{tag:?} {:?} {:?}]", r.columns, r.rows)?;
                }
                Ok(())
            }
            Self::Error { sqlstate, message } => match message {
                Some(message) => write!(f, "error {sqlstate} {message:?}"),
                None => write!(f, "error {sqlstate} (message not recorded)"),
            },
            Self::Failed(why) => write!(f, "no answer: {why}"),
        }
    }
}

/// What DSQL answered, in the terms of a replay.
fn recorded(observation: &Observation) -> Outcome {
    if observation.outcome != "ok" {
        return Outcome::Error {
            sqlstate: observation.sqlstate.clone().unwrap_or_default(),
            message: observation.message.clone(),
        };
    }
    let returned = observation.answers().iter().map(|answer| Returned {
        tag: answer.command_tag.clone(),
        columns: answer.columns.clone().unwrap_or_default(),
        rows: answer.rows.clone().unwrap_or_default(),
    });
    Outcome::Ok(returned.collect())
}

/// Whether `got` agrees with what DSQL answered: outcome, SQLSTATE, message, command tag,
/// columns and (unless `ignore_rows`) rows.
fn agrees(expected: &Outcome, got: &Outcome, ignore_rows: bool) -> bool {
    match (expected, got) {
        (Outcome::Ok(expected), Outcome::Ok(got)) => {
            expected.len() == got.len()
                && expected.iter().zip(got).all(|(e, g)| {
                    (e.tag.is_none() || e.tag == g.tag)
                        && e.columns == g.columns
                        && (ignore_rows || e.rows == g.rows)
                })
        }
        (
            Outcome::Error { sqlstate, message },
            Outcome::Error {
                sqlstate: got_sqlstate,
                message: got_message,
            },
        ) => sqlstate == got_sqlstate && (message.is_none() || message == got_message),
        _ => false,
    }
}

/// One recording file's stand-in, holding the fixtures the file assumes.
struct Cluster {
    /// A session of `admin` straight to the server behind the front door, for setup and cleanup
    /// (dropped before the stand-in, which stops the server).
    backend: PgConnection,
    /// The stand-in: its server, and the front door the cases go through; kept until the
    /// cluster is dropped.
    _stand_in: StandIn,
    /// The IAM tokens the app would sign for `admin`.
    tokens: IamTokenSource,
    /// The TLS side of each session, noting its command tags.
    tap: Tap,
}

impl Cluster {
    /// Starts a stand-in and sets up what `recording` assumes ([`Fixtures::setup`]).
    async fn start(fixtures: &Fixtures, recording: &Recording) -> Self {
        let stand_in = StandIn::start()
            .await
            .expect("start the stand-in (are the PostgreSQL server binaries installed?)");
        let endpoint = app::config::stand_in_endpoint().expect("the stand-in's endpoint");
        let sdk_config = stand_in.sdk_config().await;
        let tokens =
            IamTokenSource::with_sdk_config(&endpoint, ADMIN_USER, TOKEN_LIFETIME, sdk_config)
                .expect("an admin token source");
        // The fixtures are set up, not replayed: as `admin` straight on the server, past the
        // front door, so that no DSQL rule at the wire (a foreign key, say) can refuse them.
        // Not as the superuser: the tables it creates get none of the in-server DSQL rules
        // (TRUNCATE, the row cap), and are not admin's to alter or drop, as the cases do.
        let server = stand_in.server();
        let options = server.connect_options(DATABASE, server.admin());
        let mut backend = PgConnection::connect_with(&options)
            .await
            .expect("connect to the server as admin");
        for statement in fixtures.setup(recording) {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut backend)
                .await
                .unwrap_or_else(|e| panic!("fixture {statement}: {e}"));
        }
        let ca_pem = std::fs::read_to_string(stand_in.ca_path()).expect("the stand-in's CA");
        let tap = Tap::new(stand_in.port(), endpoint.host(), &ca_pem);
        Self {
            backend,
            _stand_in: stand_in,
            tokens,
            tap,
        }
    }

    /// A session through the front door as a client reaches DSQL (TLS verifying the
    /// stand-in's certificate, done by the tap; `admin` with a fresh IAM token), within
    /// [`STEP_TIMEOUT`], and the command tags it receives.
    async fn connect(&self) -> Result<(PgConnection, Tags), String> {
        let login = async {
            let token = self.tokens.token().await.map_err(|e| e.to_string())?;
            let endpoint = app::config::stand_in_endpoint().expect("the stand-in's endpoint");
            let (port, tags) = self.tap.open().await;
            let options = app::dsql::connect_options(&endpoint, port, ADMIN_USER, None)
                .host("127.0.0.1")
                .ssl_mode(PgSslMode::Disable)
                .password(token.secret.expose_secret());
            let conn = PgConnection::connect_with(&options)
                .await
                .map_err(|e| format!("login: {e}"))?;
            tags.take();
            Ok((conn, tags))
        };
        timeout(STEP_TIMEOUT, login)
            .await
            .unwrap_or_else(|_| Err(format!("no login within {STEP_TIMEOUT:?}")))
    }

    /// Ends every session a case left, and waits until each is gone (rolled back, its locks
    /// released), so that nothing of one case reaches the next: a connection dropped after a
    /// timeout may still be running its statement.
    async fn end_sessions(&mut self) {
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(ADMIN_USER)
        .execute(&mut self.backend)
        .await
        .expect("end the case's sessions");
    }
}

/// Sends one step as the recording client did: one simple query if `simple`, else one
/// extended-protocol statement (prepared, then executed), and collects what came back, the
/// command tags from `tags`.
async fn run_step(conn: &mut PgConnection, tags: &Tags, sql: &str, simple: bool) -> Outcome {
    let text = || AssertSqlSafe(sql.to_owned());
    let mut stream = if simple {
        conn.fetch_many(sqlx::raw_sql(text()))
    } else {
        conn.fetch_many(sqlx::query(text()))
    };
    let (mut returned, mut current) = (Vec::new(), Returned::default());
    while let Some(item) = stream.next().await {
        match item {
            Ok(Either::Right(row)) => {
                if current.rows.is_empty() {
                    current.columns = names(row.columns());
                }
                let values = (0..row.len()).map(|i| render(row.try_get_raw(i).expect("a value")));
                current.rows.push(values.collect());
            }
            Ok(Either::Left(_)) => returned.push(std::mem::take(&mut current)),
            Err(error) => return failure(&error),
        }
    }
    drop(stream);
    // The statements' tags are the last ones: any before are sqlx's own (a type look-up while
    // preparing).
    let received = tags.take();
    let skip = received.len().saturating_sub(returned.len());
    for (r, tag) in returned.iter_mut().zip(received.into_iter().skip(skip)) {
        r.tag = Some(tag);
    }
    // A statement without rows shows its columns only in its description, which sqlx cached
    // when it prepared the statement: `prepare` answers from that cache, sending nothing.
    if let (false, [only]) = (simple, returned.as_mut_slice())
        && only.rows.is_empty()
    {
        match conn.prepare(text().into_sql_str()).await {
            Ok(statement) => only.columns = names(statement.columns()),
            Err(error) => return failure(&error),
        }
    }
    Outcome::Ok(returned)
}

/// The column names.
fn names(columns: &[PgColumn]) -> Vec<String> {
    columns.iter().map(|c| c.name().to_owned()).collect()
}

/// A failed step: the database's error, or no answer.
fn failure(error: &sqlx::Error) -> Outcome {
    match error.as_database_error() {
        Some(db) => Outcome::Error {
            sqlstate: db.code().unwrap_or_default().into_owned(),
            message: Some(db.message().to_owned()),
        },
        None => Outcome::Failed(error.to_string()),
    }
}

/// Runs `steps` on `conn` one after another, each within [`STEP_TIMEOUT`], each only once
/// `turns` hands it its turn (a closed `turns` runs the rest at once); tells `done` how many
/// steps have finished. Stops after a step that got no answer.
async fn run_steps(
    (mut conn, tags): (PgConnection, Tags),
    steps: &[String],
    simple: bool,
    mut turns: Option<mpsc::UnboundedReceiver<()>>,
    done: Option<watch::Sender<usize>>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for sql in steps {
        if let Some(turns) = &mut turns {
            turns.recv().await;
        }
        let outcome = timeout(STEP_TIMEOUT, run_step(&mut conn, &tags, sql, simple))
            .await
            .unwrap_or_else(|_| Outcome::Failed(format!("none within {STEP_TIMEOUT:?}")));
        let answered = !matches!(outcome, Outcome::Failed(_));
        outcomes.push(outcome);
        if let Some(done) = &done {
            done.send_replace(outcomes.len());
        }
        if !answered {
            break;
        }
    }
    outcomes
}

/// A value as the recording client printed it (see the README): SQL NULL as `NULL`, a uuid as
/// its 16 bytes, an array or a record as `[a b]`, an inet as address/prefix length.
fn render(value: PgValueRef<'_>) -> String {
    fn decode<'r, T: Decode<'r, Postgres>>(
        value: PgValueRef<'r>,
    ) -> Result<T, sqlx::error::BoxDynError> {
        T::decode(value)
    }
    if value.is_null() {
        return "NULL".to_owned();
    }
    let type_name = value.type_info().name().to_owned();
    let binary = matches!(value.format(), PgValueFormat::Binary);
    let text = match type_name.as_str() {
        "BOOL" => decode::<bool>(value).map(|v| v.to_string()),
        "INT2" => decode::<i16>(value).map(|v| v.to_string()),
        "INT4" => decode::<i32>(value).map(|v| v.to_string()),
        "INT8" => decode::<i64>(value).map(|v| v.to_string()),
        "FLOAT4" => decode::<f32>(value).map(|v| v.to_string()),
        "FLOAT8" => decode::<f64>(value).map(|v| v.to_string()),
        "UUID" => decode::<uuid::Uuid>(value).map(|v| bracketed(v.as_bytes())),
        "TEXT[]" | "VARCHAR[]" => decode::<Vec<String>>(value).map(|v| bracketed(&v)),
        "INET" if binary => value.as_bytes().map(inet),
        "RECORD" if binary => value.as_bytes().map(record),
        _ => decode::<String>(value),
    };
    text.unwrap_or_else(|e| format!("<{type_name}: {e}>"))
}

/// `[a b c]`, as Go prints a slice.
fn bracketed<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(" "))
}

/// A binary inet (family, prefix length, is-cidr, length, address) as `127.0.0.1/32`.
fn inet(bytes: &[u8]) -> String {
    let bits = bytes.get(1).copied().unwrap_or_default();
    let address = bytes.get(4..).unwrap_or_default();
    let ip = match address.len() {
        4 => <[u8; 4]>::try_from(address).ok().map(IpAddr::from),
        _ => <[u8; 16]>::try_from(address).ok().map(IpAddr::from),
    };
    ip.map_or_else(|| format!("<inet {bytes:?}>"), |ip| format!("{ip}/{bits}"))
}

/// A binary record (field count, then each field's type OID, length and value) as `[1 a]`:
/// integers and booleans by their OID, anything else as text.
fn record(bytes: &[u8]) -> String {
    let mut fields = Vec::new();
    let mut rest = bytes.get(4..).unwrap_or_default();
    while let (Some(oid), Some(len)) = (rest.get(..4), rest.get(4..8)) {
        let oid = u32::from_be_bytes(oid.try_into().expect("4 bytes"));
        let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        rest = &rest[8..];
        let Ok(len) = usize::try_from(len) else {
            fields.push("NULL".to_owned());
            continue;
        };
        let (value, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        fields.push(match (oid, value) {
            (16, [b]) => (*b != 0).to_string(),
            (20 | 21 | 23, [first, ..]) => {
                let sign = if *first >= 0x80 { -1 } else { 0 };
                value
                    .iter()
                    .fold(sign, |n: i64, b| (n << 8) | i64::from(*b))
                    .to_string()
            }
            _ => String::from_utf8_lossy(value).into_owned(),
        });
    }
    bracketed(&fields)
}

/// A step's statement on one line, cut to 60 characters.
fn short(sql: &str) -> String {
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Replays a one-session case on a connection of its own: its disagreements, a line each.
async fn replay(cluster: &Cluster, case: &Case) -> Vec<String> {
    let conn = match cluster.connect().await {
        Ok(conn) => conn,
        Err(error) => return vec![format!("connect: {error}")],
    };
    let outcomes = run_steps(conn, case.steps(), case.simple_protocol, None, None).await;
    let steps = case.steps().iter().zip(&case.observations);
    let mut found = Vec::new();
    for (i, (sql, observation)) in steps.enumerate() {
        let expected = recorded(observation);
        match outcomes.get(i) {
            Some(got) if agrees(&expected, got, case.ignore_rows) => {}
            got => found.push(format!(
                "step {} {:?}: expected {expected}, got {}",
                i + 1,
                short(sql),
                got.map_or_else(|| "not run".to_owned(), ToString::to_string)
            )),
        }
    }
    found
}

/// How a session of a two-session case ended.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Every step succeeded.
    Committed,
    /// Failed with 40001 (DSQL: at COMMIT, "change conflicts with another transaction").
    Lost,
    /// Anything else: the first step that did not succeed.
    Other(String),
}

/// How a session with these step outcomes ended.
fn fate(outcomes: impl IntoIterator<Item = Outcome>) -> Fate {
    let failures: Vec<Outcome> = (outcomes.into_iter())
        .filter(|o| !matches!(o, Outcome::Ok(_)))
        .collect();
    let lost = |o: &Outcome| matches!(o, Outcome::Error { sqlstate, .. } if sqlstate == "40001");
    if failures.iter().any(lost) {
        Fate::Lost
    } else {
        failures
            .first()
            .map_or(Fate::Committed, |o| Fate::Other(o.to_string()))
    }
}

/// One session of a two-session case, running its steps on a task of its own, a step per turn.
struct Turns {
    /// Hands the session its next step.
    turn: mpsc::UnboundedSender<()>,
    /// How many steps have finished.
    done: watch::Receiver<usize>,
    /// The session's server backend, to see it wait on a lock.
    pid: i32,
    /// The steps' outcomes, once the session has run them all (or stopped).
    outcomes: tokio::task::JoinHandle<Vec<Outcome>>,
}

impl Turns {
    /// Starts a session on `conn` for `steps`, waiting for its first turn.
    async fn start((mut conn, tags): (PgConnection, Tags), steps: &[String]) -> Self {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("the session's backend");
        tags.take();
        let (turn, turns) = mpsc::unbounded_channel();
        let (finished, done) = watch::channel(0);
        let steps = steps.to_vec();
        let outcomes = tokio::spawn(async move {
            run_steps((conn, tags), &steps, false, Some(turns), Some(finished)).await
        });
        Self {
            turn,
            done,
            pid,
            outcomes,
        }
    }

    /// Runs the session's step `step` (counted from 1) until it has finished or waits on a lock
    /// held by another session, as `backend` sees it.
    async fn take_turn(&self, step: usize, backend: &Mutex<&mut PgConnection>) {
        // A session that stopped early has no more turns to take.
        let _ = self.turn.send(());
        common::eventually(
            STEP_TIMEOUT * 2,
            &format!(
                "session {} to finish step {step} or wait on a lock",
                self.pid
            ),
            || async {
                if *self.done.borrow() >= step || self.outcomes.is_finished() {
                    return Some(());
                }
                let waiting: bool = sqlx::query_scalar(
                    "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) \
                     FROM pg_stat_activity WHERE pid = $1",
                )
                .bind(self.pid)
                .fetch_one(&mut **backend.lock().await)
                .await
                .expect("read pg_stat_activity");
                waiting.then_some(())
            },
        )
        .await;
    }
}

/// Replays a two-session case (`steps` from `fixtures.json`), the sessions taking turns step
/// by step, the first session first: it agrees when the same sessions commit and the others
/// fail with 40001, either session losing if the recording raced.
async fn replay_sessions(cluster: &mut Cluster, case: &Case, steps: &[Vec<String>]) -> Vec<String> {
    let [a, b] = steps else {
        panic!("{}: two sessions expected", case.name)
    };
    let (conn_a, conn_b) = match tokio::join!(cluster.connect(), cluster.connect()) {
        (Ok(conn_a), Ok(conn_b)) => (conn_a, conn_b),
        (Err(error), _) | (_, Err(error)) => return vec![format!("connect: {error}")],
    };
    let sessions = [Turns::start(conn_a, a).await, Turns::start(conn_b, b).await];
    let backend = Mutex::new(&mut cluster.backend);
    for step in 1..=a.len().max(b.len()) {
        for (session, steps) in sessions.iter().zip([a, b]) {
            if step <= steps.len() {
                session.take_turn(step, &backend).await;
            }
        }
    }
    let mut got = Vec::new();
    for session in sessions {
        got.push(fate(session.outcomes.await.expect("the session's task")));
    }
    let mut expected: Vec<Fate> = (case.sessions.iter())
        .map(|session| fate(session.iter().map(recorded)))
        .collect();
    if case.conflict_race {
        got.sort();
        expected.sort();
    }
    if got == expected {
        Vec::new()
    } else {
        vec![format!("sessions: expected {expected:?}, got {got:?}")]
    }
}

/// Replays every recording file, prints the agreement per file and every disagreement, and
/// fails if the cases that disagree are not exactly [`KNOWN_MISSES`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_agrees_with_the_dsql_recordings() {
    let fixtures: Fixtures = read_json("fixtures.json");
    let mut report = format!("{:<22} {:>5} {:>6} {:>6}\n", "file", "cases", "agreed", "%");
    let (mut disagreements, mut total, mut total_agreed) = (Vec::new(), 0, 0);
    let mut missed = BTreeSet::new();
    for file in recording_files() {
        let recording: Recording = read_json(&file);
        let mut cluster = Cluster::start(&fixtures, &recording).await;
        let mut agreed = 0;
        for case in &recording.cases {
            let found = if case.sessions.is_empty() {
                replay(&cluster, case).await
            } else {
                let steps = fixtures.session_steps.get(&case.name);
                let steps = steps.expect("fixtures.json has the sessions' steps");
                replay_sessions(&mut cluster, case, steps).await
            };
            cluster.end_sessions().await;
            agreed += usize::from(found.is_empty());
            if !found.is_empty() {
                missed.insert(case.name.as_str().to_owned());
            }
            let lines = found
                .into_iter()
                .map(|d| format!("{file} {}: {d}", case.name));
            disagreements.extend(lines);
        }
        let cases = recording.cases.len();
        let percent = 100.0 * agreed as f64 / cases as f64;
        report += &format!("{file:<22} {cases:>5} {agreed:>6} {percent:>6.1}\n");
        (total, total_agreed) = (total + cases, total_agreed + agreed);
    }
    let agreement = total_agreed as f64 / total as f64;
    report += &format!(
        "{:<22} {total:>5} {total_agreed:>6} {:>6.1}\n",
        "total",
        100.0 * agreement
    );
    for line in &disagreements {
        report += &format!("DISAGREE {line}\n");
    }
    println!("{report}");
    let known: BTreeSet<String> = KNOWN_MISSES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let new: Vec<&String> = missed.difference(&known).collect();
    let now_agreeing: Vec<&String> = known.difference(&missed).collect();
    assert!(
        new.is_empty() && now_agreeing.is_empty(),
        "new disagreements: {new:?}; known misses that now agree (take them off KNOWN_MISSES): \
         {now_agreeing:?}\n{report}"
    );
}
