//! Where to connect, read once from the environment and checked before any connection.
//!
//! [`Config::from_env`] reads a `.env` file if there is one (variables already set in the
//! process win over the file), then these variables. An empty value counts as unset.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CLUSTER_ENDPOINT` | unset | Aurora DSQL cluster host name, e.g. `abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws`, or the bare 26-character cluster id (then expanded with `AWS_REGION`). Setting it selects DSQL with IAM tokens. |
//! | `CLUSTER_PORT` | `5432` | Port of `CLUSTER_ENDPOINT`, 1–65535 (the largest TCP port). |
//! | `CLUSTER_USER` | `admin` | Database user, in every mode: `admin` signs tokens with `dsql:DbConnectAdmin` and works in schema `public`; any other user signs with `dsql:DbConnect` and works in `myschema`. A plain identifier (letters, digits, `_`, at most 63, not starting with a digit). |
//! | `AWS_REGION` | `AWS_DEFAULT_REGION`, else unset | AWS Region of the cluster, e.g. `us-east-1`. Needed only when the host name is not `<id>.dsql.<region>.on.aws`; a region in the host name wins. Credentials come from the default AWS chain (environment, profile/SSO, web identity, container, instance metadata). |
//! | `DSQL_TOKEN_LIFETIME_SECS` | `900` | How long each IAM token is valid, 1–604800 (one week, DSQL's maximum). A token is only needed to open a connection; the pool renews it in the background before it expires. |
//! | `POOL_MAX_CONNECTIONS` | `10` | Most connections the pool opens, 1–10000: DSQL accepts at most 10,000 connections per cluster (`53300` past it), so a larger pool could never fill, and sqlx sizes its structures by this number. |
//! | `POOL_MAX_LIFETIME_SECS` | `3300` (55 min) | Age at which the pool retires a connection, 1–3599. DSQL closes every connection after 60 minutes, so the pool must retire them first. |
//! | `POOL_IDLE_TIMEOUT_SECS` | `600` | How long a connection may sit idle before the pool closes it, 1–3599. |
//! | `DATABASE_URL` | unset | `postgres://user[:password]@host[:port]/database[?sslmode=…]` for any PostgreSQL (or DSQL with a hand-made token as the password). Used when `CLUSTER_ENDPOINT` is unset. libpq variables (`PGPASSWORD`, `PGPASSFILE`, `PGSSLROOTCERT`, …) apply as in sqlx. Never echoed in messages or `Debug`, since it may hold a password. |
//!
//! Which database: `CLUSTER_ENDPOINT` → [`Target::Dsql`]; else `DATABASE_URL` →
//! [`Target::Url`]; else [`Target::Local`], the local DSQL stand-in the app starts itself.
//! Setting both `CLUSTER_ENDPOINT` and `DATABASE_URL` is an error, because it is unclear which
//! database was meant.
//!
//! In `DATABASE_URL` mode the user is the one the URL names (as `user@` or `?user=`). If the
//! URL names none, it is `CLUSTER_USER` (default `admin`). If both name one, they must agree.
//!
//! Every invalid value is an [`Error::Config`] naming the variable and saying what to set
//! instead; a number past its upper bound is named with the bound and the reason for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use secrecy::SecretString;

use crate::dsql::endpoint::{Endpoint, EndpointError, Part};
use crate::dsql::pool::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_LIFETIME, DSQL_CONNECTION_LIMIT,
    DSQL_MAX_CONNECTIONS, PoolSettings,
};
use crate::dsql::token::{DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME};
use crate::dsql::{ADMIN_USER, is_identifier};
use crate::error::{Error, Result};
use crate::local;

/// Every variable [`Config::from_vars`] reads, in the order of the table above (with
/// `AWS_DEFAULT_REGION`, the fallback for `AWS_REGION`).
pub const VARIABLES: [&str; 10] = [
    "CLUSTER_ENDPOINT",
    "CLUSTER_PORT",
    "CLUSTER_USER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "DSQL_TOKEN_LIFETIME_SECS",
    "POOL_MAX_CONNECTIONS",
    "POOL_MAX_LIFETIME_SECS",
    "POOL_IDLE_TIMEOUT_SECS",
    "DATABASE_URL",
];

/// The default for `CLUSTER_PORT`.
pub const DEFAULT_PORT: u16 = 5432;

