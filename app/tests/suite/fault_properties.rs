//! Bad input, generated: the endpoint and configuration parsers and the retry's error
//! classification never panic, accept only what they document (and what they accept comes
//! back unchanged), and report every refusal as a configuration error naming its variable.
//! The classification is also checked on real errors from a real server.
#![allow(missing_docs)]

use crate::common;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use app::config::{Config, Target};
use app::dsql::endpoint::{Endpoint, EndpointError, Part, is_region, region_from_host};
use app::dsql::is_identifier;
use app::dsql::retry::{ErrorClass, classify};
use app::error::Error;
use proptest::prelude::*;
use sea_orm::{ConnAcquireErr, ConnectionTrait, DbErr, RuntimeErr, TransactionTrait};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Connection, PgConnection};

use app::config::VARIABLES;
use common::{admin_db, fresh_database, server};

/// Region names of every documented shape: `us-east-1`, `us-gov-west-1`, `eusc-de-east-1`, ….
fn region() -> impl Strategy<Value = String> {
    "[a-z]{2,4}(-[a-z]{1,16}){1,3}-[0-9]{1,2}"
}

/// A DSQL cluster id: 26 lowercase letters and digits.
fn cluster_id() -> impl Strategy<Value = String> {
    "[a-z0-9]{26}"
}

/// A DNS host name that is not a DSQL cluster name.
fn other_host() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,10}[a-z0-9])?){1,3}"
}

/// Strings near the inputs' shapes (dots, colons, slashes, `@`, case, digits), and any string.
fn nearly_endpoint() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9.:/@?#_ -]{0,80}",
        (cluster_id(), "[a-zA-Z0-9-]{0,20}", "(\\.on\\.aws)?")
            .prop_map(|(id, region, suffix)| format!("{id}.dsql.{region}{suffix}")),
        any::<String>(),
    ]
}

/// `error` is a configuration error; returns the variable it names.
fn config_variable(error: &Error) -> &'static str {
    match error {
        Error::Config { variable, .. } => variable,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// The variable an endpoint error makes `app` name: the endpoint's for the host, the region's
/// for the region.
fn endpoint_variable(error: &EndpointError) -> &'static str {
    match error.part {
        Part::Host => "CLUSTER_ENDPOINT",
        Part::Region => "AWS_REGION",
    }
}

