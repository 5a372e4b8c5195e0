//! Onboarding a non-admin database user the DSQL way.
//!
//! On DSQL a database role logs in with an IAM token for an IAM identity mapped to it
//! (`AWS IAM GRANT role TO 'arn:…'`), and non-admin roles cannot be given the `public` schema, so
//! they work in `myschema`. Every statement runs in its own transaction (DSQL allows one DDL
//! statement per transaction, and counts `GRANT` as DDL) and is retried on `40001`.

use migration::dsql::{is_dsql, retry_on_conflict};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tracing::info;

use crate::config::is_identifier;
use crate::error::{Error, Result};
use crate::local::{USER_SCHEMA, quote_identifier};

/// Creates the login role `name` if it does not exist, maps `iam_role_arn` to it with
/// `AWS IAM GRANT` (on DSQL; elsewhere there is no IAM and the ARN is ignored with a notice),
/// creates `myschema` if needed and grants the role `USAGE` and `CREATE` on it. Run as `admin`.
/// Safe to run again: existing roles and schemas are kept and grants are idempotent (how DSQL
/// answers a repeated `AWS IAM GRANT` is not recorded, so that one is issued each time).
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
            "{arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/clinic"
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
            statements.push(format!("AWS IAM GRANT {role} TO '{arn}'"));
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

/// `arn:<partition>:iam::<12-digit account>:role/<path and name>` with no quote characters.
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
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.starts_with("role/")
        && resource.len() > "role/".len()
        && resource
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+=,.@_-".contains(&b))
}
