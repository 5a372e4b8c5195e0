//! A sqlx `PgPool` whose password is refreshed in the background, for Aurora DSQL's
//! short-lived IAM tokens.
//!
//! DSQL checks a token only when a connection is opened: a connection that is already open
//! keeps working after its token has expired, until DSQL closes it (after 60 minutes at most).
//! So a pool needs a valid token each time it opens a *new* connection. sqlx has no
//! `before_connect` hook that could fetch one per connection; what it has is
//! [`Pool::set_connect_options`](sqlx::Pool::set_connect_options), which replaces the options
//! (and so the password) that every later connection attempt uses. [`RefreshingPool`] owns a
//! task that calls it with a fresh token at [`RefreshPolicy::at_fraction`] of each token's
//! life.
//!
//! Unlike AWS's `aurora-dsql-sqlx-connector`, which logs a failed refresh and then waits a whole
//! interval (with 15-minute tokens, minutes in which no new connection can open once the old
//! token expires), a failed refresh here is retried with capped, jittered exponential backoff
//! until it succeeds. [`RefreshStatus`] shows when the last refresh succeeded, so a health check
//! can tell. The task ends when the pool is closed.
//!
//! The schedule is kept on the wall clock, against which tokens expire: the task sleeps on the
//! monotonic clock in slices of at most [`WALL_CLOCK_CHECK`] and looks at the wall clock after
//! each, because the monotonic clock stops while a laptop or VM is suspended, and a token due
//! during the suspension would otherwise be refreshed only after a further full interval. A
//! panic in the task (a buggy token source) is counted in [`RefreshStatus::panics`] and the
//! task is started again, refreshing at once. Both clocks come from a [`Clock`], so tests can
//! move them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use migration::dsql::Backoff;
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use secrecy::ExposeSecret;

use super::error::{Error, Result};
use super::quote_identifier;
use super::token::{Token, TokenSource};

/// The default [`PoolSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// The most connections a DSQL cluster accepts (its quota; the next is refused with `53300`),
/// and so the largest useful pool.
pub const DSQL_MAX_CONNECTIONS: u32 = 10_000;
/// The default [`PoolSettings::max_lifetime`]: 55 minutes, five below DSQL's one-hour limit.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3300);
/// DSQL closes every connection after one hour; a pool must retire them before.
pub const DSQL_CONNECTION_LIMIT: Duration = Duration::from_secs(3600);
/// The default [`PoolSettings::idle_timeout`]: 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The connection pool's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once, 1 to [`DSQL_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Age at which a connection is retired, below one hour because DSQL closes connections
    /// at 60 minutes.
    pub max_lifetime: Duration,
    /// How long a connection may stay idle before it is closed.
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    /// 10 connections, retired after 55 minutes, closed after 10 idle minutes.
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// How long the pool waits for a connection — a free one, or a new one it opens — before the
/// operation that asked fails with a timeout; also the limit for the first connection. Set on
/// purpose rather than left to sqlx: long enough for a busy pool, or a database restarting for
/// a few seconds (the pool keeps retrying a refused connection until then), and short enough
/// that an unreachable database is reported rather than waited for indefinitely.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a pooled connection may sit idle and still be handed out without a ping. sqlx
/// pings every connection it hands out by default, which on DSQL is one network round trip
/// more for every statement; a connection used this recently is almost surely alive, and if
/// it is not, the retry meets the error (a lost connection before a commit is retried). One
/// idle longer is pinged first, and replaced if the ping fails.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(30);

/// The shortest wait before a scheduled refresh, whatever the token says: a source that hands
/// out tokens valid for (almost) no time must not make the task spin.
const MIN_REFRESH_DELAY: Duration = Duration::from_millis(100);

/// The longest the refresh task sleeps on the monotonic clock before it looks at the wall clock
/// again. The monotonic clock stops while a laptop or VM is suspended and a token's expiry does
/// not: after a wake-up, a refresh that came due waits at most this long.
pub const WALL_CLOCK_CHECK: Duration = Duration::from_secs(10);

