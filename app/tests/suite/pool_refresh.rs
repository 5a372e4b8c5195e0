//! The token-refreshing pool against a real PostgreSQL: passwords rotate on the server while
//! the pool runs, so a connection opened with a stale password is refused (28P01), exactly as
//! DSQL refuses an expired token.
#![allow(missing_docs)]

use crate::common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use app::dsql::pool::PoolSettings;
use app::dsql::pool::{RefreshPolicy, RefreshingPool, WALL_CLOCK_CHECK};
use app::dsql::quote_identifier;
use app::dsql::token::{StaticPassword, Token, TokenSource};
use app::local::Credentials;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use common::clock::{HANG_GUARD, ManualClock, new_connection, refreshes};
use common::{database_error, database_with_user, eventually, fresh_database, server};

/// A token source that rotates the role's real password on every call, like IAM tokens
/// rotating, except that the previous password stops working at once (stricter than DSQL,
/// where an older token stays valid until it expires).
#[derive(Clone)]
struct RotatingPassword(Arc<Rotation>);

struct Rotation {
    /// An admin pool to the test database, used for `ALTER ROLE`.
    admin: PgPool,
    role: String,
    /// The validity reported for the first token (the one `connect` gets) and for later ones.
    first_valid_for: Duration,
    later_valid_for: Duration,
    /// Calls 2, 3, … `fail_calls + 1` fail without touching the password.
    fail_calls: u64,
    calls: AtomicU64,
    /// Every password set, oldest first.
    passwords: Mutex<Vec<SecretString>>,
    last_failure: Mutex<Option<SystemTime>>,
}

impl RotatingPassword {
    async fn new(database: &str, role: &str, valid_for: Duration) -> Self {
        Self::with(database, role, valid_for, valid_for, 0).await
    }

    async fn with(
        database: &str,
        role: &str,
        first_valid_for: Duration,
        later_valid_for: Duration,
        fail_calls: u64,
    ) -> Self {
        let server = server().await;
        let admin = server
            .pool(database, server.admin())
            .await
            .expect("admin pool");
        Self(Arc::new(Rotation {
            admin,
            role: role.to_owned(),
            first_valid_for,
            later_valid_for,
            fail_calls,
            calls: AtomicU64::new(0),
            passwords: Mutex::new(Vec::new()),
            last_failure: Mutex::new(None),
        }))
    }

    fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }

    fn password(&self, index: usize) -> SecretString {
        self.0.passwords.lock().expect("passwords")[index].clone()
    }

    fn passwords_set(&self) -> usize {
        self.0.passwords.lock().expect("passwords").len()
    }

    fn last_failure(&self) -> Option<SystemTime> {
        *self.0.last_failure.lock().expect("last failure")
    }

    fn credentials(&self, password: SecretString) -> Credentials {
        Credentials {
            user: self.0.role.clone(),
            password,
        }
    }
}

impl TokenSource for RotatingPassword {
    async fn token(&self) -> app::dsql::Result<Token> {
        let call = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if (2..=self.0.fail_calls + 1).contains(&call) {
            *self.0.last_failure.lock().expect("last failure") = Some(SystemTime::now());
            return Err(app::dsql::Error::Token(format!(
                "simulated outage (call {call})"
            )));
        }
        let password = app::local::random_secret();
        let sql = format!(
            "ALTER ROLE {} PASSWORD '{}'",
            quote_identifier(&self.0.role),
            password.expose_secret()
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.0.admin)
            .await?;
        self.0
            .passwords
            .lock()
            .expect("passwords")
            .push(password.clone());
        let valid_for = if call == 1 {
            self.0.first_valid_for
        } else {
            self.0.later_valid_for
        };
        Ok(Token {
            secret: password,
            valid_for: Some(valid_for),
        })
    }
}

fn settings(max_connections: u32) -> PoolSettings {
    PoolSettings {
        max_connections,
        max_lifetime: Duration::from_secs(55 * 60),
        idle_timeout: Duration::from_secs(10 * 60),
    }
}

/// Quick retries, so a test with failures stays short.
fn fast_retries() -> RefreshPolicy {
    RefreshPolicy {
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        ..RefreshPolicy::default()
    }
}

