//! Logging: `RUST_LOG`'s directives (tracing `EnvFilter` syntax), with the targets that would
//! log secrets capped, whatever the directives say.
//!
//! `aws_sigv4` logs, at `TRACE`, the canonical request of every signature it computes. For a
//! DSQL IAM token that request holds `X-Amz-Security-Token`, the session token of temporary AWS
//! credentials, which is as secret as the token itself. Its `DEBUG` events and above hold no
//! secret, so the crate (every module in it) is capped at `DEBUG`. The cap is a second filter
//! that every event must also pass, so no directive, however specific, lifts it.

use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{ParseError, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// The directives used when `RUST_LOG` is unset: the app's progress and warnings, one line per
/// migration applied, and no server `NOTICE`s (the stand-in's own set-up sends some, and
/// `IF NOT EXISTS` statements more), which sqlx logs at `INFO`. Retries that succeed are
/// logged at `DEBUG` where they happen and counted in the progress lines.
pub const DEFAULT_DIRECTIVES: &str = "info,sqlx::postgres::notice=warn";

/// The default directives of `app bench`: the contention workload retries by design and counts
/// its retries itself, so even given-up transactions are not logged one by one.
pub const BENCH_DIRECTIVES: &str = "info,sqlx::postgres::notice=warn,app::dsql::retry=error";

/// Targets (and their modules) that would reveal a secret above the level given.
const CAPS: [(&str, LevelFilter); 1] = [("aws_sigv4", LevelFilter::DEBUG)];

/// A formatting layer writing to `writer`, filtered by `directives` (e.g. `info,sqlx=debug`)
/// and by `CAPS`: an event is written only if both let it through, so `RUST_LOG=trace` or
/// even `RUST_LOG=aws_sigv4::http_request=trace` never logs a secret. Both filter globally:
/// install the layer on its own. Fails if `directives` do not parse.
pub fn layer<S, W>(directives: &str, writer: W) -> Result<impl Layer<S> + Send + Sync, ParseError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let directives = EnvFilter::builder().parse(directives)?;
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPS);
    // Global filters (each a layer in front of the next), not a per-layer filter: with a
    // per-layer filter, events after sqlx's `tracing::enabled!` checks were sometimes lost.
    Ok(directives
        .and_then(caps)
        .and_then(tracing_subscriber::fmt::layer().with_writer(writer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::Registry;

    #[test]
    fn valid_directives_make_a_layer_and_invalid_ones_are_refused() {
        assert!(layer::<Registry, _>("info,sqlx=debug", std::io::sink).is_ok());
        assert!(layer::<Registry, _>("trace", std::io::sink).is_ok());
        assert!(layer::<Registry, _>("app=notalevel", std::io::sink).is_err());
    }
}
