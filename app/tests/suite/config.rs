//! The configuration read from the environment: defaults, which database wins, and an
//! `Error::Config` naming the right variable (and saying what to set) for every bad value.
//! No database and no network: `Config::from_vars` is pure apart from sqlx's libpq variables.

use std::collections::HashMap;
use std::time::Duration;

use app::Error;
use app::config::{Config, Target};
use app::dsql::endpoint::{Endpoint, EndpointError, Part, is_region, region_from_host};
use app::dsql::pool::PoolSettings;
use app::local::STAND_IN_HOST;

const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
const CLUSTER_ID: &str = "abcdefghijklmnopqrstuvwxyz";

fn load(vars: &[(&str, &str)]) -> app::Result<Config> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_vars(|name| vars.get(name).cloned())
}

/// Asserts that `vars` are refused with an `Error::Config` naming `variable` whose message
/// says what to set (an example value) and contains none of `never`. Returns the message.
#[track_caller]
fn refused(vars: &[(&str, &str)], variable: &str, never: &[&str]) -> String {
    match load(vars) {
        Err(Error::Config {
            variable: named,
            problem,
        }) => {
            assert_eq!(named, variable, "wrong variable for {vars:?}: {problem}");
            assert!(
                problem.contains("e.g.") || problem.contains("set it like"),
                "the message for {vars:?} gives no example: {problem}"
            );
            assert!(
                problem.contains("set") || problem.contains("use") || problem.contains("unset"),
                "the message for {vars:?} does not say what to set: {problem}"
            );
            for secret in never {
                assert!(
                    !problem.contains(secret),
                    "the message for {vars:?} echoes {secret:?}: {problem}"
                );
            }
            problem
        }
        Err(other) => panic!("expected a Config error for {vars:?}, got {other}"),
        Ok(config) => panic!("expected {vars:?} to be refused, got {config:?}"),
    }
}

