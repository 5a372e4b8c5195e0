//! DSQL's statement rules as the relay's [`Policy`]: what [`rules::classify`] decides for one
//! query text, turned into a [`Verdict`].
//!
//! - A text with a statement DSQL refuses is refused whole, with that statement's SQLSTATE and
//!   message: DSQL runs a multi-statement text as one transaction, so none of it runs.
//! - A statement with DSQL's `ASYNC` keyword becomes a call of `dsql_local.start_job` (from
//!   `dsql_sys.sql`, which the front door installs), passing the statement without `ASYNC`;
//!   the call's one column is an [`Answer`] column, so the relay answers a `job_id` row
//!   with DSQL's command tag. The other statements of the text stay as they were.
//! - `SHOW server_version` and `SHOW server_version_num` answer DSQL's version (recorded in
//!   `environment.json`), not the backend's, the same way; in `current_setting('server_version')`
//!   (and `…_num`) the literal becomes the name of the server setting that holds DSQL's
//!   version (`dsql_local.server_version`), so the result keeps its column name. Both are found
//!   with PostgreSQL's lexer, so the same words in a string or a comment are left alone.
//! - A result with a geometric column (a value computed in the query: `SELECT line(…)`) is
//!   refused as DSQL refuses it (`queries.json`, `q_geom_*`): `0A000 datatype line not
//!   supported`. Other runtime values of types DSQL has no columns of (`inet`, arrays) pass,
//!   as on DSQL (`types.json`).
//! - `AWS IAM GRANT role TO 'arn'` and `AWS IAM REVOKE role FROM 'arn'` (DSQL's, not
//!   PostgreSQL's) become calls of `dsql_local.iam_grant` / `iam_revoke` (from `dsql_sys.sql`),
//!   which record the mapping the front door requires of a non-admin login. They answer no row.
//! - Text the judge cannot parse passes (with its `ASYNC` keywords cut, so the server's
//!   syntax error names the token DSQL's would), with [`rules::UNJUDGED_MARK`] appended
//!   unless it is one harmless statement, so that the server runs none of it.

use super::relay::{
    Answer, IAM_GRANT, IAM_REVOKE, INDEX_JOB, Policy, SHOW_SERVER_VERSION, SHOW_SERVER_VERSION_NUM,
    VALIDATE_JOB, Verdict,
};
use squawk_lexer::TokenKind;

use super::conflicts::Touched;
use super::rules::{self, AsyncJob, Classified, Refusal, Relations, Statement};

/// The [`Policy`] of the local DSQL stand-in; see the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DsqlRules;

impl Policy for DsqlRules {
    fn check(&self, sql: &str) -> Verdict {
        self.assess(sql).0
    }

    /// The verdict, and what the text touches: for parsed text, its statements' relations; an
    /// IAM mapping changes what is not known; text that does not parse or is refused touches
    /// nothing (the server runs none of it).
    fn assess(&self, sql: &str) -> (Verdict, Touched) {
        let nothing = Touched {
            uses: Relations::Named(Vec::new()),
            changes: None,
        };
        if let Some(call) = iam_statement(sql) {
            let changes = Some(Relations::Unknown);
            return (Verdict::Rewrite(call), Touched { changes, ..nothing });
        }
        let reported = reported_settings(sql);
        let text = reported.as_deref().unwrap_or(sql);
        let (verdict, touched) = match rules::classify(text) {
            Classified::Unparsed { rewrite } => {
                (rewrite.map_or(Verdict::Pass, Verdict::Rewrite), nothing)
            }
            Classified::Parsed(statements) => {
                (verdict(text, &statements), Touched::of(&statements))
            }
            Classified::Unjudged(refusal) => (Verdict::Refuse(refusal), nothing),
        };
        match (verdict, reported) {
            (Verdict::Pass, Some(reported)) => (Verdict::Rewrite(reported), touched),
            (verdict, _) => (verdict, touched),
        }
    }

