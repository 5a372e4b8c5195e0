//! The relay between an authenticated client and its backend session, message by message, so
//! that the front door can refuse a statement the way DSQL does.
//!
//! Client to server, only `Query` (`Q`) and `Parse` (`P`) are looked at, a `Bind` (`B`) of a
//! named prepared statement only for a schema conflict (and a `Close` (`C`) of one, to forget
//! it), and a fastpath `FunctionCall` (`F`) is refused; every other message passes as it came. A query text that
//! the [`Policy`] refuses is replaced by a query of a marker column that does not exist
//! (`SELECT __dsql_refused_<n>__`), so PostgreSQL itself fails the message (with 25P02 in a
//! failed transaction, as DSQL): the responses stay in order, an extended-protocol batch is
//! skipped up to its `Sync`, and a transaction is aborted (25P02 until `ROLLBACK`) exactly as
//! for any other error. A text the policy rewrites is replaced by the rewrite, in the same
//! message.
//!
//! A lone `COMMIT` of a session chosen to fail ([`CommitFailures`]) is sent as `ROLLBACK`, and
//! its `ROLLBACK` tag comes back to the client as DSQL's conflict error; one chosen to lose its
//! reply commits, and the client's connection is closed in place of the answer; one chosen to
//! be unavailable commits, and its tag comes back as DSQL's `XX000`. The last two also take a
//! round trip that commits a write outside a transaction block, whose answer is held back
//! until it ends (the `held` module).
//!
//! Server to client, only `ErrorResponse` (`E`), `RowDescription` (`T`), `CommandComplete`
//! (`C`) and `BackendKeyData` (`K`, for the session's process id) are looked at. The error
//! naming a marker is replaced by DSQL's SQLSTATE and message; a serialization failure gets
//! DSQL's `OC000` message ([`super::conflicts`]).
//! A result whose only column is one of the [`Answer`] columns is a rewritten statement (an
//! `ASYNC` one, or a `SHOW` of what DSQL reports differently): the column gets DSQL's name
//! and the next command tag becomes DSQL's (`CREATE INDEX`, `SHOW`). The tag is changed on the next `CommandComplete` after the description,
//! which in the extended protocol may come after a `Sync` (a statement described, then
//! executed); an error in between cancels it.
//!
//! Every message handed to the client is counted ([`super::traffic`]), and the end of each
//! answer held as long as the latency model says ([`super::latency`], off by default).
//!
//! Messages are read whole into one buffer per direction ([`Frame`]: it grows as a message's
//! bytes arrive and gives back what a large one took), reused for every message, and written as
//! they came (a replaced one is built anew) to a buffered writer that is flushed whenever no
//! further input is already waiting, so a pipelined batch goes out in one write. A client
//! message longer than [`Limits::max_message`] ends the session without an answer, as DSQL
//! closes the connection.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use super::buffers::{BufferGauge, Frame, IO_BUFFER};
use super::conflicts::{
    CatalogVersions, CommitFailures, CommitFate, Conflict, SERIALIZATION_FAILURE, SeenCatalog,
    Touched, answers_commit, is_ddl_tag, unavailable, union,
};
use super::held::{self, Held, Session, Step};
use super::latency::LatencyModel;
use super::rules::{Refusal, Relations, TxnKind, is_lone};
use super::traffic::{Tally, TrafficCounters};
use super::wire;

/// The largest server message relayed: PostgreSQL's own limit for most messages is 1 GiB; the
/// relay keeps to 256 MiB, far above any row the app reads.
const MAX_SERVER_MESSAGE: usize = 256 * 1024 * 1024;
/// How long answers still coming from the server are delivered after the client stopped
/// sending.
const DRAIN: Duration = Duration::from_secs(5);
/// Markers kept at most for errors still to come. A marker whose `Parse` the server skipped
/// (after an earlier error in the same batch) never comes back; the oldest go first.
const MAX_PENDING: usize = 1024;

/// What the relay does with one query text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the server as it is.
    Pass,
    /// Refuse it with DSQL's answer; the server never runs any of it.
    Refuse(Refusal),
    /// Send this text instead.
    Rewrite(String),
}

/// What DSQL would refuse or answer differently that the server behind the front door cannot
/// see.
pub trait Policy: Send + Sync + 'static {
    /// The verdict on `sql`, one query text as a client sent it (possibly several statements).
    fn check(&self, sql: &str) -> Verdict;

    /// The verdict on `sql` and what it touches, for schema conflicts. By default
    /// [`Policy::check`]'s verdict, touching anything ([`Touched::unknown`]).
    fn assess(&self, sql: &str) -> (Verdict, Touched) {
        (self.check(sql), Touched::unknown())
    }

    /// `Some` to refuse a result that has a column of the type `oid` (the statement has run
    /// by then; in a transaction, the transaction stays usable, where DSQL's would be
    /// aborted). None by default.
    fn result_type(&self, _oid: u32) -> Option<Refusal> {
        None
    }
}

/// A policy that passes everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn check(&self, _sql: &str) -> Verdict {
        Verdict::Pass
    }
}

/// How a rewritten statement gets DSQL's answer: the rewrite selects one column named
/// `column`; the relay renames it `name` and gives the statement the command tag `tag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The rewrite's only result column.
    pub column: &'static str,
    /// The column's name as the client sees it.
    pub name: &'static str,
    /// The command tag the client sees.
    pub tag: &'static str,
}

/// The answer of `CREATE [UNIQUE] INDEX ASYNC`: a `job_id` row, tag `CREATE INDEX`.
pub const INDEX_JOB: Answer = Answer {
    column: "__dsql_job_index__",
    name: "job_id",
    tag: "CREATE INDEX",
};
/// The answer of `ALTER TABLE ASYNC … VALIDATE CONSTRAINT`: a `job_id` row, tag `ALTER TABLE`.
pub const VALIDATE_JOB: Answer = Answer {
    column: "__dsql_job_validate__",
    name: "job_id",
    tag: "ALTER TABLE",
};
/// The answer of `SHOW server_version`, tag `SHOW`.
pub const SHOW_SERVER_VERSION: Answer = Answer {
    column: "__dsql_show_server_version__",
    name: "server_version",
    tag: "SHOW",
};
/// The answer of `SHOW server_version_num`, tag `SHOW`.
pub const SHOW_SERVER_VERSION_NUM: Answer = Answer {
    column: "__dsql_show_server_version_num__",
    name: "server_version_num",
    tag: "SHOW",
};
/// The answer of `AWS IAM GRANT`: no row, tag `AWS IAM GRANT` (not recorded; DSQL's own tag
/// may differ).
pub const IAM_GRANT: Answer = Answer {
    column: "__dsql_iam_grant__",
    name: "?column?",
    tag: "AWS IAM GRANT",
};
/// The answer of `AWS IAM REVOKE`: no row, tag `AWS IAM REVOKE` (not recorded either).
pub const IAM_REVOKE: Answer = Answer {
    column: "__dsql_iam_revoke__",
    name: "?column?",
    tag: "AWS IAM REVOKE",
};
/// Every answer the relay gives a rewritten statement.
const ANSWERS: [Answer; 6] = [
    INDEX_JOB,
    VALIDATE_JOB,
    SHOW_SERVER_VERSION,
    SHOW_SERVER_VERSION_NUM,
    IAM_GRANT,
    IAM_REVOKE,
];

