//! The refreshing pool's clocks moved by hand ([`ManualClock`]), and waits on what the refresh
//! task does, so that no test waits for a token to come due on the real clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use app::dsql::pool::{Clock, RefreshStatus};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::eventually;

/// Longest any single wait on the refresh task may take before it counts as a hang.
pub const HANG_GUARD: Duration = Duration::from_secs(15);

/// Clocks a test moves by hand: `advance` moves the wall clock and monotonic time together (time
/// passing), `suspend` moves only the wall clock (a laptop or VM asleep: the monotonic clock
/// stops). Sleeps end when monotonic time reaches them; `sleeps` counts the sleeps begun, so a
/// test can wait until the task has looked at the clock again.
pub struct ManualClock {
    wall: Mutex<SystemTime>,
    monotonic: tokio::sync::watch::Sender<Duration>,
    sleeps: AtomicU64,
    /// When each sleep begun ends, in monotonic time.
    wake_ups: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// Clocks at the machine's time now, standing still until moved.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            wall: Mutex::new(SystemTime::now()),
            monotonic: tokio::sync::watch::Sender::new(Duration::ZERO),
            sleeps: AtomicU64::new(0),
            wake_ups: Mutex::new(Vec::new()),
        })
    }

    /// The clock as the pool takes it.
    pub fn shared(self: &Arc<Self>) -> Arc<dyn Clock> {
        Arc::clone(self) as Arc<dyn Clock>
    }

    /// Time passing: both clocks move on by `by`.
    pub fn advance(&self, by: Duration) {
        *self.wall.lock().expect("wall") += by;
        self.monotonic.send_modify(|now| *now += by);
    }

    /// Waits until the refresh task sleeps on the clock (it has scheduled its next refresh),
    /// then moves both clocks on by `by`.
    pub async fn advance_once_asleep(&self, by: Duration) {
        eventually(
            HANG_GUARD,
            "the refresh task to wait on the clock",
            || async { (self.sleeping() > 0).then_some(()) },
        )
        .await;
        self.advance(by);
    }

    /// Waits until the refresh task sleeps on the clock, then moves both clocks on to the end of
    /// the earliest sleep still ahead: time passes exactly as the task scheduled it.
    pub async fn advance_to_next_wake_up(&self) {
        eventually(
            HANG_GUARD,
            "the refresh task to wait on the clock",
            || async { (self.sleeping() > 0).then_some(()) },
        )
        .await;
        let now = *self.monotonic.borrow();
        let next = (self.wake_ups.lock().expect("wake-ups").iter())
            .copied()
            .filter(|at| *at > now)
            .min();
        if let Some(next) = next {
            self.advance(next - now);
        }
    }

    /// The machine asleep for `for_`: only the wall clock moves.
    pub fn suspend(&self, for_: Duration) {
        *self.wall.lock().expect("wall") += for_;
    }

    /// Sleeps begun so far.
    pub fn sleeps(&self) -> u64 {
        self.sleeps.load(Ordering::SeqCst)
    }

    /// Sleeps begun and not yet ended or dropped: none once the refresh task has ended.
    pub fn sleeping(&self) -> usize {
        self.monotonic.receiver_count()
    }

    /// Waits until the task has begun more than `seen` sleeps.
    pub async fn next_sleep_after(&self, seen: u64) {
        eventually(
            HANG_GUARD,
            "the refresh task's next look at the clock",
            || async { (self.sleeps() > seen).then_some(()) },
        )
        .await;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.wall.lock().expect("wall")
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // Noted before the sleep counts as begun, so that a test that sees it sleeping also
        // sees when it wakes up.
        let until = *self.monotonic.borrow() + duration;
        self.wake_ups.lock().expect("wake-ups").push(until);
        let mut monotonic = self.monotonic.subscribe();
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            while *monotonic.borrow_and_update() < until {
                if monotonic.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// Waits until the refresh task has installed `count` new tokens.
pub async fn refreshes(status: &RefreshStatus, count: u64) {
    eventually(HANG_GUARD, &format!("{count} token refreshes"), || async {
        (status.successes() >= count).then_some(())
    })
    .await;
}

/// A connection the pool has to open now (and so authenticate with its current password or
/// token): every idle connection is closed first, so none can be reused.
pub async fn new_connection(pool: &PgPool) -> PoolConnection<Postgres> {
    while let Some(idle) = pool.try_acquire() {
        idle.close().await.expect("close an idle connection");
    }
    tokio::time::timeout(HANG_GUARD, pool.acquire())
        .await
        .expect("a new pooled connection within the hang guard")
        .expect("the pool opens a new connection")
}
