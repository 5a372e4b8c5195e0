//! How many connections the front door serves at once: a cap on connections still logging in,
//! and one on connections in all.
//!
//! - A connection is *logging in* from its accept until its backend session opens (or it is
//!   refused), at most 30 s. When [`Limits::max_logins`](super::relay::Limits) are, the one
//!   that has been at it longest is closed to make room for the newcomer, without an answer
//!   (it may not have TLS yet). Idle connects then cost the front door a bounded number of
//!   sockets, and cannot keep a client that logs in promptly out: a login takes milliseconds,
//!   so a flood would have to open more than the cap within one to close it.
//! - A connection holds one of [`Limits::max_connections`](super::relay::Limits) places from
//!   its startup message to its end. Without a free place, its login is refused with DSQL's
//!   [`TOO_MANY_CONNECTIONS`] message (dsql-facts.md §3.5), as a new connection past DSQL's
//!   per-cluster quota is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// SQLSTATE `too_many_connections`, as DSQL answers past its connection quota.
pub const TOO_MANY_CONNECTIONS_CODE: &str = "53300";
/// DSQL's message past its connection quota (dsql-facts.md §3.5).
pub const TOO_MANY_CONNECTIONS: &str = "Unable to accept connection, too many open connections.";

/// The front door's two caps; see the [module documentation](self).
#[derive(Debug)]
pub struct Admission {
    max_logins: usize,
    places: Arc<Semaphore>,
    logins: Mutex<Logins>,
}

/// The connections logging in, oldest first, each with the sender whose drop ends it.
#[derive(Debug, Default)]
struct Logins {
    next: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Admission {
    /// Caps of `max_logins` connections logging in and `max_connections` in all (each at least
    /// one).
    pub fn new(max_logins: usize, max_connections: usize) -> Arc<Self> {
        Arc::new(Self {
            max_logins: max_logins.max(1),
            places: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            logins: Mutex::default(),
        })
    }

    /// A slot for a new connection's login; if the cap is reached, the connection logging in
    /// longest is told to end ([`LoginSlot::evicted`]) and leaves its slot to this one.
    pub fn login(self: &Arc<Self>) -> LoginSlot {
        let mut logins = self.lock();
        while logins.open.len() >= self.max_logins {
            // Dropping its sender ends that login.
            if logins.open.pop_first().is_none() {
                break;
            }
        }
        let (sender, evicted) = oneshot::channel();
        let id = logins.next;
        logins.next += 1;
        logins.open.insert(id, sender);
        LoginSlot {
            id,
            admission: Arc::clone(self),
            evicted,
        }
    }

    /// One of the places for connections, held until dropped; `None` when all are taken.
    pub fn place(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.places).try_acquire_owned().ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Logins> {
        self.logins.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's place among those logging in, given up when dropped.
#[derive(Debug)]
pub struct LoginSlot {
    id: u64,
    admission: Arc<Admission>,
    evicted: oneshot::Receiver<()>,
}

impl LoginSlot {
    /// Completes when a newer connection took this slot: the login must end.
    pub async fn evicted(&mut self) {
        // Nothing is ever sent: the sender's drop is the signal.
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for LoginSlot {
    fn drop(&mut self) {
        self.admission.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Whether `slot` has been told to end, without waiting.
    fn is_evicted(slot: &mut LoginSlot) -> bool {
        let mut context = Context::from_waker(Waker::noop());
        matches!(pin!(slot.evicted()).poll(&mut context), Poll::Ready(()))
    }

    #[test]
    fn past_the_login_cap_the_oldest_login_is_evicted() {
        let admission = Admission::new(2, 10);
        let mut first = admission.login();
        let mut second = admission.login();
        assert!(!is_evicted(&mut first) && !is_evicted(&mut second));
        let mut third = admission.login();
        assert!(is_evicted(&mut first));
        assert!(!is_evicted(&mut second) && !is_evicted(&mut third));
        // A login that ends leaves its slot: the next one evicts nobody.
        drop(third);
        let mut fourth = admission.login();
        assert!(!is_evicted(&mut second) && !is_evicted(&mut fourth));
    }

    #[test]
    fn places_run_out_and_come_back() {
        let admission = Admission::new(1, 2);
        let first = admission.place().expect("a place");
        let _second = admission.place().expect("a place");
        assert!(admission.place().is_none());
        drop(first);
        assert!(admission.place().is_some());
    }
}
