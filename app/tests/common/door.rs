//! A front door before the test binary's shared server, reached the way the app reaches DSQL.

use std::time::Duration;

use app::dsql::endpoint::Endpoint;
use app::dsql::token::{IamTokenSource, TokenSource, fixed_credentials};
use app::local::front_door::FrontDoor;
use app::local::front_door::iam::TokenVerifier;
use app::local::front_door::policy::DsqlRules;
use app::local::front_door::tls::LocalCa;
use app::secret::Secret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::server;

/// The stand-in's endpoint name: it must resolve, and the certificate names it.
pub const HOST: &str = "localhost";
pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "AKIDLOCALSTANDIN01";

/// A front door before the binary's shared server, knowing one access key; its CA file.
pub struct Door {
    pub door: FrontDoor,
    pub ca_file: tempfile::NamedTempFile,
    pub secret: Secret,
}

pub async fn door() -> Door {
    let server = server().await;
    let ca = LocalCa::generate(&[HOST, "127.0.0.1", "::1"]).expect("a CA");
    let ca_file = tempfile::NamedTempFile::new().expect("a CA file");
    ca.write_ca(ca_file.path()).expect("write the CA");
    let secret = Secret::random();
    let verifier = TokenVerifier::new(HOST, REGION, [(ACCESS_KEY.to_owned(), secret.clone())]);
    let door = FrontDoor::start(
        server.backend(),
        ca.server_config().expect("a TLS configuration"),
        verifier,
        DsqlRules,
    )
    .await
    .expect("start the front door");
    Door {
        door,
        ca_file,
        secret,
    }
}

/// The stand-in's endpoint: `localhost` in [`REGION`].
pub fn endpoint() -> Endpoint {
    Endpoint::parse(HOST, Some(REGION)).expect("the endpoint")
}

impl Door {
    /// How the app connects to DSQL (its own options), pointed at the front door.
    pub fn options(&self, database: &str, user: &str) -> PgConnectOptions {
        app::dsql::connect_options(
            &endpoint(),
            self.door.port(),
            user,
            Some(self.ca_file.path()),
        )
        .database(database)
    }

    /// The app's own IAM token source, with the stand-in's key (or `secret` instead).
    pub async fn tokens(&self, user: &str, secret: &Secret, lifetime: Duration) -> IamTokenSource {
        signer(user, secret, None, lifetime).await
    }

    /// One connection with a token from `source`.
    pub async fn connect(
        &self,
        database: &str,
        user: &str,
        source: &IamTokenSource,
    ) -> Result<PgConnection, sqlx::Error> {
        let token = source.token().await.expect("a token");
        PgConnection::connect_with(&self.options(database, user).password(token.secret.expose()))
            .await
    }
}

/// The app's own IAM token source for the front door's access key with `secret`, and
/// `session_token` if given (the front door does not check it with STS, as no stand-in can).
pub async fn signer(
    user: &str,
    secret: &Secret,
    session_token: Option<&str>,
    lifetime: Duration,
) -> IamTokenSource {
    let sdk_config = fixed_credentials(REGION, ACCESS_KEY, secret.expose(), session_token).await;
    IamTokenSource::with_sdk_config(&endpoint(), user, lifetime, sdk_config)
        .expect("a token source")
}
