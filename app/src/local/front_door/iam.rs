//! Checking Aurora DSQL IAM authentication tokens the way DSQL does, against access keys the
//! stand-in knows.
//!
//! A token is a SigV4-presigned `GET https://<host>/?Action=DbConnect[Admin]` for the service
//! `dsql`, without its scheme:
//! `<host>/?Action=…&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<key id>%2F<yyyymmdd>%2F<region>%2Fdsql%2Faws4_request&X-Amz-Date=<yyyymmddTHHMMSSZ>&X-Amz-Expires=<secs>[&X-Amz-Security-Token=…]&X-Amz-SignedHeaders=host&X-Amz-Signature=<64 hex>`.
//! [`TokenVerifier::verify`] checks every part of it, then has `aws-sigv4` presign the same
//! request, as aws-sdk-dsql's `AuthTokenGenerator` does, with the secret access key of the
//! token's key id, and compares the two signatures in constant time. The signing is AWS's own
//! code, so the verifier agrees with the SDK by construction.
//!
//! The host in the signed request is the verifier's host in lower case, as DSQL signs for its
//! endpoint name. (aws-sdk-dsql, given a host name with capitals, writes it in lower case in
//! the token but signs the spelling it was given, so such a token is refused; the app's
//! endpoints are always lower case.)
//!
//! A refused token gets one answer, whatever check failed: DSQL's `FATAL` [`ACCESS_DENIED`] as
//! [`INVALID_PASSWORD`], without a hint, so that a stranger learns neither which check failed
//! (an access key the stand-in knows, a signature that almost matched) nor the server's clock.
//! Which check failed is the [`TokenRefusal`]'s reason, for the stand-in's own log.
//!
//! What the stand-in cannot check: a session token (`X-Amz-Security-Token`) is covered by the
//! signature, but not validated with STS, and there are no IAM policies; an access key the
//! verifier knows may use both actions.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::SigningOutput;
use aws_sigv4::http_request::{
    self, SignableBody, SignableRequest, SignatureLocation, SigningInstructions, SigningSettings,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use subtle::ConstantTimeEq;

use secrecy::{ExposeSecret, SecretString};

/// SQLSTATE `invalid_password`: the answer to every token refused. DSQL's own SQLSTATE for a
/// refused login is not recorded (dsql-facts.md §3.5 has its message only); this is the
/// stand-in's choice, PostgreSQL's for a password it does not accept.
pub const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE `invalid_authorization_specification`: a valid token, for a role that may not log
/// in (not mapped with `AWS IAM GRANT`). Not recorded from DSQL either.
pub const INVALID_AUTHORIZATION: &str = "28000";
/// DSQL's message for a refused login (dsql-facts.md §3.5), the same for every reason.
pub const ACCESS_DENIED: &str = "unable to accept connection, access denied";

/// The SigV4 signing algorithm DSQL tokens use.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
const SERVICE: &str = "dsql";
/// The last element of the credential scope.
const TERMINATOR: &str = "aws4_request";
/// The format of `X-Amz-Date`.
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// The longest `X-Amz-Expires` SigV4 allows: one week.
const MAX_EXPIRES_SECS: u64 = 604_800;
/// How far in the future a token's `X-Amz-Date` may be, for clock skew (SigV4's 5 minutes).
const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
/// The database user that needs `DbConnectAdmin`.
const ADMIN_USER: &str = "admin";
/// The session token's parameter, which the signer writes from the credentials.
const SECURITY_TOKEN: &str = "X-Amz-Security-Token";
/// The parameters `aws-sigv4` writes itself when it presigns a request (and the signature):
/// every other parameter of a token is part of the request it signs.
const SIGNER_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    SECURITY_TOKEN,
    "X-Amz-Signature",
];

/// Which IAM action a token was signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamAction {
    /// `dsql:DbConnect`: any database role except `admin`.
    DbConnect,
    /// `dsql:DbConnectAdmin`: the `admin` role, and only it.
    DbConnectAdmin,
}

