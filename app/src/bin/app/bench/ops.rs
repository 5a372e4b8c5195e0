//! The `ops` workload: single operations, one at a time, each timed on its own.
//!
//! Per pass, with `n` calls of each: insert `n` owners; get each by primary key; upsert each by
//! e-mail (the update path); find-or-create each (existing rows); find-or-create `n` new ones;
//! give each of the first owners two pets, in one call each; then load each owner with its
//! pets. The tables are analyzed (untimed) after the inserts and after the pets are added, so
//! that the reads are planned on current statistics on both sides. The front door's counts are
//! taken around each operation's calls (they run one after another, with nothing in between).

use entity::pet_status::PetStatus;

use super::counts::{Counter, Fewest};
use super::layer::Layer;
use super::model::Model;
use super::{BenchOptions, Ctx, Line, Sample, born};
use anyhow::{Result, anyhow};
use app::clinic::owners::{Found, NewOwner};
use app::clinic::pets::NewPet;

/// The app must reach this share of raw sqlx's operations per second on every line.
const MIN_RATIO: f64 = 0.90;

/// One operation: its line's name, the fewest round trips it allows and why, and the seed's
/// way of doing it (Sequelize 6: the statements its call sends, one round trip each).
struct Operation {
    name: &'static str,
    fewest: f64,
    why: &'static str,
    seed: Option<(f64, &'static str)>,
}

/// The operations, in the order the lines are reported.
const OPERATIONS: [Operation; 7] = [
    Operation {
        name: "get by PK",
        fewest: 1.0,
        why: "one read",
        seed: Some((1.0, "Owner.findByPk: one SELECT")),
    },
    Operation {
        name: "insert",
        fewest: 1.0,
        why: "one autocommit INSERT … ON CONFLICT (id) DO NOTHING RETURNING",
        seed: Some((
            1.0,
            "Owner.create: one INSERT … RETURNING (not safe to retry)",
        )),
    },
    Operation {
        name: "upsert",
        fewest: 1.0,
        why: "one autocommit INSERT … ON CONFLICT (email) DO UPDATE",
        seed: Some((1.0, "Owner.upsert: one INSERT … ON CONFLICT DO UPDATE")),
    },
    Operation {
        name: "find-or-create (existing)",
        fewest: 1.0,
        why: "the find finds it",
        seed: Some((1.0, "findOne")),
    },
    Operation {
        name: "find-or-create (new)",
        fewest: 2.0,
        why: "a find, then INSERT … ON CONFLICT DO NOTHING: one statement cannot see a \
              concurrent caller's row",
        seed: Some((2.0, "findOne, then create (not race-free)")),
    },
    Operation {
        name: "create both pets",
        fewest: 1.0,
        why: "one INSERT … SELECT … WHERE EXISTS (owner FOR KEY SHARE) for both",
        seed: Some((2.0, "Pet.create ×2, no owner check")),
    },
    Operation {
        name: "owner + pets load",
        fewest: 1.0,
        why: "one LEFT JOIN",
        seed: Some((1.0, "findByPk with include: one LEFT OUTER JOIN")),
    },
];
const GET: usize = 0;
const INSERT: usize = 1;
const UPSERT: usize = 2;
const FIND_EXISTING: usize = 3;
const FIND_NEW: usize = 4;
const PETS: usize = 5;
const LOAD: usize = 6;

/// One line per operation: operations per second, p50 and p99, and per operation the front
/// door's counts next to the fewest round trips (with the model off).
pub(super) async fn run(ctx: &Ctx<'_>, options: &BenchOptions, model: Model) -> Result<Vec<Line>> {
    let n = options.sizes.ops;
    let what = format!("ops{}", model.suffix());
    let (app, raw) = ctx
        .abba(&what, async |layer| pass(&layer, &ctx.counter, n).await)
        .await?;
    Ok(OPERATIONS
        .iter()
        .zip(app.iter().zip(&raw))
        .map(|(op, (app, raw))| {
            let mut line = Line::compare(op.name, "ops/s", app, raw, MIN_RATIO).under(model);
            line.note = format!("{n} calls per pass, one at a time");
            line.fewest = (model == Model::Off).then(|| Fewest {
                round_trips: op.fewest,
                why: op.why,
                seed: op.seed.map(|(rt, _)| rt),
                seed_how: op.seed.map_or("", |(_, how)| how),
            });
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

/// One pass: a sample per operation, in [`OPERATIONS`] order, each with the front door's
/// counts over its calls.
async fn pass(layer: &Layer, counter: &Counter<'_>, n: u64) -> Result<Vec<Sample>> {
    let mut samples = vec![Sample::default(); OPERATIONS.len()];
    let mut ids = Vec::new();
    let mut counted = counter.snapshot();
    let mut count = |sample: &mut Sample| {
        sample.trips = counter.since(counted);
        counted = counter.snapshot();
    };
    for k in 0..n {
        let owner = samples[INSERT]
            .time(layer.create_owner(&new_owner("ops", k, "Anytown")))
            .await?;
        ids.push(owner.id);
    }
    count(&mut samples[INSERT]);
    layer.analyze().await?;
    count(&mut Sample::default());
    for &id in &ids {
        let found = samples[GET].time(layer.owner_by_id(id)).await?;
        expect(
            found.is_some(),
            "an inserted owner was not found by its key",
        )?;
    }
    count(&mut samples[GET]);
    for k in 0..n {
        samples[UPSERT]
            .time(layer.upsert_owner(&new_owner("ops", k, "Othertown")))
            .await?;
    }
    count(&mut samples[UPSERT]);
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
        count(&mut samples[index]);
    }
    let born = born()?;
    for (k, &id) in ids.iter().enumerate() {
        let pets = ["a", "b"].map(|suffix| NewPet {
            name: format!("Pet {k}{suffix}"),
            birth_date: born,
            owner_id: Some(id),
            status: PetStatus::Waiting.to_string(),
            metadata: None,
        });
        let written = samples[PETS].time(layer.create_pets(&pets)).await?;
        expect(written.len() == 2, "two pets were not written")?;
    }
    count(&mut samples[PETS]);
    layer.analyze().await?;
    count(&mut Sample::default());
    for &id in &ids {
        let loaded = samples[LOAD].time(layer.owner_with_pets(id)).await?;
        expect(
            loaded.is_some_and(|(_, pets)| pets.len() == 2),
            "an owner was not loaded with its two pets",
        )?;
    }
    count(&mut samples[LOAD]);
    Ok(samples.into_iter().map(Sample::sequential).collect())
}

/// An error saying `what` went wrong unless `ok`.
fn expect(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!(format!("ops: {what}")))
    }
}
