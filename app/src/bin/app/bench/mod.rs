//! Benchmarks: the project's own data functions (SeaORM, [`app::clinic`], [`app::dsql::retry`])
//! against hand-written raw sqlx sending the same SQL over the same pool.
//!
//! [`run`] migrates, then runs each selected [`Workload`] and returns one [`Report`] per
//! workload; [`table`] renders them for people and [`Report::to_json`] as one JSON line each.
//!
//! How the numbers are made, so that the two sides are comparable:
//!
//! - Both sides use the session's pool ([`Session::pool`]): the app side through SeaORM's
//!   [`DatabaseConnection`] over it, the raw side through the [`PgPool`] itself. Both prepare
//!   and cache statements the same way (sqlx's per-connection statement cache), and the raw
//!   side sends the SQL text SeaORM sends, so the difference is the client-side work.
//! - Every timed pass starts on empty clinic tables (deleted in batches of at most 3,000 rows
//!   with [`delete_all`], since DSQL has no `TRUNCATE`) and on a warm pool: `max_connections`
//!   connections are acquired at once and released before the clock starts.
//! - The passes alternate A B B A (app, raw, raw, app), so that a drift over time (a filling
//!   cache, a growing table) does not favour one side, and this is done [`ROUNDS`] times, so
//!   that a passing disturbance (the server's autovacuum or a checkpoint, another process on
//!   the machine) weighs less; each side's passes are combined (operations and time added up,
//!   latencies pooled).
//! - Latency percentiles are by nearest rank over all recorded latencies.
//!
//! The benchmark deletes every row of the clinic tables, before and after each pass.
//! Benchmarks are not tests: nothing here asserts a time; each line says whether its target
//! was met.

mod bulk;
mod clinic;
mod contention;
mod counts;
mod front_door;
mod layer;
mod model;
mod ops;
mod progress;
mod seed;
mod svg;
mod tokens;

pub use svg::chart;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use entity::pet_status::PetStatus;
use entity::{owner, pet, specialty, vet, vet_specialty};
use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Date;
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tracing::info;
use uuid::Uuid;

use anyhow::{Context, Result, anyhow};
use app::demo::CLINIC_TABLES_READ;
use app::dsql::batch::delete_all;
use app::dsql::retry::{self, RetryPolicy};
use app::session::Session;
use counts::{Counter, Fewest, PerOp, Trips};
use layer::{Layer, Side};
use model::{Model, Switched};

/// One benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The clinic's story per iteration (owner, two pets checked `FOR KEY SHARE`, finds, upsert,
    /// specialty, owner with pets), by 1 and by 8 workers.
    Clinic,
    /// Single operations one at a time: get by primary key, insert, upsert, find-or-create of
    /// an existing and of a new row, owner with pets.
    Ops,
    /// Many pets written in transactions of at most 3,000 rows.
    Bulk,
    /// 16 workers incrementing counters on 4 hot rows through the retry.
    Contention,
    /// What the local stand-in's front door (TLS, IAM token, relay) adds to a get by primary
    /// key and to an insert/select/update iteration, by 1 and by 8 clients, against the same
    /// SQL sent to the server directly over plain TCP.
    FrontDoor,
    /// IAM token signing, and how many tokens the session signed.
    Tokens,
}

impl Workload {
    /// Every workload, in the order [`run`] runs them.
    pub const ALL: [Workload; 6] = [
        Workload::Clinic,
        Workload::Ops,
        Workload::Bulk,
        Workload::Contention,
        Workload::FrontDoor,
        Workload::Tokens,
    ];

    /// The workload's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Clinic => "clinic",
            Workload::Ops => "ops",
            Workload::Bulk => "bulk",
            Workload::Contention => "contention",
            Workload::FrontDoor => "front-door",
            Workload::Tokens => "tokens",
        }
    }

    /// What the workload's two sides are ([`Line::app`] and [`Line::raw`]).
    pub fn sides(self) -> Sides {
        match self {
            Workload::FrontDoor => front_door::SIDES,
            _ => Sides {
                app: "app (SeaORM)",
                raw: "raw sqlx",
                app_short: "app",
                raw_short: "raw",
            },
        }
    }
}

