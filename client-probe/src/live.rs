//! Live progress: counters the probe threads update with atomics, read
//! cheaply at any time for a progress line. Informative only: the numbers
//! of record come from [`crate::analyze`] over the full record.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of the running prober.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveStats {
    /// Probes sent so far.
    pub sent: u64,
    /// First replies received so far (duplicates not counted).
    pub replies: u64,
    /// Time since the last first reply arrived (since the start while none
    /// has), ms.
    pub current_gap_ms: f64,
    /// Largest gap between consecutive first replies in arrival order, or the
    /// current gap when that is larger and a reply has been seen, ms.
    pub max_gap_ms: f64,
}

impl LiveStats {
    /// The progress line the binary prints:
    /// `sent N  replies N  current gap X ms  largest gap Y ms`.
    pub fn line(&self) -> String {
        format!(
            "sent {}  replies {}  current gap {:.1} ms  largest gap {:.1} ms",
            self.sent, self.replies, self.current_gap_ms, self.max_gap_ms
        )
    }
}

/// Counters shared between the probe threads and [`crate::Prober::live`].
#[derive(Debug)]
pub(crate) struct LiveCounters {
    /// Probes handed to the socket: seqs below this may have been sent.
    pub sent: AtomicU64,
    pub replies: AtomicU64,
    /// Receive time of the last first reply; `started_ns` until one comes.
    pub last_rx_ns: AtomicI64,
    pub max_gap_ns: AtomicI64,
}

impl LiveCounters {
    pub fn new(started_ns: i64) -> Self {
        Self {
            sent: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            last_rx_ns: AtomicI64::new(started_ns),
            max_gap_ns: AtomicI64::new(0),
        }
    }

    /// Called by the receiver for each first reply.
    pub fn first_reply(&self, rx_ns: i64) {
        let prev = self.last_rx_ns.fetch_max(rx_ns, Ordering::AcqRel);
        if self.replies.fetch_add(1, Ordering::AcqRel) > 0 {
            self.max_gap_ns.fetch_max(rx_ns - prev, Ordering::AcqRel);
        }
    }

    pub fn snapshot(&self, now_ns: i64) -> LiveStats {
        let replies = self.replies.load(Ordering::Acquire);
        let last = self.last_rx_ns.load(Ordering::Acquire);
        let current = (now_ns - last).max(0);
        let mut max = self.max_gap_ns.load(Ordering::Acquire);
        if replies > 0 {
            max = max.max(current);
        }
        LiveStats {
            sent: self.sent.load(Ordering::Acquire),
            replies,
            current_gap_ms: ns_to_ms(current),
            max_gap_ms: ns_to_ms(max),
        }
    }
}

fn ns_to_ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_follow_first_replies() {
        let c = LiveCounters::new(1_000_000_000);
        let s = c.snapshot(1_005_000_000);
        assert_eq!((s.replies, s.current_gap_ms, s.max_gap_ms), (0, 5.0, 0.0));
        c.first_reply(1_010_000_000);
        c.first_reply(1_011_000_000);
        c.first_reply(1_031_000_000);
        let s = c.snapshot(1_032_000_000);
        assert_eq!(s.replies, 3);
        assert_eq!(s.current_gap_ms, 1.0);
        assert_eq!(s.max_gap_ms, 20.0);
        // An ongoing outage shows in the largest gap at once.
        let s = c.snapshot(1_131_000_000);
        assert_eq!(s.max_gap_ms, 100.0);
        assert_eq!(
            s.line(),
            "sent 0  replies 3  current gap 100.0 ms  largest gap 100.0 ms"
        );
    }
}
