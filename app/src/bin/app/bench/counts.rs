//! Round trips, statements and transactions per operation, counted where they happen: at the
//! local stand-in's front door ([`app::local::stand_in::StandIn::traffic`]), one round trip
//! being one wait of the client for the server's answer. Nothing is estimated and nothing is
//! counted in the library's types. On Aurora DSQL and `DATABASE_URL` there is no front door to
//! count at: the counts are `None` ("not counted").
//!
//! Each operation also has the fewest round trips that the project's guarantees allow
//! ([`Fewest`]): the number the app should reach, with the reason in a line.
//!
//! sqlx's pool checks every connection returned to it with a bare `Sync` (a ping: sqlx 0.9
//! does it on each release, in a task of its own, after the caller has its answer). The front
//! door counts those apart, so a line shows the round trips on the caller's path and, besides,
//! the pings.

use serde::Serialize;

use super::Combine;
use app::session::Session;

/// What the front door counted over some work (see the front door's `traffic` module).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Trips {
    /// Waits of a client for the server's answer (`ReadyForQuery` after the login), pings
    /// included.
    pub round_trips: u64,
    /// Round trips answered with nothing but `ReadyForQuery`: the pool's pings.
    pub pings: u64,
    /// Statements completed.
    pub statements: u64,
    /// Transactions ended, explicit (`BEGIN` … `COMMIT`) and implicit (autocommit).
    pub transactions: u64,
    /// Committed transactions that wrote: DSQL's distributed commits.
    pub write_commits: u64,
}

impl Combine for Trips {
    fn combine(&mut self, other: Self) {
        self.round_trips += other.round_trips;
        self.pings += other.pings;
        self.statements += other.statements;
        self.transactions += other.transactions;
        self.write_commits += other.write_commits;
    }
}

impl Trips {
    /// The counts divided by `operations`, or `None` for no operation.
    pub fn per(&self, operations: u64) -> Option<PerOp> {
        let n = operations as f64;
        (operations > 0).then(|| PerOp {
            round_trips: self.round_trips.saturating_sub(self.pings) as f64 / n,
            pings: self.pings as f64 / n,
            statements: self.statements as f64 / n,
            transactions: self.transactions as f64 / n,
            write_commits: self.write_commits as f64 / n,
        })
    }
}

/// [`Trips`] per operation (averages: a find-or-create that sometimes inserts is between).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PerOp {
    /// Round trips per operation on the caller's path: the pings left out.
    pub round_trips: f64,
    /// The pool's pings per operation, off the caller's path.
    pub pings: f64,
    /// Statements per operation.
    pub statements: f64,
    /// Transactions per operation.
    pub transactions: f64,
    /// Commits that wrote, per operation.
    pub write_commits: f64,
}

impl PerOp {
    /// `round trips / statements / transactions`, with the pings after the round trips when
    /// there are any, e.g. `7 (+7 pings) / 7 / 7`.
    pub fn text(&self) -> String {
        let pings = if self.pings > 0.0 {
            format!(" (+{} pings)", number(self.pings))
        } else {
            String::new()
        };
        format!(
            "{}{pings} / {} / {}",
            number(self.round_trips),
            number(self.statements),
            number(self.transactions)
        )
    }
}

/// A count with at most two decimals, none when whole.
pub fn number(n: f64) -> String {
    if (n - n.round()).abs() < 0.005 {
        format!("{n:.0}")
    } else {
        format!("{n:.2}")
    }
}

/// The fewest round trips an operation can take with the project's guarantees, and what the
/// seed's stack (Sequelize 6) takes for the same step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fewest {
    /// The fewest round trips per operation (an average where it depends on the data).
    pub round_trips: f64,
    /// Why no fewer will do.
    pub why: &'static str,
    /// Round trips of the seed's way of doing the step, where it is meaningful: counted for
    /// the `clinic` story (the seed ran against the stand-in), otherwise the statements the
    /// Sequelize call sends (each one round trip).
    pub seed: Option<f64>,
    /// Where [`Fewest::seed`] comes from.
    pub seed_how: &'static str,
}

/// Snapshots of the stand-in's front-door counts, for the session's database: `None` where
/// there is no front door (Aurora DSQL, `DATABASE_URL`, a build without the `front-door`
/// feature).
#[derive(Clone, Copy)]
pub(crate) struct Counter<'s> {
    #[cfg(feature = "front-door")]
    stand_in: Option<&'s app::local::stand_in::StandIn>,
    #[cfg(not(feature = "front-door"))]
    _session: std::marker::PhantomData<&'s Session>,
}

impl<'s> Counter<'s> {
    /// The counter of `session`'s front door, if it has one.
    pub(crate) fn new(session: &'s Session) -> Self {
        #[cfg(feature = "front-door")]
        {
            Self {
                stand_in: session.stand_in(),
            }
        }
        #[cfg(not(feature = "front-door"))]
        {
            let _ = session;
            Self {
                _session: std::marker::PhantomData,
            }
        }
    }

    /// The counts since the front door started; `None` where nothing is counted. Take one
    /// before and one after some work, with nothing else running, and subtract
    /// ([`Counter::since`]).
    pub(crate) fn snapshot(&self) -> Option<Trips> {
        #[cfg(feature = "front-door")]
        {
            self.stand_in.map(|s| {
                let t = s.traffic();
                Trips {
                    round_trips: t.round_trips,
                    pings: t.pings,
                    statements: t.statements,
                    transactions: t.transactions,
                    write_commits: t.write_commits,
                }
            })
        }
        #[cfg(not(feature = "front-door"))]
        {
            None
        }
    }

    /// What was counted since `before` (a [`snapshot`](Self::snapshot) of this counter).
    pub(crate) fn since(&self, before: Option<Trips>) -> Option<Trips> {
        let (now, before) = (self.snapshot()?, before?);
        Some(Trips {
            round_trips: now.round_trips.saturating_sub(before.round_trips),
            pings: now.pings.saturating_sub(before.pings),
            statements: now.statements.saturating_sub(before.statements),
            transactions: now.transactions.saturating_sub(before.transactions),
            write_commits: now.write_commits.saturating_sub(before.write_commits),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_divide_per_operation_and_print_without_needless_decimals() {
        let trips = Trips {
            round_trips: 15,
            pings: 0,
            statements: 15,
            transactions: 14,
            write_commits: 10,
        };
        let per = trips.per(2).expect("two operations");
        assert_eq!(per.text(), "7.50 / 7.50 / 7");
        assert_eq!(trips.per(0), None);
        let pinged = Trips {
            round_trips: 29,
            pings: 14,
            ..trips
        };
        let per = pinged.per(2).expect("two operations");
        assert_eq!(per.text(), "7.50 (+7 pings) / 7.50 / 7");
    }
}
