//! The log filter: `RUST_LOG`'s directives (tracing `EnvFilter` syntax), with the targets that
//! would log secrets capped, whatever the directives say.
//!
//! `aws_sigv4` logs, at `TRACE`, the canonical request of every signature it computes. For a
//! DSQL IAM token that request holds `X-Amz-Security-Token`, the session token of temporary AWS
//! credentials, which is as secret as the token itself. Its `DEBUG` events and above hold no
//! secret, so the target is capped at `DEBUG`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, ParseError};

/// Targets whose events at a finer level than the one given would reveal a secret.
const CAPS: [&str; 1] = ["aws_sigv4=debug"];

/// A filter from `directives` (e.g. `info,sqlx=debug`) with [`CAPS`] applied on top: a cap
/// replaces any directive for the same target, so `RUST_LOG=trace` or even
/// `RUST_LOG=aws_sigv4=trace` never logs a secret. Fails if `directives` do not parse.
pub fn filter(directives: &str) -> Result<EnvFilter, ParseError> {
    let mut filter = EnvFilter::builder().parse(directives)?;
    for cap in CAPS {
        filter = filter.add_directive(cap.parse::<Directive>()?);
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_directives_parse_and_invalid_ones_are_refused() {
        assert!(filter("info,sqlx=debug").is_ok());
        assert!(filter("trace").is_ok());
        assert!(filter("app=notalevel").is_err());
    }
}