/// The clocks the refresh task reads: the wall clock, against which tokens expire, and a
/// monotonic sleep. Injectable so that tests can move time without waiting for it.
pub trait Clock: Send + Sync + 'static {
    /// The wall-clock time now.
    fn now(&self) -> SystemTime;

    /// Waits for `duration` of monotonic time.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The machine's clocks: [`SystemTime::now`] and tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How the background refresh behaves.
///
/// The defaults suit DSQL's tokens (15 minutes by default): refresh after 80% of a token's
/// life, which leaves a fifth of it to retry in; retry a failure after about a second, doubling
/// up to 30 seconds, so an outage of the token source is noticed and recovered from within
/// seconds of its end rather than a whole interval later.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshPolicy {
    /// When to fetch the next token, as a fraction of the current token's validity (0.8 =
    /// at 80% of its life). Must be in `(0, 1]`.
    pub at_fraction: f64,
    /// The wait before retrying a failed refresh for the first time. Must not be zero.
    pub retry_initial: Duration,
    /// The longest wait between two retries; the wait doubles from `retry_initial` up to this.
    /// Must not be less than `retry_initial`.
    pub retry_max: Duration,
}

impl Default for RefreshPolicy {
    /// Refresh at 80% of a token's life; retry after 1 s, doubling up to 30 s.
    fn default() -> Self {
        Self {
            at_fraction: 0.8,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl RefreshPolicy {
    /// The waits between retries of a failed refresh: `retry_initial`, doubling up to
    /// `retry_max`, jittered, so that many processes whose token source failed at once don't
    /// retry in lockstep.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.retry_initial,
            max: self.retry_max,
        }
    }

    /// Checks the policy, so that a bad value is an error at connect time rather than a panic
    /// or a busy loop inside the refresh task.
    fn validate(&self) -> Result<()> {
        if !(self.at_fraction.is_finite() && self.at_fraction > 0.0 && self.at_fraction <= 1.0) {
            return Err(Error::Setting {
                setting: "RefreshPolicy::at_fraction",
                problem: format!(
                    "must be greater than 0 and at most 1, got {}",
                    self.at_fraction
                ),
            });
        }
        if self.retry_initial.is_zero() {
            return Err(Error::Setting {
                setting: "RefreshPolicy::retry_initial",
                problem: "must be longer than zero".to_owned(),
            });
        }
        if self.retry_max < self.retry_initial {
            return Err(Error::Setting {
                setting: "RefreshPolicy::retry_max",
                problem: format!(
                    "must not be shorter than retry_initial ({:?}), got {:?}",
                    self.retry_initial, self.retry_max
                ),
            });
        }
        Ok(())
    }

    /// How long to wait before replacing a token that is valid for `valid_for`: `at_fraction`
    /// of it, but never less than [`MIN_REFRESH_DELAY`].
    fn refresh_delay(&self, valid_for: Duration) -> Duration {
        Duration::try_from_secs_f64(valid_for.as_secs_f64() * self.at_fraction)
            .unwrap_or(valid_for)
            .max(MIN_REFRESH_DELAY)
    }
}

/// What the refresh task has done, readable at any time while it runs (atomics and a mutex
/// held only to copy a timestamp, so cheap to poll from a health check).
///
/// Only the task's own calls are counted: the token [`RefreshingPool::connect`] fetches first
/// is not an attempt, and does not set [`last_success`](Self::last_success).
#[derive(Debug, Default)]
pub struct RefreshStatus {
    attempts: AtomicU64,
    failures: AtomicU64,
    successes: AtomicU64,
    panics: AtomicU64,
    last_success: Mutex<Option<SystemTime>>,
    last_panic: Mutex<Option<SystemTime>>,
}

impl RefreshStatus {
    /// When the task last installed a new token in the pool, or `None` if it has not yet. If this
    /// is older than the token's validity, new connections are failing to authenticate.
    pub fn last_success(&self) -> Option<SystemTime> {
        *self
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many times the task has asked the token source for a token (successful or not,
    /// including a call still in progress).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    /// How many of those calls failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// How many new tokens the task has installed in the pool. When this count is `n`, the
    /// `n`-th token is already in the pool's connect options: every connection opened from then
    /// on uses it (or a later one).
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Acquire)
    }

