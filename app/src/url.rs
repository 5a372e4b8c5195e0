//! An IAM token ([`token_for`]), and one connection URL for the tools that take one (`sea-orm-cli`, `psql`, sqlx): the configured
//! target with, on Aurora DSQL, a fresh IAM token as its password. `app url` prints it, so that
//! `DATABASE_URL="$(cargo run -q -p app -- url)" sea-orm-cli generate entity …` reaches a
//! cluster, the local stand-in and a plain PostgreSQL alike, with the token passed through the
//! environment rather than a command line other users of the machine could read.

use std::path::Path;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, Target};
use crate::dsql::DATABASE;
use crate::dsql::token::{IamTokenSource, TokenSource};
use crate::error::{Error, Result};
/// How long the target may take to accept a TCP connection before it counts as not running.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL for `config`'s target: on DSQL `postgres://USER:TOKEN@HOST:PORT/postgres` (HOST:
/// the endpoint's [`crate::dsql::endpoint::Endpoint::address`], the loopback for the
/// stand-in) with `sslmode=verify-full`, `sslrootcert` when `root_cert` is given
/// (`PGSSLROOTCERT`), and, for a user other than `admin`, `options=-c search_path=myschema`;
/// for `DATABASE_URL`, that URL.
/// Every part is percent-encoded. Fails with the fix when no target is configured or nothing
/// answers at its address, before a token is made.
pub async fn connection_url(config: &Config, root_cert: Option<&Path>) -> Result<SecretString> {
    match &config.target {
        Target::Local => Err(Error::Config {
            variable: "CLUSTER_ENDPOINT",
            problem: "neither it nor DATABASE_URL is set, and a URL needs a database that \
                      outlives this command: start the local stand-in in another shell with \
                      `cargo run -p app -- local` and run the export lines it prints, or set \
                      CLUSTER_ENDPOINT to your cluster (or DATABASE_URL to a PostgreSQL)"
                .to_owned(),
        }),
        Target::Url(url) => {
            let options = url.options();
            if options.get_socket().is_none() {
                ensure_reachable("DATABASE_URL", options.get_host(), options.get_port()).await?;
            }
            Ok(url.url().clone())
        }
        Target::Dsql(endpoint, port) => {
            ensure_reachable("CLUSTER_ENDPOINT", endpoint.address(), *port).await?;
            let token = token_for(config).await?;
            let mut url = format!(
                "postgres://{}:{}@{}:{port}/{DATABASE}?sslmode=verify-full",
                encode(&config.user),
                encode(token.expose_secret()),
                endpoint.address(),
            );
            if let Some(root_cert) = root_cert {
                url.push_str("&sslrootcert=");
                url.push_str(&encode(&root_cert.to_string_lossy()));
            }
            if let Some(schema) = config.search_path() {
                url.push_str("&options=");
                url.push_str(&encode(&format!("-c search_path={schema}")));
            }
            Ok(SecretString::from(url))
        }
    }
}

/// One IAM token for `config`'s DSQL cluster and user, from the default AWS credential chain.
/// This is what the `app token` command prints; nothing else shows a token.
///
/// For a target other than [`Target::Dsql`], an [`Error::Config`] naming `CLUSTER_ENDPOINT`:
/// only DSQL uses IAM tokens.
pub async fn token_for(config: &Config) -> Result<SecretString> {
    match &config.target {
        Target::Dsql(endpoint, _) => {
            let source =
                IamTokenSource::from_environment(endpoint, &config.user, config.token_lifetime)
                    .await?;
            Ok(source.token().await?.secret)
        }
        Target::Url(_) | Target::Local => Err(Error::Config {
            variable: "CLUSTER_ENDPOINT",
            problem: "it is not set, and IAM tokens exist only for Aurora DSQL; set it to your \
                      cluster's host name, e.g. \
                      CLUSTER_ENDPOINT=abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws (and \
                      unset DATABASE_URL)"
                .to_owned(),
        }),
    }
}

/// `text` with everything but ASCII letters and digits percent-encoded.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// Fails, naming `variable` and what to start, unless `host:port` accepts a TCP connection.
async fn ensure_reachable(variable: &'static str, host: &str, port: u16) -> Result<()> {
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(REACH_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(unreachable(variable, host, port, &error.to_string())),
        Err(_) => Err(unreachable(variable, host, port, "no answer within 5 s")),
    }
}

fn unreachable(variable: &'static str, host: &str, port: u16, why: &str) -> Error {
    Error::Config {
        variable,
        problem: format!(
            "nothing answers at {host}:{port} ({why}): if it is the local stand-in, start it \
             with `cargo run -p app -- local` in another shell and run the export lines it \
             prints; otherwise check the host and port"
        ),
    }
}