    fn result_type(&self, oid: u32) -> Option<Refusal> {
        GEOMETRIC_TYPES
            .iter()
            .find(|(known, _)| *known == oid)
            .map(|(_, name)| Refusal {
                code: "0A000",
                message: format!("datatype {name} not supported"),
            })
    }
}

/// PostgreSQL's geometric types, by OID (`pg_type.dat`), which DSQL refuses in a result.
const GEOMETRIC_TYPES: [(u32, &str); 7] = [
    (600, "point"),
    (601, "lseg"),
    (602, "path"),
    (603, "box"),
    (604, "polygon"),
    (628, "line"),
    (718, "circle"),
];

/// The verdict on `sql`, whose statements `classify` judged.
fn verdict(sql: &str, statements: &[Statement]) -> Verdict {
    if let Some(refusal) = statements.iter().find_map(|s| s.refusal.clone()) {
        return Verdict::Refuse(refusal);
    }
    let mut rewritten = String::new();
    let mut copied = 0;
    for statement in statements {
        let Some(replacement) = replacement(statement) else {
            continue;
        };
        rewritten.push_str(&sql[copied..statement.span.start]);
        rewritten.push_str(&replacement);
        copied = statement.span.end;
    }
    if copied == 0 {
        return Verdict::Pass;
    }
    rewritten.push_str(&sql[copied..]);
    Verdict::Rewrite(rewritten)
}

/// DSQL's `server_version` and `server_version_num` (`environment.json`).
const DSQL_SERVER_VERSION: [(&str, Answer); 2] = [
    (super::super::DSQL_SERVER_VERSION, SHOW_SERVER_VERSION),
    (
        super::super::DSQL_SERVER_VERSION_NUM,
        SHOW_SERVER_VERSION_NUM,
    ),
];

/// For one `AWS IAM GRANT role TO 'arn'` or `AWS IAM REVOKE role FROM 'arn'` statement: the
/// `dsql_local` call that does it; see the [module documentation](self).
fn iam_statement(sql: &str) -> Option<String> {
    if !sql.trim_start().get(..3)?.eq_ignore_ascii_case("aws") {
        return None;
    }
    let tokens = rules::significant_tokens(sql)?;
    let statement = match tokens.as_slice() {
        [statement @ .., last] if last.kind == TokenKind::Semi => statement,
        statement => statement,
    };
    let [aws, iam, verb, role, preposition, arn] = statement else {
        return None;
    };
    let answer = if verb.is_word("grant") && preposition.is_word("to") {
        IAM_GRANT
    } else if verb.is_word("revoke") && preposition.is_word("from") {
        IAM_REVOKE
    } else {
        return None;
    };
    if !aws.is_word("aws")
        || !iam.is_word("iam")
        || !matches!(role.kind, TokenKind::Ident | TokenKind::QuotedIdent { .. })
        || !arn.is_string()
    {
        return None;
    }
    let role = identifier(role.text);
    let function = if answer == IAM_GRANT {
        "iam_grant"
    } else {
        "iam_revoke"
    };
    Some(format!(
        "SELECT dsql_local.{function}('{}', {}) AS \"{}\"",
        role.replace('\'', "''"),
        arn.text,
        answer.column
    ))
}

/// The name an identifier token stands for: a quoted one without its quotes (and `""` as `"`),
/// an unquoted one in lower case.
fn identifier(token: &str) -> String {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => token.to_lowercase(),
    }
}

