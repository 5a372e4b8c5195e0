//! Faults injected into a real PostgreSQL while a workload runs: the server restarted, every
//! backend killed again and again, the credential rotated under load, the token source down for
//! 20 s, and no server at all. Each test asserts what the data and the counters say afterwards.
//!
//! The disruptive tests (restart, killed backends) start a server of their own; the credential
//! tests change only their own role's password, on the binary's shared server.
#![allow(missing_docs)]

use crate::common;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use app::dsql::pool::PoolSettings;
use app::dsql::pool::{Clock, RefreshPolicy, RefreshingPool};
use app::dsql::token::{StaticPassword, Token, TokenSource};

use app::dsql::retry::{Idempotency, RetryPolicy, transaction};
use app::local::{Credentials, LocalServer};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use secrecy::SecretString;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio::task::JoinHandle;
use uuid::Uuid;

use common::clock::{HANG_GUARD, ManualClock, refreshes};
use common::{database_error, database_with_user, eventually, eventually_blocking, server};

/// The table the workloads write to. The client's key is deliberately *not* unique: a write
/// applied twice would show up as a second row with the same key, instead of being absorbed by
/// a constraint. The insert is made idempotent the honest way for client-keyed writes, by
/// looking for its key in the same transaction.
const TABLES: [&str; 3] = [
    "CREATE TABLE fault_write (row_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
     key uuid NOT NULL, worker integer NOT NULL)",
    "CREATE INDEX fault_write_key_idx ON fault_write (key)",
    "CREATE TABLE fault_counter (worker integer PRIMARY KEY, n bigint NOT NULL)",
];

/// Inserts `$1` for worker `$2` unless a row with that key exists; then says which backend ran it.
const INSERT: &str = "INSERT INTO fault_write (key, worker) SELECT $1, $2 \
                      WHERE NOT EXISTS (SELECT 1 FROM fault_write WHERE key = $1)";
/// Not idempotent: running it twice counts twice.
const INCREMENT: &str = "UPDATE fault_counter SET n = n + 1 WHERE worker = $1";

/// Enough attempts, with waits up to 1 s, to ride out a restart or a killed connection.
fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 40,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(1),
    }
}

/// `future`, or a panic naming `what` if it is not done within `limit` (a hang guard only).
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {limit:?}"))
}

fn pool_settings(max_lifetime: Duration) -> PoolSettings {
    PoolSettings {
        max_connections: 6,
        max_lifetime,
        idle_timeout: Duration::from_secs(60),
    }
}

/// The app's own pool (as `Session` builds it for the stand-in) on `server`, in `database` as
/// `who`, with the workload's tables created.
async fn app_pool(server: &LocalServer, database: &str, who: &Credentials) -> RefreshingPool {
    let pool = RefreshingPool::connect(
        server.connect_options(database, who),
        None,
        &pool_settings(Duration::from_secs(600)),
        StaticPassword(who.password.clone()),
        RefreshPolicy::default(),
    )
    .await
    .expect("connect the app's pool");
    create_tables(&pool.database()).await;
    pool
}

/// One DDL statement per transaction, as on DSQL.
async fn create_tables(db: &DatabaseConnection) {
    for ddl in TABLES {
        db.execute_unprepared(ddl).await.expect("create a table");
    }
}

/// What a workload's operations are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Idempotent inserts of fresh client-generated keys.
    Insert,
    /// `n = n + 1` on the worker's own counter, not idempotent.
    Increment,
}

/// What one worker saw.
#[derive(Debug, Default)]
struct Report {
    /// Keys it tried to insert, and the ones acknowledged as written.
    attempted: Vec<Uuid>,
    acknowledged: Vec<Uuid>,
    /// Increments that returned `Ok`, and those whose outcome was unknown.
    increments_ok: u64,
    increments_unknown: u64,
    /// Operations that needed more than one attempt.
    retried: u64,
    /// Backends that ran its operations.
    backends: HashSet<i32>,
    /// Every other error, as text.
    errors: Vec<String>,
}

impl Report {
    /// Asserts that no operation failed for good.
    fn assert_no_errors(&self) {
        assert!(
            self.errors.is_empty(),
            "failed operations: {:?}",
            self.errors
        );
    }
}

/// Workers running operations until told to stop.
struct Workload {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    workers: Vec<JoinHandle<Report>>,
}