async fn connect_rotating(
    database: &str,
    user: &Credentials,
    source: &RotatingPassword,
    policy: RefreshPolicy,
) -> RefreshingPool {
    let options = server().await.connect_options(database, user);
    RefreshingPool::connect(options, None, &settings(2), source.clone(), policy)
        .await
        .expect("connect the refreshing pool")
}

/// A user's refreshing pool in a new database, with rotating passwords valid for 0.5 s on a
/// clock of its own, after its first refresh.
async fn refreshed_once_on_a_clock(
    purpose: &str,
) -> (
    String,
    Credentials,
    RotatingPassword,
    Arc<ManualClock>,
    RefreshingPool,
) {
    let (database, user) = database_with_user(purpose).await;
    let source = RotatingPassword::new(&database, &user.user, Duration::from_millis(500)).await;
    let clock = ManualClock::new();
    let refreshing = RefreshingPool::connect_with_clock(
        server().await.connect_options(&database, &user),
        None,
        &settings(2),
        source.clone(),
        fast_retries(),
        clock.shared(),
    )
    .await
    .expect("connect the refreshing pool");
    clock.advance_once_asleep(Duration::from_secs(1)).await;
    refreshes(&refreshing.status(), 1).await;
    (database, user, source, clock, refreshing)
}

/// Asserts, after the pool closed, that its refresh task has ended: nothing sleeps on the
/// clock any more, so ten refresh intervals (0.4 s each) pass without `source` being asked
/// again.
fn assert_no_more_refreshes(source: &RotatingPassword, clock: &ManualClock) {
    let calls = source.calls();
    assert_eq!(
        clock.sleeping(),
        0,
        "the refresh task still waits on the clock"
    );
    clock.advance(Duration::from_secs(4));
    assert_eq!(source.calls(), calls, "token() called after close");
}

/// `future`, or a panic naming `what` if it takes longer than [`HANG_GUARD`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {HANG_GUARD:?}"))
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_backend_pid()")
}

/// Asserts that logging in as the source's role with `password` is refused as a bad password.
async fn assert_refused(database: &str, source: &RotatingPassword, password: SecretString) {
    let options = server()
        .await
        .connect_options(database, &source.credentials(password));
    let (code, _) = database_error(PgConnection::connect_with(&options).await);
    assert_eq!(code, "28P01", "a replaced password must be refused");
}

#[tokio::test]
async fn new_connections_authenticate_after_each_of_several_rotations() {
    let (database, user) = database_with_user("rotations").await;
    let source = RotatingPassword::new(&database, &user.user, Duration::from_millis(1500)).await;
    let refreshing = connect_rotating(&database, &user, &source, fast_retries()).await;
    let status = refreshing.status();
    let pool = refreshing.pool();

    let mut pids = HashSet::new();
    let mut first = new_connection(pool).await;
    pids.insert(backend_pid(&mut first).await);
    drop(first);

    for rotation in 1..=3u64 {
        refreshes(&status, rotation).await;
        // The password the pool was created with, or the previous rotation's, no longer works …
        let index = usize::try_from(rotation).expect("small");
        assert_refused(&database, &source, source.password(index - 1)).await;
        // … yet the pool still opens new connections: it uses the new one.
        let mut conn = new_connection(pool).await;
        let pid = backend_pid(&mut conn).await;
        assert!(
            pids.insert(pid),
            "rotation {rotation}: backend {pid} reused"
        );
        let who: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .expect("query on the new connection");
        assert_eq!(who, user.user);
    }

    assert!(source.calls() >= 4, "1 at connect + 3 rotations");
    assert_eq!(status.failures(), 0);
    assert!(status.attempts() >= 3);
    within("close()", refreshing.close()).await;
}

