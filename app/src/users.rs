//! Onboarding a non-admin database user the DSQL way.
//!
//! On DSQL a database role logs in with an IAM token for an IAM identity mapped to it
//! (`AWS IAM GRANT role TO 'arn:…'`), and non-admin roles cannot be given the `public` schema, so
//! they work in `myschema`. Every statement runs in its own transaction (DSQL allows one DDL
//! statement per transaction, and counts `GRANT` as DDL) and is retried on `40001`.

use migration::dsql::{is_dsql, retry_on_conflict};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tracing::info;

use crate::dsql::{USER_SCHEMA, is_identifier, quote_identifier};
use crate::error::{Error, Result};
use crate::local::{Credentials, LocalServer};

/// Creates the login role `name` if it does not exist, maps `iam_role_arn` to it with
/// `AWS IAM GRANT` (on DSQL; elsewhere there is no IAM and the ARN is ignored with a notice),
/// creates `myschema` if needed and grants the role `USAGE` and `CREATE` on it. Run as `admin`.
/// Safe to run again: existing roles and schemas are kept and grants are idempotent (how DSQL
/// answers a repeated `AWS IAM GRANT` is not recorded, so that one is issued each time).
///
/// The ARN must pass [`is_iam_arn`] (else [`Error::Invalid`], and nothing is sent) and goes to
/// the server as one literal ([`quote_literal`]): IAM paths may contain `'` and `\`, so quoting,
/// not the check, is what keeps it data.
pub async fn onboard(
    db: &impl ConnectionTrait,
    name: &str,
    iam_role_arn: Option<&str>,
) -> Result<()> {
    if !is_identifier(name) {
        return Err(Error::Invalid(format!(
            "{name:?} is not a valid role name: use letters, digits and _ (at most 63), not starting with a digit"
        )));
    }
    if let Some(arn) = iam_role_arn
        && !is_iam_arn(arn)
    {
        return Err(Error::Invalid(format!(
            "{arn:?} is not an IAM role or user ARN: use arn:<partition>:iam::<12-digit \
             account>:role/<path><name> (or user/...), e.g. \
             arn:aws:iam::123456789012:role/clinic"
        )));
    }
    let role = quote_identifier(name);
    let exists = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    let mut statements = Vec::new();
    if !exists {
        statements.push(format!("CREATE ROLE {role} WITH LOGIN"));
    }
    match iam_role_arn {
        Some(arn) if is_dsql(db).await? => {
            statements.push(format!("AWS IAM GRANT {role} TO {}", quote_literal(arn)));
        }
        Some(_) => info!("not Aurora DSQL: no IAM mapping for role {name}"),
        None => {}
    }
    statements.push(format!("CREATE SCHEMA IF NOT EXISTS {USER_SCHEMA}"));
    statements.push(format!(
        "GRANT USAGE, CREATE ON SCHEMA {USER_SCHEMA} TO {role}"
    ));
    for sql in &statements {
        info!("{sql}");
        retry_on_conflict(sql, || db.execute_unprepared(sql)).await?;
    }
    Ok(())
}

/// Onboards `name` on the local stand-in's server in `database` as on DSQL ([`onboard`], as
/// `admin`), then lets it log in there ([`LocalServer::grant_login`]: the stand-in's password
/// and IAM identity for it). Returns its credentials on the bare server.
pub async fn onboard_local(
    server: &LocalServer,
    database: &str,
    name: &str,
) -> Result<Credentials> {
    let pool = server.pool(database, server.admin()).await?;
    let admin = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
    onboard(&admin, name, None).await?;
    admin.close().await?;
    Ok(server.grant_login(database, name).await?)
}

