//! The `front-door` workload: what the local stand-in's front door (TLS `verify-full`, the IAM
//! token check, the relay that classifies statements) adds to the app's round trips.
//!
//! Two paths to the same server and database, as the same role, running the same SQL:
//!
//! - **front door**: the session's own pool, connected as the app connects
//!   ([`app::dsql::connect_options`]: TLS `verify-full` against the stand-in's CA, an IAM
//!   token from the session's token source), relayed to the server over loopback TCP;
//! - **direct** (the baseline): a pool built from a copy of the session pool's options (same
//!   size, timeouts and `search_path` hook), connected to the server's TCP port without TLS and
//!   with a password ([`LocalServer::connect_options`](app::local::LocalServer)).
//!
//! The table is `bench_front_door (id bigint PRIMARY KEY, n bigint NOT NULL, note text NOT
//! NULL)`, created (dropped first, each DDL statement on its own) with 100 rows, and dropped
//! again at the end. Two operations, each measured by every client count of
//! `options.concurrency` (1 and 8 by default), with `n` round trips or iterations per pass
//! shared by the clients through an atomic counter:
//!
//! - **get by PK**: one prepared `SELECT id, n, note FROM bench_front_door WHERE id = $1` of
//!   one of the 100 rows;
//! - **mixed**: insert a new row, select it by key, update it (`n = n + 1`): three prepared
//!   statements, each its own transaction; the rows are deleted again before each pass.
//!
//! Before each pass every connection of the pool is opened and has the statements prepared
//! (sqlx's per-connection statement cache), and each client takes one connection from the pool
//! before the clock starts and keeps it for the pass: a timed operation is the statements' own
//! round trips, not the pool's (whose `test_before_acquire` ping would be one more round trip
//! per acquire, on both paths). The paths alternate A B B A like the other workloads
//! ([`super::alternate`]).
//!
//! Targets, from the issue: at most [`MAX_ADDED_US`] µs added to the median with 1 client
//! (applied to both operations), and the mixed workload through the front door at least
//! [`MIN_MIXED_RATIO`] of the direct throughput with 8 clients. Only the local stand-in has a
//! direct path: on Aurora DSQL, `DATABASE_URL`, or a build without the `front-door` feature,
//! the workload is skipped with one line saying why.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::SqlxPostgresConnector;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgConnection, PgPool, SqlSafeStr};
use tracing::{info, warn};

use super::{BenchOptions, Ctx, Line, Sample, Sides, alternate, in_parallel, progress};
use anyhow::{Result, anyhow};
use app::dsql::pool::hold_all;
use app::dsql::retry;
use app::session::Session;

/// The sides of the workload's lines: [`Line::app`] through the front door, [`Line::raw`]
/// direct.
pub(super) const SIDES: Sides = Sides {
    app: "front door",
    raw: "direct",
    app_short: "door",
    raw_short: "direct",
};

/// The most the front door may add to the median latency with 1 client, in microseconds.
pub const MAX_ADDED_US: f64 = 100.0;
/// The least share of the direct throughput the mixed workload must keep through the front
/// door with [`MIXED_TARGET_CLIENTS`] clients.
pub const MIN_MIXED_RATIO: f64 = 0.50;
/// The client count the mixed workload's throughput target is for.
const MIXED_TARGET_CLIENTS: usize = 8;

/// Rows the table starts with: ids `0..SEED_ROWS`, the rows the gets read.
const SEED_ROWS: u64 = 100;
/// The id of the first row the mixed workload inserts (`MIXED_BASE + i` in iteration `i`).
const MIXED_BASE: i64 = 1_000_000;
/// Rows deleted per transaction when the mixed rows are cleared: DSQL's limit.
const CLEAR_BATCH: i64 = migration::MAX_ROWS_PER_TRANSACTION as i64;

const DROP_TABLE: &str = "DROP TABLE IF EXISTS bench_front_door";
/// A read that touches the table, to refresh a connection's catalog after its DDL.
const READ_TABLE: &str = "SELECT 1 FROM bench_front_door LIMIT 0";
const CREATE_TABLE: &str = "CREATE TABLE bench_front_door (id bigint PRIMARY KEY, \
                            n bigint NOT NULL, note text NOT NULL)";
const SEED: &str = "INSERT INTO bench_front_door (id, n, note) \
                    SELECT k, 0, 'seed' FROM generate_series(0, $1 - 1) AS k";
const GET: &str = "SELECT id, n, note FROM bench_front_door WHERE id = $1";
const INSERT: &str = "INSERT INTO bench_front_door (id, n, note) VALUES ($1, 0, $2)";
const UPDATE: &str = "UPDATE bench_front_door SET n = n + 1 WHERE id = $1";
const CLEAR: &str = "DELETE FROM bench_front_door WHERE id IN \
                     (SELECT id FROM bench_front_door WHERE id >= $1 LIMIT $2)";