/// What a report's two sides stand for, for people: most workloads compare the app's code
/// with raw sqlx, `front-door` compares the path through the front door with the direct one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sides {
    /// What [`Line::app`] measured.
    pub app: &'static str,
    /// What [`Line::raw`] measured.
    pub raw: &'static str,
    /// `app` in a word, for the table's ratio and latency headers.
    #[serde(skip)]
    pub app_short: &'static str,
    /// `raw` in a word.
    #[serde(skip)]
    pub raw_short: &'static str,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    /// Parses a workload's [`name`](Workload::name); the error lists the valid names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!(
                    "unknown workload {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How big each workload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// `clinic`: iterations per pass, shared by the workers.
    pub clinic: u64,
    /// `ops`: calls of each operation per pass.
    pub ops: u64,
    /// `bulk`: pets written per pass.
    pub bulk_rows: u64,
    /// `contention`: increments per worker per pass.
    pub increments_per_worker: u64,
    /// `front-door`: round trips of each operation per pass (get by primary key; mixed
    /// iterations), shared by the clients.
    pub front_door: u64,
    /// `tokens`: tokens signed.
    pub tokens: u64,
    /// `clinic` with the latency model on: iterations per pass.
    pub clinic_modelled: u64,
    /// `ops` with the latency model on: calls of each operation per pass.
    pub ops_modelled: u64,
}

impl Default for Sizes {
    /// 2,000 clinic iterations, 2,000 calls per operation, 100,000 bulk rows, 200 increments
    /// per contention worker, 2,000 front-door round trips or iterations per operation, 10,000
    /// tokens; with the latency model on, 200 clinic iterations and 100 calls per operation
    /// (a clinic iteration then takes tens of milliseconds): minutes on 2 cores against the
    /// stand-in.
    fn default() -> Self {
        Self {
            clinic: 2_000,
            ops: 2_000,
            bulk_rows: 100_000,
            increments_per_worker: 200,
            front_door: 2_000,
            tokens: 10_000,
            clinic_modelled: 200,
            ops_modelled: 100,
        }
    }
}

impl Sizes {
    /// The same size `n` for every workload (the command's `--iterations`); with the latency
    /// model on, `n` or the default, whichever is smaller.
    pub fn uniform(n: u64) -> Self {
        let default = Self::default();
        Self {
            clinic: n,
            ops: n,
            bulk_rows: n,
            increments_per_worker: n,
            front_door: n,
            tokens: n,
            clinic_modelled: n.min(default.clinic_modelled),
            ops_modelled: n.min(default.ops_modelled),
        }
    }

    /// The sizes of the passes with the latency model on.
    fn modelled(&self) -> Self {
        Self {
            clinic: self.clinic_modelled,
            ops: self.ops_modelled,
            ..*self
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// The workloads to run, in [`Workload::ALL`] order whatever the order here; empty means
    /// all of them.
    pub workloads: Vec<Workload>,
    /// How big each workload is.
    pub sizes: Sizes,
    /// The numbers of `clinic` workers and `front-door` clients to measure, one line each
    /// (zero counts as one).
    pub concurrency: Vec<usize>,
    /// The IAM token lifetime when the session signs IAM tokens and refreshes them (Aurora
    /// DSQL); `None` for the local stand-in and `DATABASE_URL`, which use a fixed password.
    pub token_lifetime: Option<Duration>,
    /// The database user the session connected as, for the seed's baseline to connect as.
    pub user: String,
}

impl Default for BenchOptions {
    /// Every workload, default sizes, `clinic` and `front-door` by 1 and by 8 workers, a fixed
    /// password.
    fn default() -> Self {
        Self {
            workloads: Vec::new(),
            sizes: Sizes::default(),
            concurrency: vec![1, 8],
            token_lifetime: None,
            user: app::dsql::ADMIN_USER.to_owned(),
        }
    }
}

impl BenchOptions {
    /// The workloads to run, in order, each once.
    fn selected(&self) -> Vec<Workload> {
        Workload::ALL
            .into_iter()
            .filter(|w| self.workloads.is_empty() || self.workloads.contains(w))
            .collect()
    }
}

/// One side's result on one line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measure {
    /// The line's figure, in its unit (operations per second, a percentage, microseconds).
    pub value: f64,
    /// Operations completed (rows, for `bulk`; committed increments, for `contention`).
    pub count: u64,
    /// Time they took, in seconds (wall time; for sequential calls, the sum of their latencies).
    pub seconds: f64,
    /// Median latency of one operation, in microseconds, if latencies were recorded.
    pub p50_us: Option<f64>,
    /// 99th-percentile latency of one operation, in microseconds, if recorded.
    pub p99_us: Option<f64>,
    /// What the database holds afterwards against what it should hold, where checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// Transaction attempts, where the work went through a retry loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Round trips, statements and transactions per operation, counted at the stand-in's
    /// front door ([`counts`]); `None` where not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_op: Option<PerOp>,
}

impl Measure {
    /// A measure that is only a figure (no count, time or latencies).
    fn figure(value: f64) -> Self {
        Sample::default().measure(value)
    }
}

/// A count read back from the database, against the count the benchmark wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What the database should hold (rows written; increments that committed).
    pub expected: u64,
    /// What it holds.
    pub found: u64,
}

