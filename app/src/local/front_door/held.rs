//! Answers held back until their round trip ends, so that a commit made to order
//! ([`CommitFailures`]) can take an implicit commit: PostgreSQL commits statements run outside
//! a transaction block at the end of their round trip (at the `Sync` in the extended protocol,
//! after the text of a simple `Query`), with no `COMMIT` text the relay could see, and only the
//! round trip's `ReadyForQuery` shows whether it committed a write.
//!
//! While a session has such a fate chosen, each round trip that begins with the session idle
//! is held from its first message: at its `ReadyForQuery`, if the round trip committed a write
//! (as [`Tally`] counts a write commit: a DML tag with rows, or DDL, and no error), the fate
//! replaces the whole answer; otherwise the answer goes on as it came, and the fate stays
//! chosen. Nothing is held when no session has a fate chosen (one atomic load a message).
//!
//! Held no further, the rest of the round trip passing as it comes (so it cannot be the chosen
//! commit): once the server asks the client for data (`CopyInResponse`, `CopyBothResponse`),
//! and past [`MAX_HELD`] bytes. A client that waits for answers after a `Flush` without a
//! `Sync` would wait for its `Sync`: only while its session has a fate chosen.

use super::conflicts::{CommitFailures, CommitFate, unavailable};
use super::relay::refusal_response;
use super::traffic::{Tally, TrafficCounters};
use super::wire;

/// The most a held answer keeps before it is let go.
pub const MAX_HELD: usize = 16 * 1024 * 1024;

/// What the relay does with one server message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Hand it (or its replacement) on, as with no fate chosen.
    Pass,
    /// Keep it: nothing goes to the client now.
    Hold,
    /// Hand these whole messages to the client instead (the held ones and this one, or the
    /// fate's answer).
    Hand(Vec<u8>),
    /// Close the client's connection without handing it anything: the reply is lost.
    Close,
}

/// One session's held answer.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// The round trip's messages so far, as they would have been handed on, while held.
    frames: Option<Vec<u8>>,
    /// The backend process id of the session whose round trip is held.
    pid: Option<u32>,
    /// The next message begins a round trip: the last was a `ReadyForQuery`.
    fresh: bool,
}

/// The session a message belongs to, as the relay knows it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Session {
    /// Its backend process id, once known.
    pub pid: Option<u32>,
    /// Whether it is idle (outside a transaction block) as of its last `ReadyForQuery`.
    pub idle: bool,
}

impl Held {
    /// The step for the server message `tag`, `body`, which the relay would hand on as
    /// `replacement` (`None`: as it came; empty: dropped). `session` is asked once a round
    /// trip, at its first message (when only a `ReadyForQuery` could have changed it, and a
    /// round trip of one `ReadyForQuery` commits nothing). `tally` is the session's count of
    /// what its client was handed so far, which tells whether a round trip committed a write.
    pub(super) fn step(
        &mut self,
        tag: u8,
        body: &[u8],
        replacement: Option<&[u8]>,
        session: impl FnOnce() -> Session,
        tally: &Tally,
        failures: &CommitFailures,
    ) -> Step {
        let fresh = std::mem::replace(&mut self.fresh, tag == b'Z');
        let frames = match &mut self.frames {
            Some(frames) => frames,
            None if fresh => {
                let session = session();
                if !session.idle || !failures.awaits_implicit(session.pid) {
                    return Step::Pass;
                }
                self.pid = session.pid;
                self.frames.insert(Vec::new())
            }
            None => return Step::Pass,
        };
        match replacement {
            Some(replacement) => frames.extend_from_slice(replacement),
            None => wire::put_message(frames, tag, body),
        }
        match tag {
            b'Z' => {
                let frames = self.frames.take().unwrap_or_default();
                if body != b"I" || !commits_write(tally, &frames) {
                    return Step::Hand(frames);
                }
                match failures.take_implicit(self.pid) {
                    Some(CommitFate::LoseReply) => Step::Close,
                    Some(CommitFate::Unavailable) => {
                        let mut answer = refusal_response(&unavailable());
                        wire::put_message(&mut answer, b'Z', body);
                        Step::Hand(answer)
                    }
                    Some(CommitFate::Fail(_)) | None => Step::Hand(frames),
                }
            }
            b'G' | b'W' => Step::Hand(self.frames.take().unwrap_or_default()),
            _ if frames.len() > MAX_HELD => Step::Hand(self.frames.take().unwrap_or_default()),
            _ => Step::Hold,
        }
    }
}

/// Whether `frames`, a round trip's answer ending in its `ReadyForQuery`, committed a write,
/// counted as `tally` (the session's count before them) would count it.
fn commits_write(tally: &Tally, frames: &[u8]) -> bool {
    let mut tally = tally.clone();
    let scratch = TrafficCounters::default();
    messages(frames)
        .filter_map(|(tag, body)| tally.observe(tag, body, &scratch))
        .any(|answered| answered.committed_write)
}

