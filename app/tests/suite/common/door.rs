//! Front doors before the test binary's shared server, reached the way the app reaches DSQL:
//! one of a test's own ([`door`]), or the binary's shared one ([`shared`]) that the common
//! connection helpers go through.

use std::sync::Arc;
use std::time::Duration;

use app::dsql::endpoint::Endpoint;
use app::dsql::pool::PoolSettings;
use app::dsql::pool::{Clock, RefreshPolicy, RefreshingPool, SystemClock};
use app::dsql::token::{IamTokenSource, TokenSource};
use app::local::fixed_credentials;
use app::local::front_door::FrontDoor;
use app::local::front_door::conflicts::CommitFailures;
use app::local::front_door::listen::Listeners;
use app::local::front_door::relay::Limits;
use app::local::stand_in::OpenedDoor;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

use super::clock::ManualClock;
use super::server;

/// The tests' endpoint name: it must resolve, and the certificate names it.
pub const HOST: &str = "localhost";
/// The stand-in's Region, which tokens are signed for.
pub const REGION: &str = app::local::STAND_IN_REGION;

/// A front door before the binary's shared server, knowing one access key; its CA file.
pub struct Door {
    port: u16,
    pub ca_file: tempfile::NamedTempFile,
    /// The access key the door knows, and its secret.
    pub access_key_id: String,
    pub secret: SecretString,
    /// Makes chosen sessions' next commits fail.
    pub failures: CommitFailures,
    /// The front door itself, for a test's own door; the shared door's lives on its thread.
    front_door: Option<FrontDoor>,
}

/// A new front door with DSQL's limits, for this test only (stopped when dropped).
pub async fn door() -> Door {
    door_with(Limits::default()).await
}

/// A new front door with `limits`, for this test only (stopped when dropped).
pub async fn door_with(limits: Limits) -> Door {
    let (front_door, mut door) = start(limits).await;
    door.front_door = Some(front_door);
    door
}

/// A front door of this test's own, a fresh database, and a session of `admin` in it through
/// the door: the set-up of most front-door tests.
pub async fn admin_in_fresh_database(purpose: &str) -> (Door, String, PgConnection) {
    let door = door().await;
    let database = super::fresh_database(purpose).await;
    let session = door.session(&database, app::local::ADMIN_USER).await;
    (door, database, session)
}

/// The test binary's shared front door, started on first use on a thread and runtime of its
/// own, so that it outlives the runtime of the test that started it. DSQL's limits, except that
/// DDL gives other sessions no `OC001`: the tests on it check other rules and share pools
/// across their own DDL; `front_door.rs` (its own doors) and the CLI tests (the app's own
/// stand-in) run with it on.
pub async fn shared() -> &'static Door {
    static SHARED: OnceCell<Door> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            // The server is started, if need be, on the caller's runtime as for every test.
            server().await;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a runtime for the shared front door");
                runtime.block_on(async move {
                    let limits = Limits {
                        schema_conflicts: false,
                        ..Limits::default()
                    };
                    let (front_door, door) = start(limits).await;
                    let _ = sender.send(door);
                    // Serves until the test binary exits.
                    let _keep = front_door;
                    std::future::pending::<()>().await;
                });
            });
            receiver.await.expect("the shared front door started")
        })
        .await
}

/// A front door with `limits` before the shared server, opened as the stand-in opens its own
/// ([`OpenedDoor`]), and its description (without the door itself).
async fn start(limits: Limits) -> (FrontDoor, Door) {
    let server = server().await;
    let listener = Listeners::bind(0).await.expect("a free port");
    let opened = OpenedDoor::open(server, listener, &[HOST, "127.0.0.1", "::1"], limits)
        .expect("open the front door");
    let ca_file = tempfile::NamedTempFile::new().expect("a CA file");
    opened.ca.write_ca(ca_file.path()).expect("write the CA");
    let door = Door {
        port: opened.door.port(),
        ca_file,
        failures: opened.door.commit_failures(),
        access_key_id: opened.access_key_id,
        secret: opened.secret_access_key,
        front_door: None,
    };
    (opened.door, door)
}

/// The stand-in's endpoint: `localhost` in [`REGION`].
pub fn endpoint() -> Endpoint {
    Endpoint::parse(HOST, Some(REGION)).expect("the endpoint")
}

impl Door {
    /// The front door itself, for a test's own door ([`door`], [`door_with`]).
    pub fn own(&self) -> &FrontDoor {
        self.front_door
            .as_ref()
            .expect("a test's own front door, not the shared one")
    }

    /// The front door's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the app connects to DSQL (its own options), pointed at the front door.
    pub fn options(&self, database: &str, user: &str) -> PgConnectOptions {
        app::dsql::connect_options(&endpoint(), self.port, user, Some(self.ca_file.path()))
            .database(database)
    }