impl Check {
    /// Whether the database holds exactly what was written.
    pub fn exact(&self) -> bool {
        self.expected == self.found
    }
}

/// How hard a retry loop had to work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Retries {
    /// Transactions started, the retried ones included.
    pub attempts: u64,
    /// `attempts` minus the transactions that committed.
    pub retries: u64,
    /// Operations that gave up (attempts exhausted or another error): they wrote nothing.
    pub failed: u64,
}

/// One line of a report: one measurement, for the app and for raw sqlx where both exist (for
/// `front-door`: through the front door and directly, see [`Workload::sides`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    /// What was measured, e.g. `C=8` or `get by PK`.
    pub name: String,
    /// The unit of [`Measure::value`], e.g. `iterations/s`.
    pub unit: String,
    /// The project's own code: SeaORM and `app::clinic`, `app::dsql` (for
    /// `front-door`: the session's pool, through the front door).
    pub app: Option<Measure>,
    /// Hand-written raw sqlx, the same SQL on the same pool (for `front-door`: the same SQL
    /// on a pool of the same options connected to the server directly).
    pub raw: Option<Measure>,
    /// `app.value / raw.value`, when both exist and raw is not zero.
    pub ratio: Option<f64>,
    /// `app.p50_us - raw.p50_us`: what the app side adds to the median latency, in
    /// microseconds, when both sides recorded latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_p50_us: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// The least ratio that meets the target, where the target is a ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ratio: Option<f64>,
    /// The line's sides where they are not its report's (the app against the seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sides: Option<Sides>,
    /// The fewest round trips the operation allows, and the seed's, where the line is one
    /// operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fewest: Option<Fewest>,
    /// Whether the target was met; `None` when the line has no target on this database.
    pub met: Option<bool>,
    /// Anything else worth knowing about the line.
    pub note: String,
}

impl Line {
    /// A line with both sides' measures (raw may be missing) and their ratio, but no target
    /// yet.
    fn sides(name: impl Into<String>, unit: &str, app: Measure, raw: Option<Measure>) -> Self {
        let ratio = raw
            .as_ref()
            .filter(|raw| raw.value > 0.0)
            .map(|raw| app.value / raw.value);
        let added_p50_us = app
            .p50_us
            .zip(raw.as_ref().and_then(|raw| raw.p50_us))
            .map(|(app, raw)| app - raw);
        Self {
            name: name.into(),
            unit: unit.to_owned(),
            app: Some(app),
            raw,
            ratio,
            added_p50_us,
            target: String::new(),
            target_ratio: None,
            sides: None,
            fewest: None,
            met: None,
            note: String::new(),
        }
    }

