//! Hand-over of a probe thread's new records while it runs, so that a
//! caller can save them as it goes (a run killed outright then keeps what
//! was measured up to its last save).
//!
//! The thread owns its records and stays lock-free on its hot path: it only
//! compares one atomic counter with its own on each turn of its loop, and
//! copies what it recorded since the last hand-over when asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One thread's side of the hand-over of records of type `T`.
#[derive(Debug)]
pub(crate) struct Handover<T> {
    /// How many hand-overs have been asked for.
    asked: AtomicU64,
    /// How many were served, and the records handed over and not yet taken.
    served: Mutex<(u64, Vec<T>)>,
}

impl<T> Default for Handover<T> {
    fn default() -> Self {
        Self {
            asked: AtomicU64::new(0),
            served: Mutex::new((0, Vec::new())),
        }
    }
}

/// The thread's own state: how many hand-overs it has served and how many
/// of its records it has handed over.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    served: u64,
    handed: usize,
}

impl<T: Clone> Handover<T> {
    /// Called by the owning thread on each turn: when a hand-over is asked
    /// for, copies the records since the last one.
    pub fn serve(&self, all: &[T], cursor: &mut Cursor) {
        let asked = self.asked.load(Ordering::Acquire);
        if asked == cursor.served {
            return;
        }
        let mut slot = self
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.1
            .extend_from_slice(all.get(cursor.handed..).unwrap_or(&[]));
        slot.0 = asked;
        cursor.served = asked;
        cursor.handed = all.len();
    }

    /// Asks for a hand-over; returns its number for [`Handover::take`].
    pub fn ask(&self) -> u64 {
        self.asked.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until hand-over `n` was served (up to `timeout`) and takes the
    /// records; `None` if the thread did not serve it in time.
    pub fn take(&self, n: u64, timeout: Duration) -> Option<Vec<T>> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut slot = self
                    .served
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if slot.0 >= n {
                    return Some(std::mem::take(&mut slot.1));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_record_is_handed_over_once_in_order_across_hand_overs() {
        let h = Arc::new(Handover::<u32>::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h2, stop2) = (h.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (mut all, mut cursor) = (Vec::new(), Cursor::default());
            let mut i = 0;
            while !stop2.load(Ordering::Acquire) {
                all.push(i);
                i += 1;
                h2.serve(&all, &mut cursor);
                std::thread::yield_now();
            }
            all
        });
        let mut got = Vec::new();
        for _ in 0..20 {
            let n = h.ask();
            got.extend(h.take(n, Duration::from_secs(5)).unwrap());
        }
        stop.store(true, Ordering::Release);
        let all = thread.join().unwrap();
        assert!(!got.is_empty());
        assert_eq!(got[..], all[..got.len()], "a prefix, in order, no repeats");
    }

    #[test]
    fn a_thread_that_does_not_serve_times_out() {
        let h = Handover::<u8>::default();
        let n = h.ask();
        assert_eq!(h.take(n, Duration::from_millis(20)), None);
    }
}
