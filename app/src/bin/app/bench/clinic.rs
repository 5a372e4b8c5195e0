//! The `clinic` workload: the clinic's story, iteration after iteration, by 1 and by 8 workers.
//!
//! Iteration `i`: create owner `Owner i` (city `Anytown`, e-mail `owner<i>@example.com`); create
//! its pets `Pet <i>a` and `Pet <i>b` (born 2020-01-01), each in a transaction that reads the
//! owner `FOR KEY SHARE` first; find `Pet <i>a` by name; find its owner by primary key; upsert
//! the owner by e-mail with city `Othertown`; find-or-create specialty `S<i mod 10>`; load the
//! owner with its pets. The workers share the iterations `0..N` through an atomic counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use entity::pet_status::PetStatus;

use super::layer::Layer;
use super::{BenchOptions, Ctx, Line, Sample, born, in_parallel};
use anyhow::{Result, anyhow};
use app::clinic::owners::NewOwner;
use app::clinic::pets::NewPet;

/// The app must reach this share of raw sqlx's iterations per second.
const MIN_RATIO: f64 = 0.90;

/// One line per worker count in `options.concurrency`: iterations per second, and p50/p99 of
/// one iteration.
pub(super) async fn run(ctx: &Ctx<'_>, options: &BenchOptions) -> Result<Vec<Line>> {
    let iterations = options.sizes.clinic;
    let mut lines = Vec::new();
    for &workers in &options.concurrency {
        let workers = workers.max(1);
        let (app, raw) = ctx
            .abba("clinic", async |layer| {
                pass(layer, iterations, workers).await
            })
            .await?;
        let mut line = Line::compare(
            format!("C={workers}"),
            "iterations/s",
            &app,
            &raw,
            MIN_RATIO,
        );
        line.note = format!(
            "{iterations} iterations per pass, 16 statements each (17 when the specialty is new)"
        );
        lines.push(line);
    }
    Ok(lines)
}

/// `workers` tasks share iterations `0..iterations`.
async fn pass(layer: Layer, iterations: u64, workers: usize) -> Result<Sample> {
    let next = Arc::new(AtomicU64::new(0));
    in_parallel(workers, |_| {
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
    .await
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
    for suffix in ["a", "b"] {
        let pet = NewPet {
            name: format!("Pet {i}{suffix}"),
            birth_date: born,
            owner_id: Some(owner.id),
            status: PetStatus::Waiting.to_string(),
            metadata: None,
        };
        layer.create_pet(&pet).await?;
    }
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