    /// A throughput line comparing the two sides, met when the app reaches `min` times raw
    /// sqlx's rate (and, where checked, both sides' databases hold what was written).
    fn compare(name: impl Into<String>, unit: &str, app: &Sample, raw: &Sample, min: f64) -> Self {
        let mut line = Self::sides(name, unit, app.throughput(), Some(raw.throughput()));
        let exact = [&line.app, &line.raw]
            .into_iter()
            .flatten()
            .all(|m| m.check.is_none_or(|c| c.exact()));
        line.met = Some(exact && line.ratio.is_some_and(|r| r >= min));
        line.target = format!("app ≥ {min:.2}× raw");
        line.target_ratio = Some(min);
        line
    }

    /// The same line for passes with the latency `model`: named for it, and, with the model
    /// on, without a target (app against raw is judged with the model off).
    fn under(mut self, model: Model) -> Self {
        self.name.push_str(model.suffix());
        if model == Model::Dsql {
            self.met = None;
            self.target = "none (model on)".to_owned();
            self.target_ratio = None;
        }
        self
    }

    /// A line that measured nothing, saying why in its note.
    fn skipped(name: impl Into<String>, note: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unit: String::new(),
            app: None,
            raw: None,
            ratio: None,
            added_p50_us: None,
            target: String::new(),
            target_ratio: None,
            sides: None,
            fewest: None,
            met: None,
            note: note.into(),
        }
    }
}

/// What one workload measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Which workload.
    pub workload: Workload,
    /// What its two sides are.
    pub sides: Sides,
    /// Where it ran ([`Session::description`]; no secrets).
    pub database: String,
    /// The machine it ran on (CPUs and model).
    pub machine: String,
    /// Its measurements.
    pub lines: Vec<Line>,
}

impl Report {
    /// The report as one line of JSON (no newline in it).
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }
}

/// Migrates (`Migrator::up`), runs the selected workloads on `session` and returns their
/// reports, in [`Workload::ALL`] order. Deletes every row of the clinic tables, and leaves them
/// empty; the `contention` workload's own table is dropped again.
///
/// Fails on the first database error; a `contention` increment that gives up is counted in its
/// report instead.
pub async fn run(session: &Session, options: &BenchOptions) -> Result<Vec<Report>> {
    let started = Instant::now();
    let ctx = Ctx::new(session);
    Migrator::up(&ctx.db, None).await?;
    let machine = machine();
    let mut reports = Vec::new();
    let mut clinic_tokens = None;
    for workload in options.selected() {
        if !progress::show(&format!("{workload}: starting")) {
            info!(%workload, "benchmark workload starts");
        }
        let lines = match workload {
            Workload::Clinic => {
                let before = tokens::tokens_signed(session);
                let seed = seed::Seed::prepare(session, &options.user).await;
                let mut lines = clinic::run(&ctx, options, Model::Off, &seed).await?;
                lines.extend(
                    modelled(session, options, async |modelled| {
                        clinic::run(&ctx, modelled, Model::Dsql, &seed).await
                    })
                    .await?,
                );
                clinic_tokens = Some(tokens::tokens_signed(session) - before);
                lines
            }
            Workload::Ops => {
                let mut lines = ops::run(&ctx, options, Model::Off).await?;
                lines.extend(
                    modelled(session, options, async |modelled| {
                        ops::run(&ctx, modelled, Model::Dsql).await
                    })
                    .await?,
                );
                lines
            }
            Workload::Bulk => bulk::run(&ctx, options).await?,
            Workload::Contention => contention::run(&ctx, options).await?,
            Workload::FrontDoor => front_door::run(&ctx, options).await?,
            Workload::Tokens => tokens::run(&ctx, options, started, clinic_tokens).await?,
        };
        reports.push(Report {
            workload,
            sides: workload.sides(),
            database: session.description().to_owned(),
            machine: machine.clone(),
            lines,
        });
    }
    ctx.empty_tables().await?;
    progress::clear();
    Ok(reports)
}

