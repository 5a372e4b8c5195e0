//! Passwords for new connections: a fixed one, or Aurora DSQL IAM authentication tokens.
//!
//! An IAM token is a SigV4-presigned URL without its scheme,
//! `<host>/?Action=DbConnect[Admin]&X-Amz-Algorithm=…&X-Amz-Credential=…&X-Amz-Date=…&X-Amz-Expires=…&X-Amz-SignedHeaders=host&X-Amz-Signature=…`,
//! signed locally with AWS credentials (no network call, unless the credentials themselves
//! have to be fetched). DSQL accepts it as the password until it expires. It is needed only to
//! open a connection; an open connection stays open when its token expires.
//!
//! Tokens are wrapped in a [`SecretString`] as soon as they exist, so they never reach a log,
//! an error message or `Debug` output.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dsql::auth_token::{self, AuthTokenGenerator};
use aws_smithy_http_client::tls;
use secrecy::SecretString;

use super::ADMIN_USER;
use super::endpoint::Endpoint;
use super::error::{Error, Result};

/// How long a token is valid unless asked otherwise: 15 minutes, the AWS CLI's and SDKs'
/// default.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The longest IAM token DSQL accepts: one week.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(604_800);

/// Where the pool's password comes from.
pub trait TokenSource: Send + Sync + 'static {
    /// A password for new connections, and how long it stays valid (None = forever).
    fn token(&self) -> impl Future<Output = Result<Token>> + Send;
}

/// A password and how long it can be used to open connections.
#[derive(Debug, Clone)]
pub struct Token {
    /// The password; its `Debug` prints `[REDACTED]`.
    pub secret: SecretString,
    /// How long from now the password is accepted for new connections; `None` means until
    /// someone changes it.
    pub valid_for: Option<Duration>,
}

/// A fixed password that never expires: the password of a `DATABASE_URL`, or of the local
/// stand-in. Its `Debug` prints `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct StaticPassword(
    /// The password, sent as it is at every login.
    pub SecretString,
);

impl TokenSource for StaticPassword {
    /// Always the same password, with `valid_for` `None`. Never fails.
    async fn token(&self) -> Result<Token> {
        Ok(Token {
            secret: self.0.clone(),
            valid_for: None,
        })
    }
}

/// Which IAM action a token is signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigningAction {
    /// `dsql:DbConnectAdmin`, the only action that admits `admin`.
    DbConnectAdmin,
    /// `dsql:DbConnect`, for every other role.
    DbConnect,
}

/// Makes DSQL IAM authentication tokens for one endpoint and user with `aws-sdk-dsql`'s
/// `AuthTokenGenerator`. Each [`TokenSource::token`] call signs a fresh token: for `admin`
/// with `dsql:DbConnectAdmin`, for any other user with `dsql:DbConnect` (DSQL admits `admin`
/// only with the former). Its `Debug` shows the endpoint, user, action and lifetime, never
/// credentials or tokens.
pub struct IamTokenSource {
    endpoint: Endpoint,
    user: String,
    action: SigningAction,
    lifetime: Duration,
    sdk_config: SdkConfig,
}

impl IamTokenSource {
    /// A source that signs with the default AWS credential chain (environment variables,
    /// shared config and credentials files including SSO and `credential_process`, web
    /// identity, the container and instance-metadata endpoints), for the endpoint's region.
    ///
    /// Loading the configuration makes no network call; credentials are resolved (and, for
    /// SSO, STS or instance metadata, fetched) at the first [`TokenSource::token`] call, so a
    /// missing credential shows up there as an [`Error::Token`]. `lifetime` must be 1 s to
    /// one week, else [`Error::Setting`].
    pub async fn from_environment(
        endpoint: &Endpoint,
        user: &str,
        lifetime: Duration,
    ) -> Result<Self> {
        check_lifetime(lifetime)?;
        // aws-config is built without its default HTTPS client (that feature would bring in
        // rustls with the aws-lc provider, next to sqlx's ring, and two rustls crypto providers
        // in one binary make rustls' default config builders panic). The credential providers
        // that call out (SSO, STS, instance metadata, containers) need a client, so build one
        // on rustls with an explicit ring provider.
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(endpoint.region().to_owned()))
            .http_client(http_client)
            .load()
            .await;
        Self::with_sdk_config(endpoint, user, lifetime, sdk_config)
    }

    /// A source that signs with `sdk_config`'s credentials provider and time source (the
    /// region is always the endpoint's). For tests: fixed credentials and a fixed clock give
    /// reproducible tokens without AWS.
    ///
    /// Fails with [`Error::Token`] if `sdk_config` has no credentials provider or no time
    /// source (both are needed to sign), and with [`Error::Setting`] if `lifetime` is not
    /// 1 s to one week.
    pub fn with_sdk_config(
        endpoint: &Endpoint,
        user: &str,
        lifetime: Duration,
        sdk_config: SdkConfig,
    ) -> Result<Self> {
        check_lifetime(lifetime)?;
        if sdk_config.credentials_provider().is_none() {
            return Err(Error::Token(
                "the AWS configuration has no credentials provider; configure credentials \
                 (e.g. AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .to_owned(),
            ));
        }
        if sdk_config.time_source().is_none() {
            return Err(Error::Token(
                "the AWS configuration has no time source, which signing needs".to_owned(),
            ));
        }
        let action = if user == ADMIN_USER {
            SigningAction::DbConnectAdmin
        } else {
            SigningAction::DbConnect
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            user: user.to_owned(),
            action,
            lifetime,
            sdk_config,
        })
    }

    /// The endpoint tokens are signed for.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The database user the tokens are for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// How long each token is valid, as requested (`X-Amz-Expires`).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for IamTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamTokenSource")
            .field("host", &self.endpoint.host())
            .field("region", &self.endpoint.region())
            .field("user", &self.user)
            .field("action", &self.action)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// How finely a token's signing time is recorded: SigV4's `X-Amz-Date` has whole seconds.
