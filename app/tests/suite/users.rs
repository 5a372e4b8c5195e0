//! Onboarding a user with `app user create --iam-role`: the ARN reaches the server as one
//! quoted literal equal to what the operator typed, whatever it contains, and an ARN that is
//! not an IAM role or user ARN is refused before anything is sent. Checked on what the server
//! recorded (`dsql_local.iam_grants`, where the stand-in's `AWS IAM GRANT` writes) and on its
//! catalog (no table the text tried to create).
#![cfg(feature = "front-door")]
#![allow(missing_docs)]

use crate::common;
use secrecy::ExposeSecret;

use std::process::{Command, Output};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use sea_orm::DatabaseConnection;
use sqlx::{Connection, PgConnection};

use common::door::{self, Door, REGION};

/// The ARN of the attack: the partition closes the quote and runs a statement of its own.
const SMUGGLING_ARN: &str = "arn:aws'; CREATE TABLE injected(); --:iam::123456789012:role/x";

/// Runs `app` with `args` against `door` as admin (the DSQL way: endpoint, port, region,
/// credentials, CA), with nothing from the caller's environment, from an empty directory.
fn app_through(door: &Door, args: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_app"));
    command
        .args(args)
        .current_dir(empty.path())
        .env_clear()
        .env("HOME", empty.path())
        .env("RUST_LOG", "warn")
        .env("CLUSTER_ENDPOINT", door::HOST)
        .env("CLUSTER_PORT", door.port().to_string())
        .env("CLUSTER_USER", "admin")
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", &door.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", door.secret.expose_secret())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PGSSLROOTCERT", door.ca_file.path());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.output().expect("run app")
}

/// The server's superuser on `database`, to read what the front door's `AWS IAM GRANT`
/// recorded (no DSQL role may read it).
async fn superuser(database: &str) -> PgConnection {
    let options = common::server().await.backend().superuser_options(database);
    PgConnection::connect_with(&options)
        .await
        .expect("the server's superuser")
}

/// The ARNs mapped to `role` in `database`, sorted.
async fn arns_of(database: &str, role: &str) -> Vec<String> {
    let mut conn = superuser(database).await;
    let arns =
        sqlx::query_scalar("SELECT arn FROM dsql_local.iam_grants WHERE role = $1 ORDER BY arn")
            .bind(role)
            .fetch_all(&mut conn)
            .await
            .expect("read the IAM mappings");
    conn.close().await.expect("close");
    arns
}

/// The tables of `database` outside the system schemas and the stand-in's own (`sys`,
/// `dsql_local`, set up on first use), sorted.
async fn tables(database: &str) -> Vec<String> {
    let mut conn = superuser(database).await;
    let names = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'sys', 'dsql_local') \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list the tables");
    conn.close().await.expect("close");
    names
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The attack as an operator would be tricked into typing it: refused before any statement is
/// sent (no role, no table), with a message saying what an IAM ARN looks like. Its legitimate
/// neighbour, an ARN whose IAM path holds quotes, a backslash and SQL-looking text (all allowed
/// in IAM paths), is mapped verbatim.
#[tokio::test]
async fn user_create_refuses_an_arn_smuggling_sql_and_maps_a_quoted_path_verbatim() {
    let door = door::shared().await;
    let database = app::local::DATABASE;
    let before = tables(database).await;

    let refused = tokio::task::spawn_blocking(move || {
        app_through(
            door,
            &[
                "user",
                "create",
                "clinic_smuggled",
                "--iam-role",
                SMUGGLING_ARN,
            ],
        )
    })
    .await
    .expect("the CLI ran");
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is not an IAM role or user ARN"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(tables(database).await, before, "no table was created");
    assert!(
        arns_of(database, "clinic_smuggled").await.is_empty(),
        "nothing was mapped"
    );
    let mut conn = superuser(database).await;
    let role: Option<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = 'clinic_smuggled'")
            .fetch_optional(&mut conn)
            .await
            .expect("read the roles");
    conn.close().await.expect("close");
    assert_eq!(role, None, "no statement was sent, not even the role");

    let quoted = r"arn:aws:iam::123456789012:role/o'brien/a\b';DROP/**/TABLE/**/t;--/clinic";
    let mapped = tokio::task::spawn_blocking(move || {
        app_through(
            door,
            &["user", "create", "clinic_quoted", "--iam-role", quoted],
        )
    })
    .await
    .expect("the CLI ran");
    assert!(mapped.status.success(), "{}", stderr(&mapped));
    assert_eq!(arns_of(database, "clinic_quoted").await, [quoted]);
    assert_eq!(tables(database).await, before, "no table was created");
}