    /// How many times the refresh task died of a panic (each time it is started again, with a
    /// refresh at once, after a backoff). Non-zero means a bug in the token source; a count
    /// that keeps growing while [`successes`](Self::successes) does not means refreshing has
    /// stopped working.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Acquire)
    }

    /// When the refresh task last died of a panic, or `None` if it never has.
    pub fn last_panic(&self) -> Option<SystemTime> {
        *self
            .last_panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record_attempt(&self) -> u64 {
        self.attempts.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
    }

    fn record_success(&self, at: SystemTime) {
        *self
            .last_success
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(at);
        self.successes.fetch_add(1, Ordering::AcqRel);
    }

    fn record_panic(&self, at: SystemTime) {
        *self
            .last_panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(at);
        self.panics.fetch_add(1, Ordering::AcqRel);
    }
}

/// A PostgreSQL pool whose password for new connections is kept fresh from a [`TokenSource`].
///
/// Existing connections are never touched (DSQL checks a token only at connect time); the
/// pool closes them itself after `max_lifetime`, which should stay below DSQL's 60-minute cap.
/// The refresh task runs for as long as the pool is open — also if this handle is dropped
/// while clones of the pool live on — and ends when the pool is closed, through
/// [`close`](Self::close) or any clone of the pool.
///
/// `Debug` shows the pool's size and the refresh status, never the connect options: sqlx's
/// `PgConnectOptions` prints its password in `Debug`.
pub struct RefreshingPool {
    pool: PgPool,
    status: Arc<RefreshStatus>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for RefreshingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingPool")
            .field("size", &self.pool.size())
            .field("num_idle", &self.pool.num_idle())
            .field("is_closed", &self.pool.is_closed())
            .field(
                "refreshing",
                &self.task.as_ref().is_some_and(|t| !t.is_finished()),
            )
            .field("status", &self.status)
            .finish()
    }
}

impl RefreshingPool {
    /// A pool whose password is already in `options` (a `DATABASE_URL`'s, or libpq's password
    /// file): nothing expires, so nothing is refreshed. Same pool settings and `search_path`
    /// handling as [`connect`](Self::connect).
    pub async fn without_refresh(
        options: PgConnectOptions,
        schema: Option<&str>,
        settings: &PoolSettings,
    ) -> Result<Self> {
        Ok(Self {
            pool: open_pool(options, schema, settings).await?,
            status: Arc::new(RefreshStatus::default()),
            task: None,
        })
    }
}

/// Builds the pool with `settings` and [`ACQUIRE_TIMEOUT`] and, when `schema` is given, an
/// `after_connect` that runs `SET search_path = "<schema>"`; opens one connection to prove that
/// everything works.
///
/// A first, direct connection is made (and closed) before the pool's: the pool retries a
/// refused connection until its acquire timeout and then reports only that it timed out, while
/// the direct one fails at once with the cause. A failure there is an [`Error::Connect`] naming
/// the address and user.
async fn open_pool(
    options: PgConnectOptions,
    schema: Option<&str>,
    settings: &PoolSettings,
) -> Result<PgPool> {
    probe(&options).await?;
    let mut pool_options = PgPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(settings.max_connections)
        .max_lifetime(settings.max_lifetime)
        .idle_timeout(settings.idle_timeout)
        // sqlx pings every connection it hands out: one round trip more per statement.
        // Only a connection idle for a while is checked.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    if let Some(schema) = schema {
        let sql: Arc<str> = format!("SET search_path = {}", quote_identifier(schema)).into();
        pool_options = pool_options.after_connect(move |conn, _meta| {
            let sql = Arc::clone(&sql);
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
                Ok(())
            })
        });
    }
    Ok(pool_options.connect_with(options).await?)
}

