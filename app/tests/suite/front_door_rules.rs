//! The front door's statement classifier (`app::local::front_door::rules`) against the answers
//! recorded from a live DSQL cluster (`tests/dsql-conformance/`): every recorded refusal that
//! one statement's text decides must come back with exactly the recorded SQLSTATE and message,
//! and every statement DSQL ran must come back unrefused. Refusals that depend on the session
//! or the database are listed in [`LEFT_TO_STATE`] and must come back unrefused too (the relay
//! or the backend answers them), except where the session answers first (25P02).
#![cfg(feature = "front-door")]

use crate::common;

use std::fmt::Write as _;

use app::local::front_door::rules::{Classified, Kind, classify};
use common::recordings::{Observation, Recording, read_json, recording_files};

/// Recorded refusals the classifier does not decide, matched by case name or by SQLSTATE and
/// message prefix, with the reason.
const LEFT_TO_STATE: &[(&str, &str)] = &[
    (
        "25P02",
        "session state: the aborted transaction answers before any rule",
    ),
    ("54000", "transaction state: the 3,000-row cap"),
    (
        "0A000 multiple ddl statements",
        "transaction state: one DDL per transaction",
    ),
    (
        "0A000 ddl and dml",
        "transaction state: no DDL and DML together",
    ),
    (
        "23",
        "data: a constraint violation, answered by the backend",
    ),
    (
        "enum_column_undefined",
        "catalog: the type was never created, the backend answers the same 42704",
    ),
    (
        "enum_cast_undefined",
        "catalog: the type was never created, the backend answers the same 42704",
    ),
    (
        "q_fulltext_",
        "catalog: DSQL has no text search configurations; to be dropped in the backend",
    ),
    (
        "q_geom_",
        "runtime types: a geometric value computed by a function needs type resolution",
    ),
    (
        "q_lateral_",
        "planner: DSQL's own LEFT JOIN LATERAL fault (42804), not a rule",
    ),
    (
        "sys_call_wait_for_job_literal",
        "backend: the sys.wait_for_job helper checks the job id (22P02)",
    ),
    (
        "sys_wait_for_job",
        "backend: sys.wait_for_job is the backend's procedure",
    ),
    (
        "sys_call_wait_for_job",
        "backend: PostgreSQL itself refuses a subquery in a CALL argument (same 0A000 and message)",
    ),
    (
        "alter_drop_pk_column",
        "catalog: whether the column is in the primary key",
    ),
    (
        "alter_unique_using_index",
        "job state: the index is still being built (55000)",
    ),
];

/// Recorded statements DSQL accepts in syntax that neither the judge's parser nor the
/// PostgreSQL 15 backend reads: the judge forwards them and the backend answers a syntax error
/// (a difference of the stand-in's server version, listed in docs/stand-in.md).
const BEYOND_THE_BACKEND: &[(&str, &str)] = &[(
    "alter_add_column_storage",
    "grammar: ADD COLUMN … STORAGE is PostgreSQL 16 syntax",
)];

/// Why a recorded refusal is left to state, if it is.
fn left_to_state(case: &str, code: &str, message: &str) -> Option<&'static str> {
    let coded = format!("{code} {message}");
    LEFT_TO_STATE
        .iter()
        .find(|(key, _)| case.starts_with(key) || coded.starts_with(key))
        .map(|(_, reason)| *reason)
}

