//! The `tokens` workload: how long signing one IAM authentication token takes, and how many
//! tokens this session has signed.
//!
//! Signing is timed offline, with fixed fake credentials (`AKIDEXAMPLE`) and the system clock,
//! through [`IamTokenSource`], the source the pool uses on Aurora DSQL. The session's own count
//! is one token at connect time plus one per refresh attempt of its pool
//! ([`crate::dsql::pool::RefreshStatus::attempts`]): a token per refresh, never per query or
//! per connection. The local stand-in and `DATABASE_URL` use a fixed password and never
//! refresh.

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

use super::{BenchOptions, Ctx, Line, Measure, Sample};
use crate::config::{ADMIN_USER, DEFAULT_TOKEN_LIFETIME};
use crate::dsql::endpoint::Endpoint;
use crate::dsql::pool::RefreshPolicy;
use crate::dsql::token::{IamTokenSource, TokenSource};
use crate::error::Result;

/// A cluster host name for the offline signing; nothing connects to it.
const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
/// Signing one token must take at most this long on average.
const MAX_MICROS: f64 = 50.0;

/// Two lines: the signing time, and the tokens this session signed since `started`.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    options: &BenchOptions,
    started: Instant,
) -> Result<Vec<Line>> {
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "fake-secret",
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    let endpoint = Endpoint::parse(HOST, None)?;
    let source =
        IamTokenSource::with_sdk_config(&endpoint, ADMIN_USER, DEFAULT_TOKEN_LIFETIME, sdk_config)?;
    // The first call resolves the credentials provider; time the steady state.
    source.token().await?;
    let mut sample = Sample::default();
    for _ in 0..options.sizes.tokens {
        sample.time(source.token()).await?;
    }
    let sample = sample.sequential();
    let mean_us = if sample.count > 0 {
        sample.elapsed.as_secs_f64() * 1e6 / sample.count as f64
    } else {
        0.0
    };
    let signing = Line {
        name: "IAM token signing".to_owned(),
        unit: "µs/token".to_owned(),
        app: Some(sample.measure(mean_us)),
        raw: None,
        ratio: None,
        target: format!("mean ≤ {MAX_MICROS:.0} µs"),
        met: Some(sample.count > 0 && mean_us <= MAX_MICROS),
        note: format!(
            "mean of {} signatures, fake credentials, offline",
            sample.count
        ),
    };
    Ok(vec![
        signing,
        signed_by_session(ctx, options, started.elapsed()),
    ])
}

/// The tokens the session signed in `elapsed`: one at connect time plus one per refresh
/// attempt. Met when that is no more than the refresh schedule allows (plus failed attempts,
/// which are retried sooner).
fn signed_by_session(ctx: &Ctx<'_>, options: &BenchOptions, elapsed: Duration) -> Line {
    let status = ctx.session.pool().status();
    let tokens = 1 + status.attempts();
    let mut line = Line::sides(
        "tokens signed by this session",
        "tokens",
        Measure {
            count: tokens,
            ..Measure::figure(tokens as f64)
        },
        None,
    );
    line.target = "1 + one per refresh".to_owned();
    match options.token_lifetime {
        None => {
            line.note =
                "no IAM tokens on this target: a fixed password, never refreshed".to_owned();
        }
        Some(lifetime) => {
            let every = lifetime.mul_f64(RefreshPolicy::default().at_fraction);
            let due = (elapsed.as_secs_f64() / every.as_secs_f64().max(1e-3)).floor() as u64;
            line.met = Some(tokens <= 1 + due + status.failures());
            line.note = format!(
                "1 at connect + {} refreshes ({} failed) in {:.0} s of benchmark, one due every \
                 {:.0} s; {} connections in the pool",
                status.attempts(),
                status.failures(),
                elapsed.as_secs_f64(),
                every.as_secs_f64(),
                ctx.pool.options().get_max_connections()
            );
        }
    }
    line
}
