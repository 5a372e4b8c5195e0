//! The `contention` workload: 16 workers increment counters on 4 hot rows, each increment its
//! own transaction retried on conflicts as not idempotent, and every increment must land
//! exactly once.
//!
//! The counters live in `bench_counter (id int PRIMARY KEY, n bigint NOT NULL)`, a table the
//! workload creates (`CREATE TABLE IF NOT EXISTS`, a statement of its own) and drops again.
//! Each pass resets 16 counters to zero, runs 16 workers on 4 hot rows (worker `w` on row
//! `w mod 4`), resets again and runs them on 16 rows (one each, no conflicts), then compares
//! the sum of the counters with the increments that committed. Goodput is the hot rows'
//! commit rate as a share of the 16 rows' rate.

use std::time::Instant;

use sea_orm::ConnectionTrait;
use tracing::warn;

use super::layer::{Layer, count};
use super::{Check, Ctx, Line, Measure, Retries, Sample, in_parallel};
use anyhow::Result;
use app::dsql::retry::{Idempotency, RetryPolicy, transaction};

/// Concurrent workers.
const WORKERS: usize = 16;
/// The hot rows they share.
const HOT_ROWS: usize = 4;
/// The hot rows' commit rate must reach this percentage of the conflict-free rate.
const MIN_GOODPUT_PERCENT: f64 = 50.0;

const CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL)";
const DROP_TABLE: &str = "DROP TABLE IF EXISTS bench_counter";
const CLEAR: &str = "DELETE FROM bench_counter";
const ZEROES: &str = "INSERT INTO bench_counter (id, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), \
                      (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 0), (12, 0), \
                      (13, 0), (14, 0), (15, 0)";
const SUM: &str = "SELECT CAST(COALESCE(SUM(n), 0) AS bigint) FROM bench_counter";

/// The retry policy of the increments: the app's default waits, with more attempts, since four
/// workers share each hot row.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        ..RetryPolicy::default()
    }
}

/// Three lines: the hot rows, the 16 rows, and the goodput.
pub(super) async fn run(ctx: &Ctx<'_>, options: &super::BenchOptions) -> Result<Vec<Line>> {
    in_transaction(ctx, &[CREATE_TABLE]).await?;
    let measured = measure(ctx, options.sizes.increments_per_worker).await;
    let dropped = in_transaction(ctx, &[DROP_TABLE]).await;
    let lines = measured?;
    dropped?;
    Ok(lines)
}

/// Runs the passes and makes the lines.
async fn measure(ctx: &Ctx<'_>, per_worker: u64) -> Result<Vec<Line>> {
    let ((app_hot, app_spread), (raw_hot, raw_spread)) = ctx
        .abba("contention", async |layer| {
            let layer = layer.with_policy(policy());
            let hot = pass(ctx, &layer, HOT_ROWS, per_worker).await?;
            let spread = pass(ctx, &layer, WORKERS, per_worker).await?;
            Ok((hot, spread))
        })
        .await?;
    let goodput = |hot: &Sample, spread: &Sample| {
        let (hot, spread) = (hot.throughput().value, spread.throughput().value);
        let percent = if spread > 0.0 {
            100.0 * hot / spread
        } else {
            0.0
        };
        Measure::figure(percent)
    };
    let (app_goodput, raw_goodput) = (
        goodput(&app_hot, &app_spread),
        goodput(&raw_hot, &raw_spread),
    );
    let mut goodput_line = Line::sides(
        format!("goodput: {HOT_ROWS} hot rows vs {WORKERS} rows"),
        "%",
        app_goodput,
        Some(raw_goodput),
    );
    goodput_line.target = format!("app ≥ {MIN_GOODPUT_PERCENT:.0}%");
    goodput_line.met =
        Some(goodput_line.app.as_ref().map_or(0.0, |m| m.value) >= MIN_GOODPUT_PERCENT);
    goodput_line.note =
        "commit rate on the hot rows as a share of the rate without conflicts".to_owned();
    Ok(vec![
        increments(
            format!("{WORKERS} workers, {HOT_ROWS} hot rows"),
            &app_hot,
            &raw_hot,
        ),
        increments(
            format!("{WORKERS} workers, {WORKERS} rows"),
            &app_spread,
            &raw_spread,
        ),
        goodput_line,
    ])
}