impl IamAction {
    /// The action as it appears in a token's `Action` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DbConnect => "DbConnect",
            Self::DbConnectAdmin => "DbConnectAdmin",
        }
    }

    /// The action `user` must present: `DbConnectAdmin` for `admin`, `DbConnect` for every
    /// other user.
    pub fn required_for(user: &str) -> Self {
        if user == ADMIN_USER {
            Self::DbConnectAdmin
        } else {
            Self::DbConnect
        }
    }

    /// The action named `name`, exactly (case-sensitive), if it is one.
    fn parse(name: &str) -> Option<Self> {
        [Self::DbConnect, Self::DbConnectAdmin]
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

impl fmt::Display for IamAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token that passed every check. Holds nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed the token.
    pub access_key_id: String,
    /// The action it was signed for, always the one the user needs.
    pub action: IamAction,
    /// When it was signed (`X-Amz-Date`).
    pub signed_at: SystemTime,
    /// When it stops being accepted: `X-Amz-Date` plus `X-Amz-Expires`.
    pub expires_at: SystemTime,
    /// Whether it carried a session token (temporary credentials).
    pub session_token: bool,
}

/// Why a token was refused: which check failed, for the stand-in's own log. The client is told
/// [`ACCESS_DENIED`] whatever the reason (see the [module documentation](self)). Built only
/// from fixed text, the verifier's own host and region, the user name and times, so neither it
/// nor its `Display` or `Debug` ever contains the token, its signature, a session token or a
/// secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token refused: {reason}")]
pub struct TokenRefusal {
    /// Which check failed, e.g. `Signature expired: … is now earlier than …`.
    pub reason: String,
}