/// Runs `passes` with the latency model on and the [`Sizes::modelled`] sizes, then switches
/// the model off again; where there is no model, one line saying why.
async fn modelled(
    session: &Session,
    options: &BenchOptions,
    passes: impl AsyncFnOnce(&BenchOptions) -> Result<Vec<Line>>,
) -> Result<Vec<Line>> {
    let switched = match Switched::on(session) {
        Ok(switched) => switched,
        Err(why) => return Ok(vec![Line::skipped("DSQL latency model", why)]),
    };
    let modelled = BenchOptions {
        sizes: options.sizes.modelled(),
        ..options.clone()
    };
    let mut lines = passes(&modelled).await?;
    let model = switched.describe();
    drop(switched);
    for line in &mut lines {
        if !line.note.is_empty() {
            line.note.push_str("; ");
        }
        line.note.push_str(&format!("latency model: {model}"));
    }
    Ok(lines)
}

/// How many times each workload runs its A B B A passes (see the module documentation).
pub const ROUNDS: usize = 3;

/// Rows per transaction in bulk writes: DSQL's limit.
const BATCH_ROWS: usize = migration::MAX_ROWS_PER_TRANSACTION as usize;

/// The benchmarks' birth date, 2020-01-01.
fn born() -> Result<Date> {
    Date::from_ymd_opt(2020, 1, 1).ok_or_else(|| anyhow!("no date 2020-01-01"))
}

/// `count` new pets `Pet <k>`, born 2020-01-01, waiting, no metadata, no visits yet; pet `k`
/// belongs to `owner_of(k)`.
fn new_pets(count: usize, owner_of: impl Fn(usize) -> Option<Uuid>) -> Result<Vec<pet::Model>> {
    let born = born()?;
    Ok((0..count)
        .map(|k| pet::Model {
            id: Uuid::new_v4(),
            name: format!("Pet {k}"),
            birth_date: born,
            owner_id: owner_of(k),
            status: PetStatus::Waiting,
            metadata: None,
            visit_count: Some(0),
        })
        .collect())
}

/// The reports as a table for people: one row per line, under a header naming the sides (a
/// new header wherever a line's sides differ from the previous one's), then how many targets
/// were met, then the round trips, statements and transactions per operation of every line
/// that is one operation, next to the fewest the guarantees allow and the seed's.
pub fn table(reports: &[Report]) -> String {
    let mut rows = Vec::new();
    let mut sides = None;
    let (mut met, mut with_target) = (0, 0);
    for report in reports {
        for line in &report.lines {
            let line_sides = line.sides.unwrap_or(report.sides);
            if sides != Some(line_sides) {
                sides = Some(line_sides);
                rows.push(header(&line_sides).to_vec());
            }
            with_target += usize::from(line.met.is_some());
            met += usize::from(line.met == Some(true));
            rows.push(vec![
                report.workload.to_string(),
                line.name.clone(),
                line.unit.clone(),
                figure(line.app.as_ref().map(|m| m.value)),
                figure(line.raw.as_ref().map(|m| m.value)),
                line.ratio
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                latencies(line, |m| m.p50_us),
                latencies(line, |m| m.p99_us),
                line.target.clone(),
                match line.met {
                    Some(true) => "met",
                    Some(false) => "NOT MET",
                    None => "-",
                }
                .to_owned(),
                line.note.clone(),
            ]);
        }
    }
    let mut out = columns(&rows);
    out.push_str(&format!("Targets met: {met} of {with_target}\n"));
    out.push_str(&round_trips(reports));
    out
}

