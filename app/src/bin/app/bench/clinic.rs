//! The `clinic` workload: the clinic's story, iteration after iteration, by 1 and by 8 workers.
//!
//! Iteration `i`: create owner `Owner i` (city `Anytown`, e-mail `owner<i>@example.com`); create
//! its pets `Pet <i>a` and `Pet <i>b` (born 2020-01-01) in one statement that checks the owner
//! exists; find `Pet <i>a` by name; find its owner by primary key; upsert the owner by e-mail
//! with city `Othertown`; find-or-create specialty `S<i mod 10>`; load the owner with its pets.
//! The workers share the iterations `0..N` through an atomic counter.
//!
//! Where the seed's stack can run ([`Seed`]), each worker count also has a line comparing the
//! app with the seed doing the same story the seed's way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use entity::pet_status::PetStatus;

use super::counts::{Counter, Fewest};
use super::layer::Layer;
use super::model::Model;
use super::seed::{self, Seed};
use super::{BenchOptions, Ctx, Line, Sample, born, in_parallel, progress};
use anyhow::{Result, anyhow};
use app::clinic::owners::NewOwner;
use app::clinic::pets::NewPet;

/// The app must reach this share of raw sqlx's iterations per second.
const MIN_RATIO: f64 = 0.90;

/// Specialties `S0` … `S9`: the first ten iterations of a pass create them.
const SPECIALTIES: u64 = 10;

/// Round trips of an iteration with the project's guarantees, when the specialty exists: one
/// autocommit statement each for the owner, both pets (the owner check in the insert), the pet
/// by name, the owner by key, the upsert, the specialty's find and the owner with its pets
/// (a `LEFT JOIN`); a new specialty adds its `INSERT … ON CONFLICT DO NOTHING`.
const FEWEST: f64 = 7.0;

/// One line per worker count in `options.concurrency`: iterations per second, and p50/p99 of
/// one iteration; then, per worker count, the app against the seed, or one line saying why the
/// seed was skipped.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    options: &BenchOptions,
    model: Model,
    seed: &Result<Seed, String>,
) -> Result<Vec<Line>> {
    let iterations = options.sizes.clinic;
    let mut lines = Vec::new();
    for &workers in &options.concurrency {
        let workers = workers.max(1);
        let what = format!("clinic C={workers}{}", model.suffix());
        let (app, raw) = ctx
            .abba(&what, async |layer| {
                pass(layer, &ctx.counter, iterations, workers).await
            })
            .await?;
        let mut line = Line::compare(
            format!("C={workers}"),
            "iterations/s",
            &app,
            &raw,
            MIN_RATIO,
        )
        .under(model);
        line.note = format!(
            "{iterations} iterations per pass; {workers} worker{}",
            if workers == 1 { "" } else { "s" }
        );
        let created = iterations.min(SPECIALTIES) as f64 / iterations.max(1) as f64;
        let mut fewest = (model == Model::Off).then_some(Fewest {
            round_trips: FEWEST + created,
            why: "one autocommit statement per step, both pets in one (8 when the specialty is new)",
            seed: None,
            seed_how: "counted: Owner.create, Pet.create ×2, findOne, findByPk, upsert, \
                       findOne (+ create), findByPk with include",
        });
        let Ok(seed) = seed else {
            line.fewest = fewest;
            lines.push(line);
            continue;
        };
        if !progress::show(&format!("{what}: the seed (Sequelize 6)")) {
            tracing::info!(%what, "the seed's pass");
        }
        ctx.empty_tables().await?;
        let versus = match seed.run(&ctx.counter, iterations, workers).await {
            Ok((sample, seen)) => {
                let app = line.app.clone().unwrap_or_else(|| app.throughput());
                let mut seed_measure = sample.throughput();
                seed_measure.p50_us = Some(seen.p50_us);
                seed_measure.p99_us = Some(seen.p99_us);
                if let (Some(fewest), Some(per_op)) = (fewest.as_mut(), seed_measure.per_op) {
                    fewest.seed = Some(per_op.round_trips);
                }
                let mut versus = Line::sides(
                    format!("C={workers} vs seed{}", model.suffix()),
                    "iterations/s",
                    app,
                    Some(seed_measure),
                );
                // With the model on, both stacks wait mostly for round trips and commits, and
                // the seed's are hardly more than the fewest: no 3× to be had there.
                if model == Model::Off {
                    versus.met = Some(versus.ratio.is_some_and(|r| r >= seed::MIN_RATIO));
                    versus.target = format!("app ≥ {:.2}× seed", seed::MIN_RATIO);
                    versus.target_ratio = Some(seed::MIN_RATIO);
                } else {
                    versus.target = "none (model on)".to_owned();
                }
                versus.note = format!(
                    "seed: one pass of {iterations} iterations, {workers} client{}",
                    if workers == 1 { "" } else { "s" }
                );
                versus
            }
            Err(e) => Line::skipped(
                format!("C={workers} vs seed{}", model.suffix()),
                format!("the seed failed: {e}"),
            ),
        };
        line.fewest = fewest;
        lines.push(line);
        lines.push(Line {
            sides: Some(seed::SIDES),
            ..versus
        });
    }
    if let (Err(why), Model::Off) = (seed, model) {
        lines.push(Line {
            sides: Some(seed::SIDES),
            ..Line::skipped("vs seed", why.clone())
        });
    }
    Ok(lines)
}

