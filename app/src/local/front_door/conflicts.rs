//! Optimistic-concurrency conflicts as Aurora DSQL reports them, and conflicts made to order.
//!
//! DSQL reports a write–write conflict as SQLSTATE `40001` with its `OC000` message, and a
//! session whose catalog is stale after DDL with `OC001`. PostgreSQL reports its own
//! serialization failures as `40001` with other messages; the relay gives them DSQL's `OC000`
//! message ([`Conflict::Data`]). Where they differ, and it is documented: PostgreSQL detects
//! the conflict at the second writer's statement, after waiting for the first writer's row
//! lock, where DSQL never waits and fails the loser at `COMMIT`.
//!
//! So that retry code can be tested deterministically, [`CommitFailures`] makes the next
//! `COMMIT` of a chosen session fail: the relay sends the server `ROLLBACK` instead and answers
//! the client as DSQL answers a failed commit (the error, then an idle session).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::rules::{self, Classified, Kind, Refusal, TxnKind};

/// SQLSTATE `serialization_failure`, DSQL's code for both conflicts.
pub const SERIALIZATION_FAILURE: &str = "40001";

/// A DSQL optimistic-concurrency conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// `OC000`: another transaction changed the same rows first.
    Data,
    /// `OC001`: the schema changed since the session last read the catalog.
    Schema,
}

impl Conflict {
    /// DSQL's error for the conflict: `40001` with the recorded (`occ_conflict.json`) or
    /// documented (`OC001`, dsql-facts.md §4) message.
    pub fn refusal(self) -> Refusal {
        Refusal {
            code: SERIALIZATION_FAILURE,
            message: match self {
                Conflict::Data => "change conflicts with another transaction (OC000)",
                Conflict::Schema => {
                    "schema has been updated by another transaction, please retry: (OC001)"
                }
            }
            .to_owned(),
        }
    }
}

/// Commits to fail, by the backend process id of their session (`SELECT pg_backend_pid()`):
/// a handle shared by a front door and the tests that drive it. Cloning gives another handle to
/// the same set.
#[derive(Clone, Debug, Default)]
pub struct CommitFailures {
    armed: Arc<AtomicBool>,
    sessions: Arc<Mutex<HashMap<u32, Conflict>>>,
}

impl CommitFailures {
    /// Makes the next `COMMIT` (or `END`) of the session whose backend process id is `pid` fail
    /// with `conflict`; the transaction is rolled back. Once only: the commit after it is
    /// judged normally again.
    pub fn fail_next_commit(&self, pid: u32, conflict: Conflict) {
        let mut sessions = self.lock();
        sessions.insert(pid, conflict);
        self.armed.store(true, Ordering::Release);
    }

    /// The conflict to answer `sql` with, if it is a lone `COMMIT` of session `pid` and that
    /// commit was chosen to fail (which it then no longer is).
    pub(crate) fn take_if_commit(&self, pid: Option<u32>, sql: &str) -> Option<Conflict> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let pid = pid?;
        if !self.lock().contains_key(&pid) || !is_commit(sql) {
            return None;
        }
        let mut sessions = self.lock();
        let conflict = sessions.remove(&pid);
        self.armed.store(!sessions.is_empty(), Ordering::Release);
        conflict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Conflict>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `sql` is one `COMMIT` (or `END`) statement.
fn is_commit(sql: &str) -> bool {
    matches!(
        rules::classify(sql),
        Classified::Parsed(statements)
            if matches!(statements.as_slice(), [s] if s.kind == Kind::Transaction(TxnKind::Commit))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_sessions_next_commit_fails_and_only_once() {
        let failures = CommitFailures::default();
        assert_eq!(failures.take_if_commit(Some(7), "COMMIT"), None);
        failures.fail_next_commit(7, Conflict::Schema);
        assert_eq!(failures.take_if_commit(Some(8), "COMMIT"), None);
        assert_eq!(failures.take_if_commit(None, "COMMIT"), None);
        assert_eq!(failures.take_if_commit(Some(7), "SELECT 1"), None);
        assert_eq!(failures.take_if_commit(Some(7), "SELECT 1; COMMIT"), None);
        assert_eq!(
            failures.take_if_commit(Some(7), " commit ;"),
            Some(Conflict::Schema)
        );
        assert_eq!(failures.take_if_commit(Some(7), "COMMIT"), None);
    }

    #[test]
    fn the_messages_carry_dsqls_codes() {
        assert_eq!(Conflict::Data.refusal().code, "40001");
        assert!(Conflict::Data.refusal().message.ends_with("(OC000)"));
        assert!(Conflict::Schema.refusal().message.ends_with("(OC001)"));
    }
}