/// The round-trip section of [`table`]: one row per line with a [`Fewest`].
fn round_trips(reports: &[Report]) -> String {
    let per_op = |m: Option<&Measure>| {
        m.and_then(|m| m.per_op)
            .map_or_else(|| "not counted".to_owned(), |p| p.text())
    };
    let mut rows = vec![vec![
        "workload".to_owned(),
        "line".to_owned(),
        "app rt / stmt / tx".to_owned(),
        "raw rt / stmt / tx".to_owned(),
        "fewest rt".to_owned(),
        "seed rt".to_owned(),
        "why the fewest".to_owned(),
        "seed's way".to_owned(),
    ]];
    for report in reports {
        for line in &report.lines {
            let Some(fewest) = &line.fewest else {
                continue;
            };
            rows.push(vec![
                report.workload.to_string(),
                line.name.clone(),
                per_op(line.app.as_ref()),
                per_op(line.raw.as_ref()),
                counts::number(fewest.round_trips),
                fewest.seed.map_or_else(|| "-".to_owned(), counts::number),
                fewest.why.to_owned(),
                fewest.seed_how.to_owned(),
            ]);
        }
    }
    if rows.len() == 1 {
        return String::new();
    }
    format!(
        "\nPer operation, counted at the stand-in's front door (rt: round trips on the caller's \
         path, then sqlx's pings of connections returned to its pool, off that path; stmt: \
         statements; tx: transactions, explicit and autocommit):\n{}",
        columns(&rows)
    )
}

/// `rows` as left-aligned columns two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let mut widths = Vec::new();
    for row in rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The table's header for a report with these sides.
fn header(sides: &Sides) -> [String; 11] {
    let (a, b) = (sides.app_short, sides.raw_short);
    [
        "workload".to_owned(),
        "line".to_owned(),
        "unit".to_owned(),
        sides.app.to_owned(),
        sides.raw.to_owned(),
        format!("{a}/{b}"),
        format!("p50 µs {a}/{b}"),
        format!("p99 µs {a}/{b}"),
        "target".to_owned(),
        "result".to_owned(),
        "note".to_owned(),
    ]
}

/// A figure with as many decimals as its size needs, or `-`.
fn figure(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// `app / raw` of one latency percentile, or `-` where there is none.
fn latencies(line: &Line, pick: impl Fn(&Measure) -> Option<f64>) -> String {
    let side = |m: Option<&Measure>| figure(m.and_then(&pick));
    match (line.app.as_ref(), line.raw.as_ref()) {
        (None, None) => "-".to_owned(),
        (app, None) => side(app),
        (app, raw) => format!("{} / {}", side(app), side(raw)),
    }
}

/// The machine: how many CPUs this process may use, and the CPU model (from `/proc/cpuinfo`,
/// where there is one).
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU model".to_owned());
    format!("{cpus} CPUs, {model}")
}

/// What one pass (or one worker, or one operation within a pass) measured. Samples of the same
/// thing add up with [`Combine`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Sample {
    /// Operations completed.
    count: u64,
    /// Time they took.
    elapsed: Duration,
    /// Latency of each recorded operation.
    latencies: Vec<Duration>,
    /// Read back from the database, where checked.
    check: Option<Check>,
    /// Attempts, where the work was retried.
    retries: Option<Retries>,
    /// What the front door counted over the operations, where counted.
    trips: Option<Trips>,
}

impl Sample {
    /// Counts one operation that took `latency`.
    fn record(&mut self, latency: Duration) {
        self.count += 1;
        self.latencies.push(latency);
    }

    /// Runs `operation`, and counts it with its latency if it succeeds.
    async fn time<T, E>(&mut self, operation: impl Future<Output = Result<T, E>>) -> Result<T>
    where
        anyhow::Error: From<E>,
    {
        let start = Instant::now();
        let value = operation.await?;
        self.record(start.elapsed());
        Ok(value)
    }

    /// Sets the elapsed time to the sum of the latencies: for operations run one after another.
    fn sequential(mut self) -> Self {
        self.elapsed = self.latencies.iter().sum();
        self
    }

    /// The rate in operations per second, with latency percentiles.
    fn throughput(&self) -> Measure {
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.count as f64 / seconds
        } else {
            0.0
        };
        self.measure(rate)
    }

    /// The sample with `value` as its figure.
    fn measure(&self, value: f64) -> Measure {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        Measure {
            value,
            count: self.count,
            seconds: self.elapsed.as_secs_f64(),
            p50_us: percentile_us(&sorted, 0.50),
            p99_us: percentile_us(&sorted, 0.99),
            check: self.check,
            retries: self.retries,
            per_op: self.trips.and_then(|t| t.per(self.count)),
        }
    }
}

