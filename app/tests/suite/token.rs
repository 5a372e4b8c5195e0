//! IAM token generation, offline: fixed fake credentials, no AWS account, no network.
//!
//! The expected values come from the SigV4 presigned-URL format that DSQL tokens use
//! (`<host>/?Action=DbConnect[Admin]&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<key
//! id>/<yyyymmdd>/<region>/dsql/aws4_request&X-Amz-Date=<yyyymmddTHHMMSSZ>&X-Amz-Expires=<secs>
//! &X-Amz-SignedHeaders=host&X-Amz-Signature=<64 hex>`), not from our own output.
//!
//! The clock is the system clock: naming a fixed time source needs `aws-smithy-async`, which
//! this crate does not depend on. The tests therefore check `X-Amz-Date` against the time
//! before and after signing, and the credential scope's date against `X-Amz-Date`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::Error;
use app::config::{Config, Target};
use app::dsql::Error as DsqlError;
use app::dsql::endpoint::Endpoint;
use app::dsql::token::{IamTokenSource, StaticPassword, Token, TokenSource};
use app::url::token_for;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use secrecy::{ExposeSecret, SecretString};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "fake-secret";
const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";

fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test")
}

/// An SDK configuration with `credentials`, the system clock and nothing from the host's
/// environment.
async fn sdk_config(credentials: impl ProvideCredentials + 'static) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new("eu-west-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

fn endpoint() -> Endpoint {
    Endpoint::parse(HOST, None).expect("a DSQL host name")
}

/// The token's host and its query parameters, percent-decoded.
fn parse_token(token: &str) -> (String, HashMap<String, String>) {
    assert!(!token.contains("://"), "a token has no scheme: {token}");
    let (host, query) = token
        .split_once("/?")
        .unwrap_or_else(|| panic!("no `/?` in {token}"));
    let mut params = HashMap::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').expect("name=value");
        let previous = params.insert(decode(name), decode(value));
        assert!(previous.is_none(), "{name} twice in {token}");
    }
    (host.to_owned(), params)
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// `t` as SigV4's `yyyymmddTHHMMSSZ` (UTC).
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The app's token source for `admin` on [`endpoint`], 15-minute tokens signed with
/// `credentials`.
async fn admin_tokens(credentials: impl ProvideCredentials + 'static) -> IamTokenSource {
    IamTokenSource::with_sdk_config(
        &endpoint(),
        "admin",
        Duration::from_secs(900),
        sdk_config(credentials).await,
    )
    .expect("a token source")
}

/// Signs one token for `user` and checks everything SigV4 fixes about it. Returns the token
/// and its parameters.
async fn sign_and_check(
    user: &str,
    lifetime: Duration,
    action: &str,
) -> (Token, HashMap<String, String>) {
    let source = IamTokenSource::with_sdk_config(
        &endpoint(),
        user,
        lifetime,
        sdk_config(credentials()).await,
    )
    .expect("a token source");
    let before = amz_date(SystemTime::now());
    let token = source.token().await.expect("sign a token");
    let after = amz_date(SystemTime::now());

    let (host, params) = parse_token(token.secret.expose_secret());
    assert_eq!(host, HOST);
    assert_eq!(params["Action"], action);
    assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(params["X-Amz-Expires"], lifetime.as_secs().to_string());
    assert_eq!(params["X-Amz-SignedHeaders"], "host");
    let date = &params["X-Amz-Date"];
    assert!(
        before <= *date && *date <= after,
        "X-Amz-Date {date} is not between {before} and {after}"
    );
    // The credential scope: key id / date / region of the endpoint / service dsql.
    assert_eq!(
        params["X-Amz-Credential"],
        format!("{ACCESS_KEY}/{}/us-east-1/dsql/aws4_request", &date[..8])
    );
    let signature = &params["X-Amz-Signature"];
    assert_eq!(signature.len(), 64, "{signature}");
    assert!(
        signature
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(!token.secret.expose_secret().contains(SECRET_KEY));
    // X-Amz-Date has whole seconds, so the token is trusted for one second less than signed.
    assert_eq!(token.valid_for, Some(lifetime - Duration::from_secs(1)));
    (token, params)
}

#[tokio::test]
async fn admin_tokens_are_signed_for_db_connect_admin() {
    sign_and_check("admin", Duration::from_secs(900), "DbConnectAdmin").await;
}

#[tokio::test]
async fn other_users_tokens_are_signed_for_db_connect() {
    sign_and_check("clinic_app", Duration::from_secs(900), "DbConnect").await;
}

#[tokio::test]
async fn the_lifetime_is_the_tokens_expiry_up_to_a_week() {
    sign_and_check("admin", Duration::from_secs(1), "DbConnectAdmin").await;
    sign_and_check("admin", Duration::from_secs(3600), "DbConnectAdmin").await;
    sign_and_check("clinic_app", Duration::from_secs(604_800), "DbConnect").await;
}

#[tokio::test]
async fn the_region_is_the_endpoints_not_the_sdk_configs() {
    // sdk_config() says eu-west-1; the endpoint is in us-east-1 (checked in sign_and_check),
    // and an endpoint from another host follows its own region.
    let endpoint = Endpoint::parse("dsql.internal.example.com", Some("ap-southeast-2"))
        .expect("a valid endpoint");
    let source = IamTokenSource::with_sdk_config(
        &endpoint,
        "admin",
        Duration::from_secs(900),
        sdk_config(credentials()).await,
    )
    .expect("a token source");
    let token = source.token().await.expect("sign a token");
    let (host, params) = parse_token(token.secret.expose_secret());
    assert_eq!(host, "dsql.internal.example.com");
    assert!(
        params["X-Amz-Credential"].ends_with("/ap-southeast-2/dsql/aws4_request"),
        "{}",
        params["X-Amz-Credential"]
    );
}

#[tokio::test]
async fn temporary_credentials_add_their_session_token_and_shorten_validity() {
    let expiry = SystemTime::now() + Duration::from_secs(300);
    let temporary = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some("session-token".to_owned()),
        Some(expiry),
        "test",
    );
    let source = admin_tokens(temporary).await;
    let token = source.token().await.expect("sign a token");
    let (_, params) = parse_token(token.secret.expose_secret());
    assert_eq!(params["X-Amz-Security-Token"], "session-token");
    assert_eq!(params["X-Amz-Expires"], "900");
    let valid_for = token.valid_for.expect("IAM tokens expire");
    assert!(
        valid_for <= Duration::from_secs(300) && valid_for > Duration::from_secs(280),
        "{valid_for:?}"
    );
}

#[tokio::test]
async fn expired_credentials_are_refused_without_showing_them() {
    let expired = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        Some("session-token".to_owned()),
        Some(UNIX_EPOCH + Duration::from_secs(1)),
        "test",
    );
    let source = admin_tokens(expired).await;
    let error = source.token().await.expect_err("signing should fail");
    assert!(matches!(error, DsqlError::Token(_)), "{error:?}");
    assert!(error.to_string().contains("expired"), "{error}");
    assert_never_shows_secrets(&format!("{error} {error:?}"));
}

