//! The `bulk` workload: many pets written in transactions of at most 3,000 rows (DSQL's limit).
//!
//! The app side writes each batch with SeaORM's `insert_many` in its own transaction through
//! [`app::dsql::retry::transaction`]; the raw side writes the same batch with one multi-row
//! `INSERT` built by sqlx's `QueryBuilder::push_values`, in its own transaction. Both send
//! 7 parameters a row, 21,000 for a full batch: within PostgreSQL's 65,535. The same rows,
//! generated before the clock starts, are written in every pass; afterwards the table is
//! counted.

use super::layer::{Layer, count};
use super::{BATCH_ROWS, BenchOptions, Check, Ctx, Line, Sample, new_pets};
use anyhow::Result;
use entity::pet;

/// The app must reach this share of raw sqlx's rows per second.
const MIN_RATIO: f64 = 0.80;

/// One line: rows per second, p50 and p99 of one batch, and the rows found afterwards.
pub(super) async fn run(ctx: &Ctx<'_>, options: &BenchOptions) -> Result<Vec<Line>> {
    let rows = usize::try_from(options.sizes.bulk_rows).unwrap_or(usize::MAX);
    let pets = new_pets(rows, |_| None)?;
    let (app, raw) = ctx
        .abba("bulk", async |layer| pass(ctx, &layer, &pets).await)
        .await?;
    let mut line = Line::compare(
        format!("{rows} pets, {BATCH_ROWS} per transaction"),
        "rows/s",
        &app,
        &raw,
        MIN_RATIO,
    );
    line.note = "latency: one batch; app: insert_many in the retry; raw: QueryBuilder".to_owned();
    Ok(vec![line])
}

/// Writes `pets` batch by batch, then counts the table.
async fn pass(ctx: &Ctx<'_>, layer: &Layer, pets: &[pet::Model]) -> Result<Sample> {
    let mut batches = Sample::default();
    let mut written = 0;
    for chunk in pets.chunks(BATCH_ROWS) {
        written += batches.time(layer.insert_pets(chunk)).await?;
    }
    let found = count(&ctx.pool, "SELECT count(*) FROM pet").await?;
    Ok(Sample {
        count: written,
        check: Some(Check {
            expected: u64::try_from(pets.len()).unwrap_or(u64::MAX),
            found,
        }),
        ..batches.sequential()
    })
}
