//! Building an index the DSQL way: `CREATE INDEX ASYNC`, then a wait for its job.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tracing::debug;

use crate::LOG_TARGET;
use crate::dsql::{Retries, retry_counted};

/// Builds an index: `plain` (a `CREATE [UNIQUE] INDEX …`) where the server builds indexes
/// synchronously, or `dsql` (the same with `ASYNC`) on DSQL, followed by a wait for its job. A
/// job that does not end `completed` (a unique index over duplicates, say) is an error.
/// Conflicts are retried and added to `retries`.
pub async fn build_index<C: ConnectionTrait>(
    db: &C,
    dsql: &str,
    plain: &str,
    async_build: bool,
    retries: &Retries,
) -> Result<(), DbErr> {
    if !async_build {
        debug!(target: LOG_TARGET, "{plain}");
        retry_counted(plain, retries, || db.execute_unprepared(plain)).await?;
        return Ok(());
    }
    debug!(target: LOG_TARGET, "{dsql}");
    // The job id comes back as a row, so this must be a query, not an `execute`.
    let statement = Statement::from_string(DbBackend::Postgres, dsql.to_owned());
    let row = retry_counted(dsql, retries, || db.query_one_raw(statement.clone())).await?;
    let Some(row) = row else {
        // `IF NOT EXISTS` found the index: there is no job to wait for.
        return Ok(());
    };
    let job_id: String = row.try_get("", "job_id")?;
    debug!(target: LOG_TARGET, job_id, "waiting for the index job");
    let wait = wait_for_job_sql(&job_id)?;
    retry_counted(&wait, retries, || db.execute_unprepared(&wait)).await?;
    let status = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT status, details FROM sys.jobs WHERE job_id = $1",
        [job_id.clone().into()],
    );
    let row = retry_counted("read the index job", retries, || {
        db.query_one_raw(status.clone())
    })
    .await?;
    let (status, details): (String, Option<String>) = match row {
        Some(row) => (row.try_get("", "status")?, row.try_get("", "details")?),
        None => ("unknown".to_owned(), None),
    };
    if status == "completed" {
        Ok(())
    } else {
        Err(DbErr::Migration(format!(
            "{dsql} (job {job_id}) ended {status}: {}",
            details.unwrap_or_default()
        )))
    }
}

/// Longest job id [`wait_for_job_sql`] accepts. DSQL's ids are 26 characters.
const MAX_JOB_ID_LEN: usize = 64;

/// `CALL sys.wait_for_job('<job_id>')`, with the id as a string literal. DSQL's documented form
/// takes a literal and refuses a subquery argument (`sys_call_wait_for_job` in the DSQL
/// recordings). The id comes from the server, but it is checked before it goes into SQL: it
/// must be 1 to [`MAX_JOB_ID_LEN`] characters of `A-Z`, `a-z`, `0-9`, `_` and `-`.
fn wait_for_job_sql(job_id: &str) -> Result<String, DbErr> {
    let well_formed = !job_id.is_empty()
        && job_id.len() <= MAX_JOB_ID_LEN
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(DbErr::Migration(format!(
            "CREATE INDEX ASYNC answered the job id {job_id:?}, which is not 1 to \
             {MAX_JOB_ID_LEN} characters of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    Ok(format!("CALL sys.wait_for_job('{job_id}')"))
}

#[cfg(test)]
mod tests {
    use super::{MAX_JOB_ID_LEN, wait_for_job_sql};

    #[test]
    fn a_job_id_goes_into_the_call_as_a_string_literal() {
        // A job id as DSQL answered one (`create_index_async` in the DSQL recordings).
        assert_eq!(
            wait_for_job_sql("srnwmlngyfhcndf5g2e6f3a3xm")
                .ok()
                .as_deref(),
            Some("CALL sys.wait_for_job('srnwmlngyfhcndf5g2e6f3a3xm')")
        );
        let longest = "A-_9".repeat(MAX_JOB_ID_LEN / 4);
        assert_eq!(
            wait_for_job_sql(&longest).ok(),
            Some(format!("CALL sys.wait_for_job('{longest}')"))
        );
    }

    #[test]
    fn a_malformed_job_id_is_refused_before_it_reaches_sql() {
        let too_long = "a".repeat(MAX_JOB_ID_LEN + 1);
        for job_id in [
            "",
            too_long.as_str(),
            "x'); DROP TABLE pet; --",
            "it's",
            "with space",
            "tab\t",
            "dot.ted",
            "\u{e9}t\u{e9}",
        ] {
            let err = wait_for_job_sql(job_id).expect_err(job_id);
            assert!(err.to_string().contains("job id"), "{job_id:?}: {err}");
        }
    }
}