/// Opens one connection with `options` and closes it again, within [`ACQUIRE_TIMEOUT`].
async fn probe(options: &PgConnectOptions) -> Result<()> {
    let failure =
        match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(options)).await {
            Ok(Ok(conn)) => {
                if let Err(error) = conn.close().await {
                    debug!(%error, "closing the first connection failed");
                }
                return Ok(());
            }
            Ok(Err(error)) => error,
            Err(_) => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} s", ACQUIRE_TIMEOUT.as_secs()),
            )),
        };
    let address = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    Err(Error::Connect {
        address,
        user: options.get_username().to_owned(),
        source: failure,
    })
}

impl RefreshingPool {
    /// Connects, and keeps the password of new connections fresh.
    ///
    /// Gets a first token from `source` (an error here is returned; nothing is retried), builds
    /// a pool from `options` with that token as password and `settings`' `max_connections`,
    /// `max_lifetime` and `idle_timeout`, and opens one connection to prove the endpoint, the
    /// credentials and the schema work. When `schema` is given, every new connection runs
    /// `SET search_path = "<schema>"` (quoted) before the pool hands it out. If the token
    /// expires (`valid_for` is `Some`), a task is spawned on the current tokio runtime that
    /// refreshes it as described in [`RefreshPolicy`]; a token without expiry needs no task.
    ///
    /// Any password already in `options` is replaced by the token.
    pub async fn connect<S: TokenSource>(
        options: PgConnectOptions,
        schema: Option<&str>,
        settings: &PoolSettings,
        source: S,
        policy: RefreshPolicy,
    ) -> Result<Self> {
        Self::connect_with_clock(
            options,
            schema,
            settings,
            source,
            policy,
            Arc::new(SystemClock),
        )
        .await
    }

    /// [`connect`](Self::connect), with the refresh task reading `clock` instead of the
    /// machine's clocks.
    pub async fn connect_with_clock<S: TokenSource>(
        options: PgConnectOptions,
        schema: Option<&str>,
        settings: &PoolSettings,
        source: S,
        policy: RefreshPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        policy.validate()?;
        let Token { secret, valid_for } = source.token().await?;

        let pool = open_pool(
            options.clone().password(secret.expose_secret()),
            schema,
            settings,
        )
        .await?;
        debug!(
            host = options.get_host(),
            port = options.get_port(),
            user = options.get_username(),
            database = options.get_database().unwrap_or_default(),
            schema = schema.unwrap_or_default(),
            token_valid_for_s = valid_for.map(|d| d.as_secs_f64()),
            "connected"
        );

        let status = Arc::new(RefreshStatus::default());
        let task = valid_for.map(|valid_for| {
            tokio::spawn(refresh_task(
                pool.clone(),
                options,
                source,
                policy,
                Arc::clone(&status),
                clock,
                valid_for,
            ))
        });
        Ok(Self { pool, status, task })
    }

    /// The sqlx pool. Cloning it is cheap and the clones share the refreshed password.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The same pool as a SeaORM connection: it shares the pool (and so the refreshed
    /// password), it does not open a second one.
    pub fn database(&self) -> DatabaseConnection {
        SqlxPostgresConnector::from_sqlx_postgres_pool(self.pool.clone())
    }

    /// The refresh task's counters and the time of its last success. The `Arc` stays readable
    /// after [`close`](Self::close).
    pub fn status(&self) -> Arc<RefreshStatus> {
        Arc::clone(&self.status)
    }

    /// Closes the pool and waits for the refresh task to end.
    ///
    /// The task notices the close at once, even in the middle of a wait or of a call to the
    /// token source, and drops its handle on the pool. Like [`sqlx::Pool::close`], this waits
    /// for checked-out connections to be returned.
    pub async fn close(self) {
        let Self { pool, task, .. } = self;
        // `close()` marks the pool closed (waking the task) as soon as it is called.
        let closing = pool.close();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            warn!(%error, "the token refresh task failed");
        }
        closing.await;
        debug!("pool closed");
    }
}