proptest! {
    #[test]
    fn endpoint_parsing_never_panics_and_what_it_accepts_parses_back_the_same(
        value in nearly_endpoint(),
        fallback in proptest::option::of(prop_oneof![region(), "[a-zA-Z0-9-]{0,12}"]),
    ) {
        match Endpoint::parse(&value, fallback.as_deref()) {
            Ok(endpoint) => {
                prop_assert_eq!(endpoint.host(), endpoint.host().to_ascii_lowercase());
                prop_assert!(is_region(endpoint.region()), "{:?}", endpoint);
                if let Some(named) = region_from_host(endpoint.host()) {
                    prop_assert_eq!(named, endpoint.region());
                }
                let again = Endpoint::parse(endpoint.host(), Some(endpoint.region()));
                prop_assert_eq!(again.ok(), Some(endpoint));
            }
            Err(error) => {
                let variable = endpoint_variable(&error);
                prop_assert!(
                    ["CLUSTER_ENDPOINT", "AWS_REGION"].contains(&variable),
                    "{variable}"
                );
                // A URL may carry a password: it is never echoed.
                if value.contains('@') {
                    prop_assert!(!error.to_string().contains(&value), "{error}");
                }
            }
        }
    }

    #[test]
    fn a_dsql_host_name_in_any_case_gives_its_region_and_a_lowercase_host(
        id in cluster_id(),
        region in region(),
        upper in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let host = format!("{id}.dsql.{region}.on.aws");
        let mixed: String = host
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(region_from_host(&host), Some(region.as_str()));
        let endpoint = Endpoint::parse(&mixed, Some("eu-west-1")).expect("a DSQL host name");
        prop_assert_eq!(endpoint.host(), host.as_str());
        prop_assert_eq!(endpoint.region(), region.as_str());
    }

    #[test]
    fn a_bare_cluster_id_or_another_host_takes_the_fallback_region(
        id in cluster_id(),
        host in other_host(),
        region in region(),
    ) {
        let endpoint = Endpoint::parse(&id, Some(&region)).expect("a bare cluster id");
        prop_assert_eq!(endpoint.host(), format!("{id}.dsql.{region}.on.aws"));
        prop_assert_eq!(endpoint.region(), region.as_str());
        prop_assume!(region_from_host(&host).is_none());
        let endpoint = Endpoint::parse(&host, Some(&region)).expect("a DNS host name");
        prop_assert_eq!(endpoint.host(), host.as_str());
        prop_assert_eq!(endpoint.region(), region.as_str());
        let error = Endpoint::parse(&host, None).expect_err("no region anywhere");
        prop_assert_eq!(endpoint_variable(&error), "AWS_REGION");
    }

    #[test]
    fn region_from_host_never_panics_and_finds_only_a_trailing_region(host in nearly_endpoint()) {
        if let Some(region) = region_from_host(&host) {
            prop_assert!(!region.is_empty());
            prop_assert!(host.ends_with(&format!(".{region}.on.aws")), "{host}");
            prop_assert!(region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        }
    }

    #[test]
    fn region_shapes_are_accepted_and_nothing_else(region in region(), other in any::<String>()) {
        prop_assert!(is_region(&region), "{region}");
        prop_assert!(!is_region(&region.to_ascii_uppercase()));
        prop_assert!(!is_region(&region.replace('-', "")));
        let trailing_hyphen = format!("{region}-");
        prop_assert!(!is_region(&trailing_hyphen));
        if is_region(&other) {
            prop_assert!(other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!(other.bytes().next().is_some_and(|b| b.is_ascii_lowercase()));
            prop_assert!(other.bytes().last().is_some_and(|b| b.is_ascii_digit()));
            prop_assert!(!other.contains("--"));
        }
    }

    #[test]
    fn identifiers_are_plain_names_of_at_most_63_characters(
        name in "[A-Za-z_][A-Za-z0-9_]{0,62}",
        digit in "[0-9][A-Za-z0-9_]{0,20}",
        any_text in any::<String>(),
    ) {
        prop_assert!(is_identifier(&name));
        prop_assert!(!is_identifier(&digit));
        let too_long = format!("{name}{}", "x".repeat(64 - name.len()));
        prop_assert!(!is_identifier(&too_long));
        prop_assert!(!is_identifier(""));
        let plain = !any_text.is_empty()
            && any_text.len() <= 63
            && any_text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !any_text.as_bytes()[0].is_ascii_digit();
        prop_assert_eq!(is_identifier(&any_text), plain, "{:?}", any_text);
    }
}

/// A value for one variable: a valid one, a near miss, or anything.
fn variable_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        Just(String::new()),
        "[ -~]{0,20}",
        region(),
        cluster_id(),
        (cluster_id(), region()).prop_map(|(id, r)| format!("{id}.dsql.{r}.on.aws")),
        (
            "[a-z_]{1,10}",
            "pw[A-Za-z]{12}",
            "[a-z0-9.]{1,12}",
            0u32..70_000
        )
            .prop_map(|(user, password, host, port)| format!(
                "postgres://{user}:{password}@{host}:{port}/postgres"
            )),
        any::<String>(),
    ])
}