/// What the two directions of one session share: markers sent to the server and the refusal
/// each stands for, the session's backend process id, and a commit being failed.
#[derive(Default)]
struct Pending {
    next: u64,
    refusals: HashMap<String, (u64, Refusal)>,
    pid: Option<u32>,
    failing_commit: Option<Conflict>,
    /// What becomes of the answer to the `COMMIT` under way, once the server committed
    /// ([`CommitFate::LoseReply`], [`CommitFate::Unavailable`]).
    commit_fate: Option<CommitFate>,
    /// The transaction status of the last `ReadyForQuery`: `I`, `T`, or `E` (failed).
    status: Option<u8>,
    /// When the current transaction began (the first `ReadyForQuery` in it).
    transaction_started: Option<Instant>,
    /// What the session has seen of its database's catalog.
    catalog: SeenCatalog,
    /// Whether the current transaction changed the schema (a DDL command tag).
    changed_schema: bool,
    /// The relations the current transaction's schema changes change, as far as known.
    schema_changes: Option<Relations>,
    /// The relations each named prepared statement uses, from its `Parse`, so that a `Bind`
    /// of it meets a schema conflict as its text would.
    prepared: HashMap<String, Relations>,
}

impl Pending {
    /// A new marker for `refusal`.
    fn add(&mut self, refusal: Refusal) -> String {
        self.next += 1;
        if self.refusals.len() >= MAX_PENDING {
            let oldest = self
                .refusals
                .iter()
                .min_by_key(|(_, (n, _))| *n)
                .map(|(marker, _)| marker.clone());
            if let Some(oldest) = oldest {
                self.refusals.remove(&oldest);
            }
        }
        let marker = format!("__dsql_refused_{}__", self.next);
        self.refusals.insert(marker.clone(), (self.next, refusal));
        marker
    }

    /// The refusal whose marker `message` names, removed.
    fn take_named_in(&mut self, message: &str) -> Option<Refusal> {
        let start = message.find("__dsql_refused_")?;
        let rest = &message[start..];
        let end = rest["__dsql_refused_".len()..].find("__")? + "__dsql_refused_".len() + 2;
        self.refusals.remove(&rest[..end]).map(|(_, r)| r)
    }
}

/// DSQL's limits as the front door applies them, and whether DDL makes other sessions' next
/// transaction fail. The limits default to DSQL's where DSQL documents them; tests shorten
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest message a client may send, its length field included: a longer one closes
    /// the connection without an error, as DSQL closes it. DSQL: "~10 MiB" (dsql-facts.md
    /// §3.4); the exact figure is not documented, 10 MiB is assumed.
    pub max_message: usize,
    /// Connections at once, counted from their startup message to their end; past it a login
    /// gets DSQL's `53300` ([`super::admission`]). DSQL: 10,000 per cluster.
    pub max_connections: usize,
    /// Connections still logging in (before their backend session opens) at once; past it the
    /// one logging in longest is closed to make room ([`super::admission`]). DSQL documents no
    /// such figure: 1,000, its burst of new connections, so that it is never harsher.
    pub max_logins: usize,
    /// A transaction older than this gets DSQL's `54000 transaction age limit of <n>s exceeded`
    /// at its next statement (`ROLLBACK` passes). DSQL: 5 minutes.
    pub transaction_age: Duration,
    /// A connection older than this is closed when it is next idle (after a `ReadyForQuery`
    /// outside a transaction), without an error, as DSQL closes it. DSQL: 1 hour.
    pub connection_lifetime: Duration,
    /// Whether committed DDL gives other sessions on the database `40001 OC001`
    /// ([`super::conflicts`]): once, at the first statement that uses a relation changed
    /// since the session last used it, as DSQL does. On by default. Tests that are not about
    /// conflicts may switch it off.
    pub schema_conflicts: bool,
    /// With [`Limits::schema_conflicts`]: fail the first statement of the next transaction of
    /// every other session instead, whatever it uses (a pooled connection's `DEALLOCATE ALL`
    /// included). Harsher than DSQL, never milder, for code that should survive the cluster-wide
    /// reading of DSQL's documentation. Off by default.
    pub schema_conflicts_cluster_wide: bool,
}

impl Default for Limits {
    /// 10 MiB messages, 10,000 connections, 1,000 logins, 5 minutes, 1 hour, schema conflicts
    /// on.
    fn default() -> Self {
        Self {
            max_message: 10 * 1024 * 1024,
            max_connections: 10_000,
            max_logins: 1_000,
            transaction_age: Duration::from_secs(300),
            connection_lifetime: Duration::from_secs(3600),
            schema_conflicts: true,
            schema_conflicts_cluster_wide: false,
        }
    }
}

/// What the relays of one front door share: the limits, the commits chosen to fail, the
/// catalog versions, the count of the bytes their buffers hold, the traffic counts and the
/// latency model.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The bytes the sessions' buffers hold.
    pub buffers: BufferGauge,
    /// DSQL's limits.
    pub limits: Limits,
    /// Commits made to fail, for tests.
    pub failures: CommitFailures,
    /// Committed DDL per database.
    pub catalog: CatalogVersions,
    /// What the sessions' clients were answered ([`super::traffic`]).
    pub traffic: TrafficCounters,
    /// The delays before answers, off by default ([`super::latency`]).
    pub latency: LatencyModel,
}

/// What decides the fate of a query text: the policy, the front door's context, and the
/// session's database.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    /// DSQL's statement rules.
    pub policy: &'a dyn Policy,
    /// What the front door's sessions share.
    pub context: &'a Context,
    /// The session's database.
    pub database: &'a str,
}

