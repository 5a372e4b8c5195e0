//! What a front door's clients cost the database, counted where it happens: in the relay, on
//! the messages the front door hands each client after its login ([`Traffic`]).
//!
//! On Aurora DSQL every round trip crosses a network and every commit that wrote crosses
//! Availability Zones, so these are what a unit of work costs there. A caller takes a
//! snapshot before and after N operations ([`Traffic::since`]) and divides.
//!
//! The counts follow the protocol, whatever the client's style (simple `Query`, or the
//! extended protocol up to a `Sync`):
//! - a **round trip** is one `ReadyForQuery` handed to the client: the server's answer that
//!   ends one wait of the client. The login's own `ReadyForQuery`, and everything before it
//!   (TLS, the token, the backend's startup), is not counted: only the work. A client that
//!   pipelines several `Sync`s before reading counts one per `Sync`.
//! - a **ping** is a round trip answered with nothing but its `ReadyForQuery`: a client's bare
//!   `Sync`, which is how sqlx checks a connection (on every release to its pool, off the
//!   caller's path). Counted among the round trips, and also on its own.
//! - a **statement** is one `CommandComplete` handed to the client (not one refused, failed,
//!   or whose answer was dropped).
//! - a **transaction** is counted when it ends: an explicit one (from `BEGIN` or `START
//!   TRANSACTION`) at its `COMMIT` (a **commit**) or `ROLLBACK` (a **rollback**; so is a
//!   `COMMIT` of a failed transaction, which the server answers `ROLLBACK`, or one that failed:
//!   the session is idle again without a `COMMIT` tag); the statements that completed outside
//!   one up to a `ReadyForQuery` count as one implicit transaction, as PostgreSQL runs them
//!   (a `Query` of several statements, or the `Execute`s before a `Sync`, are one). Implicit
//!   transactions are `transactions - commits - rollbacks`.
//! - a **write commit** is a committed transaction, explicit or implicit, that wrote: a DML
//!   tag with a row count above 0 (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `COPY` from the
//!   client), or a schema change. The only ones that pay DSQL's distributed commit
//!   ([`super::latency`]); a `SELECT … FOR UPDATE`, which DSQL checks at commit like a write,
//!   is not seen as one (its tag is a `SELECT`'s).

use std::ops::Sub;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::conflicts::is_ddl_tag;
use super::wire;

/// A snapshot of a front door's counts since it started ([`super::FrontDoor::traffic`]); the
/// module documentation says what each counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// `ReadyForQuery` messages handed to clients after their login: one per wait.
    pub round_trips: u64,
    /// Round trips answered with nothing but `ReadyForQuery` (pings).
    pub pings: u64,
    /// `CommandComplete` messages handed to clients.
    pub statements: u64,
    /// Transactions ended, explicit and implicit.
    pub transactions: u64,
    /// Explicit transactions ended by a `COMMIT` that committed.
    pub commits: u64,
    /// Explicit transactions ended otherwise: `ROLLBACK`, or a `COMMIT` that failed.
    pub rollbacks: u64,
    /// Committed transactions (explicit or implicit) that wrote: DSQL's distributed commits.
    pub write_commits: u64,
    /// The delay the latency model added before answers ([`super::latency`]); zero with the
    /// model off.
    pub modelled_delay: Duration,
}

impl Traffic {
    /// What was counted between `earlier` (a snapshot of the same front door) and this one.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        *self - *earlier
    }
}

impl Sub for Traffic {
    type Output = Traffic;

    /// Count by count, never below zero.
    fn sub(self, earlier: Traffic) -> Traffic {
        Traffic {
            round_trips: self.round_trips.saturating_sub(earlier.round_trips),
            pings: self.pings.saturating_sub(earlier.pings),
            statements: self.statements.saturating_sub(earlier.statements),
            transactions: self.transactions.saturating_sub(earlier.transactions),
            commits: self.commits.saturating_sub(earlier.commits),
            rollbacks: self.rollbacks.saturating_sub(earlier.rollbacks),
            write_commits: self.write_commits.saturating_sub(earlier.write_commits),
            modelled_delay: self.modelled_delay.saturating_sub(earlier.modelled_delay),
        }
    }
}

