//! The `ops` workload: single operations, one at a time, each timed on its own.
//!
//! Per pass, with `n` calls of each: insert `n` owners; get each by primary key; upsert each by
//! e-mail (the update path); find-or-create each (existing rows); find-or-create `n` new ones;
//! then, after giving each of the first owners two pets (untimed), load each owner with its
//! pets. The tables are analyzed (untimed) after the inserts and after the pets are added, so
//! that the reads are planned on current statistics on both sides.

use uuid::Uuid;

use super::layer::Layer;
use super::{BATCH_ROWS, BenchOptions, Ctx, Line, Sample, new_pets};
use anyhow::{Result, anyhow};
use app::clinic::owners::{Found, NewOwner};

/// The app must reach this share of raw sqlx's operations per second on every line.
const MIN_RATIO: f64 = 0.90;

/// The operations, in the order the lines are reported.
const OPERATIONS: [&str; 6] = [
    "get by PK",
    "insert",
    "upsert",
    "find-or-create (existing)",
    "find-or-create (new)",
    "owner + pets load",
];
const GET: usize = 0;
const INSERT: usize = 1;
const UPSERT: usize = 2;
const FIND_EXISTING: usize = 3;
const FIND_NEW: usize = 4;
const LOAD: usize = 5;

/// One line per operation: operations per second, p50 and p99.
pub(super) async fn run(ctx: &Ctx<'_>, options: &BenchOptions) -> Result<Vec<Line>> {
    let n = options.sizes.ops;
    let (app, raw) = ctx.abba("ops", async |layer| pass(&layer, n).await).await?;
    Ok(OPERATIONS
        .iter()
        .zip(app.iter().zip(&raw))
        .map(|(name, (app, raw))| {
            let mut line = Line::compare(*name, "ops/s", app, raw, MIN_RATIO);
            line.note = format!("{n} calls per pass, one at a time");
            line
        })
        .collect())
}

/// The owner number `k` of a pass, in `city`, with an e-mail address under `prefix`.
fn new_owner(prefix: &str, k: u64, city: &str) -> NewOwner {
    NewOwner {
        name: format!("Ops owner {k}"),
        city: city.to_owned(),
        telephone: None,
        email: format!("{prefix}{k}@example.com"),
    }
}

/// One pass: a sample per operation, in [`OPERATIONS`] order.
async fn pass(layer: &Layer, n: u64) -> Result<Vec<Sample>> {
    let mut samples = vec![Sample::default(); OPERATIONS.len()];
    let mut ids = Vec::new();
    for k in 0..n {
        let owner = samples[INSERT]
            .time(layer.create_owner(&new_owner("ops", k, "Anytown")))
            .await?;
        ids.push(owner.id);
    }
    layer.analyze().await?;
    for &id in &ids {
        let found = samples[GET].time(layer.owner_by_id(id)).await?;
        expect(
            found.is_some(),
            "an inserted owner was not found by its key",
        )?;
    }
    for k in 0..n {
        samples[UPSERT]
            .time(layer.upsert_owner(&new_owner("ops", k, "Othertown")))
            .await?;
    }
    for (index, prefix, wanted) in [
        (FIND_EXISTING, "ops", Found::Existing),
        (FIND_NEW, "new", Found::Created),
    ] {
        for k in 0..n {
            let (_, found) = samples[index]
                .time(layer.find_or_create_owner(&new_owner(prefix, k, "Anytown")))
                .await?;
            expect(found == wanted, "find-or-create found the wrong thing")?;
        }
    }
    give_two_pets_each(layer, &ids).await?;
    layer.analyze().await?;
    for &id in &ids {
        let loaded = samples[LOAD].time(layer.owner_with_pets(id)).await?;
        expect(
            loaded.is_some_and(|(_, pets)| pets.len() == 2),
            "an owner was not loaded with its two pets",
        )?;
    }
    Ok(samples.into_iter().map(Sample::sequential).collect())
}

/// Untimed set-up of the load: two pets for each owner, in batches of at most 3,000 rows.
async fn give_two_pets_each(layer: &Layer, owners: &[Uuid]) -> Result<()> {
    let pets = new_pets(owners.len() * 2, |k| owners.get(k / 2).copied())?;
    for chunk in pets.chunks(BATCH_ROWS) {
        layer.insert_pets(chunk).await?;
    }
    Ok(())
}

/// An error saying `what` went wrong unless `ok`.
fn expect(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!(format!("ops: {what}")))
    }
}
