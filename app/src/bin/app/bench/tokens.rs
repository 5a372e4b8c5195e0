//! The `tokens` workload: how long signing one IAM authentication token takes, and how many
//! tokens this session has signed.
//!
//! Signing is timed offline, with fixed fake credentials (`AKIDEXAMPLE`) and the system clock,
//! through [`IamTokenSource`], the source the pool uses on Aurora DSQL. The session's own count
//! comes from a counting wrapper around its token source: one token at connect time plus one
//! per refresh, never one per query or per connection. The local stand-in signs IAM tokens
//! like Aurora DSQL (built without the front door, it uses a fixed password: one "token",
//! never refreshed); `DATABASE_URL` has no token source.

use std::time::{Duration, Instant};

use super::{BenchOptions, Ctx, Line, Measure, Sample};
use anyhow::Result;
use app::dsql::ADMIN_USER;
use app::dsql::endpoint::Endpoint;
use app::dsql::pool::RefreshPolicy;
use app::dsql::token::{DEFAULT_TOKEN_LIFETIME, IamTokenSource, TokenSource};
use app::local::fixed_credentials;
use app::session::Session;

/// A cluster host name for the offline signing; nothing connects to it.
const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
/// Signing one token must take at most this long on average.
const MAX_MICROS: f64 = 50.0;

/// Two lines: the signing time, and the tokens this session signed since `started`.
pub(super) async fn run(
    ctx: &Ctx<'_>,
    options: &BenchOptions,
    started: Instant,
    clinic_tokens: Option<u64>,
) -> Result<Vec<Line>> {
    let sdk_config = fixed_credentials("us-east-1", "AKIDEXAMPLE", "fake-secret", None).await;
    let endpoint = Endpoint::parse(HOST, None).map_err(app::dsql::Error::from)?;
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
        added_p50_us: None,
        target: format!("mean ≤ {MAX_MICROS:.0} µs"),
        target_ratio: None,
        sides: None,
        fewest: None,
        met: Some(sample.count > 0 && mean_us <= MAX_MICROS),
        note: format!(
            "mean of {} signatures, fake credentials, offline",
            sample.count
        ),
    };
    Ok(vec![
        signing,
        signed_by_session(ctx, options, started.elapsed(), clinic_tokens),
    ])
}

/// The IAM tokens the session's pool has signed: one at connect time plus one per refresh
/// that succeeded ([`RefreshStatus`](app::dsql::pool::RefreshStatus)); none with a fixed
/// password. The pool asks its source for a token only then, never per query or per
/// connection.
pub(super) fn tokens_signed(session: &Session) -> u64 {
    match session.token_lifetime() {
        Some(_) => 1 + session.pool().status().successes(),
        None => 0,
    }
}

/// The tokens the session signed ([`tokens_signed`]) in `elapsed`, and during the `clinic`
/// workload if it ran. Met when that is one at connect time plus no more than the refresh
/// schedule allows (plus failed attempts, which are retried sooner); with a fixed password,
/// none.
fn signed_by_session(
    ctx: &Ctx<'_>,
    options: &BenchOptions,
    elapsed: Duration,
    clinic_tokens: Option<u64>,
) -> Line {
    let status = ctx.session.pool().status();
    let tokens = tokens_signed(ctx.session);
    let mut line = Line::sides(
        "tokens issued in this session",
        "tokens",
        Measure {
            count: tokens,
            ..Measure::figure(tokens as f64)
        },
        None,
    );
    line.target = "1 + one per refresh".to_owned();
    let connections = ctx.pool.options().get_max_connections();
    let clinic = clinic_tokens.map_or_else(String::new, |n| {
        format!(
            "; {n} during the clinic workload ({} iterations)",
            options.sizes.clinic
        )
    });
    match options.token_lifetime {
        None => {
            line.met = Some(status.attempts() == 0);
            line.note = format!(
                "a fixed password (DATABASE_URL, or the bare local server), never refreshed: \
                 {} refresh attempts in {:.0} s of benchmark with up to {connections} \
                 connections{clinic}",
                status.attempts(),
                elapsed.as_secs_f64()
            );
        }
        Some(lifetime) => {
            let every = lifetime.mul_f64(RefreshPolicy::default().at_fraction);
            let due = (elapsed.as_secs_f64() / every.as_secs_f64().max(1e-3)).floor() as u64;
            line.met = Some(tokens >= 1 && tokens <= 1 + due + status.failures());
            line.note = format!(
                "1 at connect + {} refreshes ({} failed) in {:.0} s of benchmark, one due every \
                 {:.0} s, up to {connections} connections{clinic}",
                status.attempts(),
                status.failures(),
                elapsed.as_secs_f64(),
                every.as_secs_f64(),
            );
        }
    }
    line
}