/// A line of committed increments per second, met when every increment of both sides landed
/// exactly once and none gave up.
fn increments(name: String, app: &Sample, raw: &Sample) -> Line {
    let mut line = Line::sides(name, "commits/s", app.throughput(), Some(raw.throughput()));
    let once = |m: Option<&Measure>| {
        m.is_some_and(|m| {
            m.check.is_some_and(|c| c.exact()) && m.retries.is_some_and(|r| r.failed == 0)
        })
    };
    line.met = Some(once(line.app.as_ref()) && once(line.raw.as_ref()));
    line.target = "every increment exactly once".to_owned();
    let summary = |m: Option<&Measure>| {
        let check = m.and_then(|m| m.check).unwrap_or_default();
        let retries = m.and_then(|m| m.retries).unwrap_or_default();
        format!(
            "{} of {} landed, sum {}, {} retries",
            check.expected,
            check.expected + retries.failed,
            check.found,
            retries.retries
        )
    };
    line.note = format!(
        "app: {}; raw: {}",
        summary(line.app.as_ref()),
        summary(line.raw.as_ref())
    );
    line
}

/// Resets the counters, runs the workers on `rows` rows, and checks the sum.
async fn pass(ctx: &Ctx<'_>, layer: &Layer, rows: usize, per_worker: u64) -> Result<Sample> {
    in_transaction(ctx, &[CLEAR, ZEROES]).await?;
    let mut sample = in_parallel(WORKERS, |w| {
        let layer = layer.clone();
        let row = i32::try_from(w % rows.max(1)).unwrap_or_default();
        async move {
            let mut sample = Sample::default();
            let mut retries = Retries::default();
            for _ in 0..per_worker {
                let start = Instant::now();
                match layer.increment(row).await {
                    Ok(attempts) => {
                        sample.record(start.elapsed());
                        retries.attempts += u64::from(attempts);
                        retries.retries += u64::from(attempts - 1);
                    }
                    Err(error) => {
                        let attempts = u64::from(attempts_of(&error));
                        retries.attempts += attempts;
                        retries.retries += attempts;
                        retries.failed += 1;
                        warn!(%error, row, "an increment gave up");
                    }
                }
            }
            sample.retries = Some(retries);
            Ok(sample)
        }
    })
    .await?;
    sample.check = Some(Check {
        expected: sample.count,
        found: count(&ctx.pool, SUM).await?,
    });
    Ok(sample)
}

/// How many attempts a failed increment made.
fn attempts_of(error: &anyhow::Error) -> u32 {
    let dsql = match error.downcast_ref::<app::Error>() {
        Some(app::Error::Dsql(dsql)) => Some(dsql),
        _ => error.downcast_ref::<app::dsql::Error>(),
    };
    match dsql {
        Some(
            app::dsql::Error::RetriesExhausted { attempts, .. }
            | app::dsql::Error::OutcomeUnknown { attempts, .. },
        ) => *attempts,
        _ => 1,
    }
}

/// Runs `statements` in one transaction (retried on conflicts; each is idempotent here): one
/// DDL statement alone, or DML only, as DSQL requires.
async fn in_transaction(ctx: &Ctx<'_>, statements: &'static [&'static str]) -> Result<()> {
    transaction(&ctx.db, &ctx.policy, Idempotency::Idempotent, |txn| {
        Box::pin(async move {
            for sql in statements {
                txn.execute_unprepared(sql).await?;
            }
            Ok(())
        })
    })
    .await?;
    Ok(())
}