/// `workers` tasks share iterations `0..iterations`; the front door's counts are taken
/// around them.
async fn pass(
    layer: Layer,
    counter: &Counter<'_>,
    iterations: u64,
    workers: usize,
) -> Result<Sample> {
    let next = Arc::new(AtomicU64::new(0));
    let before = counter.snapshot();
    let mut sample = in_parallel(workers, |_| {
        let (layer, next) = (layer.clone(), Arc::clone(&next));
        async move {
            let mut sample = Sample::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= iterations {
                    return Ok(sample);
                }
                let start = Instant::now();
                iteration(&layer, i).await?;
                sample.record(start.elapsed());
            }
        }
    })
    .await?;
    sample.trips = counter.since(before);
    Ok(sample)
}

/// Iteration `i` of the story (see the module documentation).
async fn iteration(layer: &Layer, i: u64) -> Result<()> {
    let new = NewOwner {
        name: format!("Owner {i}"),
        city: "Anytown".to_owned(),
        telephone: None,
        email: format!("owner{i}@example.com"),
    };
    let owner = layer.create_owner(&new).await?;
    let born = born()?;
    let pets = ["a", "b"].map(|suffix| NewPet {
        name: format!("Pet {i}{suffix}"),
        birth_date: born,
        owner_id: Some(owner.id),
        status: PetStatus::Waiting.to_string(),
        metadata: None,
    });
    layer.create_pets(&pets).await?;
    let missing = |what: &str| anyhow!(format!("iteration {i}: {what} not found"));
    let pet = layer
        .pet_by_name(&format!("Pet {i}a"))
        .await?
        .ok_or_else(|| missing("pet"))?;
    let owner_id = pet.owner_id.ok_or_else(|| missing("the pet's owner"))?;
    let owner = layer
        .owner_by_id(owner_id)
        .await?
        .ok_or_else(|| missing("owner"))?;
    layer
        .upsert_owner(&NewOwner {
            city: "Othertown".to_owned(),
            ..new
        })
        .await?;
    layer
        .find_or_create_specialty(&format!("S{}", i % 10))
        .await?;
    let (_, pets) = layer
        .owner_with_pets(owner.id)
        .await?
        .ok_or_else(|| missing("owner with pets"))?;
    if pets.len() != 2 {
        return Err(anyhow!(format!(
            "iteration {i}: the owner has {} pets, not 2",
            pets.len()
        )));
    }
    Ok(())
}