    /// The app's own IAM token source, with the stand-in's key (or `secret` instead).
    pub async fn tokens(
        &self,
        user: &str,
        secret: &SecretString,
        lifetime: Duration,
    ) -> IamTokenSource {
        signer(&self.access_key_id, user, secret, None, lifetime).await
    }

    /// The app's own IAM token source for `user` with the stand-in's key, tokens valid for 15
    /// minutes (DSQL's default): what a legitimate client signs.
    pub async fn good_tokens(&self, user: &str) -> IamTokenSource {
        self.tokens(user, &self.secret, Duration::from_secs(900))
            .await
    }

    /// Options for `user` with a token valid for an hour as the password: what the common
    /// connection helpers use, so a pool of them can open new connections all test long.
    pub async fn options_with_token(&self, database: &str, user: &str) -> PgConnectOptions {
        self.options(database, user)
            .password(&self.token(user).await)
    }

    /// A token for `user` with the stand-in's key, valid for an hour.
    pub async fn token(&self, user: &str) -> String {
        let source = self
            .tokens(user, &self.secret, Duration::from_secs(3600))
            .await;
        let token = source.token().await.expect("a token");
        token.secret.expose_secret().to_owned()
    }

    /// A `DATABASE_URL` for `user` through this front door, as a client of DSQL writes one: a
    /// token valid for an hour as the (percent-encoded) password, TLS `verify-full` against the
    /// door's CA.
    pub async fn url(&self, database: &str, user: &str) -> String {
        let token = self.token(user).await;
        let password =
            percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC);
        format!(
            "postgres://{user}:{password}@{HOST}:{}/{database}?sslmode=verify-full&sslrootcert={}",
            self.port,
            self.ca_file.path().display()
        )
    }

    /// One connection as `user`, with a token valid for an hour ([`Door::options_with_token`]).
    pub async fn session(&self, database: &str, user: &str) -> PgConnection {
        PgConnection::connect_with(&self.options_with_token(database, user).await)
            .await
            .unwrap_or_else(|e| panic!("{user} logs in through the front door: {e}"))
    }

    /// The app's refreshing pool through this front door as `user` (in `myschema` unless
    /// `admin`), with tokens from `source`.
    pub async fn pool(
        &self,
        database: &str,
        user: &str,
        settings: &PoolSettings,
        source: impl TokenSource,
    ) -> RefreshingPool {
        self.pool_on(database, user, settings, source, Arc::new(SystemClock))
            .await
    }

    /// [`Door::pool`] with its token refreshes timed by `clock`.
    pub async fn pool_on(
        &self,
        database: &str,
        user: &str,
        settings: &PoolSettings,
        source: impl TokenSource,
        clock: Arc<dyn Clock>,
    ) -> RefreshingPool {
        let schema = (user != app::local::ADMIN_USER).then_some(app::dsql::USER_SCHEMA);
        RefreshingPool::connect_with_clock(
            self.options(database, user),
            schema,
            settings,
            source,
            RefreshPolicy::default(),
            clock,
        )
        .await
        .unwrap_or_else(|e| panic!("{user}'s pool through the front door: {e}"))
    }

    /// [`Door::pool_on`] with two connections, on a [`ManualClock`] of its own, so that the test
    /// brings each token refresh; the clock.
    pub async fn pool_on_manual_clock(
        &self,
        database: &str,
        user: &str,
        source: impl TokenSource,
    ) -> (RefreshingPool, Arc<ManualClock>) {
        let settings = PoolSettings {
            max_connections: 2,
            ..PoolSettings::default()
        };
        let clock = ManualClock::new();
        let pool = self
            .pool_on(database, user, &settings, source, clock.shared())
            .await;
        (pool, clock)
    }

    /// One connection with a token from `source`.
    pub async fn connect(
        &self,
        database: &str,
        user: &str,
        source: &IamTokenSource,
    ) -> Result<PgConnection, sqlx::Error> {
        let token = source.token().await.expect("a token");
        PgConnection::connect_with(
            &self
                .options(database, user)
                .password(token.secret.expose_secret()),
        )
        .await
    }
}

/// The app's own IAM token source for the access key `access_key_id` with `secret`, and
/// `session_token` if given (the front door does not check it with STS, as no stand-in can).
pub async fn signer(
    access_key_id: &str,
    user: &str,
    secret: &SecretString,
    session_token: Option<&str>,
    lifetime: Duration,
) -> IamTokenSource {
    let sdk_config =
        fixed_credentials(REGION, access_key_id, secret.expose_secret(), session_token).await;
    IamTokenSource::with_sdk_config(&endpoint(), user, lifetime, sdk_config)
        .expect("a token source")
}