/// The `p` quantile (0 to 1) of sorted latencies by nearest rank, in microseconds.
fn percentile_us(sorted: &[Duration], p: f64) -> Option<f64> {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
    sorted.get(rank - 1).map(|d| d.as_secs_f64() * 1e6)
}

/// Measurements of the same thing that add up: counts and times are summed, latencies pooled.
pub(crate) trait Combine {
    /// Adds `other` to `self`.
    fn combine(&mut self, other: Self);
}

impl Combine for Sample {
    fn combine(&mut self, other: Self) {
        self.count += other.count;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.check.combine(other.check);
        self.retries.combine(other.retries);
        self.trips.combine(other.trips);
    }
}

impl Combine for Check {
    fn combine(&mut self, other: Self) {
        self.expected += other.expected;
        self.found += other.found;
    }
}

impl Combine for Retries {
    fn combine(&mut self, other: Self) {
        self.attempts += other.attempts;
        self.retries += other.retries;
        self.failed += other.failed;
    }
}

impl<T: Combine> Combine for Option<T> {
    fn combine(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(mine), Some(theirs)) => mine.combine(theirs),
            (None, theirs) => *self = theirs,
            (Some(_), None) => {}
        }
    }
}

impl<A: Combine, B: Combine> Combine for (A, B) {
    fn combine(&mut self, other: Self) {
        self.0.combine(other.0);
        self.1.combine(other.1);
    }
}

impl<T: Combine> Combine for Vec<T> {
    /// Element by element; the two must be equally long.
    fn combine(&mut self, other: Self) {
        for (mine, theirs) in self.iter_mut().zip(other) {
            mine.combine(theirs);
        }
    }
}

/// What every workload needs: the session's pool, seen by SeaORM and by sqlx.
pub(crate) struct Ctx<'s> {
    /// SeaORM over the session's pool.
    db: DatabaseConnection,
    /// The session's sqlx pool itself.
    pool: PgPool,
    /// The retry policy of the app side's transactions.
    policy: RetryPolicy,
    /// The session, for its description and its token refresh status.
    session: &'s Session,
    /// The stand-in's front-door counts, where there is one.
    counter: Counter<'s>,
}

impl<'s> Ctx<'s> {
    fn new(session: &'s Session) -> Self {
        Self {
            db: session.db(),
            pool: session.pool().pool().clone(),
            policy: RetryPolicy::default(),
            session,
            counter: Counter::new(session),
        }
    }

    /// The data layer of `side`, with the default retry policy.
    fn layer(&self, side: Side) -> Layer {
        self.layer_with(side, self.policy)
    }

    /// The data layer of `side`, retrying with `policy`.
    fn layer_with(&self, side: Side, policy: RetryPolicy) -> Layer {
        Layer::new(side, self.db.clone(), self.pool.clone(), policy)
    }

    /// Deletes every row of the clinic tables, at most 3,000 per transaction.
    async fn empty_tables(&self) -> Result<u64> {
        let limit = migration::MAX_ROWS_PER_TRANSACTION;
        Ok(
            delete_all::<pet::Entity>(&self.db, &self.policy, limit).await?
                + delete_all::<owner::Entity>(&self.db, &self.policy, limit).await?
                + delete_all::<vet_specialty::Entity>(&self.db, &self.policy, limit).await?
                + delete_all::<vet::Entity>(&self.db, &self.policy, limit).await?
                + delete_all::<specialty::Entity>(&self.db, &self.policy, limit).await?,
        )
    }

    /// Opens the pool's connections before the clock starts, each one's catalog fresh
    /// ([`retry::refresh_catalogs`] with a read of the clinic tables): a conflict after the
    /// set-up's DDL falls outside the clock.
    async fn warm_pool(&self) -> Result<()> {
        Ok(retry::refresh_catalogs(&self.db, CLINIC_TABLES_READ).await?)
    }

