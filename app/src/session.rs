//! One connected session: the configured database, reached the configured way, as a SeaORM
//! connection over the token-refreshing pool. Local, URL and DSQL targets differ only in how the
//! pool gets its password; everything after that is the same code.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::DatabaseConnection;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::config::{Config, Target};
use crate::dsql::pool::{RefreshPolicy, RefreshingPool};
use crate::dsql::token::{CountingSource, IamTokenSource, StaticPassword};
use crate::error::Result;
use crate::local::{DATABASE, LocalServer};

/// A database connection and what keeps it alive (the local server, when there is one).
pub struct Session {
    pool: RefreshingPool,
    description: String,
    tokens_issued: Arc<AtomicU64>,
    // Dropped last: the server outlives the pool.
    local: Option<LocalServer>,
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
    /// - neither: starts the local stand-in and, for a user other than `admin`, onboards that
    ///   user the way `app user create` does.
    ///
    /// A user other than `admin` works in `myschema` (`SET search_path` on every connection).
    pub async fn open(config: &Config) -> Result<Self> {
        let schema = (!config.is_admin()).then(|| config.schema());
        let policy = RefreshPolicy::default();
        match &config.target {
            Target::Dsql(endpoint, port) => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(endpoint.host())
                    .port(*port)
                    .username(&config.user)
                    .database(DATABASE)
                    .ssl_mode(PgSslMode::VerifyFull)
                    .application_name("seaorm-dsql-clinic");
                if let Some(root) = std::env::var_os("PGSSLROOTCERT") {
                    options = options.ssl_root_cert(root);
                }
                let source = CountingSource::new(
                    IamTokenSource::from_environment(endpoint, &config.user, config.token_lifetime)
                        .await?,
                );
                let tokens_issued = source.issued();
                let pool =
                    RefreshingPool::connect(options, schema, &config.pool, source, policy).await?;
                Ok(Self {
                    pool,
                    description: format!("Aurora DSQL at {endpoint}:{port}"),
                    tokens_issued,
                    local: None,
                })
            }
            Target::Url(url) => {
                let options = url.options().clone();
                let description = format!(
                    "PostgreSQL at {}:{}",
                    options.get_host(),
                    options.get_port()
                );
                let pool = RefreshingPool::without_refresh(options, schema, &config.pool).await?;
                Ok(Self {
                    pool,
                    description,
                    tokens_issued: Arc::default(),
                    local: None,
                })
            }
            Target::Local => {
                let server = LocalServer::start().await?;
                let credentials = if config.is_admin() {
                    server.admin().clone()
                } else {
                    server.create_user(DATABASE, &config.user).await?
                };
                let options = server.connect_options(DATABASE, &credentials);
                let source = CountingSource::new(StaticPassword(credentials.password));
                let tokens_issued = source.issued();
                let pool =
                    RefreshingPool::connect(options, schema, &config.pool, source, policy).await?;
                Ok(Self {
                    pool,
                    description: format!(
                        "the local DSQL stand-in (PostgreSQL on {}:{})",
                        server.host(),
                        server.port()
                    ),
                    tokens_issued,
                    local: Some(server),
                })
            }
        }
    }

    /// The SeaORM connection.
    pub fn db(&self) -> DatabaseConnection {
        self.pool.database()
    }

    /// Where this session is connected, for people (no secrets).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The pool, with its refresh status.
    pub fn pool(&self) -> &RefreshingPool {
        &self.pool
    }

    /// How many passwords or tokens the pool's token source has handed out since the session
    /// opened: one at connect time plus one per refresh (none for `DATABASE_URL`, whose
    /// password is in the URL).
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Acquire)
    }

    /// Closes the pool (ending its refresh task), then stops the local server if any.
    pub async fn close(self) {
        self.pool.close().await;
        drop(self.local);
    }
}