/// `sql` with every `current_setting('server_version')` and `current_setting('server_version_num')`
/// reading `dsql_local.server_version` (`…_num`) instead, if it has any; see the
/// [module documentation](self).
fn reported_settings(sql: &str) -> Option<String> {
    const NAME: &[u8] = b"server_version";
    // A cheap look first: nearly every text has no such word.
    if !sql
        .as_bytes()
        .windows(NAME.len())
        .any(|w| w.eq_ignore_ascii_case(NAME))
    {
        return None;
    }
    let tokens = rules::significant_tokens(sql)?;
    let mut rewritten = String::new();
    let mut copied = 0;
    for window in tokens.windows(3) {
        let [name, open, literal] = window else {
            continue;
        };
        let call = name.is_word("current_setting")
            && open.kind == TokenKind::OpenParen
            && literal.is_string();
        if !call {
            continue;
        }
        let setting = literal.text.to_ascii_lowercase();
        if !["'server_version'", "'server_version_num'"].contains(&setting.as_str()) {
            continue;
        }
        rewritten.push_str(&sql[copied..literal.range.start]);
        rewritten.push_str(&format!("'dsql_local.{}'", setting.trim_matches('\'')));
        copied = literal.range.end;
    }
    (copied > 0).then(|| {
        rewritten.push_str(&sql[copied..]);
        rewritten
    })
}

/// What the server runs in place of `statement`, if anything.
fn replacement(statement: &Statement) -> Option<String> {
    if let (Some(plain), Some(job)) = (&statement.rewrite, statement.async_job) {
        return Some(job_call(plain, job));
    }
    let shown = statement.shows.as_deref()?;
    DSQL_SERVER_VERSION
        .iter()
        .find(|(_, answer)| answer.name == shown)
        .map(|(value, answer)| format!("SELECT text '{value}' AS \"{}\"", answer.column))
}

/// The `dsql_local.start_job` call that runs `plain` (the statement without `ASYNC`) as the
/// job `job`, its text in a dollar quote that it does not contain.
fn job_call(plain: &str, job: AsyncJob) -> String {
    let (job_type, Answer { column, .. }) = match job {
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
    fn show_server_version_answers_dsqls() {
        assert_eq!(
            DsqlRules.check("SHOW server_version;"),
            Verdict::Rewrite("SELECT text '16.15' AS \"__dsql_show_server_version__\";".to_owned())
        );
        assert_eq!(DsqlRules.check("SHOW timezone"), Verdict::Pass);
    }

    #[test]
    fn current_setting_of_the_server_version_reads_dsqls() {
        assert_eq!(
            DsqlRules.check(
                "SELECT current_setting('server_version'), Current_Setting('SERVER_VERSION_NUM')"
            ),
            Verdict::Rewrite(
                "SELECT current_setting('dsql_local.server_version'), \
                 Current_Setting('dsql_local.server_version_num')"
                    .to_owned()
            )
        );
        // Not a call of current_setting, or in a comment: left alone.
        for sql in [
            "SELECT 'server_version'",
            "SELECT current_setting('timezone') -- current_setting('server_version')",
        ] {
            assert_eq!(DsqlRules.check(sql), Verdict::Pass, "{sql}");
        }
    }

    #[test]
    fn aws_iam_grant_and_revoke_become_calls() {
        assert_eq!(
            DsqlRules.check("AWS IAM GRANT clinic_app TO 'arn:aws:iam::123456789012:role/app';"),
            Verdict::Rewrite(
                "SELECT dsql_local.iam_grant('clinic_app', 'arn:aws:iam::123456789012:role/app') \
                 AS \"__dsql_iam_grant__\""
                    .to_owned()
            )
        );
        assert_eq!(
            DsqlRules.check("aws iam revoke \"Odd\"\"Name\" FROM 'arn:x'"),
            Verdict::Rewrite(
                "SELECT dsql_local.iam_revoke('Odd\"Name', 'arn:x') AS \"__dsql_iam_revoke__\""
                    .to_owned()
            )
        );
        // Not the statement: forwarded with the judge's mark, so PostgreSQL answers its
        // syntax error at "AWS" and runs nothing.
        assert_eq!(
            DsqlRules.check("AWS IAM GRANT r FROM 'arn:x'"),
            Verdict::Rewrite(format!(
                "AWS IAM GRANT r FROM 'arn:x'{}",
                rules::UNJUDGED_MARK
            ))
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