/// Characters an IAM path may hold (`!` through DEL), weighted towards those that mean
/// something to SQL.
fn path_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec!['\'', '\\', ';', '-', '$', '"', '/', '*', 'E', '(', ')']),
        1 => (0x21_u8..=0x7f).prop_map(char::from),
    ]
}

/// A well-formed IAM role or user ARN (AWS's partitions, a 12-digit account, a path of any
/// allowed characters, a name of IAM's name characters).
fn valid_arn() -> impl Strategy<Value = String> {
    let partition = prop::sample::select(app::users::AWS_PARTITIONS.to_vec());
    let kind = prop::sample::select(vec!["role", "user"]);
    let path = prop::collection::vec(path_char(), 0..40).prop_map(|chars| {
        let inner: String = chars.into_iter().collect();
        if inner.is_empty() {
            inner
        } else {
            format!("{inner}/")
        }
    });
    (
        partition,
        "[0-9]{12}",
        kind,
        path,
        "[A-Za-z0-9_+=,.@-]{1,64}",
    )
        .prop_map(|(partition, account, kind, path, name)| {
            format!("arn:{partition}:iam::{account}:{kind}/{path}{name}")
        })
}

/// Hostile text: an ARN with SQL spliced in at any position, or anything at all.
fn hostile_arn() -> impl Strategy<Value = String> {
    let splice = prop::sample::select(vec![
        "'; CREATE TABLE injected(); --",
        "'); CREATE TABLE injected(); --",
        "\\'; CREATE TABLE injected(); --",
        "$$; CREATE TABLE injected(); --",
        "'||(SELECT 1)||'",
        "\0",
        "\n",
    ]);
    prop_oneof![
        (valid_arn(), splice.clone(), any::<prop::sample::Index>()).prop_map(
            |(arn, splice, at)| {
                let at = at.index(arn.len() + 1);
                format!("{}{splice}{}", &arn[..at], &arn[at..])
            }
        ),
        // Right after the partition, as in the attack found.
        (valid_arn(), splice).prop_map(|(arn, splice)| {
            let at = arn[4..].find(':').map_or(arn.len(), |i| i + 4);
            format!("{}{splice}{}", &arn[..at], &arn[at..])
        }),
        ".{0,80}",
    ]
}

/// What `users::onboard` does with `arn`: refused as not an ARN (and then nothing recorded),
/// or recorded as exactly that text; never another statement, so never another table. An ARN
/// `known_valid` (well-formed by construction) must be accepted.
async fn onboard_once(
    db: &DatabaseConnection,
    database: &str,
    role: &str,
    arn: &str,
    known_valid: bool,
) {
    let before = arns_of(database, role).await;
    let result = app::users::onboard(db, role, Some(arn)).await;
    let after = arns_of(database, role).await;
    if known_valid {
        assert!(
            result.is_ok(),
            "the well-formed {arn:?} was refused: {result:?}"
        );
    }
    match result {
        Ok(()) => {
            assert!(app::users::is_iam_arn(arn), "accepted a non-ARN {arn:?}");
            let mut expected = before.clone();
            if !expected.iter().any(|a| a == arn) {
                expected.push(arn.to_owned());
                expected.sort();
            }
            assert_eq!(after, expected, "{arn:?} was not recorded as sent");
        }
        Err(app::Error::Invalid(message)) => {
            assert!(
                !app::users::is_iam_arn(arn),
                "refused an ARN {arn:?}: {message}"
            );
            assert_eq!(after, before, "{arn:?} was refused but recorded");
        }
        Err(other) => panic!("{arn:?}: {other}"),
    }
}

/// Hostile ARNs through `users::onboard` and the real front door: each one is either refused
/// or arrives as one literal equal to the input, and no statement of its making ever runs.
#[test]
fn any_arn_is_refused_or_recorded_verbatim_and_runs_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (db, database, before) = runtime.block_on(async {
        let database = common::fresh_database("users_hostile_arns").await;
        let db = common::admin_db(&database).await;
        let before = tables(&database).await;
        (db, database, before)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(48)
    });
    runner
        .run(&(valid_arn(), hostile_arn()), |(valid, hostile)| {
            runtime.block_on(async {
                onboard_once(&db, &database, "clinic_hostile", &valid, true).await;
                onboard_once(&db, &database, "clinic_hostile", &hostile, false).await;
            });
            Ok(())
        })
        .expect("every ARN refused or recorded verbatim");
    let after = runtime.block_on(tables(&database));
    assert_eq!(after, before, "no statement of an ARN's making ran");
}
