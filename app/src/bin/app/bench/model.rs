//! The stand-in's model of Aurora DSQL's latency, switched on for some passes of the benchmark:
//! a loopback PostgreSQL answers in tens of microseconds, DSQL in milliseconds, so the figures
//! with the model on say what round trips cost there, and those with it off what the
//! client-side work costs. The model's delays and their sources are the front door's
//! `latency` module's ([`app::local::front_door::latency::Latency::DSQL`]).

use app::session::Session;

/// Whether a set of passes ran with the latency model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Model {
    /// The default: the stand-in answers as fast as the server does.
    Off,
    /// The front door holds each answer as DSQL's latency model says.
    Dsql,
}

impl Model {
    /// What to add to a line's name: nothing with the model off.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Model::Off => "",
            Model::Dsql => ", DSQL latency",
        }
    }
}

/// The latency model, on while this lives: [`Switched::on`] switches it on, dropping it
/// switches it off again, whatever happened in between.
pub(crate) struct Switched<'s> {
    #[cfg(feature = "front-door")]
    stand_in: &'s app::local::stand_in::StandIn,
    #[cfg(not(feature = "front-door"))]
    _session: std::marker::PhantomData<&'s Session>,
}

impl<'s> Switched<'s> {
    /// Switches `session`'s front door's model on with DSQL's delays; `Err` with the reason
    /// where there is none (Aurora DSQL itself, `DATABASE_URL`, a build without the front door).
    pub(crate) fn on(session: &'s Session) -> Result<Self, &'static str> {
        #[cfg(feature = "front-door")]
        {
            use app::local::front_door::latency::Latency;
            let stand_in = session.stand_in().ok_or(
                "skipped: the latency model is the local stand-in's, and this is not the stand-in",
            )?;
            stand_in.set_latency(Some(Latency::DSQL));
            Ok(Self { stand_in })
        }
        #[cfg(not(feature = "front-door"))]
        {
            let _ = session;
            Err(
                "skipped: the latency model is the front door's, and this build has none \
                 (feature front-door)",
            )
        }
    }

    /// The model's delays, in words.
    pub(crate) fn describe(&self) -> String {
        #[cfg(feature = "front-door")]
        {
            match self.stand_in.latency() {
                Some(l) => format!(
                    "{:?} per round trip, {:?} more per commit that wrote",
                    l.per_round_trip, l.per_commit
                ),
                None => "off".to_owned(),
            }
        }
        #[cfg(not(feature = "front-door"))]
        {
            "off".to_owned()
        }
    }
}

impl Drop for Switched<'_> {
    fn drop(&mut self) {
        #[cfg(feature = "front-door")]
        self.stand_in.set_latency(None);
    }
}