impl Workload {
    /// Starts one worker per entry of `kinds` on `db`. A worker holds a read guard of `gate`
    /// (if any) for the whole of each operation.
    async fn start(db: &DatabaseConnection, kinds: &[Kind], gate: Option<Arc<RwLock<()>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for (worker, kind) in (0..).zip(kinds.iter().copied()) {
            if kind == Kind::Increment {
                db.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "INSERT INTO fault_counter (worker, n) VALUES ($1, 0)",
                    [worker.into()],
                ))
                .await
                .expect("create the worker's counter");
            }
            let (db, stop, done, gate) = (db.clone(), stop.clone(), done.clone(), gate.clone());
            workers.push(tokio::spawn(async move {
                let mut report = Report::default();
                while !stop.load(Ordering::SeqCst) {
                    let _pass = match &gate {
                        Some(gate) => Some(gate.read().await),
                        None => None,
                    };
                    run_one(&db, kind, worker, &mut report).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                report
            }));
        }
        Self {
            stop,
            done,
            workers,
        }
    }

    /// Operations finished so far (successful or not).
    fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `more` further operations have finished.
    async fn progress(&self, more: u64, what: &str) {
        let target = self.done() + more;
        eventually(Duration::from_secs(60), what, || async {
            (self.done() >= target).then_some(())
        })
        .await;
    }

    /// Stops the workers and merges their reports.
    async fn finish(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Report::default();
        for worker in self.workers {
            let report = within(Duration::from_secs(60), "a worker to stop", worker)
                .await
                .expect("a worker panicked");
            all.attempted.extend(report.attempted);
            all.acknowledged.extend(report.acknowledged);
            all.increments_ok += report.increments_ok;
            all.increments_unknown += report.increments_unknown;
            all.retried += report.retried;
            all.backends.extend(report.backends);
            all.errors.extend(report.errors);
        }
        all
    }
}

/// One operation through the app's retry, recorded in `report`.
async fn run_one(db: &DatabaseConnection, kind: Kind, worker: i32, report: &mut Report) {
    let key = Uuid::new_v4();
    let (sql, values, idempotency) = match kind {
        Kind::Insert => {
            report.attempted.push(key);
            (
                INSERT,
                vec![key.into(), worker.into()],
                Idempotency::Idempotent,
            )
        }
        Kind::Increment => (INCREMENT, vec![worker.into()], Idempotency::NotIdempotent),
    };
    let result = transaction(db, &patient(), idempotency, |txn| {
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values.clone());
        Box::pin(async move {
            txn.execute_raw(statement).await?;
            let row = txn
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_backend_pid() AS pid",
                ))
                .await?
                .ok_or_else(|| DbErr::Custom("no backend pid".into()))?;
            row.try_get::<i32>("", "pid")
        })
    })
    .await;
    match result {
        Ok(done) => {
            report.backends.insert(done.value);
            report.retried += u64::from(done.attempts > 1);
            match kind {
                Kind::Insert => report.acknowledged.push(key),
                Kind::Increment => report.increments_ok += 1,
            }
        }
        Err(app::dsql::Error::OutcomeUnknown { .. }) if kind == Kind::Increment => {
            report.increments_unknown += 1;
        }
        Err(error) => report.errors.push(format!("{kind:?}: {error}")),
    }
}

/// Rows per key in `fault_write`.
async fn stored_keys(pool: &PgPool) -> HashMap<Uuid, i64> {
    sqlx::query_as::<_, (Uuid, i64)>("SELECT key, count(*) FROM fault_write GROUP BY key")
        .fetch_all(pool)
        .await
        .expect("read the keys back")
        .into_iter()
        .collect()
}