/// Refreshes the pool's password until the pool closes (or a token without expiry arrives),
/// running [`refresh_loop`] as a task of its own: if that task panics (a token source with a
/// bug, say), the panic is counted in `status` and logged, and after a backoff the task is
/// started again with the refresh due at once, since the panicking call may have been the
/// refresh itself.
async fn refresh_task<S: TokenSource>(
    pool: PgPool,
    options: PgConnectOptions,
    source: S,
    policy: RefreshPolicy,
    status: Arc<RefreshStatus>,
    clock: Arc<dyn Clock>,
    valid_for: Duration,
) {
    let mut closed = pool.close_event();
    let source = Arc::new(source);
    let supervising = async {
        let mut due = due_after(&*clock, &policy, valid_for);
        let mut panics_in_row = 0;
        loop {
            let successes = status.successes();
            let run = tokio::spawn(refresh_loop(
                pool.clone(),
                options.clone(),
                Arc::clone(&source),
                policy.clone(),
                Arc::clone(&status),
                Arc::clone(&clock),
                due,
            ));
            match run.await {
                Err(error) if error.is_panic() => {
                    status.record_panic(clock.now());
                    if status.successes() > successes {
                        panics_in_row = 0;
                    }
                    panics_in_row += 1;
                    let restart_in = policy.backoff().wait(panics_in_row);
                    warn!(
                        panics = status.panics(),
                        restart_in_ms = u64::try_from(restart_in.as_millis()).unwrap_or(u64::MAX),
                        "the token refresh task panicked; restarting it, with a refresh at once"
                    );
                    clock.sleep(restart_in).await;
                    due = clock.now();
                }
                _ => return,
            }
        }
    };
    if closed.do_until(supervising).await.is_err() {
        debug!("pool closed; token refresh ends");
    }
}

/// When a token valid for `valid_for` from now is due for replacement, on the wall clock.
fn due_after(clock: &dyn Clock, policy: &RefreshPolicy, valid_for: Duration) -> SystemTime {
    let now = clock.now();
    now.checked_add(policy.refresh_delay(valid_for))
        .unwrap_or(now)
}

/// Waits until `due` on the wall clock, looking at it at least every [`WALL_CLOCK_CHECK`] of
/// monotonic time: the monotonic clock stops while the machine is suspended, the token's
/// expiry does not, so after a wake-up a refresh that came due waits at most one check. Also
/// returns once as much monotonic time has passed as `due` was away, so a wall clock set back
/// does not delay the refresh either.
async fn wait_until(clock: &dyn Clock, due: SystemTime) {
    let planned = due.duration_since(clock.now()).unwrap_or_default();
    let mut slept = Duration::ZERO;
    loop {
        let Ok(remaining) = due.duration_since(clock.now()) else {
            return;
        };
        let slice = remaining
            .min(planned.saturating_sub(slept))
            .min(WALL_CLOCK_CHECK);
        if slice.is_zero() {
            return;
        }
        clock.sleep(slice).await;
        slept += slice;
    }
}

/// Waits until the current token is due, fetches the next one (retrying until it comes), puts
/// it in the pool's connect options, and repeats. Returns when a token has no expiry, or when
/// the pool closes.
async fn refresh_loop<S: TokenSource>(
    pool: PgPool,
    options: PgConnectOptions,
    source: Arc<S>,
    policy: RefreshPolicy,
    status: Arc<RefreshStatus>,
    clock: Arc<dyn Clock>,
    mut due: SystemTime,
) {
    let mut closed = pool.close_event();
    let refreshing = async {
        loop {
            debug!(
                due_in_s = due
                    .duration_since(clock.now())
                    .unwrap_or_default()
                    .as_secs_f64(),
                "next token refresh scheduled"
            );
            wait_until(&*clock, due).await;

            let mut failures_in_row = 0;
            let token = loop {
                let attempt = status.record_attempt();
                match source.token().await {
                    Ok(token) => break token,
                    Err(error) => {
                        status.record_failure();
                        failures_in_row += 1;
                        let retry_in = policy.backoff().wait(failures_in_row);
                        // `Error`'s messages never contain a token, and the token is not in scope.
                        warn!(
                            %error,
                            attempt,
                            failures = status.failures(),
                            retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
                            "token refresh failed; new connections keep using the previous token \
                             until it expires"
                        );
                        clock.sleep(retry_in).await;
                    }
                }
            };

            pool.set_connect_options(options.clone().password(token.secret.expose_secret()));
            status.record_success(clock.now());
            info!(
                attempt = status.attempts(),
                refreshes = status.successes(),
                token_valid_for_s = token.valid_for.map(|d| d.as_secs_f64()),
                "token refreshed for new connections"
            );
            match token.valid_for {
                Some(valid_for) => due = due_after(&*clock, &policy, valid_for),
                None => {
                    info!("the token source returned a token without expiry; refresh ends");
                    return;
                }
            }
        }
    };
    // The pool closed: nothing more to refresh.
    let _ = closed.do_until(refreshing).await;
}