fn dsql(config: &Config) -> (&Endpoint, u16) {
    match &config.target {
        Target::Dsql(endpoint, port) => (endpoint, *port),
        other => panic!("expected a DSQL target, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults and precedence

#[test]
fn nothing_set_means_the_local_stand_in_as_admin_with_default_limits() {
    let config = load(&[]).expect("a valid configuration");
    assert!(matches!(config.target, Target::Local));
    assert_eq!(config.user, "admin");
    assert!(config.is_admin());
    assert_eq!(config.schema(), "public");
    assert_eq!(config.token_lifetime, Duration::from_secs(900));
    assert_eq!(
        config.pool,
        PoolSettings {
            max_connections: 10,
            max_lifetime: Duration::from_secs(55 * 60),
            idle_timeout: Duration::from_secs(600),
        }
    );
    assert_eq!(config.pool, PoolSettings::default());
}

#[test]
fn empty_values_count_as_unset() {
    let vars: Vec<(&str, &str)> = app::config::VARIABLES
        .iter()
        .map(|name| (*name, ""))
        .collect();
    let config = load(&vars).expect("a valid configuration");
    assert!(matches!(config.target, Target::Local));
    assert_eq!(config.user, "admin");
    assert_eq!(config.token_lifetime, Duration::from_secs(900));
    assert_eq!(config.pool, PoolSettings::default());
}

#[test]
fn every_setting_is_read() {
    let config = load(&[
        ("CLUSTER_ENDPOINT", HOST),
        ("CLUSTER_PORT", "6543"),
        ("CLUSTER_USER", "clinic_app"),
        ("DSQL_TOKEN_LIFETIME_SECS", "3600"),
        ("POOL_MAX_CONNECTIONS", "3"),
        ("POOL_MAX_LIFETIME_SECS", "1800"),
        ("POOL_IDLE_TIMEOUT_SECS", "60"),
    ])
    .expect("a valid configuration");
    let (endpoint, port) = dsql(&config);
    assert_eq!(endpoint.host(), HOST);
    assert_eq!(port, 6543);
    assert_eq!(config.user, "clinic_app");
    assert_eq!(config.token_lifetime, Duration::from_secs(3600));
    assert_eq!(config.pool.max_connections, 3);
    assert_eq!(config.pool.max_lifetime, Duration::from_secs(1800));
    assert_eq!(config.pool.idle_timeout, Duration::from_secs(60));
}

#[test]
fn cluster_endpoint_selects_dsql_on_port_5432_as_admin() {
    let config = load(&[("CLUSTER_ENDPOINT", HOST)]).expect("a valid configuration");
    let (endpoint, port) = dsql(&config);
    assert_eq!(endpoint.host(), HOST);
    assert_eq!(endpoint.region(), "us-east-1");
    assert_eq!(port, 5432);
    assert_eq!(config.user, "admin");
    assert_eq!(config.schema(), "public");
}

#[test]
fn database_url_selects_plain_postgres() {
    let config = load(&[("DATABASE_URL", "postgres://admin@127.0.0.1:5433/postgres")])
        .expect("a valid configuration");
    let Target::Url(url) = &config.target else {
        panic!("expected a URL target, got {:?}", config.target);
    };
    assert_eq!(url.options().get_host(), "127.0.0.1");
    assert_eq!(url.options().get_port(), 5433);
    assert_eq!(url.options().get_database(), Some("postgres"));
    assert_eq!(url.options().get_username(), "admin");
    assert_eq!(config.user, "admin");
}

#[test]
fn setting_both_cluster_endpoint_and_database_url_is_refused_naming_both() {
    let problem = refused(
        &[
            ("CLUSTER_ENDPOINT", HOST),
            (
                "DATABASE_URL",
                "postgres://admin:hunter2@db.example.com/postgres",
            ),
        ],
        "CLUSTER_ENDPOINT",
        &["hunter2", "db.example.com"],
    );
    assert!(problem.contains("DATABASE_URL"), "{problem}");
    assert!(problem.contains("CLUSTER_ENDPOINT"), "{problem}");
}

// ---------------------------------------------------------------------------------------------
// CLUSTER_ENDPOINT and the region

#[test]
fn a_bare_cluster_id_expands_with_aws_region() {
    let config = load(&[
        ("CLUSTER_ENDPOINT", CLUSTER_ID),
        ("AWS_REGION", "eu-central-1"),
    ])
    .expect("a valid configuration");
    let (endpoint, _) = dsql(&config);
    assert_eq!(
        endpoint.host(),
        "abcdefghijklmnopqrstuvwxyz.dsql.eu-central-1.on.aws"
    );
    assert_eq!(endpoint.region(), "eu-central-1");
}

#[test]
fn a_bare_cluster_id_falls_back_to_aws_default_region() {
    let config = load(&[
        ("CLUSTER_ENDPOINT", CLUSTER_ID),
        ("AWS_DEFAULT_REGION", "ap-southeast-2"),
    ])
    .expect("a valid configuration");
    assert_eq!(dsql(&config).0.region(), "ap-southeast-2");

    let config = load(&[
        ("CLUSTER_ENDPOINT", CLUSTER_ID),
        ("AWS_REGION", "us-west-2"),
        ("AWS_DEFAULT_REGION", "ap-southeast-2"),
    ])
    .expect("a valid configuration");
    assert_eq!(dsql(&config).0.region(), "us-west-2");
}

#[test]
fn a_bare_cluster_id_without_a_region_is_refused_asking_for_aws_region() {
    let problem = refused(&[("CLUSTER_ENDPOINT", CLUSTER_ID)], "AWS_REGION", &[]);
    assert!(problem.contains("AWS_REGION=us-east-1"), "{problem}");
}

#[test]
fn the_region_in_the_host_name_wins_over_aws_region() {
    let config = load(&[("CLUSTER_ENDPOINT", HOST), ("AWS_REGION", "eu-west-1")])
        .expect("a valid configuration");
    assert_eq!(dsql(&config).0.region(), "us-east-1");
}

#[test]
fn a_host_name_is_lowercased() {
    let config =
        load(&[("CLUSTER_ENDPOINT", &HOST.to_ascii_uppercase())]).expect("a valid configuration");
    let (endpoint, _) = dsql(&config);
    assert_eq!(endpoint.host(), HOST);
    assert_eq!(endpoint.region(), "us-east-1");
}

#[test]
fn another_host_name_needs_aws_region() {
    let host = "dsql-proxy.internal.example.com";
    let problem = refused(&[("CLUSTER_ENDPOINT", host)], "AWS_REGION", &[]);
    assert!(problem.contains("AWS_REGION="), "{problem}");

    let config = load(&[("CLUSTER_ENDPOINT", host), ("AWS_REGION", "us-gov-west-1")])
        .expect("a valid configuration");
    let (endpoint, _) = dsql(&config);
    assert_eq!(endpoint.host(), host);
    assert_eq!(endpoint.region(), "us-gov-west-1");

    let config = load(&[
        ("CLUSTER_ENDPOINT", "localhost"),
        ("AWS_REGION", "us-east-1"),
    ])
    .expect("a valid configuration");
    assert_eq!(dsql(&config).0.host(), "localhost");
}

#[test]
fn a_malformed_region_is_refused_naming_the_variable_it_came_from() {
    for bad in [
        "US-EAST-1",
        "useast1",
        "us-east",
        "us_east_1",
        "us-east-1 ",
        "east-1",
    ] {
        refused(
            &[("CLUSTER_ENDPOINT", CLUSTER_ID), ("AWS_REGION", bad)],
            "AWS_REGION",
            &[],
        );
    }
    refused(
        &[
            ("CLUSTER_ENDPOINT", CLUSTER_ID),
            ("AWS_DEFAULT_REGION", "nowhere"),
        ],
        "AWS_DEFAULT_REGION",
        &[],
    );
}

#[test]
fn a_malformed_cluster_endpoint_is_refused() {
    let too_long_label = format!("{}.example.com", "a".repeat(64));
    let too_long_name = format!("{}.com", ["abcdefghij"; 25].join("."));
    for bad in [
        "https://abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
        "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws:5432",
        "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws/postgres",
        "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws.",
        "has space.example.com",
        "-leading.example.com",
        "trailing-.example.com",
        "a..b.example.com",
        "under_score.example.com",
        " ",
        &too_long_label,
        &too_long_name,
    ] {
        let problem = refused(
            &[("CLUSTER_ENDPOINT", bad), ("AWS_REGION", "us-east-1")],
            "CLUSTER_ENDPOINT",
            &[],
        );
        assert!(
            problem.contains(".dsql.us-east-1.on.aws"),
            "no example host for {bad:?}: {problem}"
        );
    }
}

#[test]
fn a_url_in_cluster_endpoint_is_refused_without_echoing_it() {
    let problem = refused(
        &[(
            "CLUSTER_ENDPOINT",
            "postgres://admin:hunter2@abc.example.com:5432/postgres",
        )],
        "CLUSTER_ENDPOINT",
        &["hunter2"],
    );
    assert!(problem.contains("CLUSTER_PORT"), "{problem}");
}

#[test]
fn a_dsql_host_name_with_a_non_region_is_refused() {
    refused(
        &[(
            "CLUSTER_ENDPOINT",
            "abcdefghijklmnopqrstuvwxyz.dsql.useast1.on.aws",
        )],
        "CLUSTER_ENDPOINT",
        &[],
    );
}

/// The local stand-in's name is taken for a cluster's endpoint by every client: a cluster id
/// as AWS makes them (26 lowercase letters and digits), so AWS's connectors keep it as the
/// host (node-postgres expands only a host without a dot, Python only one without `.dsql`)
/// and read its Region with their `\.dsql[^.]*\.([^.]+)\.on\.aws$`, as the app does. Only it
/// is dialled at the loopback; every other endpoint by its name.
#[test]
fn the_stand_in_name_is_a_cluster_endpoint_dialled_at_the_loopback() {
    let (cluster_id, rest) = STAND_IN_HOST.split_once('.').expect("a dotted name");
    assert_eq!(cluster_id.len(), 26, "{cluster_id}");
    assert!(
        cluster_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{cluster_id}"
    );
    assert_eq!(rest, "dsql.us-east-1.on.aws");
    assert!(STAND_IN_HOST.contains('.') && STAND_IN_HOST.contains(".dsql"));
    assert_eq!(region_from_host(STAND_IN_HOST), Some("us-east-1"));

    let config = load(&[("CLUSTER_ENDPOINT", STAND_IN_HOST)]).expect("a valid configuration");
    let (endpoint, _) = dsql(&config);
    assert_eq!(
        (endpoint.host(), endpoint.region(), endpoint.address()),
        (STAND_IN_HOST, "us-east-1", "127.0.0.1")
    );
    let cluster = Endpoint::parse(HOST, None).expect("a cluster's endpoint");
    assert_eq!(cluster.address(), HOST);
}

#[test]
fn region_from_host_follows_the_official_connector_pattern() {
    assert_eq!(region_from_host(HOST), Some("us-east-1"));
    assert_eq!(
        region_from_host("abc.dsql-gamma.eu-west-1.on.aws"),
        Some("eu-west-1")
    );
    assert_eq!(
        region_from_host("abc.dsql.us-gov-west-1.on.aws"),
        Some("us-gov-west-1")
    );
    for not_dsql in [
        "abc.example.com",
        "abc.dsql.us-east-1.on.aws.example.com",
        "abc.rds.us-east-1.on.aws",
        "a.b.dsql.us-east-1.on.aws",
        ".dsql.us-east-1.on.aws",
        "abc.dsql..on.aws",
        "abc.dsql.US-EAST-1.on.aws",
        "dsql.us-east-1.on.aws",
    ] {
        assert_eq!(region_from_host(not_dsql), None, "{not_dsql}");
    }
}

#[test]
fn is_region_accepts_region_shapes_only() {
    for region in [
        "us-east-1",
        "ap-southeast-2",
        "us-gov-west-1",
        "eu-central-1",
        "il-central-1",
        "cn-north-1",
        "us-isob-east-1",
    ] {
        assert!(is_region(region), "{region}");
    }
    for not_region in [
        "",
        "us",
        "us-east",
        "useast1",
        "US-EAST-1",
        "us-east-1a",
        "us-east-",
        "-east-1",
        "us--east-1",
        "u-east-1",
        "us-east-123",
        "us east 1",
    ] {
        assert!(!is_region(not_region), "{not_region:?}");
    }
}

#[test]
fn endpoint_parse_names_the_part_at_fault() {
    assert!(matches!(
        Endpoint::parse("not a host", Some("us-east-1")),
        Err(EndpointError {
            part: Part::Host,
            ..
        })
    ));
    assert!(matches!(
        Endpoint::parse("db.example.com", None),
        Err(EndpointError {
            part: Part::Region,
            ..
        })
    ));
    let endpoint = Endpoint::parse(CLUSTER_ID, Some("us-west-2")).expect("a valid endpoint");
    assert_eq!(
        endpoint.host(),
        "abcdefghijklmnopqrstuvwxyz.dsql.us-west-2.on.aws"
    );
}

// ---------------------------------------------------------------------------------------------
// Numbers and the user

#[test]
fn a_bad_port_is_refused() {
    for bad in ["abc", "0", "65536", "-1", "5432.0"] {
        let problem = refused(
            &[("CLUSTER_ENDPOINT", HOST), ("CLUSTER_PORT", bad)],
            "CLUSTER_PORT",
            &[],
        );
        assert!(problem.contains("CLUSTER_PORT=5432"), "{problem}");
    }
}

#[test]
fn a_bad_token_lifetime_is_refused() {
    for bad in ["0", "604801", "15m", "-5", "1e3"] {
        let problem = refused(
            &[("DSQL_TOKEN_LIFETIME_SECS", bad)],
            "DSQL_TOKEN_LIFETIME_SECS",
            &[],
        );
        assert!(
            problem.contains("DSQL_TOKEN_LIFETIME_SECS=900"),
            "{problem}"
        );
    }
    for good in ["1", "604800"] {
        let config = load(&[("DSQL_TOKEN_LIFETIME_SECS", good)]).expect("a valid configuration");
        assert_eq!(config.token_lifetime.as_secs().to_string(), good);
    }
}

#[test]
fn a_bad_pool_size_is_refused() {
    for bad in ["0", "ten", "-1", "4294967296"] {
        let problem = refused(
            &[("POOL_MAX_CONNECTIONS", bad)],
            "POOL_MAX_CONNECTIONS",
            &[],
        );
        assert!(problem.contains("POOL_MAX_CONNECTIONS=10"), "{problem}");
    }
    assert_eq!(
        load(&[("POOL_MAX_CONNECTIONS", "1")])
            .expect("a valid configuration")
            .pool
            .max_connections,
        1
    );
}

/// Every numeric setting, its largest accepted value, and words of the reason its message gives
/// for that bound.
const UPPER_BOUNDS: [(&str, u64, &str); 5] = [
    ("CLUSTER_PORT", 65_535, "largest TCP port"),
    ("DSQL_TOKEN_LIFETIME_SECS", 604_800, "one week"),
    (
        "POOL_MAX_CONNECTIONS",
        10_000,
        "DSQL accepts at most 10000 connections per cluster",
    ),
    ("POOL_MAX_LIFETIME_SECS", 3_599, "60 minutes"),
    ("POOL_IDLE_TIMEOUT_SECS", 3_599, "an hour"),
];

/// A huge value used to reach the allocator (`POOL_MAX_CONNECTIONS=4000000000` asked for
/// 192 GB and aborted); now every numeric setting stops at a documented bound, and a value past
/// it is refused naming the variable, the bound, why, and a value to set instead.
#[test]
fn every_numeric_setting_past_its_upper_bound_is_refused_naming_the_bound_and_why() {
    let not_numeric = [
        "CLUSTER_ENDPOINT",
        "CLUSTER_USER",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "DATABASE_URL",
    ];
    let mut listed: Vec<&str> = UPPER_BOUNDS.iter().map(|(v, _, _)| *v).collect();
    listed.extend(not_numeric);
    listed.sort_unstable();
    let mut every = app::config::VARIABLES.to_vec();
    every.sort_unstable();
    assert_eq!(listed, every, "a numeric setting without a tested bound");

    for (variable, bound, why) in UPPER_BOUNDS {
        let at_bound = bound.to_string();
        load(&[("CLUSTER_ENDPOINT", HOST), (variable, &at_bound)])
            .unwrap_or_else(|e| panic!("{variable}={bound} is accepted: {e}"));
        let past = [bound + 1, 4_000_000_000, u64::MAX]
            .map(|n| n.to_string())
            .into_iter()
            .chain(["18446744073709551616".to_owned(), "9".repeat(40)]);
        for value in past {
            let problem = refused(
                &[("CLUSTER_ENDPOINT", HOST), (variable, &value)],
                variable,
                &[],
            );
            assert!(
                problem.contains(&format!("to {bound}")),
                "{variable}={value}: the bound is not named: {problem}"
            );
            assert!(
                problem.contains(why),
                "{variable}={value}: the reason is not given: {problem}"
            );
            assert!(
                problem.contains(&format!("{variable}=")),
                "{variable}={value}: no value to set instead: {problem}"
            );
        }
    }
}

#[test]
fn a_max_lifetime_of_an_hour_or_more_is_refused_because_dsql_closes_connections_then() {
    for bad in ["3600", "7200", "0", "55m"] {
        let problem = refused(
            &[("POOL_MAX_LIFETIME_SECS", bad)],
            "POOL_MAX_LIFETIME_SECS",
            &[],
        );
        assert!(problem.contains("60 minutes"), "{problem}");
        assert!(problem.contains("POOL_MAX_LIFETIME_SECS=3300"), "{problem}");
    }
    assert_eq!(
        load(&[("POOL_MAX_LIFETIME_SECS", "3599")])
            .expect("a valid configuration")
            .pool
            .max_lifetime,
        Duration::from_secs(3599)
    );
}

#[test]
fn a_bad_idle_timeout_is_refused() {
    for bad in ["0", "x", "3600"] {
        let problem = refused(
            &[("POOL_IDLE_TIMEOUT_SECS", bad)],
            "POOL_IDLE_TIMEOUT_SECS",
            &[],
        );
        assert!(problem.contains("POOL_IDLE_TIMEOUT_SECS=600"), "{problem}");
    }
}

#[test]
fn a_user_that_is_not_a_plain_identifier_is_refused() {
    let too_long = "a".repeat(64);
    for bad in [
        "bob smith",
        "1abc",
        "with-hyphen",
        "robert'); drop table pet; --",
        "\"quoted\"",
        "émile",
        &too_long,
    ] {
        let problem = refused(&[("CLUSTER_USER", bad)], "CLUSTER_USER", &[]);
        assert!(problem.contains("CLUSTER_USER=admin"), "{problem}");
    }
}

#[test]
fn any_other_user_works_in_myschema() {
    let max = format!("_{}", "X9".repeat(31));
    for good in ["clinic_app", "_x", "Clinic_App", &max] {
        let config = load(&[("CLUSTER_ENDPOINT", HOST), ("CLUSTER_USER", good)])
            .expect("a valid configuration");
        assert_eq!(config.user, good);
        assert!(!config.is_admin(), "{good}");
        assert_eq!(config.schema(), "myschema");
    }
}

// ---------------------------------------------------------------------------------------------
// DATABASE_URL

#[test]
fn an_unparsable_database_url_is_refused_without_echoing_it() {
    for bad in [
        "not a url",
        "mysql://admin:hunter2@db.example.com/postgres",
        "postgres://admin:hunter2@db.example.com:notaport/postgres",
        "postgres://admin:hunter2@db.example.com/postgres?sslmode=hunter2",
        "postgres://admin:hunter2@[::1/postgres",
    ] {
        let problem = refused(
            &[("DATABASE_URL", bad)],
            "DATABASE_URL",
            &["hunter2", "db.example.com"],
        );
        assert!(problem.contains("DATABASE_URL=postgres://"), "{problem}");
    }
}

#[test]
fn the_database_url_user_decides_the_schema() {
    let config = load(&[("DATABASE_URL", "postgres://bob@db.example.com/postgres")])
        .expect("a valid configuration");
    assert_eq!(config.user, "bob");
    assert_eq!(config.schema(), "myschema");

    let config = load(&[(
        "DATABASE_URL",
        "postgres://db.example.com/postgres?user=dave",
    )])
    .expect("a valid configuration");
    assert_eq!(config.user, "dave");
}

#[test]
fn a_database_url_without_a_user_connects_as_cluster_user_or_admin() {
    let config = load(&[("DATABASE_URL", "postgres://db.example.com/postgres")])
        .expect("a valid configuration");
    assert_eq!(config.user, "admin");
    let Target::Url(url) = &config.target else {
        panic!("expected a URL target");
    };
    assert_eq!(url.options().get_username(), "admin");

    let config = load(&[
        (
            "DATABASE_URL",
            "postgres://db.example.com:5433/postgres?sslmode=require",
        ),
        ("CLUSTER_USER", "carol"),
    ])
    .expect("a valid configuration");
    assert_eq!(config.user, "carol");
    let Target::Url(url) = &config.target else {
        panic!("expected a URL target");
    };
    assert_eq!(url.options().get_username(), "carol");
    assert_eq!(url.options().get_port(), 5433);
}

#[test]
fn cluster_user_must_agree_with_the_database_url_user() {
    let problem = refused(
        &[
            (
                "DATABASE_URL",
                "postgres://bob:hunter2@db.example.com/postgres",
            ),
            ("CLUSTER_USER", "carol"),
        ],
        "CLUSTER_USER",
        &["hunter2", "db.example.com"],
    );
    assert!(problem.contains("DATABASE_URL"), "{problem}");

    let config = load(&[
        ("DATABASE_URL", "postgres://bob@db.example.com/postgres"),
        ("CLUSTER_USER", "bob"),
    ])
    .expect("a valid configuration");
    assert_eq!(config.user, "bob");
}

#[test]
fn a_database_url_user_that_is_not_a_plain_identifier_is_refused_without_echoing_it() {
    refused(
        &[(
            "DATABASE_URL",
            "postgres://bob.smith:hunter2@db.example.com/postgres",
        )],
        "DATABASE_URL",
        &["hunter2", "bob.smith"],
    );
}

#[test]
fn debug_output_never_shows_the_database_url_password() {
    for (url, password) in [
        (
            "postgres://admin:hunter2@db.example.com:5432/postgres",
            "hunter2",
        ),
        (
            "postgres://admin:p%40ss%2Fw0rd@db.example.com/postgres",
            "p@ss/w0rd",
        ),
        (
            "postgres://db.example.com/postgres?password=sw0rdfish",
            "sw0rdfish",
        ),
    ] {
        let config = load(&[("DATABASE_URL", url)]).expect("a valid configuration");
        let Target::Url(database_url) = &config.target else {
            panic!("expected a URL target");
        };
        // sqlx's own Debug prints the password: that is why DatabaseUrl has its own.
        assert!(
            format!("{:?}", database_url.options()).contains(password),
            "the password was not parsed from {url}"
        );
        for shown in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{:?}", config.target),
            format!("{database_url:?}"),
        ] {
            assert!(!shown.contains(password), "password shown: {shown}");
            assert!(shown.contains("db.example.com"), "host missing: {shown}");
        }
    }
}