/// AWS's partitions, the second field of every ARN (as the SDKs' endpoint rules list them).
pub const AWS_PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The longest IAM path, leading and trailing `/` included (IAM's limit).
const MAX_IAM_PATH: usize = 512;
/// The longest IAM role or user name (IAM's limit for both).
const MAX_IAM_NAME: usize = 64;

/// Whether `arn` is a well-formed IAM role or user ARN,
/// `arn:<partition>:iam::<account>:role/<path><name>` (or `user/`): a partition of
/// [`AWS_PARTITIONS`], a 12-digit account, a path of IAM's path characters (`!` through DEL,
/// at most 512 with its slashes; it may hold `'` and `\`, so the ARN must still be quoted as
/// a literal) and a name of IAM's name characters (letters, digits, `_+=,.@-`, 1 to 64).
pub fn is_iam_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Some(path_and_name) = resource
        .strip_prefix("role/")
        .or_else(|| resource.strip_prefix("user/"))
    else {
        return false;
    };
    // The path inside the ARN lacks its leading `/` and keeps its trailing one.
    let (path, name) = path_and_name
        .rfind('/')
        .map_or(("", path_and_name), |slash| {
            (&path_and_name[..=slash], &path_and_name[slash + 1..])
        });
    AWS_PARTITIONS.contains(&partition)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        // With its leading `/`, which the ARN leaves out.
        && path.len() < MAX_IAM_PATH
        && path.bytes().all(|b| (b'!'..=0x7f).contains(&b))
        && (1..=MAX_IAM_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// `text` as a PostgreSQL string literal whose value is `text` exactly: `'…'` with each `'`
/// doubled, and when `text` holds a backslash the escape form `E'…'` with each `\` doubled
/// too, so that the value does not depend on `standard_conforming_strings`. (The plain form is
/// the one AWS documents for `AWS IAM GRANT`; that DSQL accepts `E'…'` there is an assumption,
/// needed only for an IAM path with a backslash.) `text` must not contain NUL, which no
/// PostgreSQL text can hold; [`is_iam_arn`] guarantees it.
pub fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_from_aws_documentation_are_accepted() {
        for arn in [
            // IAM identifiers (IAM User Guide, "IAM ARNs").
            "arn:aws:iam::123456789012:role/S3Access",
            "arn:aws:iam::123456789012:role/application_abc/component_xyz/RDSAccess",
            "arn:aws:iam::123456789012:role/aws-service-role/access-analyzer.amazonaws.com/AWSServiceRoleForAccessAnalyzer",
            "arn:aws:iam::123456789012:role/service-role/QuickSightAction",
            "arn:aws:iam::123456789012:user/JohnDoe",
            "arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/JaneDoe",
            // Other partitions.
            "arn:aws-cn:iam::123456789012:role/clinic",
            "arn:aws-us-gov:iam::123456789012:role/clinic",
            "arn:aws-iso-f:iam::123456789012:user/clinic",
            "arn:aws-eusc:iam::123456789012:role/clinic",
            // A path of any character from ! to DEL (CreateRole's Path pattern).
            r"arn:aws:iam::123456789012:role/o'brien/a\b;--$$/x:y/clinic",
            "arn:aws:iam::123456789012:role/\u{7f}/clinic",
            "arn:aws:iam::123456789012:role/+=,.@-_",
        ] {
            assert!(is_iam_arn(arn), "{arn} refused");
        }
        let longest_name = "n".repeat(MAX_IAM_NAME);
        let longest_path = format!("{}/", "p".repeat(MAX_IAM_PATH - 2));
        assert!(is_iam_arn(&format!(
            "arn:aws:iam::123456789012:role/{longest_path}{longest_name}"
        )));
    }

    #[test]
    fn anything_but_an_iam_role_or_user_arn_is_refused() {
        for arn in [
            "arn:aws'; CREATE TABLE injected(); --:iam::123456789012:role/x",
            "arn:aws-evil:iam::123456789012:role/x",
            "arn:AWS:iam::123456789012:role/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::1234567890123:role/x",
            "arn:aws:iam::12345678901a:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:sts::123456789012:assumed-role/x/session",
            "arn:aws:iam::123456789012:group/x",
            "arn:aws:iam::123456789012:policy/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path/",
            "arn:aws:iam::123456789012:role/x'y",
            "arn:aws:iam::123456789012:role/x y",
            "arn:aws:iam::123456789012:role/a b/x",
            "arn:aws:iam::123456789012:role/a\0b/x",
            "arn:aws:iam::123456789012:role/é/x",
            "arn:aws:iam::123456789012:role",
            "arn:aws:s3:::bucket",
            "",
        ] {
            assert!(!is_iam_arn(arn), "{arn:?} accepted");
        }
        let long_name = "n".repeat(MAX_IAM_NAME + 1);
        assert!(!is_iam_arn(&format!(
            "arn:aws:iam::123456789012:role/{long_name}"
        )));
        let long_path = format!("{}/", "p".repeat(MAX_IAM_PATH - 1));
        assert!(!is_iam_arn(&format!(
            "arn:aws:iam::123456789012:role/{long_path}x"
        )));
    }

    #[test]
    fn literals_keep_quotes_and_backslashes_as_data() {
        assert_eq!(
            quote_literal("arn:aws:iam::1:role/x"),
            "'arn:aws:iam::1:role/x'"
        );
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
        assert_eq!(quote_literal(r"a\'b"), r"E'a\\''b'");
        assert_eq!(quote_literal("'; --"), "'''; --'");
    }
}
