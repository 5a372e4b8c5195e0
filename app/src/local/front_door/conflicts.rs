//! Optimistic-concurrency conflicts as Aurora DSQL reports them, and conflicts made to order.
//!
//! DSQL reports a write–write conflict as SQLSTATE `40001` with its `OC000` message, and a
//! session whose catalog is stale after DDL with `OC001`. PostgreSQL reports its own
//! serialization failures as `40001` with other messages; the relay gives them DSQL's `OC000`
//! message ([`Conflict::Data`]). Where they differ, and it is documented: PostgreSQL detects
//! the conflict at the second writer's statement, after waiting for the first writer's row
//! lock, where DSQL never waits and fails the loser at `COMMIT`.
//!
//! After a session commits DDL, another session on the same database gets one `OC001` at its
//! first statement that uses a relation the DDL changed since that session last used it
//! ([`CatalogVersions`], with the relations [`Touched`] names), as a DSQL session whose cached
//! catalog went stale does; the conflict refreshes the session's whole catalog. Where a name is
//! unsure (unqualified, or a schema change whose reach the text does not show: `DROP INDEX`,
//! `DROP SCHEMA`) it counts as the changed relation, so the stand-in is never milder than DSQL
//! for statements that use a changed relation; statements that name none (`SET`, `SHOW`,
//! `SELECT 1`, `DEALLOCATE ALL`) never get it. Switched by
//! [`super::relay::Limits::schema_conflicts`], on by default; the cluster-wide reading (the
//! next transaction of every other session fails, whatever it uses) is
//! [`super::relay::Limits::schema_conflicts_cluster_wide`].
//!
//! So that retry code can be tested deterministically, [`CommitFailures`] decides the fate of
//! the next commit of a chosen session ([`CommitFate`]): it fails (the relay sends the server
//! `ROLLBACK` instead and answers the client as DSQL answers a failed commit: the error, then
//! an idle session); or it commits and its answer is lost (the relay closes the client's
//! connection once the server has committed, without passing the answer on: a reply lost in
//! transit, after which the client cannot know whether its transaction committed); or it
//! commits and the client is answered DSQL's `XX000`, which leaves the outcome as unknown.
//! The last two also take an implicit commit that wrote: a round trip of statements outside a
//! transaction block (an autocommit statement), which commits at its end with no `COMMIT` text
//! the relay could see (the relay holds such a round trip's answer until it ends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::rules::{self, Kind, Refusal, Relation, Relations, Statement, TxnKind};

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

/// What happens to a chosen session's next commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFate {
    /// The transaction is rolled back and the client gets this conflict. Explicit `COMMIT`s
    /// only: an implicit commit happens inside the server at the end of its round trip, before
    /// the relay could know that it wrote, and holding it back would take statements of the
    /// relay's own in the client's protocol stream.
    Fail(Conflict),
    /// The server commits, and the client's connection is closed before the answer reaches it.
    LoseReply,
    /// The server commits, and the client gets DSQL's `XX000` ([`unavailable`]) in place of
    /// the answer, then an idle session: a failure whose outcome the client cannot know.
    Unavailable,
}

impl CommitFate {
    /// Whether the fate may also be an implicit commit's: one that lets the server commit.
    fn takes_implicit(self) -> bool {
        matches!(self, CommitFate::LoseReply | CommitFate::Unavailable)
    }
}

/// DSQL's "server unavailable, retry the whole transaction" error, `XX000`. DSQL's exact
/// message is not recorded: this wording, from its documentation's description, is an
/// assumption.
pub fn unavailable() -> Refusal {
    Refusal {
        code: "XX000",
        message: "server unavailable".to_owned(),
    }
}

/// Commits to fail or whose reply to lose, by the backend process id of their session
/// (`SELECT pg_backend_pid()`): a handle shared by a front door and the tests that drive it.
/// Cloning gives another handle to the same set.
#[derive(Clone, Debug, Default)]
pub struct CommitFailures {
    armed: Arc<AtomicBool>,
    sessions: Arc<Mutex<HashMap<u32, CommitFate>>>,
}