/// Everything the app needs to know to reach its database. Built only by [`Config::from_env`]
/// or [`Config::from_vars`], so every value in it has been checked: the user is a plain
/// identifier, the lifetimes are in range, and the target is well-formed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which database, and how to authenticate.
    pub target: Target,
    /// The database user (`CLUSTER_USER`, or the user `DATABASE_URL` names): a plain
    /// identifier, safe to quote into SQL.
    pub user: String,
    /// How long each IAM token is valid (`DSQL_TOKEN_LIFETIME_SECS`), 1 s to one week.
    pub token_lifetime: Duration,
    /// The connection pool's limits.
    pub pool: PoolSettings,
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Aurora DSQL (or anything reached the same way) at this endpoint and port, with IAM
    /// tokens from the default AWS credential chain as passwords.
    Dsql(Endpoint, u16),
    /// Any PostgreSQL, as `DATABASE_URL` says, with the URL's password (or libpq's).
    Url(DatabaseUrl),
    /// The local DSQL stand-in, started and stopped by the app.
    Local,
}

/// A parsed `DATABASE_URL`. Its `Debug` shows where it points but never the password, which
/// [`PgConnectOptions`]'s own `Debug` would print.
#[derive(Clone)]
pub struct DatabaseUrl {
    // Boxed: the options are large, and `Target` should stay small.
    options: Box<PgConnectOptions>,
    /// The URL itself (with the user added when it named none).
    url: SecretString,
}

impl DatabaseUrl {
    /// The connection options the URL describes, with libpq's environment variables and
    /// password file applied (as sqlx does), and the user set to [`Config::user`].
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// The URL, as given (with `user=` added when it named no user): what other tools take.
    pub fn url(&self) -> &SecretString {
        &self.url
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let mut s = f.debug_struct("DatabaseUrl");
        match o.get_socket() {
            Some(socket) => s.field("socket", socket),
            None => s.field("host", &o.get_host()),
        };
        s.field("port", &o.get_port())
            .field("user", &o.get_username())
            .field("database", &o.get_database())
            .field("ssl_mode", &o.get_ssl_mode())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads `.env` (if present; a missing file is fine, an unreadable or malformed one is an
    /// [`Error::Config`] naming `.env`), then the process environment, whose values win.
    /// Loading `.env` sets process variables, so call this at start-up, before other threads
    /// read the environment.
    pub fn from_env() -> Result<Config> {
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(Error::Config {
                variable: ".env",
                problem: dotenv_problem(&error),
            });
        }
        Self::from_vars(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// Builds a configuration from `get`, which returns a variable's value (or `None`).
    /// Reads nothing else except what sqlx reads to parse `DATABASE_URL` (libpq's `PG*`
    /// variables and password file). The first invalid value is an [`Error::Config`] naming
    /// its variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let get = |name: &str| get(name).filter(|value| !value.is_empty());

        let cluster_user = get("CLUSTER_USER");
        if let Some(user) = &cluster_user
            && !is_identifier(user)
        {
            return Err(Error::Config {
                variable: "CLUSTER_USER",
                problem: format!(
                    "{user:?} is not a plain database user name; use letters, digits and '_' \
                     only, at most 63, not starting with a digit, e.g. CLUSTER_USER=admin or \
                     CLUSTER_USER=clinic_app"
                ),
            });
        }
        let port = parse_number(
            get("CLUSTER_PORT"),
            "CLUSTER_PORT",
            DEFAULT_PORT,
            1..=u16::MAX,
            "65535 is the largest TCP port",
        )?;
        let token_lifetime = parse_secs(
            get("DSQL_TOKEN_LIFETIME_SECS"),
            "DSQL_TOKEN_LIFETIME_SECS",
            DEFAULT_TOKEN_LIFETIME,
            1..=MAX_TOKEN_LIFETIME.as_secs(),
            "tokens last at most one week (604800 s) on DSQL",
        )?;
        let pool = PoolSettings {
            max_connections: parse_number(
                get("POOL_MAX_CONNECTIONS"),
                "POOL_MAX_CONNECTIONS",
                DEFAULT_MAX_CONNECTIONS,
                1..=DSQL_MAX_CONNECTIONS,
                "DSQL accepts at most 10000 connections per cluster, so a larger pool could \
                 never fill",
            )?,
            max_lifetime: parse_secs(
                get("POOL_MAX_LIFETIME_SECS"),
                "POOL_MAX_LIFETIME_SECS",
                DEFAULT_MAX_LIFETIME,
                1..=DSQL_CONNECTION_LIMIT.as_secs() - 1,
                "DSQL closes every connection after 60 minutes, so the pool must retire \
                 them before that",
            )?,
            idle_timeout: parse_secs(
                get("POOL_IDLE_TIMEOUT_SECS"),
                "POOL_IDLE_TIMEOUT_SECS",
                DEFAULT_IDLE_TIMEOUT,
                1..=DSQL_CONNECTION_LIMIT.as_secs() - 1,
                "no connection lives an hour, so a longer idle timeout would never apply",
            )?,
        };

        let (target, user) = match (get("CLUSTER_ENDPOINT"), get("DATABASE_URL")) {
            (Some(_), Some(_)) => {
                return Err(Error::Config {
                    variable: "CLUSTER_ENDPOINT",
                    problem: "both CLUSTER_ENDPOINT and DATABASE_URL are set, so it is unclear \
                              which database to use; unset one of them: CLUSTER_ENDPOINT for \
                              Aurora DSQL with IAM tokens (e.g. \
                              CLUSTER_ENDPOINT=abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws), \
                              or DATABASE_URL for any PostgreSQL"
                        .to_owned(),
                });
            }
            (Some(endpoint), None) => {
                let endpoint = parse_endpoint(&endpoint, &get)?;
                let user = cluster_user.unwrap_or_else(|| ADMIN_USER.to_owned());
                (Target::Dsql(endpoint, port), user)
            }
            (None, Some(url)) => {
                let (url, user) = parse_database_url(&url, cluster_user)?;
                (Target::Url(url), user)
            }
            (None, None) => (
                Target::Local,
                cluster_user.unwrap_or_else(|| ADMIN_USER.to_owned()),
            ),
        };

        Ok(Config {
            target,
            user,
            token_lifetime,
            pool,
        })
    }

    /// The schema the user works in ([`dsql::schema_for`](crate::dsql::schema_for)):
    /// `public` for `admin`, `myschema` for anyone else.
    pub fn schema(&self) -> &'static str {
        crate::dsql::schema_for(&self.user)
    }

    /// The schema every new connection puts on `search_path`
    /// ([`dsql::search_path_for`](crate::dsql::search_path_for)).
    pub fn search_path(&self) -> Option<&'static str> {
        crate::dsql::search_path_for(&self.user)
    }