/// The counters of one front door, shared by its sessions' relays. Cloning gives another
/// handle to the same counters.
#[derive(Clone, Debug, Default)]
pub struct TrafficCounters(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    round_trips: AtomicU64,
    pings: AtomicU64,
    statements: AtomicU64,
    transactions: AtomicU64,
    commits: AtomicU64,
    rollbacks: AtomicU64,
    write_commits: AtomicU64,
    modelled_nanos: AtomicU64,
}

impl TrafficCounters {
    /// The counts now. Each count is read on its own: taken while sessions run, a snapshot may
    /// hold one message's counts in part; taken between a client's operations, it is exact.
    pub fn snapshot(&self) -> Traffic {
        let c = &self.0;
        Traffic {
            round_trips: c.round_trips.load(Ordering::Relaxed),
            pings: c.pings.load(Ordering::Relaxed),
            statements: c.statements.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            rollbacks: c.rollbacks.load(Ordering::Relaxed),
            write_commits: c.write_commits.load(Ordering::Relaxed),
            modelled_delay: Duration::from_nanos(c.modelled_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Adds `delay` to the modelled delay.
    pub(super) fn add_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.0.modelled_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a round trip's answer ended, for the latency model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Answered {
    /// A transaction that wrote committed in it.
    pub committed_write: bool,
}

/// One session's view of its transactions, fed the messages handed to its client in order.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    /// The login's `ReadyForQuery` has passed.
    logged_in: bool,
    /// In an explicit transaction block.
    open: bool,
    /// The current transaction wrote.
    wrote: bool,
    /// A statement completed outside an explicit block since the last `ReadyForQuery`.
    implicit: bool,
    /// An error since the last `ReadyForQuery` (it rolls an implicit transaction back).
    failed: bool,
    /// A `COPY … FROM STDIN` is under way (`CopyInResponse`).
    copying_in: bool,
    /// A transaction that wrote committed since the last `ReadyForQuery`.
    committed_write: bool,
    /// Something other than `ReadyForQuery` was handed over since the last one.
    answered: bool,
}

impl Tally {
    /// Counts the message with `tag` and `body` handed to the client into `counters`; for a
    /// `ReadyForQuery` after the login, what the round trip it ends committed.
    pub(super) fn observe(
        &mut self,
        tag: u8,
        body: &[u8],
        counters: &TrafficCounters,
    ) -> Option<Answered> {
        if !self.logged_in {
            if tag == b'Z' {
                self.logged_in = true;
                self.open = matches!(body.first(), Some(b'T' | b'E'));
            }
            return None;
        }
        if tag != b'Z' {
            self.answered = true;
        }
        match tag {
            b'C' => {
                TrafficCounters::bump(&counters.0.statements);
                let command = wire::cstr(body).map(|(tag, _)| tag).unwrap_or_default();
                self.completed(command, counters);
                self.copying_in = false;
                None
            }
            b'E' => {
                self.failed = true;
                None
            }
            b'G' => {
                self.copying_in = true;
                None
            }
            b'Z' => Some(self.ready(body.first().copied(), counters)),
            _ => None,
        }
    }

    /// A statement completed with the command tag `command`.
    fn completed(&mut self, command: &str, counters: &TrafficCounters) {
        match command {
            // In a multi-statement `Query`, BEGIN makes what ran before it part of its block.
            "BEGIN" | "START TRANSACTION" => {
                self.open = true;
                self.implicit = false;
            }
            // Outside a block, COMMIT and ROLLBACK do nothing (a warning): nothing ends.
            "COMMIT" if self.open => self.end(true, counters),
            "ROLLBACK" if self.open => self.end(false, counters),
            "COMMIT" | "ROLLBACK" => {}
            _ => {
                if self.writes(command) {
                    self.wrote = true;
                }
                if !self.open {
                    self.implicit = true;
                }
            }
        }
    }

    /// Whether a statement with the command tag `command` wrote.
    fn writes(&self, command: &str) -> bool {
        let rows = || {
            command
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        };
        match command.split(' ').next() {
            Some("INSERT" | "UPDATE" | "DELETE" | "MERGE") => rows(),
            Some("COPY") => self.copying_in && rows(),
            _ => is_ddl_tag(command.as_bytes()),
        }
    }

    /// The explicit transaction ends, committed or not.
    fn end(&mut self, committed: bool, counters: &TrafficCounters) {
        let c = &counters.0;
        TrafficCounters::bump(&c.transactions);
        TrafficCounters::bump(if committed { &c.commits } else { &c.rollbacks });
        if committed && self.wrote {
            TrafficCounters::bump(&c.write_commits);
            self.committed_write = true;
        }
        self.open = false;
        self.wrote = false;
    }

    /// A `ReadyForQuery` with the transaction status `status` ends the round trip.
    fn ready(&mut self, status: Option<u8>, counters: &TrafficCounters) -> Answered {
        let c = &counters.0;
        TrafficCounters::bump(&c.round_trips);
        if !std::mem::take(&mut self.answered) {
            TrafficCounters::bump(&c.pings);
        }
        if std::mem::take(&mut self.implicit) {
            TrafficCounters::bump(&c.transactions);
            if !self.failed && self.wrote {
                TrafficCounters::bump(&c.write_commits);
                self.committed_write = true;
            }
            self.wrote = false;
        }
        match status {
            // Idle, yet the block had not ended: its COMMIT failed, or its end was not passed
            // on (a conflict made to order).
            Some(b'I') if self.open => self.end(false, counters),
            Some(b'T' | b'E') => self.open = true,
            _ => {}
        }
        self.failed = false;
        self.copying_in = false;
        Answered {
            committed_write: std::mem::take(&mut self.committed_write),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session logged in on `counters`, and a way to feed it messages.
    struct Session {
        tally: Tally,
        counters: TrafficCounters,
        answers: Vec<Answered>,
    }

    impl Session {
        fn logged_in() -> Self {
            let mut session = Self {
                tally: Tally::default(),
                counters: TrafficCounters::default(),
                answers: Vec::new(),
            };
            session.feed(&[
                (b'R', b"\0\0\0\0"),
                (b'K', b"\0\0\0\x2a\0\0\0\0"),
                (b'Z', b"I"),
            ]);
            assert_eq!(session.counters.snapshot(), Traffic::default(), "login");
            assert!(session.answers.is_empty());
            session
        }

        fn feed(&mut self, messages: &[(u8, &[u8])]) {
            for (tag, body) in messages {
                if let Some(answered) = self.tally.observe(*tag, body, &self.counters) {
                    self.answers.push(answered);
                }
            }
        }

        /// A simple `Query` answered with the command tags `tags`, then `status`.
        fn query(&mut self, tags: &[&str], status: &[u8]) {
            for tag in tags {
                self.feed(&[(b'C', format!("{tag}\0").as_bytes())]);
            }
            self.feed(&[(b'Z', status)]);
        }

        fn commits_that_wrote(&self) -> Vec<bool> {
            self.answers.iter().map(|a| a.committed_write).collect()
        }
    }

    fn traffic(round_trips: u64, statements: u64, transactions: u64) -> Traffic {
        Traffic {
            round_trips,
            statements,
            transactions,
            ..Traffic::default()
        }
    }

    #[test]
    fn an_autocommit_statement_is_one_round_trip_and_one_implicit_transaction() {
        let mut s = Session::logged_in();
        s.query(&["SELECT 1"], b"I");
        assert_eq!(s.counters.snapshot(), traffic(1, 1, 1));
        s.query(&["INSERT 0 1"], b"I");
        s.query(&["UPDATE 0"], b"I");
        assert_eq!(
            s.counters.snapshot(),
            Traffic {
                write_commits: 1,
                ..traffic(3, 3, 3)
            }
        );
        assert_eq!(s.commits_that_wrote(), [false, true, false]);
    }

    #[test]
    fn an_explicit_transaction_counts_once_at_its_end() {
        let mut s = Session::logged_in();
        s.query(&["BEGIN"], b"T");
        s.query(&["INSERT 0 2"], b"T");
        s.query(&["COMMIT"], b"I");
        s.query(&["BEGIN"], b"T");
        s.query(&["SELECT 1"], b"T");
        s.query(&["COMMIT"], b"I");
        s.query(&["BEGIN"], b"T");
        s.query(&["DELETE 1"], b"T");
        s.query(&["ROLLBACK"], b"I");
        assert_eq!(
            s.counters.snapshot(),
            Traffic {
                commits: 2,
                rollbacks: 1,
                write_commits: 1,
                ..traffic(9, 9, 3)
            }
        );
        let wrote = s.commits_that_wrote();
        assert_eq!(wrote.iter().filter(|w| **w).count(), 1);
        assert!(wrote[2], "the first COMMIT's round trip");
    }

    #[test]
    fn a_failed_transaction_rolls_back_whatever_its_end() {
        let mut s = Session::logged_in();
        // COMMIT of a failed transaction: the server answers ROLLBACK.
        s.feed(&[
            (b'C', b"BEGIN\0"),
            (b'C', b"INSERT 0 1\0"),
            (b'E', b"SERROR\0\0"),
            (b'Z', b"E"),
        ]);
        s.query(&["ROLLBACK"], b"I");
        // A COMMIT that fails (a conflict): an error, then idle, and no tag.
        s.query(&["BEGIN"], b"T");
        s.query(&["UPDATE 1"], b"T");
        s.feed(&[(b'E', b"SERROR\0\0"), (b'Z', b"I")]);
        assert_eq!(
            s.counters.snapshot(),
            Traffic {
                rollbacks: 2,
                ..traffic(5, 5, 2)
            }
        );
        assert!(s.commits_that_wrote().iter().all(|w| !w));
    }

    #[test]
    fn one_query_text_is_one_round_trip_and_begin_takes_in_what_ran_before() {
        let mut s = Session::logged_in();
        // `SELECT 1; SELECT 2`: one implicit transaction.
        s.query(&["SELECT 1", "SELECT 1"], b"I");
        assert_eq!(s.counters.snapshot(), traffic(1, 2, 1));
        // `INSERT …; BEGIN; UPDATE …; COMMIT`: the INSERT is part of the block.
        s.query(&["INSERT 0 1", "BEGIN", "UPDATE 1", "COMMIT"], b"I");
        assert_eq!(
            s.counters.snapshot(),
            Traffic {
                commits: 1,
                write_commits: 1,
                ..traffic(2, 6, 2)
            }
        );
        // An error after a write rolls the implicit transaction back.
        s.feed(&[(b'C', b"INSERT 0 1\0"), (b'E', b"SERROR\0\0"), (b'Z', b"I")]);
        assert_eq!(s.counters.snapshot().write_commits, 1);
        assert_eq!(s.counters.snapshot().transactions, 3);
    }

    #[test]
    fn a_round_trip_without_a_statement_is_no_transaction() {
        let mut s = Session::logged_in();
        // Parse, Describe, Sync: ParseComplete, ParameterDescription, RowDescription.
        s.feed(&[(b'1', b""), (b't', b"\0\0"), (b'n', b""), (b'Z', b"I")]);
        // A stray COMMIT outside a block.
        s.query(&["COMMIT"], b"I");
        assert_eq!(s.counters.snapshot(), traffic(2, 1, 0));
    }

    #[test]
    fn a_round_trip_answered_with_ready_for_query_alone_is_a_ping() {
        let mut s = Session::logged_in();
        s.feed(&[(b'Z', b"I")]);
        s.query(&["SELECT 1"], b"I");
        s.feed(&[(b'Z', b"I")]);
        assert_eq!(
            s.counters.snapshot(),
            Traffic {
                pings: 2,
                ..traffic(3, 1, 1)
            }
        );
    }

    #[test]
    fn copy_writes_only_from_the_client_and_ddl_always() {
        let mut s = Session::logged_in();
        s.feed(&[(b'H', b"\0\0\0"), (b'C', b"COPY 3\0"), (b'Z', b"I")]);
        s.feed(&[(b'G', b"\0\0\0"), (b'C', b"COPY 3\0"), (b'Z', b"I")]);
        s.query(&["CREATE TABLE"], b"I");
        assert_eq!(s.commits_that_wrote(), [false, true, true]);
    }

    #[test]
    fn a_snapshot_difference_is_what_happened_between() {
        let later = Traffic {
            modelled_delay: Duration::from_millis(7),
            ..traffic(5, 4, 3)
        };
        let earlier = traffic(2, 2, 1);
        assert_eq!(
            later.since(&earlier),
            Traffic {
                modelled_delay: Duration::from_millis(7),
                ..traffic(3, 2, 2)
            }
        );
        assert_eq!(earlier.since(&later), Traffic::default());
    }
}