/// The configuration from `vars` alone (an empty value counts as unset).
fn config_from(vars: &HashMap<&'static str, String>) -> app::Result<Config> {
    Config::from_vars(|name| vars.get(name).cloned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_environment_gives_a_checked_config_or_an_error_naming_a_variable_that_was_set(
        values in proptest::collection::vec(variable_value(), VARIABLES.len()),
    ) {
        let vars: HashMap<&'static str, String> = VARIABLES
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
        match config_from(&vars) {
            Ok(config) => {
                prop_assert!(is_identifier(&config.user), "{}", config.user);
                prop_assert!(config.pool.max_connections >= 1);
                prop_assert!(config.pool.max_lifetime.as_secs() < 3600);
                if let Target::Dsql(endpoint, _) = &config.target {
                    prop_assert!(is_region(endpoint.region()));
                }
            }
            Err(error) => {
                let variable = config_variable(&error);
                // AWS_REGION may be named because it is missing; anything else was set.
                let set = vars.get(variable).is_some_and(|value| !value.is_empty());
                prop_assert!(set || variable == "AWS_REGION", "{variable}: {error}");
                // Passwords in DATABASE_URL never reach a message.
                if let Some(url) = vars.get("DATABASE_URL")
                    && let Some(password) = url.split(':').nth(2).and_then(|rest| rest.split('@').next())
                    && password.starts_with("pw")
                {
                    prop_assert!(!error.to_string().contains(password), "{error}");
                }
            }
        }
    }

    #[test]
    fn valid_settings_come_back_unchanged(
        id in cluster_id(),
        region in region(),
        port in 1u16..,
        user in "[a-z_][a-z0-9_]{0,62}",
        lifetime in 1u64..=604_800,
        connections in 1..=app::dsql::pool::DSQL_MAX_CONNECTIONS,
        max_lifetime in 1u64..3600,
        idle in 1u64..3600,
    ) {
        let host = format!("{id}.dsql.{region}.on.aws");
        let given: HashMap<&'static str, String> = HashMap::from([
            ("CLUSTER_ENDPOINT", host.clone()),
            ("CLUSTER_PORT", port.to_string()),
            ("CLUSTER_USER", user.clone()),
            ("DSQL_TOKEN_LIFETIME_SECS", lifetime.to_string()),
            ("POOL_MAX_CONNECTIONS", connections.to_string()),
            ("POOL_MAX_LIFETIME_SECS", max_lifetime.to_string()),
            ("POOL_IDLE_TIMEOUT_SECS", idle.to_string()),
        ]);
        let config = config_from(&given).expect("valid settings");
        let Target::Dsql(endpoint, got_port) = &config.target else {
            panic!("CLUSTER_ENDPOINT selects DSQL: {config:?}");
        };
        prop_assert_eq!(endpoint.host(), host.as_str());
        prop_assert_eq!(endpoint.region(), region.as_str());
        prop_assert_eq!(*got_port, port);
        prop_assert_eq!(&config.user, &user);
        prop_assert_eq!(config.token_lifetime.as_secs(), lifetime);
        prop_assert_eq!(config.pool.max_connections, connections);
        prop_assert_eq!(config.pool.max_lifetime.as_secs(), max_lifetime);
        prop_assert_eq!(config.pool.idle_timeout.as_secs(), idle);
    }
}

/// A database error with any SQLSTATE, for codes a server cannot easily be made to send.
#[derive(Debug)]
struct Coded(String);

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected error {}", self.0)
    }
}

impl std::error::Error for Coded {}

impl DatabaseError for Coded {
    fn message(&self) -> &str {
        "injected"
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.0))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// The classification the retry's documentation gives for SQLSTATE `code`.
fn documented(code: &str) -> ErrorClass {
    match code {
        "40001" | "OC000" => ErrorClass::Conflict,
        "OC001" => ErrorClass::SchemaChanged,
        "53300" | "53400" => ErrorClass::Transient,
        "XX000" => ErrorClass::Unavailable,
        "57P01" | "57P02" | "57P03" => ErrorClass::ConnectionLost,
        _ if code.starts_with("08") => ErrorClass::ConnectionLost,
        _ => ErrorClass::Permanent,
    }
}

/// `error` as SeaORM wraps it for a connection, a statement and a query.
fn wrapped(error: impl Fn() -> sqlx::Error) -> [DbErr; 3] {
    [
        DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error()))),
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error()))),
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(error()))),
    ]
}

/// SQLSTATEs: the documented ones, their neighbours, and anything.
fn sqlstate() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "40001", "40002", "40P01", "OC000", "OC001", "OC002", "53300", "53400", "53000",
            "53200", "XX000", "XX001", "57P01", "57P02", "57P03", "57P04", "57014", "08000",
            "08003", "08006", "08P01", "23505", "23514", "54000", "25P02", "28P01", "0A000",
        ])
        .prop_map(str::to_owned),
        "[0-9A-Z]{5}",
        any::<String>(),
    ]
}

fn io_kind() -> impl Strategy<Value = std::io::ErrorKind> {
    use std::io::ErrorKind::*;
    prop::sample::select(vec![
        ConnectionRefused,
        ConnectionReset,
        ConnectionAborted,
        NotConnected,
        BrokenPipe,
        UnexpectedEof,
        TimedOut,
        Interrupted,
        WouldBlock,
        InvalidData,
        Other,
    ])
}