    /// Whether the user is DSQL's administrator `admin` (exactly; role names are
    /// case-sensitive). Decides the token's IAM action and the schema.
    pub fn is_admin(&self) -> bool {
        self.user == ADMIN_USER
    }
}

/// Parses `CLUSTER_ENDPOINT`, with the region from `AWS_REGION` or `AWS_DEFAULT_REGION`.
fn parse_endpoint(value: &str, get: &impl Fn(&str) -> Option<String>) -> Result<Endpoint> {
    // Name the variable the region came from; AWS_REGION when there is none.
    let (region_variable, region) = match (get("AWS_REGION"), get("AWS_DEFAULT_REGION")) {
        (None, Some(region)) => ("AWS_DEFAULT_REGION", Some(region)),
        (region, _) => ("AWS_REGION", region),
    };
    let endpoint =
        Endpoint::parse(value, region.as_deref()).map_err(|EndpointError { part, problem }| {
            match part {
                Part::Host => Error::Config {
                    variable: "CLUSTER_ENDPOINT",
                    problem: format!(
                        "{problem} (CLUSTER_ENDPOINT takes the host name only; a port goes in \
                     CLUSTER_PORT)"
                    ),
                },
                Part::Region => Error::Config {
                    variable: region_variable,
                    problem: format!(
                        "{problem}: set {region_variable}, e.g. {region_variable}=us-east-1 \
                     (AWS_REGION wins over AWS_DEFAULT_REGION)"
                    ),
                },
            }
        })?;
    if endpoint.host() == local::STAND_IN_HOST {
        return Ok(stand_in_endpoint().map_err(crate::dsql::Error::from)?);
    }
    Ok(endpoint)
}

/// The local stand-in's endpoint as the app reaches it: its DSQL-shaped name in its Region,
/// dialled at the loopback, since the name resolves there only where a hosts file says so.
pub fn stand_in_endpoint() -> std::result::Result<Endpoint, EndpointError> {
    Endpoint::parse(local::STAND_IN_HOST, Some(local::STAND_IN_REGION))
        .map(|endpoint| endpoint.dialled_at(local::STAND_IN_ADDRESS))
}