#[tokio::test]
async fn a_refresh_that_fails_twice_is_retried_until_it_succeeds() {
    let (database, user) = database_with_user("failing").await;
    // The first token is due after 0.8 s; after the outage, tokens last long enough that no
    // further refresh happens during the test.
    let source = RotatingPassword::with(
        &database,
        &user.user,
        Duration::from_secs(1),
        Duration::from_secs(600),
        2,
    )
    .await;
    let refreshing = connect_rotating(&database, &user, &source, fast_retries()).await;
    let status = refreshing.status();
    assert_eq!(status.last_success(), None);

    refreshes(&status, 1).await;
    assert_eq!(status.failures(), 2);
    assert_eq!(status.attempts(), 3);
    assert_eq!(source.calls(), 4, "connect + 2 failures + 1 success");
    assert_eq!(
        source.passwords_set(),
        2,
        "the failures left the password alone"
    );
    let failed_at = source.last_failure().expect("the source failed");
    let succeeded_at = status.last_success().expect("a refresh succeeded");
    assert!(
        succeeded_at >= failed_at,
        "success recorded after the failures"
    );

    // The connect-time password is gone; a brand-new connection still gets in.
    assert_refused(&database, &source, source.password(0)).await;
    let mut conn = new_connection(refreshing.pool()).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .expect("query on the new connection");
    assert_eq!(one, 1);
    drop(conn);
    within("close()", refreshing.close()).await;
}