    /// Runs `pass` [`ROUNDS`] times four times, app, raw, raw, app, each on empty tables and a
    /// warm pool, and returns each side's passes combined: `(app, raw)`.
    async fn abba<T: Combine>(
        &self,
        what: &str,
        mut pass: impl AsyncFnMut(Layer) -> Result<T>,
    ) -> Result<(T, T)> {
        alternate(what, (Side::App, Side::Raw), async |side| {
            self.empty_tables().await?;
            self.warm_pool().await?;
            pass(self.layer(side)).await
        })
        .await
    }
}

/// Runs `pass` [`ROUNDS`] times four times, on sides `a`, `b`, `b`, `a`, and returns each
/// side's passes combined: `(a, b)`. Whatever a pass needs first (empty tables, a warm pool)
/// is up to `pass`; only what it measures should be timed.
async fn alternate<S: Copy + fmt::Debug, T: Combine>(
    what: &str,
    (a, b): (S, S),
    mut pass: impl AsyncFnMut(S) -> Result<T>,
) -> Result<(T, T)> {
    let mut combined: [Option<T>; 2] = [None, None];
    let order = [0, 1, 1, 0];
    for (number, index) in order.into_iter().cycle().take(4 * ROUNDS).enumerate() {
        let side = [a, b][index];
        let shown = progress::show(&format!(
            "{what}: pass {} of {}, {side:?}",
            number + 1,
            4 * ROUNDS
        ));
        if !shown {
            info!(what, pass = number + 1, ?side, "benchmark pass");
        }
        let result = pass(side).await?;
        combined[index].combine(Some(result));
    }
    match combined {
        [Some(a), Some(b)] => Ok((a, b)),
        _ => Err(anyhow!(format!("{what}: a side ran no pass"))),
    }
}

/// Runs `worker(0)` … `worker(workers - 1)` as concurrent tasks and combines their samples;
/// the elapsed time is the wall time from the first start to the last end.
async fn in_parallel<F, Fut>(workers: usize, mut worker: F) -> Result<Sample>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Sample>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..workers.max(1) {
        tasks.spawn(worker(w));
    }
    let mut total = Sample::default();
    while let Some(joined) = tasks.join_next().await {
        let sample = joined.context("run a benchmark worker")??;
        total.combine(sample);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_name_and_unknown_names_list_the_valid_ones() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        let err = "clinics".parse::<Workload>().expect_err("not a workload");
        assert!(
            err.contains("clinic, ops, bulk, contention, front-door, tokens"),
            "{err}"
        );
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&sorted, 0.50), Some(50.0));
        assert_eq!(percentile_us(&sorted, 0.99), Some(99.0));
        assert_eq!(percentile_us(&sorted[..1], 0.99), Some(1.0));
        assert_eq!(percentile_us(&[], 0.5), None);
    }

    #[test]
    fn samples_add_up() {
        let mut a = Sample::default();
        a.record(Duration::from_millis(2));
        a.check = Some(Check {
            expected: 1,
            found: 1,
        });
        let mut b = Sample::default();
        b.record(Duration::from_millis(4));
        b.retries = Some(Retries {
            attempts: 3,
            retries: 2,
            failed: 0,
        });
        a.combine(b.sequential());
        assert_eq!(a.count, 2);
        assert_eq!(a.elapsed, Duration::from_millis(4));
        assert_eq!(a.check.map(|c| c.found), Some(1));
        assert_eq!(a.retries.map(|r| r.retries), Some(2));
    }

    #[test]
    fn the_table_counts_met_targets() {
        let mut fast = Sample::default();
        fast.record(Duration::from_millis(1));
        let fast = fast.sequential();
        let mut slow = Sample::default();
        slow.record(Duration::from_millis(2));
        let slow = slow.sequential();
        let report = Report {
            workload: Workload::Ops,
            sides: Workload::Ops.sides(),
            database: "db".into(),
            machine: "m".into(),
            lines: vec![
                Line::compare("a", "ops/s", &fast, &slow, 0.9),
                Line::compare("b", "ops/s", &slow, &fast, 0.9),
            ],
        };
        let text = table(&[report]);
        assert!(text.contains("2.00"), "{text}");
        assert!(text.contains("NOT MET"), "{text}");
        assert!(text.ends_with("Targets met: 1 of 2\n"), "{text}");
    }
}