const SIGNING_TIME_GRANULARITY: Duration = Duration::from_secs(1);

impl TokenSource for IamTokenSource {
    /// Signs a fresh token. `valid_for` is the requested lifetime, or less when the AWS
    /// credentials expire sooner: a token signed with temporary credentials stops working
    /// when they do, so the pool must renew it by then. Either way one second less: the
    /// signing time in the token (`X-Amz-Date`) is truncated to the whole second, so the token
    /// expires up to a second before `now + lifetime`.
    ///
    /// Fails with [`Error::Token`] when no credentials can be found or they have expired, or
    /// signing fails; the message never contains the token or the secret key.
    async fn token(&self) -> Result<Token> {
        let provider = self.sdk_config.credentials_provider().ok_or_else(|| {
            Error::Token("the AWS configuration has no credentials provider".to_owned())
        })?;
        let credentials = provider.provide_credentials().await.map_err(|error| {
            Error::Token(format!(
                "no AWS credentials ({}); configure them, e.g. `aws sso login` with \
                 AWS_PROFILE set, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                error_chain(&error)
            ))
        })?;
        let clock = self
            .sdk_config
            .time_source()
            .ok_or_else(|| Error::Token("the AWS configuration has no time source".to_owned()))?;
        let now = clock.now();
        let valid_for = match credentials.expiry() {
            None => self.lifetime.saturating_sub(SIGNING_TIME_GRANULARITY),
            Some(expiry) => match expiry.duration_since(now) {
                Ok(left) if !left.is_zero() => left
                    .min(self.lifetime)
                    .saturating_sub(SIGNING_TIME_GRANULARITY),
                _ => {
                    return Err(Error::Token(
                        "the AWS credentials have expired; refresh them (e.g. `aws sso login`)"
                            .to_owned(),
                    ));
                }
            },
        };

        let generator_config = auth_token::Config::builder()
            .hostname(self.endpoint.host())
            .region(Region::new(self.endpoint.region().to_owned()))
            .expires_in(self.lifetime.as_secs())
            .credentials(credentials)
            .build()
            .map_err(|error| Error::Token(error_chain(error.as_ref())))?;
        let generator = AuthTokenGenerator::new(generator_config);
        let signed = match self.action {
            SigningAction::DbConnectAdmin => {
                generator
                    .db_connect_admin_auth_token(&self.sdk_config)
                    .await
            }
            SigningAction::DbConnect => generator.db_connect_auth_token(&self.sdk_config).await,
        }
        .map_err(|error| Error::Token(error_chain(error.as_ref())))?;
        let secret = SecretString::from(signed.as_str());
        drop(signed);

        tracing::debug!(
            host = self.endpoint.host(),
            user = %self.user,
            action = ?self.action,
            valid_for_secs = valid_for.as_secs(),
            "signed a DSQL authentication token"
        );
        Ok(Token {
            secret,
            valid_for: Some(valid_for),
        })
    }
}

/// Refuses a token lifetime DSQL would not honour.
fn check_lifetime(lifetime: Duration) -> Result<()> {
    if lifetime.as_secs() == 0 || lifetime > MAX_TOKEN_LIFETIME {
        return Err(Error::Setting {
            setting: "token lifetime",
            problem: format!(
                "{lifetime:?} is out of range; DSQL accepts 1 to 604800 seconds (one week), \
                 e.g. 900"
            ),
        });
    }
    Ok(())
}

/// `error` and its sources, joined with `: ` (Display only; `Debug` of SDK errors can be
/// verbose and is not needed).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