/// The messages (tag, body) of whole frames one after the other.
pub(super) fn messages(mut frames: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = frames.split_first()?;
        let length = rest.first_chunk::<4>().map(|n| u32::from_be_bytes(*n))?;
        let end = usize::try_from(length).ok()?;
        let body = rest.get(4..end)?;
        frames = rest.get(end..)?;
        Some((tag, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session logged in, idle, with process id 7, and its held answers.
    struct Relayed {
        held: Held,
        tally: Tally,
        failures: CommitFailures,
        idle: bool,
    }

    impl Relayed {
        fn new() -> Self {
            let mut relayed = Self {
                held: Held::default(),
                tally: Tally::default(),
                failures: CommitFailures::default(),
                idle: false,
            };
            relayed.receive(b'K', b"\0\0\0\x07\0\0\0\0");
            relayed.receive(b'Z', b"I");
            relayed
        }

        /// The step for a server message; what is handed on is counted, as the relay does.
        fn receive(&mut self, tag: u8, body: &[u8]) -> Step {
            let session = Session {
                pid: Some(7),
                idle: self.idle,
            };
            let step = self
                .held
                .step(tag, body, None, || session, &self.tally, &self.failures);
            let counters = TrafficCounters::default();
            match &step {
                Step::Pass => {
                    self.tally.observe(tag, body, &counters);
                }
                Step::Hand(frames) => {
                    for (tag, body) in messages(frames) {
                        self.tally.observe(tag, body, &counters);
                    }
                }
                Step::Hold | Step::Close => {}
            }
            if tag == b'Z' {
                self.idle = body == b"I";
            }
            step
        }
    }

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        wire::put_message(&mut frame, tag, body);
        frame
    }

    #[test]
    fn nothing_is_held_without_a_fate_for_implicit_commits() {
        let mut s = Relayed::new();
        assert_eq!(s.receive(b'C', b"INSERT 0 1\0"), Step::Pass);
        assert_eq!(s.receive(b'Z', b"I"), Step::Pass);
        s.failures
            .fail_next_commit(7, super::super::conflicts::Conflict::Data);
        assert_eq!(
            s.receive(b'C', b"INSERT 0 1\0"),
            Step::Pass,
            "explicit only"
        );
    }

    #[test]
    fn a_read_only_round_trip_goes_on_whole_and_the_fate_waits_for_a_write() {
        let mut s = Relayed::new();
        s.failures.lose_next_commit_reply(7);
        assert_eq!(s.receive(b'1', b""), Step::Hold);
        assert_eq!(s.receive(b'C', b"SELECT 1\0"), Step::Hold);
        let mut expected = frame(b'1', b"");
        expected.extend(frame(b'C', b"SELECT 1\0"));
        expected.extend(frame(b'Z', b"I"));
        assert_eq!(s.receive(b'Z', b"I"), Step::Hand(expected));
        // A write that failed is no commit either.
        s.receive(b'C', b"INSERT 0 1\0");
        s.receive(b'E', b"SERROR\0\0");
        assert!(matches!(s.receive(b'Z', b"I"), Step::Hand(_)));
        assert_eq!(s.receive(b'C', b"INSERT 0 1\0"), Step::Hold);
        assert_eq!(s.receive(b'Z', b"I"), Step::Close);
        assert!(!s.failures.awaits_implicit(Some(7)), "once");
    }

    #[test]
    fn an_unavailable_commit_replaces_the_whole_answer() {
        let mut s = Relayed::new();
        s.failures.answer_next_commit_unavailable(7);
        s.receive(b'D', b"\0\x01\0\0\0\x01x");
        s.receive(b'C', b"INSERT 0 1\0");
        let mut expected = refusal_response(&unavailable());
        expected.extend(frame(b'Z', b"I"));
        assert_eq!(s.receive(b'Z', b"I"), Step::Hand(expected));
        assert_eq!(unavailable().code, "XX000");
    }

    #[test]
    fn a_transaction_block_is_held_only_in_its_first_round_trip() {
        let mut s = Relayed::new();
        s.failures.lose_next_commit_reply(7);
        s.receive(b'C', b"BEGIN\0");
        assert!(matches!(s.receive(b'Z', b"T"), Step::Hand(_)));
        assert_eq!(s.receive(b'C', b"INSERT 0 1\0"), Step::Pass);
        assert_eq!(s.receive(b'Z', b"T"), Step::Pass);
        assert!(s.failures.awaits_implicit(Some(7)), "left for the COMMIT");
    }

    #[test]
    fn a_copy_from_the_client_lets_go_of_the_held_answer() {
        let mut s = Relayed::new();
        s.failures.lose_next_commit_reply(7);
        assert_eq!(s.receive(b'1', b""), Step::Hold);
        let mut expected = frame(b'1', b"");
        expected.extend(frame(b'G', b"\0\0\0"));
        assert_eq!(s.receive(b'G', b"\0\0\0"), Step::Hand(expected));
        assert_eq!(s.receive(b'C', b"COPY 1\0"), Step::Pass);
        assert_eq!(s.receive(b'Z', b"I"), Step::Pass);
        assert_eq!(s.receive(b'C', b"INSERT 0 1\0"), Step::Hold, "the next one");
    }
}
