//! An Aurora DSQL cluster endpoint: the host name to connect to and the AWS Region whose
//! credentials sign its IAM tokens.
//!
//! A cluster's public endpoint is `<cluster-id>.dsql.<region>.on.aws`, where the cluster id is
//! 26 lowercase letters and digits. [`Endpoint::parse`] accepts that name, the bare cluster id
//! (expanded with a region from elsewhere), or any other DNS host name (a VPC endpoint, a proxy,
//! the local front door) together with an explicit region. It is checked before any connection,
//! and the host is kept in lowercase, which is how the token signer and TLS compare it.

use std::fmt;

/// The length of a DSQL cluster id.
const CLUSTER_ID_LEN: usize = 26;
/// The longest DNS name (RFC 1035, without the trailing dot).
const MAX_HOST_LEN: usize = 253;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;
/// An example endpoint for error messages.
const EXAMPLE_HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";

/// Which part of an endpoint's description is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The host name (or cluster id).
    Host,
    /// The Region given besides it: missing where the host names none, or not a Region.
    Region,
}

/// Why [`Endpoint::parse`] refused its input: which part is at fault, and a message that says
/// what to give instead, with an example. Never echoes input that may carry a password (a URL).
/// The message names no setting: the caller knows where the value came from and says so.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct EndpointError {
    /// The part at fault.
    pub part: Part,
    /// What is wrong and what to give instead.
    pub problem: String,
}

/// The result of parsing an endpoint.
type Result<T> = std::result::Result<T, EndpointError>;

/// A validated DSQL endpoint. The host is a syntactically valid, lowercase DNS name, and the
/// region is region-shaped (see [`is_region`]); both are fixed once parsed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    region: String,
    /// Where to dial instead of `host`, if anywhere ([`Endpoint::dialled_at`]).
    address: Option<String>,
}

impl Endpoint {
    /// Parses `value`, a cluster's endpoint as the console shows it.
    ///
    /// - A bare 26-character cluster id (letters and digits) becomes
    ///   `<id>.dsql.<region>.on.aws`, with the region from `fallback_region`.
    /// - A name of the form `<id>.dsql.<region>.on.aws` (see [`region_from_host`]) takes its
    ///   region from the name; `fallback_region` is ignored, because a token signed for any
    ///   other region would be refused.
    /// - Any other DNS host name needs `fallback_region`.
    ///
    /// Errors name the [`Part`] at fault: the host (malformed, or a non-region in a DSQL name)
    /// or the region (needed but missing or malformed), and say what to give instead.
    pub fn parse(value: &str, fallback_region: Option<&str>) -> Result<Endpoint> {
        if value.trim().is_empty() {
            return Err(endpoint_error(format!(
                "it is empty; set it to your cluster's host name, e.g. {EXAMPLE_HOST}"
            )));
        }
        let host = value.to_ascii_lowercase();
        check_host_shape(value, &host)?;

        if is_cluster_id(&host) {
            let region = fallback(fallback_region, || {
                format!(
                    "the endpoint is the bare cluster id {value:?}, so the Region must be given \
                     besides it; set the cluster's Region, or use the full host name, e.g. \
                     {host}.dsql.us-east-1.on.aws"
                )
            })?;
            return Ok(Endpoint {
                host: format!("{host}.dsql.{region}.on.aws"),
                region: region.to_owned(),
                address: None,
            });
        }

        if let Some(region) = region_from_host(&host) {
            if !is_region(region) {
                return Err(endpoint_error(format!(
                    "{value:?} looks like a DSQL endpoint, but {region:?} is not an AWS Region; \
                     copy the endpoint from the console or `aws dsql get-cluster`, e.g. \
                     {EXAMPLE_HOST}"
                )));
            }
            let region = region.to_owned();
            return Ok(Endpoint {
                host,
                region,
                address: None,
            });
        }

        let region = fallback(fallback_region, || {
            format!(
                "the host {value:?} does not name its Region (it is not \
                 <cluster-id>.dsql.<region>.on.aws), so the Region must be given besides it; \
                 set the cluster's Region"
            )
        })?;
        Ok(Endpoint {
            host,
            region: region.to_owned(),
            address: None,
        })
    }

    /// The host name: lowercase, no scheme, port or path. IAM tokens are signed for it, and
    /// TLS verifies the server certificate against it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The same endpoint, dialled at `address` (an IP address the server's certificate
    /// names too) instead of through DNS; tokens are still signed for [`Endpoint::host`]. For a
    /// local endpoint whose name resolves nowhere but in a hosts file: sqlx 0.9 uses one name
    /// for both the address and the certificate check (`PgConnectOptions::host`; its
    /// `hostaddr` only sets `host`), so it cannot dial an address while verifying another name.
    pub fn dialled_at(self, address: impl Into<String>) -> Self {
        Self {
            address: Some(address.into()),
            ..self
        }
    }