/// Parses `DATABASE_URL` and settles the user (see the module documentation). Messages never
/// contain the URL or any part of it.
fn parse_database_url(url: &str, cluster_user: Option<String>) -> Result<(DatabaseUrl, String)> {
    const EXAMPLE: &str = "DATABASE_URL=postgres://admin@127.0.0.1:5432/postgres (with the \
                           password in PGPASSFILE or PGPASSWORD)";
    let url_error = |problem: String| Error::Config {
        variable: "DATABASE_URL",
        problem,
    };
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(url_error(format!(
            "it is not a URL (no `postgres://`); set a PostgreSQL URL, e.g. {EXAMPLE}"
        )));
    };
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(url_error(format!(
            "its scheme is not `postgres` or `postgresql`; set a PostgreSQL URL, e.g. {EXAMPLE}"
        )));
    }
    let parse = |url: &str| {
        PgConnectOptions::from_str(url).map_err(|_| {
            // sqlx's message may quote part of the URL, which may include the password.
            url_error(format!(
                "it could not be parsed as a PostgreSQL URL (check the host, port, \
                 percent-encoding of special characters and the parameters); set it like \
                 {EXAMPLE}"
            ))
        })
    };

    if !url_names_user(url) {
        // Add the user as a parameter rather than setting it afterwards, so that sqlx looks
        // up the password file for this user and not for PGUSER or the OS user.
        let user = cluster_user.unwrap_or_else(|| ADMIN_USER.to_owned());
        let (base, fragment) = url
            .split_once('#')
            .map_or((url, None), |(b, f)| (b, Some(f)));
        let separator = if base.contains('?') { '&' } else { '?' };
        let mut with_user = format!("{base}{separator}user={user}");
        if let Some(fragment) = fragment {
            with_user.push('#');
            with_user.push_str(fragment);
        }
        let options = parse(&with_user)?;
        return Ok((
            DatabaseUrl {
                options: Box::new(options),
                url: SecretString::from(with_user),
            },
            user,
        ));
    }

    let options = parse(url)?;
    let user = options.get_username().to_owned();
    if !is_identifier(&user) {
        return Err(url_error(
            "the user it names is not a plain database user name (letters, digits and '_' \
             only, at most 63, not starting with a digit); use one, e.g. \
             postgres://clinic_app@host:5432/postgres"
                .to_owned(),
        ));
    }
    if let Some(cluster_user) = cluster_user
        && cluster_user != user
    {
        return Err(Error::Config {
            variable: "CLUSTER_USER",
            problem: format!(
                "it is {cluster_user:?}, but DATABASE_URL names a different user; make them \
                 agree, or unset CLUSTER_USER and let the URL decide, e.g. \
                 DATABASE_URL=postgres://{cluster_user}@host:5432/postgres"
            ),
        });
    }
    Ok((
        DatabaseUrl {
            options: Box::new(options),
            url: SecretString::from(url),
        },
        user,
    ))
}

/// Whether `url` names a user: `user@` before the host, or a `user=` parameter (sqlx reads
/// both; otherwise it falls back to `PGUSER` or the OS user).
fn url_names_user(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| !userinfo.split(':').next().unwrap_or("").is_empty());
    let query = after_scheme
        .split_once('?')
        .map_or("", |(_, query)| query.split('#').next().unwrap_or(""));
    let in_query = query.split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(key, value)| key == "user" && !value.is_empty())
    });
    in_userinfo || in_query
}

/// Parses an optional number in `range`, or returns `default`; `why` explains the upper
/// bound. Anything else, a number too large for `T` included, is an [`Error::Config`] naming
/// `variable`, the range, `why` and `default` as a value to set.
fn parse_number<T>(
    value: Option<String>,
    variable: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    why: &str,
) -> Result<T>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<T>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(Error::Config {
            variable,
            problem: format!(
                "{value:?} is not a whole number from {} to {} ({why}); set one, e.g. \
                 {variable}={default}",
                range.start(),
                range.end()
            ),
        }),
    }
}

/// [`parse_number`] for a number of seconds.
fn parse_secs(
    value: Option<String>,
    variable: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<u64>,
    why: &str,
) -> Result<Duration> {
    parse_number(value, variable, default.as_secs(), range, why).map(Duration::from_secs)
}

/// What is wrong with `.env`, without quoting it (it may hold secrets).
fn dotenv_problem(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(_, index) => format!(
            "a line could not be parsed (near character {index}); write one `NAME=value` per \
             line, e.g. CLUSTER_USER=admin, and quote values with spaces"
        ),
        dotenvy::Error::Io(io) => {
            format!("it could not be read ({io}); fix its permissions or remove it")
        }
        other => format!("it could not be loaded ({other}); fix or remove it"),
    }
}
