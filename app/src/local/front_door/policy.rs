//! DSQL's statement rules as the relay's [`Policy`]: what [`rules::classify`] decides for one
//! query text, turned into a [`Verdict`].
//!
//! - A text with a statement DSQL refuses is refused whole, with that statement's SQLSTATE and
//!   message: DSQL runs a multi-statement text as one transaction, so none of it runs.
//! - A statement with DSQL's `ASYNC` keyword becomes a call of `dsql_local.start_job` (from
//!   `dsql_sys.sql`, which the front door installs), passing the statement without `ASYNC`;
//!   the call's one column is a [`JobAnswer`] column, so the relay answers a `job_id` row
//!   with DSQL's command tag. The other statements of the text stay as they were.
//! - Text PostgreSQL cannot parse passes (with its `ASYNC` keywords cut, so the server's
//!   syntax error names the token DSQL's would).

use super::relay::{INDEX_JOB, JobAnswer, Policy, VALIDATE_JOB, Verdict};
use super::rules::{self, AsyncJob, Classified, Statement};

/// The [`Policy`] of the local DSQL stand-in; see the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DsqlRules;

impl Policy for DsqlRules {
    fn check(&self, sql: &str) -> Verdict {
        match rules::classify(sql) {
            Classified::Unparsed { rewrite } => rewrite.map_or(Verdict::Pass, Verdict::Rewrite),
            Classified::Parsed(statements) => verdict(sql, &statements),
        }
    }
}

/// The verdict on `sql`, whose statements `classify` judged.
fn verdict(sql: &str, statements: &[Statement]) -> Verdict {
    if let Some(refusal) = statements.iter().find_map(|s| s.refusal.clone()) {
        return Verdict::Refuse(refusal);
    }
    let mut rewritten = String::new();
    let mut copied = 0;
    for statement in statements {
        let (Some(plain), Some(job)) = (&statement.rewrite, statement.async_job) else {
            continue;
        };
        rewritten.push_str(&sql[copied..statement.span.start]);
        rewritten.push_str(&job_call(plain, job));
        copied = statement.span.end;
    }
    if copied == 0 {
        return Verdict::Pass;
    }
    rewritten.push_str(&sql[copied..]);
    Verdict::Rewrite(rewritten)
}

/// The `dsql_local.start_job` call that runs `plain` (the statement without `ASYNC`) as the
/// job `job`, its text in a dollar quote that it does not contain.
fn job_call(plain: &str, job: AsyncJob) -> String {
    let (job_type, JobAnswer { column, .. }) = match job {
        AsyncJob::IndexBuild => ("INDEX_BUILD", INDEX_JOB),
        AsyncJob::ValidateConstraint => ("VALIDATE_CONSTRAINT", VALIDATE_JOB),
    };
    let quote = dollar_quote(plain);
    format!("SELECT dsql_local.start_job('{job_type}', {quote}{plain}{quote}) AS \"{column}\"")
}

/// A dollar-quote delimiter (`$dsql$`, `$dsql1$`, …) that first appears in `text` followed
/// by itself only at the end: `text` quoted with it reads back as `text`.
fn dollar_quote(text: &str) -> String {
    (0..)
        .map(|n| match n {
            0 => "$dsql$".to_owned(),
            n => format!("$dsql{n}$"),
        })
        .find(|quote| format!("{text}{quote}").find(quote.as_str()) == Some(text.len()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_async_index_becomes_a_job_call_and_the_rest_of_the_text_stays() {
        let sql = "BEGIN; CREATE INDEX ASYNC i ON t (c); COMMIT";
        assert_eq!(
            DsqlRules.check(sql),
            Verdict::Rewrite(
                "BEGIN; SELECT dsql_local.start_job('INDEX_BUILD', $dsql$CREATE INDEX i ON t \
                 (c)$dsql$) AS \"__dsql_job_index__\"; COMMIT"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_refused_statement_refuses_the_whole_text() {
        let Verdict::Refuse(refusal) = DsqlRules.check("SELECT 1; TRUNCATE t") else {
            panic!("TRUNCATE is refused");
        };
        assert_eq!(refusal.code, "0A000");
        assert_eq!(DsqlRules.check("SELECT 1"), Verdict::Pass);
    }

    #[test]
    fn the_dollar_quote_is_one_the_statement_does_not_contain() {
        assert_eq!(dollar_quote("SELECT 1"), "$dsql$");
        assert_eq!(dollar_quote("SELECT '$dsql$'"), "$dsql1$");
        // Text ending in a prefix of the delimiter would close it early.
        assert_eq!(dollar_quote("SELECT 1 AS \"$dsql\""), "$dsql$");
        assert_eq!(dollar_quote("x $dsql"), "$dsql1$");
    }
}