/// Acquires `max_connections` connections of `pool` at once (opening those not open yet) and
/// returns them held: while they are, nothing else can use the pool.
pub async fn hold_all(pool: &PgPool) -> Result<Vec<PoolConnection<Postgres>>> {
    let max = pool.options().get_max_connections() as usize;
    let mut held = Vec::with_capacity(max);
    for _ in 0..max {
        held.push(pool.acquire().await?);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, max_ms: u64) -> RefreshPolicy {
        RefreshPolicy {
            retry_initial: Duration::from_millis(initial_ms),
            retry_max: Duration::from_millis(max_ms),
            ..RefreshPolicy::default()
        }
    }

    #[test]
    fn retry_waits_start_at_retry_initial_double_and_stop_at_retry_max() {
        let backoff = policy(1_000, 30_000).backoff();
        let steps = [1, 2, 4, 8, 16, 30, 30, 30].map(Duration::from_secs);
        for (retry, step) in (1..).zip(steps) {
            let wait = backoff.wait(retry);
            assert!(
                wait >= step / 2 && wait <= step,
                "wait {wait:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
    }

    #[test]
    fn first_retry_after_a_failure_does_not_wait_a_token_interval() {
        // The official connector's weakness: after a failed refresh it sleeps a whole interval.
        let policy = RefreshPolicy::default();
        let interval = policy.refresh_delay(Duration::from_secs(900));
        assert_eq!(interval, Duration::from_secs(720));
        let total: Duration = (1..=10).map(|retry| policy.backoff().wait(retry)).sum();
        assert!(total < interval, "ten retries took {total:?}");
    }

    #[test]
    fn refresh_is_due_at_the_fraction_but_never_sooner_than_the_floor() {
        let policy = RefreshPolicy::default();
        assert_eq!(
            policy.refresh_delay(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        assert_eq!(policy.refresh_delay(Duration::ZERO), MIN_REFRESH_DELAY);
    }

    #[test]
    fn policies_that_would_spin_or_panic_are_refused() {
        for at_fraction in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            let bad = RefreshPolicy {
                at_fraction,
                ..RefreshPolicy::default()
            };
            assert!(bad.validate().is_err(), "{at_fraction} accepted");
        }
        assert!(policy(0, 10).validate().is_err());
        assert!(policy(100, 10).validate().is_err());
        assert!(policy(10, 10).validate().is_ok());
        assert!(RefreshPolicy::default().validate().is_ok());
    }

    /// A wall clock that never moves (as one set back by as much as time passes), and sleeps
    /// that end at once and are recorded.
    struct StuckWallClock {
        at: SystemTime,
        slept: Mutex<Vec<Duration>>,
    }

    impl Clock for StuckWallClock {
        fn now(&self) -> SystemTime {
            self.at
        }

        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            self.slept.lock().expect("slept").push(duration);
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn the_wait_looks_at_the_wall_clock_every_check_and_ends_on_monotonic_time_too() {
        let clock = StuckWallClock {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            slept: Mutex::new(Vec::new()),
        };
        wait_until(&clock, clock.at + Duration::from_secs(25)).await;
        let slept = clock.slept.lock().expect("slept").clone();
        assert_eq!(slept, [10, 10, 5].map(Duration::from_secs));
        // Due already: no sleep at all.
        wait_until(&clock, clock.at - Duration::from_secs(1)).await;
        assert_eq!(clock.slept.lock().expect("slept").len(), 3);
    }
}