#[tokio::test]
async fn the_refresh_task_ends_when_the_pool_closes() {
    let (database, user, source, clock, refreshing) = refreshed_once_on_a_clock("close").await;
    let status = refreshing.status();

    // `close` returns only once the task has ended (it awaits the task's handle).
    within("close()", refreshing.close()).await;
    let attempts = status.attempts();
    assert_no_more_refreshes(&source, &clock);
    assert_eq!(status.attempts(), attempts);

    // The task held no connection open: the role has none left on the server.
    let server = server().await;
    let admin = server
        .pool(&database, server.admin())
        .await
        .expect("admin pool");
    eventually(HANG_GUARD, "the role's backends to exit", || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
                .bind(&user.user)
                .fetch_one(&admin)
                .await
                .expect("count connections");
        (open == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn closing_any_clone_of_the_pool_ends_the_refresh_task() {
    let (_, _, source, clock, refreshing) = refreshed_once_on_a_clock("close_clone").await;

    // Closing through SeaORM closes the shared pool, which the task notices.
    within("close the SeaORM handle", refreshing.database().close())
        .await
        .expect("close through SeaORM");
    within("close()", refreshing.close()).await;
    assert_no_more_refreshes(&source, &clock);
}

#[tokio::test]
async fn after_connect_puts_a_non_admin_user_in_its_schema() {
    let (database, user) = database_with_user("schema").await;
    let options = server().await.connect_options(&database, &user);
    let refreshing = RefreshingPool::connect(
        options,
        Some("myschema"),
        &settings(2),
        StaticPassword(user.password.clone()),
        RefreshPolicy::default(),
    )
    .await
    .expect("connect");

    let mut first = refreshing.pool().acquire().await.expect("acquire");
    let mut second = new_connection(refreshing.pool()).await;
    for conn in [&mut first, &mut second] {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&mut **conn)
            .await
            .expect("current_schema()");
        assert_eq!(schema.as_deref(), Some("myschema"));
    }
    drop((first, second));

    // SeaORM goes through the same pool, and so the same hook.
    let schema: String =
        common::one_value(&refreshing.database(), "SELECT current_schema()::text").await;
    assert_eq!(schema, "myschema");

    // A password that never expires needs no refresh task.
    assert_eq!(refreshing.status().attempts(), 0);
    within("close()", refreshing.close()).await;
}

#[tokio::test]
async fn the_schema_name_is_quoted_in_search_path() {
    let database = fresh_database("quoted_schema").await;
    let server = server().await;
    let admin = server.admin().clone();
    let refreshing = RefreshingPool::connect(
        server.connect_options(&database, &admin),
        Some("odd \"name\"; DROP"),
        &settings(1),
        StaticPassword(admin.password.clone()),
        RefreshPolicy::default(),
    )
    .await
    .expect("connect");
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(refreshing.pool())
        .await
        .expect("SHOW search_path");
    assert_eq!(search_path, "\"odd \"\"name\"\"; DROP\"");
    within("close()", refreshing.close()).await;
}

#[tokio::test]
async fn debug_output_contains_no_password() {
    let (database, user) = database_with_user("debug").await;
    let source = RotatingPassword::new(&database, &user.user, Duration::from_millis(500)).await;
    let refreshing = connect_rotating(&database, &user, &source, fast_retries()).await;
    refreshes(&refreshing.status(), 1).await;

    let debug = format!("{refreshing:?}");
    assert!(debug.starts_with("RefreshingPool"), "{debug}");
    // Neither the password in the options passed in, nor any token the source handed out.
    assert!(!debug.contains(user.password.expose_secret()), "{debug}");
    for index in 0..source.passwords_set() {
        assert!(
            !debug.contains(source.password(index).expose_secret()),
            "{debug}"
        );
    }
    within("close()", refreshing.close()).await;
}

/// The server's `admin` password as a token valid for 15 minutes, counting calls; the call
/// numbered `panic_on` (if any) panics instead, as a buggy credential provider might.
#[derive(Clone)]
struct CountedAdminPassword {
    password: SecretString,
    calls: Arc<AtomicU64>,
    panic_on: Option<u64>,
}

impl CountedAdminPassword {
    async fn new(panic_on: Option<u64>) -> Self {
        Self {
            password: server().await.admin().password.clone(),
            calls: Arc::new(AtomicU64::new(0)),
            panic_on,
        }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenSource for CountedAdminPassword {
    async fn token(&self) -> app::dsql::Result<Token> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        assert_ne!(Some(call), self.panic_on, "token source bug on call {call}");
        Ok(Token {
            secret: self.password.clone(),
            valid_for: Some(Duration::from_secs(900)),
        })
    }
}

async fn connect_with_manual_clock(
    purpose: &str,
    source: &CountedAdminPassword,
    clock: &Arc<ManualClock>,
) -> RefreshingPool {
    let database = fresh_database(purpose).await;
    let options = server()
        .await
        .connect_options(&database, server().await.admin());
    RefreshingPool::connect_with_clock(
        options,
        None,
        &settings(1),
        source.clone(),
        fast_retries(),
        clock.shared(),
    )
    .await
    .expect("connect the refreshing pool")
}

/// A machine asleep for an hour: the monotonic clock stood still, the 15-minute token expired
/// on the wall clock. The first look at the clock after waking (at most one check interval)
/// refreshes it, where a monotonic timer would still wait out its 12 minutes.
#[tokio::test]
async fn a_wall_clock_jump_past_the_refresh_point_refreshes_at_the_next_check() {
    let clock = ManualClock::new();
    let source = CountedAdminPassword::new(None).await;
    let refreshing = connect_with_manual_clock("wall_clock_jump", &source, &clock).await;
    let status = refreshing.status();

    clock.next_sleep_after(0).await;
    let seen = clock.sleeps();
    clock.advance(WALL_CLOCK_CHECK);
    clock.next_sleep_after(seen).await;
    assert_eq!(status.attempts(), 0, "not due after {WALL_CLOCK_CHECK:?}");

    clock.suspend(Duration::from_secs(3600));
    clock.advance(WALL_CLOCK_CHECK);
    refreshes(&status, 1).await;
    assert_eq!(source.calls(), 2, "one at connect, one refresh");
    assert_eq!(status.attempts(), 1);
    within("close()", refreshing.close()).await;
}

/// A token source that panics (its first call from the refresh task): the task dies, the
/// status says so, and the task is started again and refreshes.
#[tokio::test]
async fn a_refresh_task_that_panics_is_reported_and_restarted() {
    let clock = ManualClock::new();
    let source = CountedAdminPassword::new(Some(2)).await;
    let refreshing = connect_with_manual_clock("refresh_panics", &source, &clock).await;
    let status = refreshing.status();

    clock.next_sleep_after(0).await;
    clock.suspend(Duration::from_secs(3600));
    // The restarted task sleeps out its backoff on the clock: time passes until it refreshes.
    eventually(HANG_GUARD, "a refresh after the panic", || async {
        clock.advance(Duration::from_secs(1));
        (status.successes() >= 1).then_some(())
    })
    .await;
    assert_eq!(
        source.calls(),
        3,
        "connect, the panic, the restarted task's refresh"
    );
    assert_eq!(status.panics(), 1, "the dead task is reported");
    assert!(status.last_panic().is_some());
    assert_eq!((status.attempts(), status.failures()), (2, 0));
    within("close()", refreshing.close()).await;
}