proptest! {
    #[test]
    fn only_the_documented_sqlstates_are_retried(code in sqlstate()) {
        for error in wrapped(|| sqlx::Error::Database(Box::new(Coded(code.clone())))) {
            prop_assert_eq!(classify(&error), documented(&code), "{}", error);
        }
    }

    #[test]
    fn io_errors_are_connection_losses_and_other_driver_errors_are_permanent(
        kind in io_kind(),
        text in any::<String>(),
    ) {
        for error in wrapped(|| sqlx::Error::Io(std::io::Error::new(kind, text.clone()))) {
            prop_assert_eq!(classify(&error), ErrorClass::ConnectionLost);
        }
        let permanent: [fn(String) -> sqlx::Error; 6] = [
            sqlx::Error::Protocol,
            sqlx::Error::ColumnNotFound,
            sqlx::Error::InvalidArgument,
            |text| sqlx::Error::Configuration(text.into()),
            |text| sqlx::Error::Tls(text.into()),
            |text| sqlx::Error::Decode(text.into()),
        ];
        for make in permanent {
            for error in wrapped(|| make(text.clone())) {
                prop_assert_eq!(classify(&error), ErrorClass::Permanent, "{}", error);
            }
        }
        for error in [
            DbErr::Custom(text.clone()),
            DbErr::RecordNotFound(text.clone()),
            DbErr::Type(text.clone()),
            DbErr::Json(text.clone()),
            DbErr::Migration(text.clone()),
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Exec(RuntimeErr::Internal(text.clone())),
        ] {
            prop_assert_eq!(classify(&error), ErrorClass::Permanent, "{}", error);
        }
    }
}

/// Runs `sql` through SeaORM on `db` (a pool or a transaction) and returns its error.
async fn refused(db: &impl ConnectionTrait, sql: &str) -> DbErr {
    db.execute_unprepared(sql)
        .await
        .expect_err("the statement should fail")
}

#[tokio::test]
async fn real_server_errors_are_classified_as_documented() {
    let database = fresh_database("classify").await;
    let db = admin_db(&database).await;
    db.execute_unprepared("CREATE TABLE t (id integer PRIMARY KEY, n integer CHECK (n >= 0))")
        .await
        .expect("create table");
    db.execute_unprepared("INSERT INTO t VALUES (1, 0)")
        .await
        .expect("insert");

    let mut cases = vec![
        ("23505", refused(&db, "INSERT INTO t VALUES (1, 0)").await),
        ("23514", refused(&db, "INSERT INTO t VALUES (2, -1)").await),
        ("22012", refused(&db, "SELECT 1 / 0").await),
        ("42P01", refused(&db, "SELECT * FROM missing").await),
        ("0A000", refused(&db, "TRUNCATE t").await),
    ];

    // A real serialization failure: a repeatable-read transaction updates a row that another
    // committed after the first one's snapshot.
    let first = db.begin().await.expect("begin");
    first
        .execute_unprepared("SELECT n FROM t WHERE id = 1")
        .await
        .expect("take the snapshot");
    db.execute_unprepared("UPDATE t SET n = n + 1 WHERE id = 1")
        .await
        .expect("a concurrent update");
    cases.push((
        "40001",
        refused(&first, "UPDATE t SET n = n + 1 WHERE id = 1").await,
    ));
    first.rollback().await.expect("rollback");

    // The server ending this very backend: a FATAL 57P01.
    cases.push((
        "57P01",
        refused(&db, "SELECT pg_terminate_backend(pg_backend_pid())").await,
    ));
    let server = server().await;

    for (code, error) in &cases {
        assert_eq!(
            migration::dsql::sqlstate(error).as_deref(),
            Some(*code),
            "{error}"
        );
        assert_eq!(classify(error), documented(code), "{code}: {error}");
    }

    // Nothing listening: a real I/O error, before anything was sent.
    let port = common::free_port();
    let nowhere = server.connect_options(&database, server.admin()).port(port);
    let error = PgConnection::connect_with(&nowhere)
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, sqlx::Error::Io(_)), "{error}");
    let error = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error)));
    assert_eq!(classify(&error), ErrorClass::ConnectionLost);

    // A wrong password is not worth retrying.
    let wrong = app::local::Credentials {
        user: server.admin().user.clone(),
        password: secrecy::SecretString::from("wrong"),
    };
    let error = PgConnection::connect_with(&server.connect_options(&database, &wrong))
        .await
        .expect_err("a wrong password");
    let error = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error)));
    assert_eq!(classify(&error), ErrorClass::Permanent);
}