/// Which way a pass reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The session's pool, through the front door.
    FrontDoor,
    /// The baseline pool, straight to the server.
    Direct,
}

/// What one timed operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    /// One `SELECT` by primary key of a seed row.
    Get,
    /// Insert a row, select it by key, update it.
    Mixed,
}

impl Operation {
    /// The operations, in the order the lines are reported.
    const ALL: [Operation; 2] = [Operation::Get, Operation::Mixed];

    /// Its name on the report's lines.
    fn name(self) -> &'static str {
        match self {
            Operation::Get => "get by PK",
            Operation::Mixed => "insert + select + update",
        }
    }

    /// The unit of its throughput.
    fn unit(self) -> &'static str {
        match self {
            Operation::Get => "ops/s",
            Operation::Mixed => "iterations/s",
        }
    }

    /// Runs operation number `i` of a pass on `conn`, checking what comes back.
    async fn run(self, conn: &mut PgConnection, i: u64) -> Result<()> {
        match self {
            Operation::Get => {
                let id = i64::try_from(i % SEED_ROWS).unwrap_or_default();
                let row: Option<(i64, i64, String)> = sqlx::query_as(GET)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                expect(row.is_some_and(|(found, ..)| found == id), "a seed row")
            }
            Operation::Mixed => {
                let id = MIXED_BASE.saturating_add(i64::try_from(i).unwrap_or(i64::MAX));
                let inserted = sqlx::query(INSERT)
                    .bind(id)
                    .bind("mixed")
                    .execute(&mut *conn)
                    .await?;
                expect(inserted.rows_affected() == 1, "the row inserted")?;
                let row: Option<(i64, i64, String)> = sqlx::query_as(GET)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                expect(row.is_some_and(|(_, n, _)| n == 0), "the row just inserted")?;
                let updated = sqlx::query(UPDATE).bind(id).execute(&mut *conn).await?;
                expect(updated.rows_affected() == 1, "the row updated")
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line per operation and client count, or one line saying why the workload was skipped.
pub(super) async fn run(ctx: &Ctx<'_>, options: &BenchOptions) -> Result<Vec<Line>> {
    let Some(direct) = direct_options(ctx.session).await? else {
        let reason = skip_reason(ctx.session);
        warn!(%reason, "front-door workload skipped");
        return Ok(vec![Line::skipped("skipped", reason)]);
    };
    let door = ctx.pool.clone();
    let direct = door.options().clone().connect_with(direct).await?;
    let measured = async {
        // The set-up on one connection, so that its own DDL leaves its catalog fresh; then
        // every other connection's, which that DDL made stale.
        let mut setup = door.acquire().await?;
        for sql in [DROP_TABLE, CREATE_TABLE] {
            retry::execute_fresh(&mut setup, sql).await?;
        }
        sqlx::query(SEED)
            .bind(i64::try_from(SEED_ROWS).unwrap_or_default())
            .execute(&mut *setup)
            .await?;
        drop(setup);
        retry::refresh_catalogs(
            &SqlxPostgresConnector::from_sqlx_postgres_pool(door.clone()),
            READ_TABLE,
        )
        .await?;
        measure(&door, &direct, options).await
    }
    .await;
    let dropped = sqlx::raw_sql(DROP_TABLE).execute(&door).await;
    direct.close().await;
    let lines = measured?;
    dropped?;
    Ok(lines)
}

/// Options to reach the session's database directly, as the session's role, over plain TCP
/// with its stand-in password (the one the front door logs in with); `None` when the session
/// is not on the local stand-in.
#[cfg(feature = "front-door")]
async fn direct_options(session: &Session) -> Result<Option<PgConnectOptions>> {
    use app::local::DATABASE;

    let Some(stand_in) = session.stand_in() else {
        return Ok(None);
    };
    let server = stand_in.server();
    let user = session
        .pool()
        .pool()
        .connect_options()
        .get_username()
        .to_owned();
    let credentials = server.credentials_of(&user);
    Ok(Some(server.connect_options(DATABASE, &credentials)))
}

/// Built without the front door there is none to measure.
#[cfg(not(feature = "front-door"))]
async fn direct_options(_session: &Session) -> Result<Option<PgConnectOptions>> {
    Ok(None)
}

/// Why there is nothing to compare on this session.
fn skip_reason(session: &Session) -> String {
    if cfg!(feature = "front-door") {
        format!(
            "skipped: the session is not on the local stand-in ({}), so there is no direct path \
             to compare the front door with (a real cluster has none)",
            session.description()
        )
    } else {
        "skipped: built without the front-door feature, so the local server is reached \
         directly and there is no front door to measure"
            .to_owned()
    }
}

/// The passes of every operation and client count, and their lines.
async fn measure(door: &PgPool, direct: &PgPool, options: &BenchOptions) -> Result<Vec<Line>> {
    let n = options.sizes.front_door;
    let max = door.options().get_max_connections() as usize;
    let mut lines = Vec::new();
    for operation in Operation::ALL {
        for &wanted in &options.concurrency {
            let clients = wanted.clamp(1, max.max(1));
            let what = format!("front-door {operation} C={clients}");
            if !progress::show(&format!("{what}: starting")) {
                info!(%operation, clients, "front-door line starts");
            }
            let (through_door, straight) =
                alternate(&what, (Path::FrontDoor, Path::Direct), async |path| {
                    let pool = match path {
                        Path::FrontDoor => door,
                        Path::Direct => direct,
                    };
                    if operation == Operation::Mixed {
                        clear(door).await?;
                    }
                    prepare_all(pool).await?;
                    pass(pool, operation, n, clients).await
                })
                .await?;
            let mut line = line(operation, clients, &through_door, &straight);
            line.note = format!(
                "{:+.0} µs at p50 through the front door; {n} per pass, {clients} client{} on \
                 held connections{}",
                line.added_p50_us.unwrap_or_default(),
                if clients == 1 { "" } else { "s" },
                if clients == wanted.max(1) {
                    String::new()
                } else {
                    format!(" (asked for {wanted}, the pool has {max})")
                },
            );
            lines.push(line);
        }
    }
    Ok(lines)
}

/// The line of `operation` by `clients`, with its target where the issue sets one.
fn line(operation: Operation, clients: usize, door: &Sample, direct: &Sample) -> Line {
    let mut line = Line::sides(
        format!("{operation}, C={clients}"),
        operation.unit(),
        door.throughput(),
        Some(direct.throughput()),
    );
    if clients == 1 {
        line.target = format!("≤ {MAX_ADDED_US:.0} µs added at p50");
        line.met = Some(line.added_p50_us.is_some_and(|a| a <= MAX_ADDED_US));
    } else if operation == Operation::Mixed && clients == MIXED_TARGET_CLIENTS {
        line.target = format!("door ≥ {MIN_MIXED_RATIO:.2}× direct");
        line.met = Some(line.ratio.is_some_and(|r| r >= MIN_MIXED_RATIO));
    }
    line
}

/// Deletes the rows the mixed workload inserted, at most [`CLEAR_BATCH`] per statement.
async fn clear(pool: &PgPool) -> Result<()> {
    loop {
        let deleted = sqlx::query(CLEAR)
            .bind(MIXED_BASE)
            .bind(CLEAR_BATCH)
            .execute(pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(());
        }
    }
}

/// Opens every connection of `pool` and prepares the timed statements on each.
async fn prepare_all(pool: &PgPool) -> Result<()> {
    for mut conn in hold_all(pool).await? {
        for sql in [GET, INSERT, UPDATE] {
            conn.prepare(sql.into_sql_str()).await?;
        }
    }
    Ok(())
}

/// `clients` tasks, each on a connection of `pool` taken before the clock starts, share
/// operations `0..n`.
async fn pass(pool: &PgPool, operation: Operation, n: u64, clients: usize) -> Result<Sample> {
    let mut held = Vec::with_capacity(clients);
    for _ in 0..clients {
        held.push(pool.acquire().await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    in_parallel(clients, |_| {
        let (conn, next) = (held.pop(), Arc::clone(&next));
        async move {
            let mut conn = conn.ok_or_else(|| anyhow!("a client without a connection"))?;
            let mut sample = Sample::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(sample);
                }
                sample.time(operation.run(&mut conn, i)).await?;
            }
        }
    })
    .await
}

/// An error saying `what` was not as written unless `ok`.
fn expect(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!(format!("front-door: {what} came back wrong")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A sample of `count` operations of `micros` each, one after another.
    fn sample(count: u64, micros: u64) -> Sample {
        let mut sample = Sample::default();
        for _ in 0..count {
            sample.record(Duration::from_micros(micros));
        }
        sample.sequential()
    }

    #[test]
    fn one_client_is_judged_by_the_added_median_and_eight_mixed_by_the_ratio() {
        let direct = sample(10, 200);
        let near = line(Operation::Get, 1, &sample(10, 290), &direct);
        assert_eq!(near.added_p50_us, Some(90.0));
        assert_eq!(near.met, Some(true));
        let far = line(Operation::Mixed, 1, &sample(10, 310), &direct);
        assert_eq!(far.met, Some(false));
        let half = line(Operation::Mixed, 8, &sample(10, 390), &direct);
        assert_eq!(half.met, Some(true), "{half:?}");
        let slow = line(Operation::Mixed, 8, &sample(10, 410), &direct);
        assert_eq!(slow.met, Some(false), "{slow:?}");
        let untargeted = line(Operation::Get, 8, &sample(10, 900), &direct);
        assert_eq!(untargeted.met, None);
        assert!(untargeted.target.is_empty());
    }
}