/// A credentials provider that always fails, as the default chain does with no credentials.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        )))
    }
}

#[tokio::test]
async fn missing_credentials_are_a_token_error_that_says_what_to_configure() {
    let source = admin_tokens(NoCredentials).await;
    let error = source.token().await.expect_err("signing should fail");
    let DsqlError::Token(message) = &error else {
        panic!("expected a token error, got {error:?}");
    };
    assert!(message.contains("no providers in chain"), "{message}");
    assert!(message.contains("AWS_PROFILE"), "{message}");
}

#[tokio::test]
async fn an_sdk_config_without_credentials_or_clock_is_refused_up_front() {
    let no_credentials = SdkConfig::builder().build();
    let error = IamTokenSource::with_sdk_config(
        &endpoint(),
        "admin",
        Duration::from_secs(900),
        no_credentials,
    )
    .expect_err("should be refused");
    assert!(matches!(error, DsqlError::Token(_)), "{error:?}");

    let no_clock = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials()))
        .build();
    let error =
        IamTokenSource::with_sdk_config(&endpoint(), "admin", Duration::from_secs(900), no_clock)
            .expect_err("should be refused");
    assert!(matches!(error, DsqlError::Token(_)), "{error:?}");
    assert_never_shows_secrets(&format!("{error} {error:?}"));
}

#[tokio::test]
async fn a_lifetime_dsql_would_not_honour_is_refused() {
    for lifetime in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(604_801),
    ] {
        let error = IamTokenSource::with_sdk_config(
            &endpoint(),
            "admin",
            lifetime,
            sdk_config(credentials()).await,
        )
        .expect_err("should be refused");
        assert!(
            matches!(
                error,
                DsqlError::Setting {
                    setting: "token lifetime",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}

fn assert_never_shows_secrets(shown: &str) {
    assert!(!shown.contains(SECRET_KEY), "secret key shown: {shown}");
    assert!(
        !shown.contains("session-token"),
        "session token shown: {shown}"
    );
    assert!(!shown.contains("X-Amz-Signature"), "a token shown: {shown}");
}

#[tokio::test]
async fn debug_output_never_shows_credentials_or_tokens() {
    let source = IamTokenSource::with_sdk_config(
        &endpoint(),
        "admin",
        Duration::from_secs(900),
        sdk_config(credentials()).await,
    )
    .expect("a token source");
    let token = source.token().await.expect("sign a token");
    let signature = parse_token(token.secret.expose_secret()).1["X-Amz-Signature"].clone();
    for shown in [
        format!("{source:?}"),
        format!("{source:#?}"),
        format!("{token:?}"),
        format!("{:?}", token.secret),
    ] {
        assert_never_shows_secrets(&shown);
        assert!(!shown.contains(&signature), "signature shown: {shown}");
        assert!(!shown.contains(ACCESS_KEY), "access key id shown: {shown}");
    }
    assert!(format!("{source:?}").contains(HOST));
}

#[tokio::test]
async fn a_static_password_never_expires() {
    let source = StaticPassword(SecretString::from("hunter2"));
    let token = source.token().await.expect("sign a token");
    assert_eq!(token.secret.expose_secret(), "hunter2");
    assert_eq!(token.valid_for, None);
    assert!(!format!("{source:?} {token:?}").contains("hunter2"));
}

#[tokio::test]
async fn token_for_needs_a_dsql_target() {
    for target in [Target::Local, {
        let config = Config::from_vars(|name| {
            (name == "DATABASE_URL").then(|| "postgres://admin:hunter2@127.0.0.1/postgres".into())
        })
        .expect("a URL configuration");
        config.target
    }] {
        let config = Config {
            target,
            ..Config::from_vars(|_| None).expect("the defaults")
        };
        let error = token_for(&config).await.expect_err("no DSQL target");
        let Error::Config { variable, problem } = &error else {
            panic!("expected a Config error, got {error:?}");
        };
        assert_eq!(*variable, "CLUSTER_ENDPOINT");
        assert!(problem.contains("CLUSTER_ENDPOINT="), "{problem}");
        assert!(!problem.contains("hunter2"), "{problem}");
    }
}
