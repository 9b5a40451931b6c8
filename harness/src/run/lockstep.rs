//! A node evacuated at once: the members of a fleet each run their own
//! repetitions, and every migration waits until each member still running
//! has reached its own, so they start together and compete for the link.
//! A member that ends (done, failed, interrupted) stops counting, so it
//! never holds the others back.

use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// The meeting point of a fleet's members before each migration.
#[derive(Debug)]
pub struct Lockstep {
    state: Mutex<State>,
    released: Notify,
}

#[derive(Debug)]
struct State {
    /// Members still running.
    active: usize,
    /// Of those, how many wait at the meeting point now.
    waiting: usize,
    /// How many times the members were let go.
    round: u64,
}

/// A member's place in a [`Lockstep`]; dropping it leaves.
#[derive(Debug)]
pub struct Membership<'a>(&'a Lockstep);

impl Lockstep {
    /// `members` members, all running.
    pub fn new(members: usize) -> Lockstep {
        Lockstep {
            state: Mutex::new(State {
                active: members,
                waiting: 0,
                round: 0,
            }),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A member's place, held for as long as it runs.
    pub fn join(&self) -> Membership<'_> {
        Membership(self)
    }

    /// Waits until every member still running waits here too.
    pub async fn arrive(&self) {
        let round = {
            let mut st = self.lock();
            st.waiting += 1;
            if self.release_if_all_here(&mut st) {
                return;
            }
            st.round
        };
        loop {
            // Created before the check: a release between the check and
            // the wait still wakes it.
            let released = self.released.notified();
            if self.lock().round != round {
                return;
            }
            released.await;
        }
    }

    /// Lets the waiting members go when no running member is missing.
    fn release_if_all_here(&self, st: &mut State) -> bool {
        if st.waiting == 0 || st.waiting < st.active {
            return false;
        }
        st.waiting = 0;
        st.round += 1;
        self.released.notify_waiters();
        true
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.active = st.active.saturating_sub(1);
        self.0.release_if_all_here(&mut st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn members_start_together_and_one_that_leaves_holds_nobody() {
        let step = Lockstep::new(3);
        let passed = AtomicUsize::new(0);
        let member = |rounds: usize, delay_ms: u64| {
            let (step, passed) = (&step, &passed);
            async move {
                let _m = step.join();
                for _ in 0..rounds {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    step.arrive().await;
                    passed.fetch_add(1, Ordering::SeqCst);
                }
            }
        };
        // The third member leaves after one round; the others go on.
        let all = async { tokio::join!(member(3, 5), member(3, 20), member(1, 1)) };
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("no member is held back by one that left");
        assert_eq!(passed.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn a_member_waits_for_the_slowest() {
        let step = Lockstep::new(2);
        let t0 = tokio::time::Instant::now();
        let fast = async {
            let _m = step.join();
            step.arrive().await;
            t0.elapsed()
        };
        let slow = async {
            let _m = step.join();
            tokio::time::sleep(Duration::from_millis(80)).await;
            step.arrive().await;
        };
        let (waited, ()) = tokio::join!(fast, slow);
        assert!(waited >= Duration::from_millis(80), "{waited:?}");
    }
}