impl TokenRefusal {
    fn invalid(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Checks DSQL IAM authentication tokens for one endpoint and region against a set of access
/// keys. Its `Debug` shows the host, the region and the access key ids, never a secret key.
pub struct TokenVerifier {
    host: String,
    region: String,
    keys: HashMap<String, SecretString>,
}

impl TokenVerifier {
    /// A verifier for tokens signed for `host` (the endpoint name clients sign for, compared
    /// ASCII case-insensitively) in `region`, by one of `keys`: access key id → secret access
    /// key. A key id given twice keeps its last secret.
    pub fn new(
        host: &str,
        region: &str,
        keys: impl IntoIterator<Item = (String, SecretString)>,
    ) -> Self {
        Self {
            host: host.to_ascii_lowercase(),
            region: region.to_owned(),
            keys: keys.into_iter().collect(),
        }
    }

    /// Accepts `token` as the password of `user` at `now` if, and only if: it is
    /// `<host>/?<query>` with this verifier's host; each parameter appears once; the
    /// algorithm is `AWS4-HMAC-SHA256`; the credential scope is
    /// `<known key id>/<X-Amz-Date's date>/<this region>/dsql/aws4_request`; `X-Amz-Date` is a
    /// valid `yyyymmddTHHMMSSZ`; `X-Amz-Expires` is 1 to 604800 seconds; `now` is no more
    /// than 5 minutes before `X-Amz-Date` and before `X-Amz-Date + X-Amz-Expires`; the only
    /// signed header is `host`; `Action` is `DbConnectAdmin` for `admin` and `DbConnect` for
    /// every other user; and `X-Amz-Signature` is the SigV4 signature of the request, by the
    /// key id's secret (compared in constant time).
    ///
    /// A refusal's reason says which check failed (e.g. `Signature expired: …`). Never panics,
    /// whatever the input.
    pub fn verify(
        &self,
        token: &str,
        user: &str,
        now: SystemTime,
    ) -> Result<Verified, TokenRefusal> {
        let (host, query) = token.split_once("/?").ok_or_else(|| {
            TokenRefusal::invalid("the password is not an IAM authentication token")
        })?;
        ensure(host.eq_ignore_ascii_case(&self.host), || {
            format!("the token is not signed for this endpoint, {}", self.host)
        })?;
        let params = Params::parse(query)?;

        ensure(params.required("X-Amz-Algorithm")? == ALGORITHM, || {
            format!("the signing algorithm must be {ALGORITHM}")
        })?;
        let credential = params.required("X-Amz-Credential")?;
        let scope = Scope::parse(credential)?;
        let secret = self
            .keys
            .get(scope.access_key_id)
            .ok_or_else(|| TokenRefusal::invalid("the token's access key id is not known here"))?;
        ensure(scope.region == self.region, || {
            format!(
                "the token's credential scope is not for this region, {}",
                self.region
            )
        })?;

        let amz_date = params.required("X-Amz-Date")?;
        let signed_at = NaiveDateTime::parse_from_str(amz_date, DATE_FORMAT)
            .ok()
            .filter(|_| amz_date.len() == "yyyymmddTHHMMSSZ".len())
            .ok_or_else(|| TokenRefusal::invalid("X-Amz-Date is not a yyyymmddTHHMMSSZ time"))?
            .and_utc();
        ensure(
            amz_date.get(..8) == Some(scope.date),
            || "the credential scope's date is not the date of X-Amz-Date",
        )?;
        let expires_secs = parse_expires(params.required("X-Amz-Expires")?)?;
        let expires_at = i64::try_from(expires_secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .and_then(|lifetime| signed_at.checked_add_signed(lifetime))
            .ok_or_else(|| TokenRefusal::invalid("X-Amz-Expires is out of range"))?;
        let now =
            utc(now).ok_or_else(|| TokenRefusal::invalid("the server's clock is out of range"))?;
        check_time(signed_at, expires_at, now)?;

        ensure(
            params.required("X-Amz-SignedHeaders")? == "host",
            || "the token must sign exactly one header, host",
        )?;
        let action = IamAction::parse(params.required("Action")?)
            .ok_or_else(|| TokenRefusal::invalid("Action must be DbConnect or DbConnectAdmin"))?;
        let needed = IamAction::required_for(user);
        ensure(action == needed, || {
            format!(
                "the token is signed for {action}, but the user {user:?} needs a token signed \
                 for {needed}"
            )
        })?;

        let claimed = hex::decode(params.required("X-Amz-Signature")?)
            .map_err(|_| TokenRefusal::invalid("X-Amz-Signature is not hexadecimal"))?;
        let credentials = Credentials::new(
            scope.access_key_id,
            secret.expose_secret(),
            params.get(SECURITY_TOKEN).map(str::to_owned),
            None,
            "the stand-in's access keys",
        );
        let presigned = presign(
            &self.host,
            &self.region,
            &params.request_query(),
            credentials,
            signed_at.into(),
            Duration::from_secs(expires_secs),
        )?;
        let expected = hex::decode(presigned.signature()).map_err(unsignable)?;
        ensure(
            claimed.ct_eq(&expected).into(),
            || "the signature does not match",
        )?;

        Ok(Verified {
            access_key_id: scope.access_key_id.to_owned(),
            action,
            signed_at: signed_at.into(),
            expires_at: expires_at.into(),
            session_token: params.get(SECURITY_TOKEN).is_some(),
        })
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key_ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        key_ids.sort_unstable();
        f.debug_struct("TokenVerifier")
            .field("host", &self.host)
            .field("region", &self.region)
            .field("access_key_ids", &key_ids)
            .finish_non_exhaustive()
    }
}

/// `GET https://<host>/?<query>` presigned by `aws-sigv4` as aws-sdk-dsql's
/// `AuthTokenGenerator` presigns a token: in the query, for `dsql` in `region`, by
/// `credentials` at `time`, valid for `expires_in`. The signer adds the `X-Amz-*` parameters
/// (and the session token, if any) itself.
fn presign(
    host: &str,
    region: &str,
    query: &str,
    credentials: Credentials,
    time: SystemTime,
    expires_in: Duration,
) -> Result<SigningOutput<SigningInstructions>, TokenRefusal> {
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(expires_in);
    settings.signature_location = SignatureLocation::QueryParams;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(unsignable)?
        .into();
    let url = format!("https://{host}/?{query}");
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(unsignable)?;
    http_request::sign(request, &params).map_err(unsignable)
}

/// Refuses the token, for `reason()`, unless `check` holds.
fn ensure<R: Into<String>>(check: bool, reason: impl FnOnce() -> R) -> Result<(), TokenRefusal> {
    if check {
        Ok(())
    } else {
        Err(TokenRefusal::invalid(reason()))
    }
}

/// The refusal of a token whose request `aws-sigv4` will not sign (none that passes the
/// checks before it; this is for the unforeseen).
fn unsignable(_: impl std::error::Error) -> TokenRefusal {
    TokenRefusal::invalid("the token's request cannot be signed")
}

/// A token's query parameters, percent-decoded.
struct Params(Vec<(String, String)>);

impl Params {
    /// Splits `name=value&…` and decodes each name and value. Refuses an empty or nameless
    /// parameter, one without `=`, a name given twice, and an escape that does not decode to
    /// UTF-8.
    fn parse(query: &str) -> Result<Self, TokenRefusal> {
        let malformed = || TokenRefusal::invalid("the token's query string is malformed");
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').ok_or_else(malformed)?;
            let decode = |text: &str| {
                percent_decode_str(text)
                    .decode_utf8()
                    .map(|text| text.into_owned())
                    .map_err(|_| malformed())
            };
            let (name, value) = (decode(name)?, decode(value)?);
            if name.is_empty() || params.iter().any(|(seen, _)| *seen == name) {
                return Err(malformed());
            }
            params.push((name, value));
        }
        Ok(Self(params))
    }

    /// The value of `name`, if present.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`; its absence refuses the token.
    fn required(&self, name: &str) -> Result<&str, TokenRefusal> {
        self.get(name)
            .ok_or_else(|| TokenRefusal::invalid(format!("the token has no {name} parameter")))
    }

    /// The query of the request the token signs: every parameter but those the signer writes
    /// itself, each name and value escaped so that the signer decodes exactly the values
    /// checked here.
    fn request_query(&self) -> String {
        let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        self.0
            .iter()
            .filter(|(name, _)| !SIGNER_PARAMS.contains(&name.as_str()))
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A credential scope, `<key id>/<yyyymmdd>/<region>/dsql/aws4_request`.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
}

impl<'a> Scope<'a> {
    /// Splits `credential`; refuses anything with other than five parts, an empty part, or a
    /// service other than `dsql`.
    fn parse(credential: &'a str) -> Result<Self, TokenRefusal> {
        let parts: Vec<&str> = credential.split('/').collect();
        match parts.as_slice() {
            [access_key_id, date, region, SERVICE, TERMINATOR]
                if !access_key_id.is_empty() && !date.is_empty() && !region.is_empty() =>
            {
                Ok(Self {
                    access_key_id,
                    date,
                    region,
                })
            }
            _ => Err(TokenRefusal::invalid(
                "X-Amz-Credential is not <key id>/<date>/<region>/dsql/aws4_request",
            )),
        }
    }
}

/// `X-Amz-Expires`: decimal digits only, 1 to 604800.
fn parse_expires(text: &str) -> Result<u64, TokenRefusal> {
    text.bytes()
        .all(|byte| byte.is_ascii_digit())
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .filter(|secs| (1..=MAX_EXPIRES_SECS).contains(secs))
        .ok_or_else(|| {
            TokenRefusal::invalid(format!(
                "X-Amz-Expires must be 1 to {MAX_EXPIRES_SECS} seconds"
            ))
        })
}

/// Refuses a token used more than 5 minutes before it was signed, or at or after it expires,
/// with AWS's wording.
fn check_time(
    signed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), TokenRefusal> {
    let show = |time: DateTime<Utc>| time.to_rfc3339_opts(SecondsFormat::Secs, true);
    let latest = now
        .checked_add_signed(MAX_CLOCK_SKEW)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if latest < signed_at {
        return Err(TokenRefusal::invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            show(signed_at),
            show(latest),
            show(now)
        )));
    }
    if now >= expires_at {
        return Err(TokenRefusal::invalid(format!(
            "Signature expired: {} is now earlier than {}",
            show(expires_at),
            show(now)
        )));
    }
    Ok(())
}

/// `time` in UTC, if chrono can represent it (chrono's own `From<SystemTime>` panics when it
/// cannot).
fn utc(time: SystemTime) -> Option<DateTime<Utc>> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => DateTime::UNIX_EPOCH.checked_add_signed(TimeDelta::from_std(after).ok()?),
        Err(before) => {
            DateTime::UNIX_EPOCH.checked_sub_signed(TimeDelta::from_std(before.duration()).ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_config::Region;
    use aws_sdk_dsql::auth_token::{AuthTokenGenerator, Config};
    use proptest::prelude::*;

    const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
    const REGION: &str = "us-east-1";
    const AKID: &str = "AKIDLOCALDSQL000001";
    const SECRET: &str = "fake-secret-key/with+chars";
    const SESSION_TOKEN: &str = "FwoGZXIvYXdzE+session/token==";

    /// aws-sdk-dsql 1.79.0's own test vectors (`src/auth_token.rs`, tests `signing_works` and
    /// `signing_works_admin`): key id `akid`, secret `secret`, signed at 2024-08-27T00:00:00Z
    /// for 450 s.
    const SDK_HOST: &str = "peccy.dsql.us-east-1.on.aws";
    const SDK_VECTOR: &str = "peccy.dsql.us-east-1.on.aws/?Action=DbConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240827%2Fus-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20240827T000000Z&X-Amz-Expires=450&X-Amz-SignedHeaders=host&X-Amz-Signature=f5f2ad764ca5df44045d4ab6ccecba0eef941b0007e5765885a0b6ed3702a3f8";
    const SDK_VECTOR_ADMIN: &str = "peccy.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240827%2Fus-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20240827T000000Z&X-Amz-Expires=450&X-Amz-SignedHeaders=host&X-Amz-Signature=267cf8d04d84444f7a62d5bdb40c44bfc6cb13dd6c64fa7f772df6bbaa90fff1";
    /// 2024-08-27T00:00:00Z, when the SDK vectors were signed.
    const SDK_SIGNED_AT: u64 = 1_724_716_800;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn sdk_verifier() -> TokenVerifier {
        TokenVerifier::new(
            SDK_HOST,
            REGION,
            [("akid".to_owned(), SecretString::from("secret"))],
        )
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(
            HOST,
            REGION,
            [
                (AKID.to_owned(), SecretString::from(SECRET)),
                ("AKIDOTHER".to_owned(), SecretString::from("another-secret")),
            ],
        )
    }

    /// What a token is minted with; `Mint::default()` is a `DbConnect` token for [`HOST`] in
    /// [`REGION`] by [`AKID`]/[`SECRET`], valid for 900 s.
    struct Mint {
        host: &'static str,
        region: &'static str,
        akid: &'static str,
        secret: &'static str,
        session_token: Option<&'static str>,
        admin: bool,
        expires_in: u64,
    }

    impl Default for Mint {
        fn default() -> Self {
            Self {
                host: HOST,
                region: REGION,
                akid: AKID,
                secret: SECRET,
                session_token: None,
                admin: false,
                expires_in: 900,
            }
        }
    }

    impl Mint {
        /// A real token from aws-sdk-dsql's `AuthTokenGenerator`, signed now (system clock).
        async fn token(self) -> String {
            let sdk_config = crate::local::fixed_credentials(
                self.region,
                self.akid,
                self.secret,
                self.session_token,
            )
            .await;
            let generator = AuthTokenGenerator::new(
                Config::builder()
                    .hostname(self.host)
                    .region(Region::new(self.region))
                    .expires_in(self.expires_in)
                    .build()
                    .expect("a generator config"),
            );
            let token = if self.admin {
                generator.db_connect_admin_auth_token(&sdk_config).await
            } else {
                generator.db_connect_auth_token(&sdk_config).await
            };
            token.expect("a token").as_str().to_owned()
        }
    }

    /// Asserts `result` is a refusal whose reason contains `reason` and whose `Display` and
    /// `Debug` show none of `token`'s signature and none of the secrets.
    #[track_caller]
    fn assert_refused(
        result: Result<Verified, TokenRefusal>,
        reason: &str,
        token: &str,
    ) -> TokenRefusal {
        let refusal = result.expect_err("the token must be refused");
        assert!(
            refusal.reason.contains(reason),
            "reason {:?} lacks {reason:?}",
            refusal.reason
        );
        for text in [refusal.to_string(), format!("{refusal:?}")] {
            if let Some((_, signature)) = token.split_once("X-Amz-Signature=") {
                assert!(!signature.is_empty() && !text.contains(signature), "{text}");
            }
            // Every test secret contains "secret".
            for secret in ["secret", SESSION_TOKEN] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        refusal
    }

    #[test]
    fn the_sdk_test_vectors_verify() {
        let verifier = sdk_verifier();
        let now = at(SDK_SIGNED_AT + 10);
        let verified = verifier
            .verify(SDK_VECTOR, "clinic_app", now)
            .expect("the SDK's DbConnect vector");
        assert_eq!(
            verified,
            Verified {
                access_key_id: "akid".to_owned(),
                action: IamAction::DbConnect,
                signed_at: at(SDK_SIGNED_AT),
                expires_at: at(SDK_SIGNED_AT + 450),
                session_token: false,
            }
        );
        let admin = verifier
            .verify(SDK_VECTOR_ADMIN, "admin", now)
            .expect("the SDK's DbConnectAdmin vector");
        assert_eq!(admin.action, IamAction::DbConnectAdmin);
    }

    #[test]
    fn the_validity_window_is_skew_to_expiry() {
        let verifier = sdk_verifier();
        let verify = |secs| verifier.verify(SDK_VECTOR, "clinic_app", at(secs));
        assert!(
            verify(SDK_SIGNED_AT - 300).is_ok(),
            "5 minutes of clock skew"
        );
        assert!(verify(SDK_SIGNED_AT + 449).is_ok(), "the last second");
        assert_refused(
            verify(SDK_SIGNED_AT - 301),
            "Signature not yet current: 2024-08-27T00:00:00Z is still later than \
             2024-08-26T23:59:59Z (2024-08-26T23:54:59Z + 5 min.)",
            SDK_VECTOR,
        );
        assert_refused(
            verify(SDK_SIGNED_AT + 450),
            "Signature expired: 2024-08-27T00:07:30Z is now earlier than 2024-08-27T00:07:30Z",
            SDK_VECTOR,
        );
        let refusal = assert_refused(verify(SDK_SIGNED_AT + 600), "", SDK_VECTOR);
        assert_eq!(
            refusal.reason,
            "Signature expired: 2024-08-27T00:07:30Z is now earlier than 2024-08-27T00:10:00Z"
        );
    }

    #[tokio::test]
    async fn an_admin_token_admits_admin() {
        let token = Mint {
            admin: true,
            ..Mint::default()
        }
        .token()
        .await;
        let before = SystemTime::now();
        let verified = verifier()
            .verify(&token, "admin", SystemTime::now())
            .expect("admin with DbConnectAdmin");
        assert_eq!(verified.access_key_id, AKID);
        assert_eq!(verified.action, IamAction::DbConnectAdmin);
        assert!(!verified.session_token);
        assert_eq!(
            verified.expires_at.duration_since(verified.signed_at).ok(),
            Some(Duration::from_secs(900))
        );
        assert!(
            verified.signed_at <= before,
            "X-Amz-Date is truncated to the second"
        );
    }

    #[tokio::test]
    async fn a_db_connect_token_admits_another_user() {
        let token = Mint::default().token().await;
        let verified = verifier()
            .verify(&token, "clinic_app", SystemTime::now())
            .expect("clinic_app with DbConnect");
        assert_eq!(verified.action, IamAction::DbConnect);
    }

    #[tokio::test]
    async fn a_token_with_a_session_token_verifies() {
        let token = Mint {
            session_token: Some(SESSION_TOKEN),
            expires_in: MAX_EXPIRES_SECS,
            ..Mint::default()
        }
        .token()
        .await;
        assert!(token.contains("X-Amz-Security-Token="), "{token}");
        let verified = verifier()
            .verify(&token, "clinic_app", SystemTime::now())
            .expect("a token of temporary credentials");
        assert!(verified.session_token);

        // The session token is signed: changing it breaks the signature.
        let tampered = token.replace("session", "Session");
        assert_ne!(tampered, token);
        assert_refused(
            verifier().verify(&tampered, "clinic_app", SystemTime::now()),
            "signature does not match",
            &tampered,
        );
    }

    #[tokio::test]
    async fn the_host_is_compared_case_insensitively() {
        let token = Mint::default().token().await;
        let upper = TokenVerifier::new(
            &HOST.to_ascii_uppercase(),
            REGION,
            [(AKID.to_owned(), SecretString::from(SECRET))],
        );
        assert!(
            upper
                .verify(&token, "clinic_app", SystemTime::now())
                .is_ok()
        );
        let shouted = token.replacen(HOST, &HOST.to_ascii_uppercase(), 1);
        assert!(
            verifier()
                .verify(&shouted, "clinic_app", SystemTime::now())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn tokens_failing_a_check_are_refused_naming_the_check() {
        let cases = [
            (
                Mint {
                    secret: "not-the-secret",
                    ..Mint::default()
                },
                "signature does not match",
            ),
            (
                Mint {
                    akid: "AKIDUNKNOWN",
                    ..Mint::default()
                },
                "access key id is not known",
            ),
            (
                Mint {
                    host: "zyxwvutsrqponmlkjihgfedcba.dsql.us-east-1.on.aws",
                    ..Mint::default()
                },
                "not signed for this endpoint",
            ),
            (
                Mint {
                    region: "eu-west-1",
                    ..Mint::default()
                },
                "not for this region, us-east-1",
            ),
        ];
        for (mint, reason) in cases {
            let token = mint.token().await;
            assert_refused(
                verifier().verify(&token, "clinic_app", SystemTime::now()),
                reason,
                &token,
            );
        }
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let token = Mint::default().token().await;
        let later = SystemTime::now() + Duration::from_secs(901);
        let refusal = assert_refused(
            verifier().verify(&token, "clinic_app", later),
            "Signature expired: ",
            &token,
        );
        assert!(
            refusal.reason.starts_with("Signature expired: "),
            "{refusal}"
        );
    }

    #[tokio::test]
    async fn the_action_must_match_the_user() {
        let connect = Mint::default().token().await;
        assert_refused(
            verifier().verify(&connect, "admin", SystemTime::now()),
            "needs a token signed for DbConnectAdmin",
            &connect,
        );

        let admin = Mint {
            admin: true,
            ..Mint::default()
        }
        .token()
        .await;
        assert_refused(
            verifier().verify(&admin, "clinic_app", SystemTime::now()),
            "needs a token signed for DbConnect",
            &admin,
        );
    }

    #[tokio::test]
    async fn a_tampered_action_is_refused() {
        let token = Mint::default().token().await;
        let tampered = token.replacen("Action=DbConnect", "Action=DbConnectAdmin", 1);
        assert_ne!(tampered, token);
        assert_refused(
            verifier().verify(&tampered, "admin", SystemTime::now()),
            "signature does not match",
            &tampered,
        );
        assert!(
            verifier()
                .verify(&tampered, "clinic_app", SystemTime::now())
                .is_err()
        );
    }

    #[test]
    fn malformed_tokens_are_refused_naming_the_flaw() {
        let verifier = sdk_verifier();
        let now = at(SDK_SIGNED_AT + 10);
        let replace = |from: &str, to: &str| {
            let token = SDK_VECTOR.replacen(from, to, 1);
            assert_ne!(token, SDK_VECTOR, "{from} is in the vector");
            token
        };
        let cases = [
            (String::new(), "not an IAM authentication token"),
            ("x".to_owned(), "not an IAM authentication token"),
            (replace("peccy.", "peccx."), "not signed for this endpoint"),
            (replace("&X-Amz-Date=", "&X-Amz-Date"), "malformed"),
            (replace("Action=", "X-Amz-Expires=1&Action="), "malformed"),
            (replace("%2F", "%FF"), "malformed"),
            (replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "algorithm"),
            (replace("akid%2F", "akid"), "X-Amz-Credential is not"),
            (
                replace("%2Fdsql%2F", "%2Frds-db%2F"),
                "X-Amz-Credential is not",
            ),
            (
                replace("%2F20240827%2F", "%2F20240826%2F"),
                "date of X-Amz-Date",
            ),
            (
                replace("X-Amz-Date=20240827T000000Z", "X-Amz-Date=20240827"),
                "yyyymmddTHHMMSSZ",
            ),
            (
                replace("X-Amz-Expires=450", "X-Amz-Expires=0"),
                "1 to 604800",
            ),
            (
                replace("X-Amz-Expires=450", "X-Amz-Expires=604801"),
                "1 to 604800",
            ),
            (
                replace("X-Amz-Expires=450", "X-Amz-Expires=%2B450"),
                "1 to 604800",
            ),
            (
                replace("X-Amz-Expires=450", "X-Amz-Expires=451"),
                "signature does not match",
            ),
            (
                replace("SignedHeaders=host", "SignedHeaders=host%3Bx-amz-date"),
                "host",
            ),
            (
                replace("Action=DbConnect", "Action=DbConnectX"),
                "DbConnect or",
            ),
            (replace("Action=DbConnect&", ""), "no Action parameter"),
            (
                replace("&X-Amz-Signature=f5f2", "&X-Amz-Signature=zzzz"),
                "not hexadecimal",
            ),
            (
                SDK_VECTOR[..SDK_VECTOR.len() - 1].to_owned(),
                "not hexadecimal",
            ),
            (
                SDK_VECTOR[..SDK_VECTOR.len() - 2].to_owned(),
                "signature does not match",
            ),
            (replace("f5f2ad76", "f5f2ad77"), "signature does not match"),
            (format!("{SDK_VECTOR}&extra=1"), "signature does not match"),
        ];
        for (token, reason) in cases {
            assert_refused(verifier.verify(&token, "clinic_app", now), reason, &token);
        }
    }

    #[test]
    fn debug_of_a_verifier_shows_no_secret() {
        let shown = format!("{:?}", verifier());
        assert!(shown.contains(AKID) && shown.contains(HOST), "{shown}");
        assert!(
            !shown.contains(SECRET) && !shown.contains("another-secret"),
            "{shown}"
        );
    }

    /// `GET https://HOST/?{query}` presigned by AKID/SECRET now for 900 s, as the SDK
    /// presigns a token, written as a token: the request's query, then the signer's parameters.
    fn presigned_token(query: &str) -> String {
        let credentials = Credentials::new(AKID, SECRET, None, None, "test");
        let presigned = presign(
            HOST,
            REGION,
            query,
            credentials,
            SystemTime::now(),
            Duration::from_secs(900),
        )
        .expect("signed");
        let (instructions, _) = presigned.into_parts();
        let signed: Vec<String> = instructions
            .params()
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
            .collect();
        format!("{HOST}/?{query}&{}", signed.join("&"))
    }

    #[test]
    fn other_parameters_are_signed_as_the_client_signed_them() {
        let query = "Action=DbConnect&b=a%2Fb%20c~%26d%3De&a=%2B-_.%C3%A9";
        let token = presigned_token(query);
        assert!(
            verifier()
                .verify(&token, "clinic_app", SystemTime::now())
                .is_ok(),
            "{token}"
        );
        let tampered = token.replacen("%C3%A9", "%C3%A8", 1);
        assert_refused(
            verifier().verify(&tampered, "clinic_app", SystemTime::now()),
            "signature does not match",
            &tampered,
        );
    }

    proptest! {
        #[test]
        fn garbage_is_refused_without_panicking(garbage in any::<Vec<u8>>(), user in "[a-z]{0,8}") {
            let token = String::from_utf8_lossy(&garbage);
            prop_assert!(sdk_verifier().verify(&token, &user, at(SDK_SIGNED_AT)).is_err());
        }

        #[test]
        fn any_other_parameter_or_session_token_is_refused_without_panicking(
            name in any::<String>(),
            value in any::<String>(),
            session_token in any::<String>(),
        ) {
            let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
            for token in [
                format!("{SDK_VECTOR}&{}={}", encode(&name), encode(&value)),
                format!("{SDK_VECTOR}&X-Amz-Security-Token={}", encode(&session_token)),
            ] {
                prop_assert!(sdk_verifier().verify(&token, "clinic_app", at(SDK_SIGNED_AT)).is_err());
            }
        }

        #[test]
        fn garbage_after_the_host_is_refused(query in "[A-Za-z0-9%=&/?._~+-]{0,200}") {
            let token = format!("{SDK_HOST}/?{query}");
            prop_assert!(sdk_verifier().verify(&token, "clinic_app", at(SDK_SIGNED_AT)).is_err());
        }
    }
}