impl CommitFailures {
    /// Makes the next `COMMIT` (or `END`) of the session whose backend process id is `pid` fail
    /// with `conflict`; the transaction is rolled back. Once only: the commit after it is
    /// judged normally again. Explicit commits only ([`CommitFate::Fail`]): the session's
    /// autocommit statements commit as usual meanwhile.
    pub fn fail_next_commit(&self, pid: u32, conflict: Conflict) {
        self.choose(pid, CommitFate::Fail(conflict));
    }

    /// Lets the next commit of the session whose backend process id is `pid` happen, then
    /// closes that client's connection instead of passing the answer on. Once only. The next
    /// commit is a `COMMIT` (or `END`), whatever its transaction did, or a round trip that
    /// commits a write outside a transaction block (an autocommit `INSERT`, `UPDATE`, `DELETE`
    /// with a row count above 0, or DDL), whichever comes first; a round trip that wrote
    /// nothing, or failed, leaves the choice for the next.
    pub fn lose_next_commit_reply(&self, pid: u32) {
        self.choose(pid, CommitFate::LoseReply);
    }

    /// Lets the next commit of the session whose backend process id is `pid` (as for
    /// [`CommitFailures::lose_next_commit_reply`]) happen, then answers the client with DSQL's
    /// `XX000` ([`unavailable`]) and an idle session instead: whatever the round trip had
    /// answered (rows, command tags) is dropped. Once only.
    pub fn answer_next_commit_unavailable(&self, pid: u32) {
        self.choose(pid, CommitFate::Unavailable);
    }

    fn choose(&self, pid: u32, fate: CommitFate) {
        let mut sessions = self.lock();
        sessions.insert(pid, fate);
        self.armed.store(true, Ordering::Release);
    }