impl Judge<'_> {
    /// The verdict on `sql` in the session whose shared state is `pending`: a commit chosen to
    /// fail, then the transaction's age, then the policy's refusal, then a stale catalog
    /// ([`Judge::stale`]); and, for a text that is sent on, the relations it uses. In a failed transaction the server answers a refused text with 25P02
    /// first, as DSQL does ([`checked`]).
    fn verdict(&self, sql: &str, pending: &Mutex<Pending>) -> (Verdict, Option<Relations>) {
        let (pid, status, started) = {
            let pending = lock(pending);
            (pending.pid, pending.status, pending.transaction_started)
        };
        match self.context.failures.take_if_commit(pid, sql) {
            Some(CommitFate::Fail(conflict)) => {
                lock(pending).failing_commit = Some(conflict);
                return (Verdict::Rewrite("ROLLBACK".to_owned()), None);
            }
            Some(fate) => lock(pending).commit_fate = Some(fate),
            None => {}
        }
        let limit = self.context.limits.transaction_age;
        if status == Some(b'T')
            && started.is_some_and(|at| at.elapsed() > limit)
            && !is_lone(sql, TxnKind::Rollback)
        {
            return (Verdict::Refuse(age_refusal(limit)), None);
        }
        let (verdict, touched) = self.policy.assess(sql);
        if matches!(verdict, Verdict::Refuse(_)) {
            return (verdict, None);
        }
        let mut pending = lock(pending);
        if self.stale(&mut pending, &touched) {
            return (Verdict::Refuse(Conflict::Schema.refusal()), None);
        }
        if let Some(changes) = touched.changes {
            let before = pending.schema_changes.take();
            pending.schema_changes = Some(match before {
                Some(before) => union(before, changes),
                None => changes,
            });
        }
        (verdict, Some(touched.uses))
    }

    /// Whether a text that touches `touched` gets `OC001` ([`Limits::schema_conflicts`]): it
    /// uses a relation changed since the session last used it, or, cluster-wide, it is the
    /// first of a transaction after any change. Not in a failed transaction, where the server
    /// answers anything with 25P02.
    fn stale(&self, pending: &mut Pending, touched: &Touched) -> bool {
        let limits = &self.context.limits;
        let catalog = &self.context.catalog;
        match pending.status {
            _ if !limits.schema_conflicts => false,
            Some(b'I') if limits.schema_conflicts_cluster_wide => {
                catalog.is_stale(self.database, &mut pending.catalog, &Relations::Unknown)
            }
            Some(b'I' | b'T') if !limits.schema_conflicts_cluster_wide => {
                catalog.is_stale(self.database, &mut pending.catalog, &touched.uses)
            }
            _ => false,
        }
    }
}

/// PostgreSQL's refusal of text that is not valid in the client encoding UTF-8, naming the
/// bytes of the first invalid character (`invalid`, from its first byte) as the server does.
fn invalid_utf8(invalid: &[u8]) -> Refusal {
    let width = match invalid.first() {
        Some(0xc0..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf7) => 4,
        _ => 1,
    };
    let bytes: Vec<String> = invalid
        .iter()
        .take(width)
        .map(|b| format!("0x{b:02x}"))
        .collect();
    Refusal {
        code: "22021",
        message: format!(
            "invalid byte sequence for encoding \"UTF8\": {}",
            bytes.join(" ")
        ),
    }
}

/// DSQL's refusal of a statement in a transaction older than `limit` (dsql-facts.md §5).
fn age_refusal(limit: Duration) -> Refusal {
    Refusal {
        code: "54000",
        message: format!("transaction age limit of {}s exceeded", limit.as_secs()),
    }
}

