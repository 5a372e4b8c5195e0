//! One connected session: the configured database, reached the configured way, as a SeaORM
//! connection over the token-refreshing pool. Local, URL and DSQL targets differ only in how the
//! pool gets its password; everything after that is the same code.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::config::{Config, Target};
use crate::dsql::DATABASE;
use crate::dsql::endpoint::Endpoint;
use crate::dsql::pool::{RefreshPolicy, RefreshingPool};
use crate::dsql::token::IamTokenSource;
#[cfg(not(feature = "front-door"))]
use crate::dsql::token::StaticPassword;
use crate::error::Result;
#[cfg(not(feature = "front-door"))]
use crate::local::LocalServer;
#[cfg(feature = "front-door")]
use crate::local::stand_in::StandIn;
use crate::users::onboard_local;

/// What keeps a local target alive: the stand-in (server and front door), or, built without
/// the front door, the bare server.
#[cfg(feature = "front-door")]
type Local = StandIn;
/// What keeps a local target alive: the stand-in (server and front door), or, built without
/// the front door, the bare server.
#[cfg(not(feature = "front-door"))]
type Local = LocalServer;

/// A database connection and what keeps it alive (the local server, when there is one).
pub struct Session {
    pool: RefreshingPool,
    description: String,
    token_lifetime: Option<Duration>,
    // Dropped last: the server outlives the pool.
    local: Option<Local>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.description)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects as `config` says:
    /// - DSQL: TLS `verify-full` (trusting `PGSSLROOTCERT` if set, else Mozilla's root
    ///   certificates compiled into the binary, which include Amazon's), IAM tokens from the default AWS credential chain, refreshed in the background;
    /// - `DATABASE_URL`: the URL's own password and TLS settings;
    /// - neither: starts the local stand-in (`StandIn`: the server with the front door
    ///   before it), onboards a user other than `admin`, and connects exactly as to DSQL,
    ///   with IAM tokens signed by the stand-in's access key and TLS `verify-full` against
    ///   its CA. Built without the `front-door` feature, it connects to the bare server with
    ///   a password instead.
    ///
    /// A user other than `admin` works in `myschema` (`SET search_path` on every connection).
    pub async fn open(config: &Config) -> Result<Self> {
        match &config.target {
            Target::Dsql(endpoint, port) => {
                let root_cert = std::env::var_os("PGSSLROOTCERT").map(PathBuf::from);
                let source =
                    IamTokenSource::from_environment(endpoint, &config.user, config.token_lifetime)
                        .await?;
                let description = format!("Aurora DSQL at {endpoint}:{port}");
                Self::open_dsql(
                    config,
                    endpoint,
                    *port,
                    root_cert,
                    source,
                    description,
                    None,
                )
                .await
            }
            Target::Url(url) => {
                let options = url.options().clone();
                let description = format!(
                    "PostgreSQL at {}:{}",
                    options.get_host(),
                    options.get_port()
                );
                let schema = config.search_path();
                let pool = RefreshingPool::without_refresh(options, schema, &config.pool).await?;
                Ok(Self {
                    pool,
                    description,
                    token_lifetime: None,
                    local: None,
                })
            }
            #[cfg(feature = "front-door")]
            Target::Local => {
                // Reached exactly like DSQL: endpoint, port, IAM tokens, TLS verify-full.
                let stand_in = StandIn::start().await?;
                if !config.is_admin() {
                    onboard_local(stand_in.server(), DATABASE, &config.user).await?;
                }
                let endpoint =
                    crate::config::stand_in_endpoint().map_err(crate::dsql::Error::from)?;
                let source = IamTokenSource::with_sdk_config(
                    &endpoint,
                    &config.user,
                    config.token_lifetime,
                    stand_in.sdk_config().await,
                )?;
                let description = format!(
                    "the local DSQL stand-in (front door on {}:{}, PostgreSQL behind it)",
                    endpoint.host(),
                    stand_in.port()
                );
                let (port, root_cert) = (stand_in.port(), Some(stand_in.ca_path().to_path_buf()));
                Self::open_dsql(
                    config,
                    &endpoint,
                    port,
                    root_cert,
                    source,
                    description,
                    Some(stand_in),
                )
                .await
            }
            #[cfg(not(feature = "front-door"))]
            Target::Local => {
                let server = LocalServer::start().await?;
                let credentials = if config.is_admin() {
                    server.admin().clone()
                } else {
                    onboard_local(&server, DATABASE, &config.user).await?
                };
                let options = server.connect_options(DATABASE, &credentials);
                let source = StaticPassword(credentials.password);
                let schema = config.search_path();
                let policy = RefreshPolicy::default();
                let pool =
                    RefreshingPool::connect(options, schema, &config.pool, source, policy).await?;
                Ok(Self {
                    pool,
                    description: format!(
                        "the local PostgreSQL on {}:{} (built without the front door)",
                        server.host(),
                        server.port()
                    ),
                    token_lifetime: None,
                    local: Some(server),
                })
            }
        }
    }

    /// Connects to a DSQL endpoint (a cluster, or the stand-in's front door) with IAM tokens
    /// from `source`: TLS `verify-full` (against `root_cert` if given, else the Mozilla roots
    /// compiled in), refreshed in the background.
    async fn open_dsql(
        config: &Config,
        endpoint: &Endpoint,
        port: u16,
        root_cert: Option<PathBuf>,
        source: IamTokenSource,
        description: String,
        local: Option<Local>,
    ) -> Result<Self> {
        let schema = config.search_path();
        let options =
            crate::dsql::connect_options(endpoint, port, &config.user, root_cert.as_deref());
        let pool = RefreshingPool::connect(
            options,
            schema,
            &config.pool,
            source,
            RefreshPolicy::default(),
        )
        .await?;
        Ok(Self {
            pool,
            description,
            token_lifetime: Some(config.token_lifetime),
            local,
        })
    }

    /// The SeaORM connection.
    pub fn db(&self) -> DatabaseConnection {
        self.pool.database()
    }

    /// Where this session is connected, for people (no secrets).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// How long each IAM token is valid, when the session signs them (Aurora DSQL and the
    /// stand-in); `None` with a fixed password (`DATABASE_URL`).
    pub fn token_lifetime(&self) -> Option<Duration> {
        self.token_lifetime
    }

    /// The pool, with its refresh status.
    pub fn pool(&self) -> &RefreshingPool {
        &self.pool
    }

    /// The local stand-in this session runs on. `Some` exactly when the session was opened on
    /// the local target (neither `CLUSTER_ENDPOINT` nor `DATABASE_URL` set); then the pool
    /// reaches the stand-in's server only through its front door (TLS `verify-full`, IAM
    /// tokens), as [`open`](Self::open) says, and the stand-in (server included) keeps running
    /// until the session is closed. `None` for Aurora DSQL and for `DATABASE_URL`.
    #[cfg(feature = "front-door")]
    pub fn stand_in(&self) -> Option<&StandIn> {
        self.local.as_ref()
    }

    /// Closes the pool (ending its refresh task), then stops the local server if any.
    pub async fn close(self) {
        self.pool.close().await;
        drop(self.local);
    }
}