    /// The fate of `sql`, if it is a lone `COMMIT` of session `pid` and that commit was chosen
    /// (which it then no longer is).
    pub(crate) fn take_if_commit(&self, pid: Option<u32>, sql: &str) -> Option<CommitFate> {
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

    /// Whether session `pid` has a fate chosen that an implicit commit may take
    /// ([`CommitFate::LoseReply`], [`CommitFate::Unavailable`]). One atomic load while no
    /// session has one.
    pub(crate) fn awaits_implicit(&self, pid: Option<u32>) -> bool {
        self.armed.load(Ordering::Acquire)
            && pid.is_some_and(|pid| self.lock().get(&pid).is_some_and(|f| f.takes_implicit()))
    }

    /// The fate of an implicit commit that wrote in session `pid`, if one that may take it was
    /// chosen (which it then no longer is).
    pub(crate) fn take_implicit(&self, pid: Option<u32>) -> Option<CommitFate> {
        let pid = pid?;
        let mut sessions = self.lock();
        if !sessions.get(&pid).is_some_and(|fate| fate.takes_implicit()) {
            return None;
        }
        let fate = sessions.remove(&pid);
        self.armed.store(!sessions.is_empty(), Ordering::Release);
        fate
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, CommitFate>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a query text touches, for schema conflicts: the relations its statements use, and
/// those its schema changes change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touched {
    /// The relations the text's statements name.
    pub uses: Relations,
    /// The relations its schema changes change; `None` if it changes no schema.
    pub changes: Option<Relations>,
}

impl Touched {
    /// A text nothing is known of: it may use any relation; what it changes is known from the
    /// command tags alone (and then taken to be anything).
    pub fn unknown() -> Self {
        Self {
            uses: Relations::Unknown,
            changes: None,
        }
    }

    /// What `statements` touch: every relation each names, and for a schema change (DDL)
    /// those it changes.
    pub fn of(statements: &[Statement]) -> Self {
        let mut touched = Self {
            uses: Relations::Named(Vec::new()),
            changes: None,
        };
        for statement in statements {
            touched.uses = union(
                std::mem::replace(&mut touched.uses, Relations::Unknown),
                statement.relations.clone(),
            );
            if statement.kind == Kind::Ddl {
                let before = touched
                    .changes
                    .take()
                    .unwrap_or(Relations::Named(Vec::new()));
                touched.changes = Some(union(before, statement.relations.clone()));
            }
        }
        touched
    }
}

/// Both sets of relations: `Unknown` if either is.
pub(crate) fn union(a: Relations, b: Relations) -> Relations {
    match (a, b) {
        (Relations::Named(mut a), Relations::Named(b)) => {
            a.extend(b);
            Relations::Named(a)
        }
        _ => Relations::Unknown,
    }
}

/// The catalog of each database as schema conflicts see it: a version counting the
/// transactions with DDL committed in it through the front door, and the version at which each
/// relation last changed. Cloning gives another handle to the same versions.
#[derive(Clone, Debug, Default)]
pub struct CatalogVersions(Arc<Mutex<HashMap<String, Catalog>>>);

/// One database's versions.
#[derive(Debug, Default)]
struct Catalog {
    /// Transactions with DDL committed so far.
    version: u64,
    /// The version at which each relation last changed: by name, then by schema (`None` for a
    /// change that named it unqualified).
    changed: HashMap<String, HashMap<Option<String>, u64>>,
    /// The version of the last change whose relations are not known.
    anything: u64,
}

impl Catalog {
    /// The last version at which `relation` may have changed. Unsure matches count: a name
    /// without a schema, on either side, matches the name in every schema.
    fn changed_at(&self, relation: &Relation) -> u64 {
        let by_schema = self.changed.get(&relation.name).into_iter().flatten();
        by_schema
            .filter(|(schema, _)| {
                schema.is_none() || relation.schema.is_none() || **schema == relation.schema
            })
            .map(|(_, version)| *version)
            .fold(self.anything, u64::max)
    }
}

/// What one session has seen of its database's catalog: the version at which it last used each
/// relation, and the version it has seen of every other.
#[derive(Debug, Default)]
pub struct SeenCatalog {
    everything: u64,
    relations: HashMap<Relation, u64>,
}

impl CatalogVersions {
    /// The current version of `database` (0 before any DDL).
    pub fn current(&self, database: &str) -> u64 {
        self.lock().get(database).map_or(0, |c| c.version)
    }

    /// What a session opened now has seen of `database`: all of it.
    pub fn seen_now(&self, database: &str) -> SeenCatalog {
        SeenCatalog {
            everything: self.current(database),
            relations: HashMap::new(),
        }
    }

    /// Records a committed DDL transaction in `database` that changed relations nobody knows;
    /// the new version.
    pub fn bump(&self, database: &str) -> u64 {
        self.commit(database, &Relations::Unknown, &mut SeenCatalog::default())
    }

    /// Records a committed DDL transaction in `database` that changed `changes`, made by the
    /// session that has seen `seen`, which sees its own change; the new version.
    pub fn commit(&self, database: &str, changes: &Relations, seen: &mut SeenCatalog) -> u64 {
        let mut catalogs = self.lock();
        let catalog = catalogs.entry(database.to_owned()).or_default();
        // A session that had seen every change before its own has seen every one after it.
        let complete = seen.everything == catalog.version;
        catalog.version += 1;
        let version = catalog.version;
        match changes {
            Relations::Named(relations) => {
                for relation in relations {
                    let by_schema = catalog.changed.entry(relation.name.clone()).or_default();
                    by_schema.insert(relation.schema.clone(), version);
                    seen.relations.insert(relation.clone(), version);
                }
                if complete {
                    seen.everything = version;
                }
            }
            Relations::Unknown => {
                catalog.anything = version;
                seen.everything = version;
                seen.relations.clear();
            }
        }
        version
    }

    /// Whether a statement of the session that has seen `seen` that uses `uses` meets a
    /// relation changed since the session last used it (or, for `Unknown`, any change it has
    /// not seen). Either way the session has now seen those relations as they are, and after a
    /// conflict, the whole catalog.
    pub fn is_stale(&self, database: &str, seen: &mut SeenCatalog, uses: &Relations) -> bool {
        let catalogs = self.lock();
        let Some(catalog) = catalogs.get(database) else {
            return false;
        };
        match uses {
            Relations::Unknown => {
                let stale = catalog.version > seen.everything;
                seen.everything = catalog.version;
                seen.relations.clear();
                stale
            }
            Relations::Named(relations) => {
                let stale = relations.iter().any(|relation| {
                    let last = seen.relations.get(relation).copied();
                    catalog.changed_at(relation) > last.unwrap_or(seen.everything)
                });
                if stale {
                    // The conflict refreshes the session's whole catalog, as DSQL's does.
                    seen.everything = catalog.version;
                    seen.relations.clear();
                } else {
                    for relation in relations {
                        seen.relations.insert(relation.clone(), catalog.version);
                    }
                }
                stale
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Catalog>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `sql` is one `COMMIT` (or `END`) statement.
fn is_commit(sql: &str) -> bool {
    rules::is_lone(sql, TxnKind::Commit)
}

/// Whether a `CommandComplete` body answers a `COMMIT`: `COMMIT`, or `ROLLBACK` for a
/// transaction that had failed.
pub(crate) fn answers_commit(tag: &[u8]) -> bool {
    matches!(tag, b"COMMIT\0" | b"ROLLBACK\0")
}

/// Whether a command tag is that of a schema change, which bumps the catalog version.
pub(crate) fn is_ddl_tag(tag: &[u8]) -> bool {
    [
        &b"CREATE "[..],
        b"ALTER ",
        b"DROP ",
        b"GRANT",
        b"REVOKE",
        b"COMMENT",
        b"AWS IAM ",
    ]
    .iter()
    .any(|prefix| tag.starts_with(prefix))
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
            Some(CommitFate::Fail(Conflict::Schema))
        );
        assert_eq!(failures.take_if_commit(Some(7), "COMMIT"), None);
    }

    #[test]
    fn a_lost_reply_is_chosen_for_one_session_and_one_commit() {
        let failures = CommitFailures::default();
        failures.lose_next_commit_reply(9);
        assert_eq!(failures.take_if_commit(Some(7), "COMMIT"), None);
        assert_eq!(failures.take_if_commit(Some(9), "SELECT 1"), None);
        assert_eq!(
            failures.take_if_commit(Some(9), "END"),
            Some(CommitFate::LoseReply)
        );
        assert_eq!(failures.take_if_commit(Some(9), "COMMIT"), None);
        assert!(answers_commit(b"COMMIT\0") && answers_commit(b"ROLLBACK\0"));
        assert!(!answers_commit(b"INSERT 0 1\0") && !answers_commit(b"COMMIT"));
    }

    #[test]
    fn an_implicit_commit_takes_only_a_fate_that_lets_the_server_commit() {
        let failures = CommitFailures::default();
        assert!(!failures.awaits_implicit(Some(5)));
        failures.fail_next_commit(5, Conflict::Data);
        assert!(!failures.awaits_implicit(Some(5)));
        assert_eq!(failures.take_implicit(Some(5)), None, "left for the COMMIT");
        failures.answer_next_commit_unavailable(5);
        assert!(failures.awaits_implicit(Some(5)) && !failures.awaits_implicit(None));
        assert_eq!(
            failures.take_implicit(Some(5)),
            Some(CommitFate::Unavailable)
        );
        assert_eq!(failures.take_implicit(Some(5)), None, "once");
        failures.answer_next_commit_unavailable(6);
        assert_eq!(
            failures.take_if_commit(Some(6), "COMMIT"),
            Some(CommitFate::Unavailable),
            "an explicit COMMIT takes it too"
        );
        assert!(!failures.awaits_implicit(Some(6)));
    }

    #[test]
    fn versions_count_per_database() {
        let versions = CatalogVersions::default();
        assert_eq!(versions.current("a"), 0);
        assert_eq!(versions.bump("a"), 1);
        assert_eq!(versions.clone().bump("a"), 2);
        assert_eq!(versions.current("b"), 0);
        assert!(is_ddl_tag(b"CREATE TABLE\0") && is_ddl_tag(b"GRANT\0"));
        assert!(!is_ddl_tag(b"INSERT 0 1\0") && !is_ddl_tag(b"SELECT 1\0"));
    }

    #[test]
    fn the_messages_carry_dsqls_codes() {
        assert_eq!(Conflict::Data.refusal().code, "40001");
        assert!(Conflict::Data.refusal().message.ends_with("(OC000)"));
        assert!(Conflict::Schema.refusal().message.ends_with("(OC001)"));
    }
}
