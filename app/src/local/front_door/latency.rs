//! An optional model of Aurora DSQL's latency at the front door: a loopback PostgreSQL answers
//! in tens of microseconds where DSQL answers in milliseconds, so without it a local benchmark
//! overstates what CPU work costs and understates what round trips cost.
//!
//! With the model on ([`LatencyModel::set`]), the relay holds each answer's `ReadyForQuery`
//! (and what of the answer is still in its buffer) for [`Latency::per_round_trip`], plus
//! [`Latency::per_commit`] when a transaction that wrote committed in that round trip
//! ([`super::traffic`]'s write commits), before it hands it to the client. The wait is that
//! session's alone: other connections, and the session's own messages to the server, go on.
//! Off by default. Each delay is added to [`super::traffic::Traffic::modelled_delay`].
//! A client that pipelines several `Sync`s has their answers held one after the other, where
//! DSQL's latencies would overlap: harsher than DSQL for such clients (sqlx and SeaORM wait
//! for each answer).
//!
//! Why only commits that wrote: in DSQL, reads and writes are executed in the Region, often
//! in the Availability Zone, and only a commit crosses AZs (Regions, for multi-Region
//! clusters); a read-only transaction commits at its start time, without the adjudicator and
//! the journal (sources at [`Latency::DSQL`]). A commit that fails pays the round trip only
//! (an assumption: DSQL's adjudicator also answers a refused commit, at an unpublished cost).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::traffic::{Answered, TrafficCounters};

/// The delays of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Added to every round trip (each `ReadyForQuery` after the login).
    pub per_round_trip: Duration,
    /// Added, on top, to the round trip in which a transaction that wrote committed.
    pub per_commit: Duration,
}

impl Latency {
    /// A single-Region cluster reached from the same Region: 1 ms per round trip, 5 ms more per
    /// commit that wrote.
    ///
    /// AWS publishes no latency figure for DSQL itself; what it publishes, and what is assumed:
    /// - Marc Brooker, "DSQL Vignette: Aurora DSQL, and A Personal Story"
    ///   (<https://brooker.co.za/blog/2024/12/03/aurora-dsql.html>): "Reads and writes, even in
    ///   read-write transactions, are fast and local, requiring no cross-region communication
    ///   (or cross-AZ communication in single region setups). Transaction commit goes across
    ///   regions (for multi-region setups) or AZs (for single-regions setups)".
    /// - Marc Brooker, "DSQL Vignette: Transactions and Durability"
    ///   (<https://brooker.co.za/blog/2024/12/05/inside-dsql-writes.html>): an `UPDATE` only
    ///   writes down a planned change in the query processor, and is "fast, in-region, and
    ///   often in-AZ"; the coordination happens at commit.
    /// - AWS Database Blog, "Everything you don't need to know about Amazon Aurora DSQL: Part 3
    ///   – Transaction processing" (2025-11-25; summary at
    ///   <https://aws-news.com/article/2025-11-25-everything-you-dont-need-to-know-about-amazon-aurora-dsql-part-3-transaction-processing>):
    ///   a read-only transaction's commit time is its start time; a read-write transaction's
    ///   writes are checked by adjudicators at commit.
    /// - AWS whitepaper "AWS Fault Isolation Boundaries", Availability Zones
    ///   (<https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/availability-zones.html>):
    ///   AZs are "close enough to use synchronous replication with single-digit millisecond
    ///   latency".
    ///
    /// So: `per_commit` is 5 ms, an assumption within that "single-digit millisecond" of a
    /// synchronous cross-AZ commit; `per_round_trip` is 1 ms, an assumption for a client's round
    /// trip to the Regional endpoint and the query processor's in-Region work.
    pub const DSQL: Latency = Latency {
        per_round_trip: Duration::from_millis(1),
        per_commit: Duration::from_millis(5),
    };

    /// The delay before an answer that ended as `answered` says.
    fn delay(&self, answered: Answered) -> Duration {
        if answered.committed_write {
            self.per_round_trip.saturating_add(self.per_commit)
        } else {
            self.per_round_trip
        }
    }
}

/// Whether a front door models DSQL's latency, and with which delays: a setting shared by its
/// sessions' relays, which can be changed while they run (the next answer uses the new
/// delays). Off by default. Cloning gives another handle to the same setting.
#[derive(Clone, Debug, Default)]
pub struct LatencyModel(Arc<[AtomicU64; 2]>);

impl LatencyModel {
    /// Switches the model on with `latency`, or off with `None`. Zero delays are the model off.
    pub fn set(&self, latency: Option<Latency>) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let (round_trip, commit) =
            latency.map_or((0, 0), |l| (nanos(l.per_round_trip), nanos(l.per_commit)));
        self.0[0].store(round_trip, Ordering::Relaxed);
        self.0[1].store(commit, Ordering::Relaxed);
    }

    /// The delays in force; `None` when the model is off.
    pub fn get(&self) -> Option<Latency> {
        let latency = Latency {
            per_round_trip: Duration::from_nanos(self.0[0].load(Ordering::Relaxed)),
            per_commit: Duration::from_nanos(self.0[1].load(Ordering::Relaxed)),
        };
        (latency.per_round_trip + latency.per_commit > Duration::ZERO).then_some(latency)
    }

    /// How long to hold the answer of a round trip that ended as `answered` (zero with the
    /// model off), added to `counters`' modelled delay.
    pub(super) fn delay(&self, answered: Answered, counters: &TrafficCounters) -> Duration {
        let delay = self
            .get()
            .map_or(Duration::ZERO, |latency| latency.delay(answered));
        if !delay.is_zero() {
            counters.add_delay(delay);
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_off_until_set_and_adds_the_commit_only_to_a_write_commit() {
        let model = LatencyModel::default();
        let counters = TrafficCounters::default();
        let write = Answered {
            committed_write: true,
        };
        let read = Answered::default();
        assert_eq!(model.get(), None);
        assert_eq!(model.delay(write, &counters), Duration::ZERO);
        model.set(Some(Latency::DSQL));
        assert_eq!(model.get(), Some(Latency::DSQL));
        assert_eq!(model.delay(read, &counters), Duration::from_millis(1));
        assert_eq!(model.delay(write, &counters), Duration::from_millis(6));
        assert_eq!(counters.snapshot().modelled_delay, Duration::from_millis(7));
        model.set(None);
        assert_eq!(model.delay(write, &counters), Duration::ZERO);
        assert_eq!(model.get(), None);
    }
}