/// The verdict on one recorded step.
enum Verdict {
    Agree,
    LeftToState(&'static str),
    Disagree(String),
}

/// Compares the classifier with one recorded single-statement step.
fn judge_step(case: &str, sql: &str, observation: &Observation) -> Verdict {
    let classified = classify(sql);
    let refusal = match &classified {
        Classified::Parsed(statements) if statements.len() == 1 => statements[0]
            .refusal
            .as_ref()
            .map(|r| (r.code.to_owned(), r.message.clone())),
        Classified::Parsed(statements) => {
            return Verdict::Disagree(format!("{} statements, expected 1", statements.len()));
        }
        Classified::Unjudged(refusal) => {
            return Verdict::Disagree(format!("not judged: {refusal:?}"));
        }
        Classified::Unparsed { .. } => {
            // PostgreSQL produces the syntax error: right exactly when DSQL answered one.
            return if observation.sqlstate.as_deref() == Some("42601") {
                Verdict::Agree
            } else if let Some((_, reason)) = BEYOND_THE_BACKEND.iter().find(|(c, _)| *c == case) {
                Verdict::LeftToState(reason)
            } else {
                Verdict::Disagree("did not parse".into())
            };
        }
    };
    match (observation.outcome.as_str(), &observation.sqlstate) {
        ("ok", _) => match refusal {
            None => Verdict::Agree,
            Some((code, message)) => Verdict::Disagree(format!("refused: {code} {message}")),
        },
        (_, Some(code)) => {
            let message = observation.message.clone().unwrap_or_default();
            if let Some(reason) = left_to_state(case, code, &message) {
                return match refusal {
                    Some(got) if code != "25P02" => {
                        Verdict::Disagree(format!("refused {got:?}, but this is {reason}"))
                    }
                    _ => Verdict::LeftToState(reason),
                };
            }
            if refusal.as_ref() == Some(&(code.clone(), message.clone())) {
                Verdict::Agree
            } else {
                Verdict::Disagree(format!("expected {code} {message}, got {refusal:?}"))
            }
        }
        _ => Verdict::Disagree("recorded error without SQLSTATE".into()),
    }
}

#[test]
fn classifier_agrees_with_the_recordings() {
    let (mut agree, mut refusals_agree, mut left) = (0, 0, Vec::new());
    let mut report = String::new();
    let mut disagree = Vec::new();
    let files = recording_files();
    for file in files.iter().map(String::as_str) {
        let recording: Recording = read_json(file);
        for case in recording.cases {
            // Concurrent sessions record no SQL per step: nothing to classify.
            for (sql, observation) in case.steps().iter().zip(&case.observations) {
                let verdict = if case.simple_protocol {
                    judge_multi(&case.name, sql, observation)
                } else {
                    judge_step(&case.name, sql, observation)
                };
                match verdict {
                    Verdict::Agree => {
                        agree += 1;
                        refusals_agree += usize::from(observation.outcome != "ok");
                    }
                    Verdict::LeftToState(reason) => left.push((file, case.name.clone(), reason)),
                    Verdict::Disagree(why) => {
                        disagree.push(format!("{file} {}: {sql:?}: {why}", case.name));
                    }
                }
            }
        }
    }
    let _ = writeln!(
        report,
        "agree: {agree} ({refusals_agree} refusals, {} accepted), left to state: {}, disagree: {}",
        agree - refusals_agree,
        left.len(),
        disagree.len()
    );
    for (file, case, reason) in &left {
        let _ = writeln!(report, "  left to state: {file} {case}: {reason}");
    }
    for line in &disagree {
        let _ = writeln!(report, "  DISAGREE: {line}");
    }
    println!("{report}");
    assert!(disagree.is_empty(), "{report}");
}

/// A simple-protocol step with several statements: each statement's kind is checked against
/// the recorded command tags, and no statement may be refused by its text alone (the recorded
/// refusals are the transaction rules).
fn judge_multi(case: &str, sql: &str, observation: &Observation) -> Verdict {
    let Classified::Parsed(statements) = classify(sql) else {
        return Verdict::Disagree("did not parse".into());
    };
    if let Some(refused) = statements.iter().find_map(|s| s.refusal.as_ref()) {
        return Verdict::Disagree(format!("refused {refused:?}"));
    }
    if let Some(results) = &observation.results {
        let tags: Vec<&str> = results
            .iter()
            .filter_map(|r| r.command_tag.as_deref())
            .collect();
        let kinds_match = tags.len() == statements.len()
            && tags.iter().zip(&statements).all(|(tag, s)| {
                let word = tag.split(' ').next().unwrap_or_default();
                match s.kind {
                    Kind::Query => word == "SELECT",
                    Kind::Dml => ["INSERT", "UPDATE", "DELETE", "MERGE"].contains(&word),
                    Kind::Ddl => ["CREATE", "ALTER", "DROP"].contains(&word),
                    Kind::Transaction(_) => ["BEGIN", "COMMIT", "ROLLBACK"].contains(&word),
                    _ => true,
                }
            });
        return if kinds_match {
            Verdict::Agree
        } else {
            Verdict::Disagree(format!("kinds {statements:?} against tags {tags:?}"))
        };
    }
    let code = observation.sqlstate.as_deref().unwrap_or_default();
    let message = observation.message.as_deref().unwrap_or_default();
    left_to_state(case, code, message).map_or_else(
        || Verdict::Disagree(format!("unexplained {code} {message}")),
        Verdict::LeftToState,
    )
}