    /// What to dial and verify the TLS certificate against: the host name, unless
    /// [`dialled_at`](Self::dialled_at) gave an address.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.host)
    }

    /// The AWS Region, e.g. `us-east-1`: where the cluster is, and what tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("region", &self.region)
            .field("address", &self.address)
            .finish()
    }
}

/// Shows the host name, as it would appear in a connection string.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

/// The region named by a DSQL host name `<label>.dsql<suffix>.<region>.on.aws`, or `None` if
/// `host` does not have that form.
///
/// This is the official connector's `^[^.]+\.dsql[^.]*\.([a-z0-9-]+)\.on\.aws$` without a
/// regex: exactly five labels, the second starting with `dsql`, the last two `on.aws`, and
/// the region made of lowercase letters, digits and hyphens. Whether that part is a real
/// region shape is [`is_region`]'s business.
pub fn region_from_host(host: &str) -> Option<&str> {
    let rest = host.strip_suffix(".on.aws")?;
    let (rest, region) = rest.rsplit_once('.')?;
    let (first, second) = rest.split_once('.')?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let shape_ok = !first.is_empty() && second.starts_with("dsql") && !second.contains('.');
    (region_ok && shape_ok).then_some(region)
}

/// Whether `s` is shaped like an AWS Region name: lowercase, hyphen-separated, a 2–4 letter
/// area first (`us`, `ap`, `eusc`), then one to three words (`east`, `gov-west`,
/// `southeast`), then a 1–2 digit number. `us-east-1`, `ap-southeast-2`, `us-gov-west-1` and
/// `us-isob-east-1` are; `US-EAST-1`, `useast1` and `us-east` are not.
///
/// Only the shape is checked, so new regions work without a code change.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, words @ .., number] = parts.as_slice() else {
        return false;
    };
    let letters = |p: &str, max: usize| {
        (1..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase())
    };
    area.len() >= 2
        && letters(area, 4)
        && (1..=3).contains(&words.len())
        && words.iter().all(|w| letters(w, 16))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `host` (already lowercase) is a bare DSQL cluster id.
fn is_cluster_id(host: &str) -> bool {
    host.len() == CLUSTER_ID_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Checks that `host` (the lowercase form of `value`) is a DNS host name, with messages for
/// the usual mistakes: a URL, a port, a path.
fn check_host_shape(value: &str, host: &str) -> Result<()> {
    // A URL may carry a password, so it is not echoed.
    if host.contains("://") || host.contains('@') {
        return Err(endpoint_error(format!(
            "it is a URL, not a host name; set the host name only, without scheme, user, \
             port or path, e.g. {EXAMPLE_HOST} (the port is a setting of its own)"
        )));
    }
    if host.contains(':') {
        return Err(endpoint_error(format!(
            "{value:?} contains a ':'; set the host name only, e.g. \
             {EXAMPLE_HOST}, and give a port other than 5432 as the port setting"
        )));
    }
    if host.contains(['/', '?', '#']) {
        return Err(endpoint_error(format!(
            "{value:?} is not a host name (it contains '/', '?' or '#'); set the host name \
             only, e.g. {EXAMPLE_HOST}"
        )));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(endpoint_error(format!(
            "it is {} characters long, more than a DNS name's {MAX_HOST_LEN}; set it to the \
             cluster's host name, e.g. {EXAMPLE_HOST}",
            host.len()
        )));
    }
    for label in host.split('.') {
        let valid = (1..=MAX_LABEL_LEN).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(endpoint_error(format!(
                "{value:?} is not a DNS host name (each dot-separated part must be 1 to 63 \
                 letters, digits or inner hyphens, with no spaces or trailing dot); set it to \
                 the cluster's host name, e.g. {EXAMPLE_HOST}"
            )));
        }
    }
    Ok(())
}

/// The fallback region, checked; `missing` explains why it is needed when there is none.
fn fallback(region: Option<&str>, missing: impl FnOnce() -> String) -> Result<&str> {
    match region {
        None | Some("") => Err(EndpointError {
            part: Part::Region,
            problem: missing(),
        }),
        Some(region) if is_region(region) => Ok(region),
        Some(region) => Err(EndpointError {
            part: Part::Region,
            problem: format!(
                "{region:?} is not an AWS Region name; set the cluster's Region in lowercase, \
                 e.g. us-east-1 or ap-southeast-2"
            ),
        }),
    }
}

/// An [`EndpointError`] about the host.
fn endpoint_error(problem: String) -> EndpointError {
    EndpointError {
        part: Part::Host,
        problem,
    }
}