/// Every acknowledged key is stored, exactly once, and nothing was stored that no worker tried.
async fn assert_inserts_exactly_once(pool: &PgPool, report: &Report) {
    let stored = stored_keys(pool).await;
    let twice: Vec<_> = stored.iter().filter(|(_, rows)| **rows != 1).collect();
    assert!(twice.is_empty(), "keys applied more than once: {twice:?}");
    let lost: Vec<_> = report
        .acknowledged
        .iter()
        .filter(|key| !stored.contains_key(key))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let attempted: HashSet<_> = report.attempted.iter().collect();
    assert!(
        stored.keys().all(|key| attempted.contains(key)),
        "stored keys nobody wrote"
    );
    assert!(!report.acknowledged.is_empty(), "no write was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_server_restarts_and_none_is_applied_twice() {
    let mut server = LocalServer::start()
        .await
        .expect("start a server of its own");
    server.create_database("restarts").await.expect("database");
    let pool = app_pool(&server, "restarts", &server.admin().clone()).await;
    let workload = Workload::start(&pool.database(), &[Kind::Insert; 4], None).await;

    workload
        .progress(200, "writes before the first restart")
        .await;
    for restart in 1..=2 {
        within(
            Duration::from_secs(30),
            "stop the server",
            server.stop_in_place(),
        )
        .await
        .expect("stop the server in place");
        // Down while it starts again: clients get refused connections, open transactions are
        // gone.
        within(
            Duration::from_secs(90),
            "start the server",
            server.start_in_place(),
        )
        .await
        .expect("start the server again in place");
        workload
            .progress(200, &format!("writes after restart {restart}"))
            .await;
    }
    let report = workload.finish().await;

    report.assert_no_errors();
    assert!(
        report.retried > 0,
        "no write was interrupted by the restarts"
    );
    assert_inserts_exactly_once(pool.pool(), &report).await;
    within(Duration::from_secs(30), "close the pool", pool.close()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_backend_killed_every_two_seconds_no_increment_is_applied_twice() {
    let server = LocalServer::start()
        .await
        .expect("start a server of its own");
    server.create_database("kills").await.expect("database");
    let admin = server.admin().clone();
    let pool = app_pool(&server, "kills", &admin).await;
    let kinds = [
        Kind::Increment,
        Kind::Increment,
        Kind::Increment,
        Kind::Increment,
        Kind::Insert,
        Kind::Insert,
    ];
    let workload = Workload::start(&pool.database(), &kinds, None).await;

    // As admin, who may signal the backends of its own role; never its own backend.
    let mut killer = PgConnection::connect_with(&server.connect_options("kills", &admin))
        .await
        .expect("the killer's connection");
    let mut killed = Vec::new();
    for _ in 0..10 {
        workload.progress(20, "operations between kills").await;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )
        .fetch_one(&mut killer)
        .await
        .expect("terminate the backends");
        killed.push(count);
    }
    killer.close().await.expect("close the killer's connection");
    let report = workload.finish().await;

    assert!(
        killed.iter().sum::<i64>() >= 10,
        "too few backends killed: {killed:?}"
    );
    report.assert_no_errors();
    assert!(report.retried > 0, "no operation was interrupted");
    assert!(report.increments_ok > 0);
    let total: i64 = sqlx::query_scalar("SELECT sum(n)::bigint FROM fault_counter")
        .fetch_one(pool.pool())
        .await
        .expect("read the counters");
    let total = u64::try_from(total).expect("a count");
    assert!(
        total >= report.increments_ok,
        "an acknowledged increment was lost: {total} < {}",
        report.increments_ok
    );
    assert!(
        total <= report.increments_ok + report.increments_unknown,
        "an increment was applied twice: {total} > {} ok + {} unknown",
        report.increments_ok,
        report.increments_unknown
    );
    assert_inserts_exactly_once(pool.pool(), &report).await;
    within(Duration::from_secs(30), "close the pool", pool.close()).await;
}

/// A role's password, set anew (the stand-in's stand-in for a new IAM token).
async fn new_password(database: &str, role: &str) -> app::dsql::Result<SecretString> {
    let password = app::local::random_secret();
    let credentials = Credentials {
        user: role.to_owned(),
        password: password.clone(),
    };
    server()
        .await
        .set_password(database, &credentials)
        .await
        .map_err(|err| app::dsql::Error::Token(err.to_string()))?;
    Ok(password)
}

/// The rotation's write guard on the gate, with the refresh count it waits for.
type HeldGate = Arc<Mutex<Option<(u64, OwnedRwLockWriteGuard<()>)>>>;

/// Rotates the role's password on every call, each valid for `valid_for`.
///
/// The server forgets the old password at once, where DSQL keeps an old token valid until it
/// expires. So that the test checks the pool and not that difference, the rotation holds
/// `gate` for writing from just before the password changes until the test has seen the pool
/// report the new token installed (`RefreshStatus::successes`) and drops the guard: no
/// operation, and so no new connection, is under way while the role has a password the pool
/// does not know yet.
struct Rotating {
    database: String,
    role: String,
    valid_for: Duration,
    calls: AtomicU64,
    passwords: Arc<Mutex<Vec<SecretString>>>,
    gate: Arc<RwLock<()>>,
    /// The write guard, and the refresh count that releases it.
    held: HeldGate,
}

impl TokenSource for Rotating {
    async fn token(&self) -> app::dsql::Result<Token> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = match call {
            1 => None,
            _ => Some(self.gate.clone().write_owned().await),
        };
        let password = new_password(&self.database, &self.role).await?;
        self.passwords
            .lock()
            .expect("passwords")
            .push(password.clone());
        if let Some(guard) = guard {
            *self.held.lock().expect("held") = Some((call - 1, guard));
        }
        Ok(Token {
            secret: password,
            valid_for: Some(self.valid_for),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_credential_ten_times_under_load_fails_no_operation() {
    const ROTATIONS: u64 = 10;
    const VALID_FOR: Duration = Duration::from_secs(900);
    let (database, user) = database_with_user("rotation").await;
    let source = Rotating {
        database: database.clone(),
        role: user.user.clone(),
        valid_for: VALID_FOR,
        calls: AtomicU64::new(0),
        passwords: Arc::new(Mutex::new(Vec::new())),
        gate: Arc::new(RwLock::new(())),
        held: Arc::new(Mutex::new(None)),
    };
    let (passwords, gate, held) = (
        source.passwords.clone(),
        source.gate.clone(),
        source.held.clone(),
    );
    let server = server().await;
    let clock = ManualClock::new();
    // Connections are retired after a tenth of a second, so new ones are opened all the time.
    let pool = RefreshingPool::connect_with_clock(
        server.connect_options(&database, &user),
        Some(app::dsql::USER_SCHEMA),
        &pool_settings(Duration::from_millis(100)),
        source,
        RefreshPolicy::default(),
        clock.shared(),
    )
    .await
    .expect("connect with the first password");
    create_tables(&pool.database()).await;
    let status = pool.status();

    let workload = Workload::start(&pool.database(), &[Kind::Insert; 4], Some(gate)).await;
    for rotation in 1..=ROTATIONS {
        workload.progress(50, "writes between rotations").await;
        clock.advance_once_asleep(VALID_FOR).await;
        refreshes(&status, rotation).await;
        // The pool has the new password: operations may open connections again.
        *held.lock().expect("held") = None;
    }
    workload
        .progress(50, "writes after the last rotation")
        .await;
    let report = workload.finish().await;

    report.assert_no_errors();
    assert_eq!(status.failures(), 0);
    assert!(
        report.backends.len() as u64 > ROTATIONS,
        "only {} connections opened",
        report.backends.len()
    );
    // The rotations were real: the first password no longer opens a connection.
    let first = passwords.lock().expect("passwords")[0].clone();
    let stale = Credentials {
        user: user.user.clone(),
        password: first,
    };
    let (code, _) = database_error(
        PgConnection::connect_with(&server.connect_options(&database, &stale)).await,
    );
    assert_eq!(code, "28P01");
    assert_inserts_exactly_once(pool.pool(), &report).await;
    within(Duration::from_secs(30), "close the pool", pool.close()).await;
}

/// How long the token source is down.
const OUTAGE: Duration = Duration::from_secs(20);

/// A token source that works once, then fails for [`OUTAGE`] on `clock` from its first refresh
/// on, then works again. When the outage begins the first password is replaced by one nobody
/// knows, as the first token would expire: during the outage no new connection can open.
struct Outage {
    database: String,
    role: String,
    calls: AtomicU64,
    clock: Arc<ManualClock>,
    ends: Mutex<Option<SystemTime>>,
}

impl TokenSource for Outage {
    async fn token(&self) -> app::dsql::Result<Token> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == 1 {
            return Ok(Token {
                secret: new_password(&self.database, &self.role).await?,
                valid_for: Some(Duration::from_secs(1)),
            });
        }
        let started = self.ends.lock().expect("ends").is_none();
        if started {
            new_password(&self.database, &self.role).await?;
            *self.ends.lock().expect("ends") = Some(self.clock.now() + OUTAGE);
        }
        let ends = (self.ends.lock().expect("ends")).unwrap_or_else(|| self.clock.now());
        if self.clock.now() < ends {
            return Err(app::dsql::Error::Token(format!(
                "simulated outage (call {call})"
            )));
        }
        Ok(Token {
            secret: new_password(&self.database, &self.role).await?,
            valid_for: Some(Duration::from_secs(600)),
        })
    }
}

/// How many refresh attempts start within `window` if every wait is `fraction` of its backoff
/// step (`retry_initial`, doubling up to `retry_max`), the first attempt at the start.
fn attempts_within(policy: &RefreshPolicy, window: Duration, fraction: f64) -> u64 {
    let (mut at, mut step, mut attempts) = (Duration::ZERO, policy.retry_initial, 0);
    while at < window {
        attempts += 1;
        at += step.mul_f64(fraction);
        step = (step * 2).min(policy.retry_max);
    }
    attempts
}

/// A connection the pool has to open now, with its current password.
async fn brand_new_connection(pool: &PgPool) -> Result<i32, sqlx::Error> {
    while let Some(idle) = pool.try_acquire() {
        idle.close().await?;
    }
    let mut conn = pool.acquire().await?;
    sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await
}

/// The outage and the backoff run on the test's clock, moved on to each wake-up the refresh
/// task asks for: the schedule is the pool's own, and the test takes no 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_twenty_second_token_outage_the_pool_serves_again_with_bounded_backoff() {
    let (database, user) = database_with_user("outage").await;
    let clock = ManualClock::new();
    let source = Outage {
        database: database.clone(),
        role: user.user.clone(),
        calls: AtomicU64::new(0),
        clock: Arc::clone(&clock),
        ends: Mutex::new(None),
    };
    let policy = RefreshPolicy {
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(2),
        ..RefreshPolicy::default()
    };
    let pool = RefreshingPool::connect_with_clock(
        server().await.connect_options(&database, &user),
        None,
        &pool_settings(Duration::from_secs(600)),
        source,
        policy.clone(),
        clock.shared(),
    )
    .await
    .expect("connect with the first password");
    let status = pool.status();

    clock.advance_to_next_wake_up().await;
    eventually(HANG_GUARD, "the outage to begin", || async {
        (status.failures() >= 1).then_some(())
    })
    .await;
    let (code, _) = database_error(brand_new_connection(pool.pool()).await);
    assert_eq!(code, "28P01", "during the outage no new connection opens");

    let attempts_seen = AtomicU64::new(0);
    eventually(
        Duration::from_secs(60),
        "a refresh after the outage",
        || async {
            if status.successes() >= 1 {
                return Some(());
            }
            // Time moves on only once the task has made the attempt it woke up for.
            if status.attempts() > attempts_seen.load(Ordering::SeqCst) {
                attempts_seen.store(status.attempts(), Ordering::SeqCst);
                clock.advance_to_next_wake_up().await;
            }
            None
        },
    )
    .await;
    assert_eq!(
        brand_new_connection(pool.pool())
            .await
            .expect("a brand-new connection after the outage"),
        1
    );
    let (attempts, failures) = (status.attempts(), status.failures());
    assert_eq!(
        attempts,
        failures + 1,
        "the first try after the outage works"
    );
    // Fastest schedule (every wait half its step) and slowest (every wait its whole step).
    let most = attempts_within(&policy, OUTAGE, 0.5);
    let fewest = attempts_within(&policy, OUTAGE, 1.0);
    assert!(
        (fewest..=most).contains(&failures),
        "{failures} failed refreshes in {OUTAGE:?}, expected {fewest} to {most}"
    );
    within(Duration::from_secs(30), "close the pool", pool.close()).await;
}

#[test]
fn the_demo_against_a_closed_port_fails_at_once_naming_the_address() {
    let port = common::free_port();
    let empty = tempfile::tempdir().expect("a directory without .env");
    let mut app = Command::new(env!("CARGO_BIN_EXE_app"));
    app.arg("demo")
        .current_dir(empty.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("PGPASSWORD", "unused")
        .env(
            "DATABASE_URL",
            format!("postgres://admin@127.0.0.1:{port}/postgres"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = app.spawn().expect("run app demo");
    eventually_blocking(
        Duration::from_secs(60),
        "app demo to end with nothing listening",
        || child.try_wait().expect("poll app"),
    );
    let output = child.wait_with_output().expect("app's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("could not connect to 127.0.0.1:{port} as admin")),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("Connected"),
        "{stderr}"
    );
}