/// Relays `client` ⇄ `server` until either side ends, judging query texts with `judge`.
pub async fn run<C, S>(client: C, server: S, judge: Judge<'_>) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (client_in, client_out) = tokio::io::split(client);
    let (server_in, server_out) = tokio::io::split(server);
    let pending = Arc::new(Mutex::new(Pending {
        catalog: judge.context.catalog.seen_now(judge.database),
        ..Pending::default()
    }));
    let opened = Instant::now();
    let buffers = &judge.context.buffers;
    let _held = buffers.hold(4 * IO_BUFFER);
    let max_client_body = judge.context.limits.max_message.saturating_sub(4);
    let upstream = pump(
        BufReader::with_capacity(IO_BUFFER, client_in),
        BufWriter::with_capacity(IO_BUFFER, server_out),
        Frame::new(buffers.clone()),
        max_client_body,
        |tag, body| Forward::now(to_server(tag, body, judge, &pending)),
    );
    let mut state = Downstream::default();
    let mut tally = Tally::default();
    let mut held = Held::default();
    let downstream = pump(
        BufReader::with_capacity(IO_BUFFER, server_in),
        BufWriter::with_capacity(IO_BUFFER, client_out),
        Frame::new(buffers.clone()),
        MAX_SERVER_MESSAGE,
        |tag, body| {
            let fate = if tag == b'C' && answers_commit(body) {
                lock(&pending).commit_fate.take()
            } else {
                None
            };
            let replacement = to_client(tag, body, judge, &pending, &mut state);
            let replacement = match fate {
                Some(CommitFate::Unavailable) => Some(refusal_response(&unavailable())),
                _ => replacement,
            };
            let failures = &judge.context.failures;
            let session = || {
                let pending = lock(&pending);
                Session {
                    pid: pending.pid,
                    idle: pending.status == Some(b'I'),
                }
            };
            let step = match fate {
                // The server committed; the client's connection ends before it can hear so.
                Some(CommitFate::LoseReply) => Step::Close,
                _ => held.step(tag, body, replacement.as_deref(), session, &tally, failures),
            };
            let (replacement, delay) = match step {
                Step::Close => {
                    return Forward {
                        last: true,
                        ..Forward::now(Some(Vec::new()))
                    };
                }
                Step::Hold => return Forward::now(Some(Vec::new())),
                Step::Hand(frames) => {
                    let delay = held::messages(&frames)
                        .map(|(tag, body)| hold(&mut tally, judge.context, tag, body))
                        .sum();
                    (Some(frames), delay)
                }
                Step::Pass => {
                    let sent = match replacement.as_deref() {
                        None => Some((tag, body)),
                        Some(frame) => held::messages(frame).next(),
                    };
                    let delay = sent.map_or(Duration::ZERO, |(tag, body)| {
                        hold(&mut tally, judge.context, tag, body)
                    });
                    (replacement, delay)
                }
            };
            // Idle, and past its lifetime: closed after this ReadyForQuery.
            let last = tag == b'Z'
                && body == b"I"
                && opened.elapsed() > judge.context.limits.connection_lifetime;
            Forward {
                replacement,
                last,
                delay,
            }
        },
    );
    tokio::pin!(upstream, downstream);
    tokio::select! {
        // The client is done sending (its write half closed, the server's with it): what the
        // server still answers is delivered, within DRAIN.
        result = &mut upstream => {
            result?;
            match tokio::time::timeout(DRAIN, &mut downstream).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
        // The server ended the session: nothing more can come.
        result = &mut downstream => result,
    }
}

/// A client message for the server in place of the one with `tag` and `body`, when the policy
/// refuses or rewrites its query text: the same message with a marker or the rewrite instead
/// of the text.
fn to_server(tag: u8, body: &[u8], judge: Judge<'_>, pending: &Mutex<Pending>) -> Option<Vec<u8>> {
    let skip = match tag {
        b'Q' => 0,
        b'P' => 1,
        // A fastpath FunctionCall calls any function by its OID, with no text to judge: it
        // becomes a refused query, which the server answers the same way (an error, then
        // ReadyForQuery). Not recorded: the wording is an assumption in DSQL's style.
        b'F' => {
            let marker = lock(pending).add(Refusal {
                code: "0A000",
                message: "unsupported statement: FunctionCall".to_owned(),
            });
            let mut frame = Vec::new();
            wire::put_message(&mut frame, b'Q', format!("SELECT {marker}\0").as_bytes());
            return Some(frame);
        }
        b'B' => return stale_bind(body, judge, pending),
        // Close of a prepared statement: its relations are forgotten.
        b'C' => {
            if let Some((b'S', name)) = body.split_first() {
                let name = wire::cstr(name).map(|(name, _)| name).unwrap_or_default();
                lock(pending).prepared.remove(name);
            }
            return None;
        }
        _ => return None,
    };
    let replaced = checked(body, skip, judge, pending)?;
    let mut frame = Vec::with_capacity(replaced.len() + 5);
    wire::put_message(&mut frame, tag, &replaced);
    Some(frame)
}

/// In place of a `Bind` of a named prepared statement that uses a relation changed since the
/// session last used it ([`Judge::stale`]): a `Parse` of a refused query, which the server
/// fails (then skips the rest of the batch up to its `Sync`), so the client gets `OC001` where
/// it expected `BindComplete`, as for the statement's text.
fn stale_bind(body: &[u8], judge: Judge<'_>, pending: &Mutex<Pending>) -> Option<Vec<u8>> {
    let (_portal, rest) = wire::cstr(body).ok()?;
    let (statement, _) = wire::cstr(rest).ok()?;
    let mut pending = lock(pending);
    let uses = pending.prepared.get(statement)?.clone();
    let touched = Touched {
        uses,
        changes: None,
    };
    if !judge.stale(&mut pending, &touched) {
        return None;
    }
    let marker = pending.add(Conflict::Schema.refusal());
    let mut frame = Vec::new();
    wire::put_message(
        &mut frame,
        b'P',
        format!("\0SELECT {marker}\0\0\0").as_bytes(),
    );
    Some(frame)
}

/// Counts a message handed to the client (`tag` and `body`) in `tally`, and says how long the
/// latency model holds it: the end of an answer, a `ReadyForQuery`, as the model says; any
/// other message not at all.
fn hold(tally: &mut Tally, context: &Context, tag: u8, body: &[u8]) -> Duration {
    tally
        .observe(tag, body, &context.traffic)
        .map_or(Duration::ZERO, |answered| {
            context.latency.delay(answered, &context.traffic)
        })
}

/// What [`pump`] does with one message.
struct Forward {
    /// What to send instead of the message (nothing, if empty); `None` sends it as it came.
    replacement: Option<Vec<u8>>,
    /// The message is the last: the pump stops after it.
    last: bool,
    /// How long to wait before sending it.
    delay: Duration,
}

impl Forward {
    /// `replacement` (or the message), sent at once, and more to come.
    fn now(replacement: Option<Vec<u8>>) -> Self {
        Self {
            replacement,
            last: false,
            delay: Duration::ZERO,
        }
    }
}

/// Copies messages of at most `max_body` bytes from `from` to `to` until `from` ends, or until
/// `forward` says a message is the last: each as it came, or what `forward` answers instead
/// for its tag and body, after the wait it asks for (which holds this direction only; what is
/// in the output buffer waits with it). One frame serves every message (and gives back what a
/// large one took); output is flushed whenever no further input is already buffered (and
/// after the last message), and `to` is shut down at the end. A longer message is an
/// [`io::ErrorKind::InvalidData`] error: the session ends there.
async fn pump<R, W>(
    mut from: BufReader<R>,
    mut to: W,
    mut frame: Frame,
    max_body: usize,
    mut forward: impl FnMut(u8, &[u8]) -> Forward,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while frame.read(&mut from, max_body).await? {
        let message = frame.message();
        let Forward {
            replacement,
            last,
            delay,
        } = forward(message[0], &message[5..]);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match replacement {
            Some(replacement) => to.write_all(&replacement).await?,
            None => to.write_all(message).await?,
        }
        frame.release();
        if last {
            break;
        }
        if from.buffer().is_empty() {
            to.flush().await?;
        }
    }
    to.shutdown().await
}

/// The body of a `Query` (the text) or a `Parse` (statement name, text, parameter types)
/// with its query text replaced by a marker, if the policy refuses the text, or by the
/// policy's rewrite. The text comes after `skip` NUL-terminated strings: 0 for `Query`, 1 for
/// `Parse`. The session's client encoding is UTF-8 (the front door lets no other be set), so
/// text that is not UTF-8 is refused as PostgreSQL refuses it, and never judged or relayed.
///
/// A refused text becomes `SELECT <marker>`: in a failed transaction the server answers it
/// with 25P02, as DSQL answers anything there; otherwise with an error naming the marker. Either
/// way nothing of the text runs, whatever state the session is in by the time it arrives (a
/// pipelined `ROLLBACK` before it included).
fn checked(
    body: &[u8],
    skip: usize,
    judge: Judge<'_>,
    pending: &Mutex<Pending>,
) -> Option<Vec<u8>> {
    let mut start = 0;
    for _ in 0..skip {
        start += body.get(start..)?.iter().position(|&b| b == 0)? + 1;
    }
    let raw = body.get(start..)?;
    let end = raw.iter().position(|&b| b == 0)?;
    let (bytes, rest) = (&raw[..end], &raw[end + 1..]);
    let (verdict, uses) = match std::str::from_utf8(bytes) {
        Ok(sql) => judge.verdict(sql, pending),
        Err(error) => (
            Verdict::Refuse(invalid_utf8(&bytes[error.valid_up_to()..])),
            None,
        ),
    };
    if let (1, Ok((name, _))) = (skip, wire::cstr(body)) {
        let mut pending = lock(pending);
        match uses {
            Some(uses) if !name.is_empty() => pending.prepared.insert(name.to_owned(), uses),
            _ => pending.prepared.remove(name),
        };
    }
    let text = match verdict {
        Verdict::Pass => return None,
        Verdict::Refuse(refusal) => format!("SELECT {}", lock(pending).add(refusal)),
        Verdict::Rewrite(text) => text,
    };
    let mut replaced = Vec::with_capacity(start + text.len() + 1 + rest.len());
    replaced.extend_from_slice(&body[..start]);
    replaced.extend_from_slice(text.as_bytes());
    replaced.push(0);
    replaced.extend_from_slice(rest);
    Some(replaced)
}

/// What the server-to-client direction remembers between messages.
#[derive(Default)]
struct Downstream {
    /// The tag for the next `CommandComplete` after an [`Answer`]'s description.
    answer_tag: Option<&'static str>,
    /// A result refused at its description: its rows and tag are dropped.
    dropping: bool,
}

/// A server message for the client in place of the one with `tag` and `body` (an empty one
/// drops it): a marker's syntax error becomes its refusal, a serialization failure DSQL's
/// conflict, a failed commit's `ROLLBACK` its conflict; an answer's description and command
/// tag become DSQL's; a result the policy refuses at its description becomes the refusal,
/// and its rows and tag are dropped.
fn to_client(
    tag: u8,
    body: &[u8],
    judge: Judge<'_>,
    pending: &Mutex<Pending>,
    state: &mut Downstream,
) -> Option<Vec<u8>> {
    match tag {
        b'E' => {
            state.answer_tag = None;
            state.dropping = false;
            let refusal = match error_field(body, b'M') {
                Some(message) if message.contains("__dsql_refused_") => {
                    lock(pending).take_named_in(message)
                }
                _ => None,
            }
            .or_else(|| {
                (error_field(body, b'C') == Some(SERIALIZATION_FAILURE))
                    .then(|| Conflict::Data.refusal())
            })?;
            Some(refusal_response(&refusal))
        }
        b'Z' => {
            state.dropping = false;
            let status = body.first().copied();
            let mut pending = lock(pending);
            match status {
                Some(b'I') => {
                    pending.transaction_started = None;
                    let changes = pending.schema_changes.take();
                    if std::mem::take(&mut pending.changed_schema) {
                        // A DDL tag whose statement told nothing: it may have changed anything.
                        let changes = changes.unwrap_or(Relations::Unknown);
                        let seen = &mut pending.catalog;
                        judge.context.catalog.commit(judge.database, &changes, seen);
                    }
                }
                _ => {
                    pending.transaction_started.get_or_insert_with(Instant::now);
                }
            }
            pending.status = status;
            None
        }
        b'D' | b'C' if state.dropping => Some(Vec::new()),
        // The backend's version, reported at login, becomes DSQL's, as `SHOW` answers it.
        b'S' if body.starts_with(b"server_version\0") => {
            let mut reported = b"server_version\0".to_vec();
            reported.extend_from_slice(crate::local::DSQL_SERVER_VERSION.as_bytes());
            reported.push(0);
            let mut frame = Vec::with_capacity(reported.len() + 5);
            wire::put_message(&mut frame, b'S', &reported);
            Some(frame)
        }
        b'K' => {
            if let Some(pid) = body.first_chunk::<4>() {
                lock(pending).pid = Some(u32::from_be_bytes(*pid));
            }
            None
        }
        b'C' if state.answer_tag.is_none() => {
            if is_ddl_tag(body) {
                lock(pending).changed_schema = true;
            }
            if body != b"ROLLBACK\0" {
                return None;
            }
            let mut pending = lock(pending);
            pending.changed_schema = false;
            let conflict = pending.failing_commit.take()?;
            Some(refusal_response(&conflict.refusal()))
        }
        b'T' => {
            if let Some(refusal) = column_types(body).find_map(|oid| judge.policy.result_type(oid))
            {
                state.dropping = true;
                return Some(refusal_response(&refusal));
            }
            let (answer, rest) = answer_description(body)?;
            state.answer_tag = Some(answer.tag);
            let mut renamed = Vec::with_capacity(2 + answer.name.len() + 1 + rest.len());
            renamed.extend_from_slice(&1_u16.to_be_bytes());
            renamed.extend_from_slice(answer.name.as_bytes());
            renamed.push(0);
            renamed.extend_from_slice(rest);
            let mut frame = Vec::with_capacity(renamed.len() + 5);
            wire::put_message(&mut frame, b'T', &renamed);
            Some(frame)
        }
        b'C' => {
            let tag = state.answer_tag.take()?;
            if is_ddl_tag(tag.as_bytes()) {
                lock(pending).changed_schema = true;
            }
            let mut frame = Vec::with_capacity(tag.len() + 6);
            let mut body = tag.as_bytes().to_vec();
            body.push(0);
            wire::put_message(&mut frame, b'C', &body);
            Some(frame)
        }
        _ => None,
    }
}

/// The type OID of each column of a `RowDescription` body (after each name: table OID,
/// column number, then the type OID).
fn column_types(body: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut rest = body.get(2..).unwrap_or_default();
    std::iter::from_fn(move || {
        let (_, after) = wire::cstr(rest).ok()?;
        let oid = after.get(6..10)?.first_chunk::<4>().copied()?;
        rest = after.get(18..)?;
        Some(u32::from_be_bytes(oid))
    })
}

/// For a `RowDescription` of one column named like an [`Answer`] column: that answer, and the
/// field's bytes after its name.
fn answer_description(body: &[u8]) -> Option<(Answer, &[u8])> {
    let (count, fields) = body.split_first_chunk::<2>()?;
    if u16::from_be_bytes(*count) != 1 {
        return None;
    }
    let (name, rest) = wire::cstr(fields).ok()?;
    ANSWERS
        .into_iter()
        .find(|answer| answer.column == name)
        .map(|answer| (answer, rest))
}

/// An `ErrorResponse` with `refusal`'s SQLSTATE and message.
pub(super) fn refusal_response(refusal: &Refusal) -> Vec<u8> {
    wire::error_response("ERROR", refusal.code, &refusal.message, None)
}

/// The field `wanted` (`M` message, `C` SQLSTATE …) of an `ErrorResponse` body.
pub(crate) fn error_field(body: &[u8], wanted: u8) -> Option<&str> {
    let mut rest = body;
    while let Some((&field, after)) = rest.split_first() {
        if field == 0 {
            return None;
        }
        let (value, next) = wire::cstr(after).ok()?;
        if field == wanted {
            return Some(value);
        }
        rest = next;
    }
    None
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One relayed session's two directions, driven by hand.
    struct Relayed<'a> {
        judge: Judge<'a>,
        pending: Mutex<Pending>,
        state: Downstream,
    }

    impl<'a> Relayed<'a> {
        /// A new session on database `db`, judged by `policy` in `context`.
        fn new(policy: &'a dyn Policy, context: &'a Context) -> Self {
            Self {
                judge: Judge {
                    policy,
                    context,
                    database: "db",
                },
                pending: Mutex::new(Pending::default()),
                state: Downstream::default(),
            }
        }

        /// What goes to the server for a `Parse` (`skip` 1) or `Query` (0) body.
        fn up(&self, body: &[u8], skip: usize) -> Option<Vec<u8>> {
            checked(body, skip, self.judge, &self.pending)
        }

        /// What goes to the client for a server message.
        fn down(&mut self, tag: u8, body: &[u8]) -> Option<Vec<u8>> {
            to_client(tag, body, self.judge, &self.pending, &mut self.state)
        }
    }

    fn refusal(n: u32) -> Refusal {
        Refusal {
            code: "0A000",
            message: format!("refusal {n}"),
        }
    }

    #[test]
    fn a_marker_comes_back_once_from_the_servers_syntax_error() {
        let mut pending = Pending::default();
        let marker = pending.add(refusal(1));
        let error = format!("syntax error at or near \"{marker}\"");
        assert_eq!(pending.take_named_in(&error), Some(refusal(1)));
        assert_eq!(pending.take_named_in(&error), None);
        assert_eq!(pending.take_named_in("syntax error at or near \"x\""), None);
    }

    #[test]
    fn the_oldest_markers_are_dropped_beyond_the_bound() {
        let mut pending = Pending::default();
        let first = pending.add(refusal(0));
        for n in 1..=u32::try_from(MAX_PENDING).expect("small") {
            pending.add(refusal(n));
        }
        assert_eq!(pending.refusals.len(), MAX_PENDING);
        assert_eq!(pending.take_named_in(&first), None);
    }

    /// Refuses every text containing `TRUNCATE`.
    struct NoTruncate;

    impl Policy for NoTruncate {
        fn check(&self, sql: &str) -> Verdict {
            if sql.contains("TRUNCATE") {
                Verdict::Refuse(refusal(9))
            } else if sql.contains("ASYNC") {
                Verdict::Rewrite("SELECT 'job'".to_owned())
            } else {
                Verdict::Pass
            }
        }
    }

    #[test]
    fn only_the_query_text_of_a_refused_message_is_replaced() {
        let context = Context::default();
        let relayed = Relayed::new(&NoTruncate, &context);
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None);
        let query = relayed.up(b"TRUNCATE t\0", 0).expect("refused");
        assert_eq!(query, b"SELECT __dsql_refused_1__\0".to_vec());
        let parse = b"stmt\0TRUNCATE t\0\0\x01\0\0\0\x17";
        let replaced = relayed.up(parse, 1).expect("refused");
        assert_eq!(
            replaced,
            b"stmt\0SELECT __dsql_refused_2__\0\0\x01\0\0\0\x17".to_vec()
        );
        let rewritten = relayed.up(b"s\0CREATE INDEX ASYNC\0\0\0", 1);
        assert_eq!(rewritten, Some(b"s\0SELECT 'job'\0\0\0".to_vec()));
        assert_eq!(relayed.up(b"no terminator", 1), None);
        // Not UTF-8: refused, never judged.
        assert_eq!(
            relayed.up(b"TRUNCATE t /* \xe9 */\0", 0),
            Some(b"SELECT __dsql_refused_3__\0".to_vec())
        );
        let refusal = lock(&relayed.pending).take_named_in("__dsql_refused_3__");
        assert_eq!(
            refusal.map(|r| (r.code, r.message)),
            Some((
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0xe9 0x20 0x2a".to_owned()
            ))
        );
    }

    #[test]
    fn a_commit_chosen_to_fail_is_rolled_back_and_answered_with_the_conflict() {
        let context = Context::default();
        let mut relayed = Relayed::new(&AllowAll, &context);
        // The session learns its process id from the server's BackendKeyData.
        let key_data = [0, 0, 0, 42, 1, 2, 3, 4];
        assert_eq!(relayed.down(b'K', &key_data), None);
        context.failures.fail_next_commit(42, Conflict::Data);
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None);
        assert_eq!(relayed.up(b"COMMIT\0", 0), Some(b"ROLLBACK\0".to_vec()));
        let answer = relayed.down(b'C', b"ROLLBACK\0").expect("an error");
        assert_eq!(answer, refusal_response(&Conflict::Data.refusal()));
        assert_eq!(answer[0], b'E');
        // Once: the next commit, and a client's own ROLLBACK, pass.
        assert_eq!(relayed.up(b"COMMIT\0", 0), None);
        assert_eq!(relayed.down(b'C', b"ROLLBACK\0"), None);
    }

    #[test]
    fn a_serialization_failure_gets_dsqls_message() {
        let context = Context::default();
        let mut relayed = Relayed::new(&AllowAll, &context);
        let postgres = wire::error_response(
            "ERROR",
            "40001",
            "could not serialize access due to concurrent update",
            None,
        );
        let answer = relayed.down(b'E', &postgres[5..]).expect("replaced");
        assert_eq!(
            error_field(&answer[5..], b'M'),
            Some("change conflicts with another transaction (OC000)")
        );
        assert_eq!(error_field(&answer[5..], b'C'), Some("40001"));
        let other = wire::error_response("ERROR", "23505", "duplicate key", None);
        assert_eq!(relayed.down(b'E', &other[5..]), None);
    }

    /// A `RowDescription` of one text column named `name`.
    fn description(name: &str) -> Vec<u8> {
        typed_description(&[(name, 25)])
    }

    /// A `RowDescription` of the columns `(name, type OID)`.
    fn typed_description(columns: &[(&str, u32)]) -> Vec<u8> {
        let count = u16::try_from(columns.len()).expect("few columns");
        let mut body = count.to_be_bytes().to_vec();
        for (name, oid) in columns {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            body.extend_from_slice(&oid.to_be_bytes());
            body.extend_from_slice(&[255, 255, 255, 255, 255, 255, 0, 0]);
        }
        body
    }

    /// Refuses every text, and every result with a column of type 628.
    struct NoLines;

    impl Policy for NoLines {
        fn check(&self, _sql: &str) -> Verdict {
            Verdict::Refuse(refusal(5))
        }
        fn result_type(&self, oid: u32) -> Option<Refusal> {
            (oid == 628).then(|| refusal(628))
        }
    }

    #[test]
    fn a_result_refused_at_its_description_loses_its_rows_and_tag() {
        let context = Context::default();
        let mut relayed = Relayed::new(&NoLines, &context);
        let description = typed_description(&[("id", 23), ("l", 628)]);
        assert_eq!(column_types(&description).collect::<Vec<_>>(), [23, 628]);
        let answer = relayed.down(b'T', &description).expect("refused");
        assert_eq!(answer, refusal_response(&refusal(628)));
        let row = [0, 0];
        assert_eq!(relayed.down(b'D', &row), Some(Vec::new()));
        let tag = b"SELECT 1\0";
        assert_eq!(relayed.down(b'C', tag), Some(Vec::new()));
        assert_eq!(relayed.down(b'Z', b"I"), None);
        assert_eq!(relayed.down(b'D', &row), None);
        let plain = typed_description(&[("id", 23)]);
        assert_eq!(relayed.down(b'T', &plain), None);
    }

    #[test]
    fn the_server_version_reported_at_login_is_dsqls() {
        let context = Context::default();
        let mut relayed = Relayed::new(&AllowAll, &context);
        let mut expected = Vec::new();
        wire::put_message(&mut expected, b'S', b"server_version\x0016.15\0");
        assert_eq!(
            relayed.down(b'S', b"server_version\x0015.8\0"),
            Some(expected)
        );
        assert_eq!(relayed.down(b'S', b"server_encoding\0UTF8\0"), None);
    }

    #[test]
    fn a_text_of_unknown_reach_gets_one_oc001_after_any_ddl() {
        let context = Context::default();
        assert!(context.limits.schema_conflicts, "on by default");
        let mut relayed = Relayed::new(&AllowAll, &context);
        relayed.down(b'Z', b"I");
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None);
        context.catalog.bump("db");
        assert!(relayed.up(b"SELECT 1\0", 0).is_some());
        let marker = lock(&relayed.pending).refusals.values().next().cloned();
        assert_eq!(marker.map(|(_, r)| r), Some(Conflict::Schema.refusal()));
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None, "once");
        // Another database's DDL is not this session's concern.
        context.catalog.bump("other");
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None);
        // Switched off: no conflict.
        let quiet = Context {
            limits: Limits {
                schema_conflicts: false,
                ..Limits::default()
            },
            ..Context::default()
        };
        let mut unbothered = Relayed::new(&AllowAll, &quiet);
        unbothered.down(b'Z', b"I");
        quiet.catalog.bump("db");
        assert_eq!(unbothered.up(b"SELECT 1\0", 0), None);
    }

    /// Whether `sql` (a `Query`) of `relayed` is refused with `OC001`.
    fn gets_oc001(relayed: &Relayed<'_>, sql: &str) -> bool {
        let body = format!("{sql}\0");
        let Some(sent) = relayed.up(body.as_bytes(), 0) else {
            return false;
        };
        let sent = String::from_utf8_lossy(&sent).into_owned();
        lock(&relayed.pending).take_named_in(&sent) == Some(Conflict::Schema.refusal())
    }

    /// Two idle sessions of one front door: one that changes the schema, one that meets it.
    fn two_idle_sessions<'a>(
        policy: &'a dyn Policy,
        context: &'a Context,
    ) -> (Relayed<'a>, Relayed<'a>) {
        let (mut ddl, mut other) = (Relayed::new(policy, context), Relayed::new(policy, context));
        ddl.down(b'Z', b"I");
        other.down(b'Z', b"I");
        (ddl, other)
    }

    /// `sql`, a schema change of `session`, committed.
    fn commit_ddl(session: &mut Relayed<'_>, sql: &str, tag: &[u8]) {
        let sent = session.up(format!("{sql}\0").as_bytes(), 0);
        let refusal =
            sent.and_then(|s| lock(&session.pending).take_named_in(&String::from_utf8_lossy(&s)));
        assert_eq!(refusal, None, "{sql}");
        session.down(b'C', tag);
        session.down(b'Z', b"I");
    }

    #[test]
    fn only_a_statement_using_a_changed_relation_gets_oc001_and_only_once() {
        let (policy, context) = (super::super::policy::DsqlRules, Context::default());
        let (mut ddl, mut other) = two_idle_sessions(&policy, &context);
        assert!(!gets_oc001(&other, "SELECT * FROM t"));
        commit_ddl(
            &mut ddl,
            "ALTER TABLE t ADD COLUMN c text",
            b"ALTER TABLE\0",
        );
        // Nothing that uses no relation, or another one, meets the change.
        for sql in [
            "DEALLOCATE ALL",
            "SELECT 1",
            "SET search_path = public",
            "SHOW timezone",
        ] {
            assert!(!gets_oc001(&other, sql), "{sql}");
        }
        assert!(!gets_oc001(&other, "SELECT * FROM u"));
        assert!(!gets_oc001(&ddl, "SELECT * FROM t"), "its own change");
        // A qualified name may be the changed relation: the first use of it gets OC001, once.
        assert!(gets_oc001(&other, "SELECT * FROM public.t"));
        assert!(!gets_oc001(&other, "SELECT * FROM public.t"));
        assert!(!gets_oc001(&other, "SELECT * FROM t"));
        // Mid-transaction too; another schema's relation of another name is not hit.
        other.down(b'Z', b"T");
        commit_ddl(&mut ddl, "CREATE INDEX ASYNC ON s.t (c)", b"CREATE INDEX\0");
        assert!(!gets_oc001(&other, "SELECT * FROM other.t2"));
        assert!(gets_oc001(&other, "UPDATE t SET c = 'x'"), "t may be s.t");
        // A change whose reach is unknown meets every statement that uses a relation.
        commit_ddl(&mut ddl, "DROP INDEX i", b"DROP INDEX\0");
        assert!(!gets_oc001(&other, "SELECT 1"));
        assert!(gets_oc001(&other, "SELECT * FROM u"));
    }

    #[test]
    fn a_bind_of_a_prepared_statement_using_a_changed_relation_gets_oc001_once() {
        let (policy, context) = (super::super::policy::DsqlRules, Context::default());
        let (mut ddl, other) = two_idle_sessions(&policy, &context);
        let bind = |statement: &str| {
            let body = format!("\0{statement}\0\0\0\0\0\0\0");
            to_server(b'B', body.as_bytes(), other.judge, &other.pending)
        };
        assert_eq!(other.up(b"s1\0SELECT * FROM t\0\0\0", 1), None);
        assert_eq!(other.up(b"s2\0SELECT * FROM u\0\0\0", 1), None);
        assert_eq!(bind("s1"), None);
        commit_ddl(
            &mut ddl,
            "ALTER TABLE t ADD COLUMN c text",
            b"ALTER TABLE\0",
        );
        assert_eq!(bind("s2"), None, "another relation");
        assert_eq!(
            bind(""),
            None,
            "the unnamed statement is parsed anew each time"
        );
        let replaced = bind("s1").expect("a refused Parse in place of the Bind");
        assert_eq!(replaced[0], b'P');
        let sent = String::from_utf8_lossy(&replaced).into_owned();
        let refusal = lock(&other.pending).take_named_in(&sent);
        assert_eq!(refusal, Some(Conflict::Schema.refusal()));
        assert_eq!(bind("s1"), None, "once");
        assert_eq!(to_server(b'C', b"Ss1\0", other.judge, &other.pending), None);
        assert!(!lock(&other.pending).prepared.contains_key("s1"), "closed");
    }

    #[test]
    fn cluster_wide_conflicts_fail_any_first_statement_after_any_ddl() {
        let policy = super::super::policy::DsqlRules;
        let context = Context {
            limits: Limits {
                schema_conflicts_cluster_wide: true,
                ..Limits::default()
            },
            ..Context::default()
        };
        let mut ddl = Relayed::new(&policy, &context);
        let mut other = Relayed::new(&policy, &context);
        ddl.down(b'Z', b"I");
        other.down(b'Z', b"I");
        commit_ddl(
            &mut ddl,
            "CREATE TABLE u (id uuid PRIMARY KEY)",
            b"CREATE TABLE\0",
        );
        assert!(gets_oc001(&other, "DEALLOCATE ALL"));
        assert!(!gets_oc001(&other, "DEALLOCATE ALL"), "once");
        commit_ddl(
            &mut ddl,
            "CREATE TABLE v (id uuid PRIMARY KEY)",
            b"CREATE TABLE\0",
        );
        other.down(b'Z', b"T");
        assert!(
            !gets_oc001(&other, "SELECT * FROM v"),
            "only at a transaction's start"
        );
    }

    #[test]
    fn a_committed_ddl_bumps_the_version_and_the_session_sees_its_own() {
        let context = Context::default();
        let mut relayed = Relayed::new(&AllowAll, &context);
        relayed.down(b'C', b"CREATE TABLE\0");
        relayed.down(b'Z', b"I");
        assert_eq!(context.catalog.current("db"), 1);
        assert_eq!(relayed.up(b"SELECT 1\0", 0), None);
        // Rolled back: no change.
        relayed.down(b'C', b"CREATE TABLE\0");
        relayed.down(b'C', b"ROLLBACK\0");
        relayed.down(b'Z', b"I");
        assert_eq!(context.catalog.current("db"), 1);
    }

    #[test]
    fn a_transaction_past_its_age_is_refused_but_may_roll_back() {
        let context = Context {
            limits: Limits {
                transaction_age: Duration::from_secs(1),
                ..Limits::default()
            },
            ..Context::default()
        };
        let relayed = Relayed::new(&AllowAll, &context);
        {
            let mut pending = lock(&relayed.pending);
            pending.status = Some(b'T');
            pending.transaction_started = Instant::now().checked_sub(Duration::from_secs(2));
        }
        assert!(relayed.up(b"SELECT 1\0", 0).is_some());
        assert_eq!(relayed.up(b"ROLLBACK\0", 0), None);
        assert_eq!(
            age_refusal(Duration::from_secs(300)).message,
            "transaction age limit of 300s exceeded"
        );
    }

    #[test]
    fn a_failed_transaction_lets_no_refused_text_through() {
        // A pipelined `ROLLBACK` may end the failed transaction before the text arrives: the
        // text is replaced all the same (the server answers 25P02 if the transaction is still
        // failed).
        let context = Context::default();
        let mut relayed = Relayed::new(&NoLines, &context);
        relayed.down(b'Z', b"E");
        assert!(relayed.up(b"ROLLBACK; TRUNCATE t\0", 0).is_some());
        assert!(relayed.up(b"TRUNCATE t\0", 0).is_some());
    }

    #[test]
    fn a_jobs_description_and_its_next_command_tag_become_dsqls() {
        let context = Context::default();
        let mut relayed = Relayed::new(&AllowAll, &context);
        let plain = description("id");
        assert_eq!(relayed.down(b'T', &plain), None);
        assert_eq!(relayed.down(b'C', b"SELECT 1\0"), None);
        let job = description(INDEX_JOB.column);
        let renamed = relayed.down(b'T', &job).expect("renamed");
        let mut expected = Vec::new();
        wire::put_message(&mut expected, b'T', &description("job_id"));
        assert_eq!(renamed, expected);
        let tag = relayed.down(b'C', b"SELECT 1\0").expect("retagged");
        let mut expected = Vec::new();
        wire::put_message(&mut expected, b'C', b"CREATE INDEX\0");
        assert_eq!(tag, expected);
        // Only the next tag; and an error in between cancels it.
        assert_eq!(relayed.down(b'C', b"SELECT 1\0"), None);
        relayed.down(b'T', &job).expect("renamed");
        let error = wire::error_response("ERROR", "23505", "duplicate", None);
        assert_eq!(relayed.down(b'E', &error[5..]), None);
        assert_eq!(relayed.down(b'C', b"SELECT 0\0"), None);
    }

    #[test]
    fn the_message_field_is_found_among_the_others() {
        let response = wire::error_response("ERROR", "42601", "syntax error", Some("h"));
        assert_eq!(error_field(&response[5..], b'M'), Some("syntax error"));
        assert_eq!(error_field(&response[5..], b'C'), Some("42601"));
        assert_eq!(error_field(b"\0", b'M'), None);
    }
}
