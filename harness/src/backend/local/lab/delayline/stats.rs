//! What a delay line forwarded and dropped: live counters the threads
//! update, and the serializable snapshot the bundle keeps.

use super::shaper::LinkShape;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Width of one bin of the throughput series: 100 ms.
pub const BIN_NS: u64 = 100_000_000;
/// Bins kept at most (3 years of them): a wild timestamp must not make
/// the series allocate without bound.
const MAX_BINS: usize = 1 << 30;
/// Lateness counted in [`DirectionStats::late_over_1ms`].
const LATE_NS: u64 = 1_000_000;

/// One frame as sent, for [`Counters::sent`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// Frame bytes.
    pub len: usize,
    /// Its departure time, CLOCK_MONOTONIC ns.
    pub due_ns: u64,
    /// How long after it it was sent, ns.
    pub late_ns: u64,
}

/// A delay line's record, as of the moment it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkStats {
    /// The namespace it ran in.
    pub netns: String,
    /// The shape it applied in each direction.
    pub shape: LinkShape,
    /// The seed of its random draws (`a_to_b`'s; `b_to_a`'s is derived).
    pub seed: u64,
    /// When it started, CLOCK_MONOTONIC ns.
    pub started_mono_ns: u64,
    /// The same instant on CLOCK_REALTIME, ns since the epoch
    /// ([`crate::clock::now_ns`], the clock of the lab's other records).
    pub started_real_ns: i64,
    /// Width of each bin of [`DirectionStats::bins`], ns.
    pub bin_ns: u64,
    /// Whether all its threads ran at real-time priority (`SCHED_FIFO`);
    /// without it (not root) its timing is that of a normal thread on a
    /// busy machine, milliseconds late at times.
    pub realtime: bool,
    /// Frames that came in on `a` and left on `b`.
    pub a_to_b: DirectionStats,
    /// Frames that came in on `b` and left on `a`.
    pub b_to_a: DirectionStats,
}

/// One direction's counts. Bytes are whole Ethernet frames as the shaper
/// counts them (no preamble, FCS or gap); a GSO super-packet counts as
/// the frames it was cut into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionStats {
    /// The interface frames came in on.
    pub from: String,
    /// The interface they left on.
    pub to: String,
    /// Frames sent on.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames dropped by the shape's random loss.
    pub dropped_loss: u64,
    /// Frames dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Frames dropped because the delay line's own queue held more than it
    /// may (it could not send as fast as frames came in).
    pub dropped_overrun: u64,
    /// Frames the kernel dropped before the delay line read them (its
    /// socket's receive buffer was full).
    pub dropped_kernel: u64,
    /// Frames lost to a receive or send error (see `first_error`).
    pub dropped_error: u64,
    /// GSO super-packets received and cut into frames.
    pub gso_split: u64,
    /// GSO super-packets of a kind not cut, passed on whole.
    pub gso_whole: u64,
    /// The latest a frame was sent after its departure time, ns.
    pub late_max_ns: u64,
    /// How late frames were sent on average, ns.
    pub late_mean_ns: u64,
    /// Frames sent more than 1 ms after their departure time (the line's
    /// threads kept off the CPU that long, or the line overloaded).
    pub late_over_1ms: u64,
    /// The first error met, if any, with the interface it happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Bytes sent on in each bin since the start, each frame in the bin
    /// of its departure time as the shaper set it; it left `late_*` after
    /// that. Binning by the moment of sending instead would let a stall of
    /// the line's threads (a millisecond or two, a few times a second on a
    /// busy 2-core machine, real-time priority or not) move frames across
    /// a bin edge and show the link above its rate.
    pub bins: Vec<Bin>,
}

/// Bytes sent on in one bin of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    /// Start of the bin, CLOCK_MONOTONIC ns.
    pub start_mono_ns: u64,
    /// Start of the bin, CLOCK_REALTIME ns (the start's offset between the
    /// clocks applied: a step of the realtime clock while the line runs
    /// does not move it).
    pub start_real_ns: i64,
    /// Bytes of the frames whose departure time fell in the bin.
    pub bytes: u64,
}

impl DirectionStats {
    /// The largest number of bytes sent in one bin.
    pub fn peak_bin_bytes(&self) -> u64 {
        self.bins.iter().map(|b| b.bytes).max().unwrap_or(0)
    }
}

/// One direction's live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped_loss: AtomicU64,
    pub dropped_queue: AtomicU64,
    pub dropped_overrun: AtomicU64,
    pub dropped_kernel: AtomicU64,
    pub dropped_error: AtomicU64,
    pub gso_split: AtomicU64,
    pub gso_whole: AtomicU64,
    pub late_max_ns: AtomicU64,
    pub late_sum_ns: AtomicU64,
    pub late_over: AtomicU64,
    bins: Mutex<Vec<u64>>,
    first_error: Mutex<Option<String>>,
}

/// Adds `n` to a counter; counts need no ordering with anything else.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Counters {
    /// Records frames sent, each in the bin of its departure time
    /// (`due_ns`, CLOCK_MONOTONIC; the line started at `epoch_mono_ns`).
    pub(crate) fn sent(&self, epoch_mono_ns: u64, frames: impl Iterator<Item = Sent>) {
        let mut bins = self.bins.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut n, mut bytes, mut late_sum, mut late_max, mut over) = (0, 0, 0, 0, 0);
        for f in frames {
            n += 1;
            bytes += f.len as u64;
            late_sum += f.late_ns;
            late_max = late_max.max(f.late_ns);
            over += u64::from(f.late_ns > LATE_NS);
            let since = f.due_ns.saturating_sub(epoch_mono_ns);
            let bin = usize::try_from(since / BIN_NS).unwrap_or(usize::MAX);
            if bin < MAX_BINS {
                if bin >= bins.len() {
                    bins.resize(bin + 1, 0);
                }
                bins[bin] += f.len as u64;
            }
        }
        drop(bins);
        add(&self.frames, n);
        add(&self.bytes, bytes);
        add(&self.late_sum_ns, late_sum);
        add(&self.late_over, over);
        self.late_max_ns.fetch_max(late_max, Ordering::Relaxed);
    }

    /// Keeps the first error only: later ones are usually its echoes.
    pub(crate) fn error(&self, what: String) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(what);
    }

    /// The snapshot, with bins up to the one holding `now_since_start_ns`
    /// (quiet bins are zeros, not missing).
    pub(crate) fn snapshot(
        &self,
        from: &str,
        to: &str,
        epoch: Epoch,
        now_since_start_ns: u64,
    ) -> DirectionStats {
        let frames = get(&self.frames);
        let mut bytes: Vec<u64> = self
            .bins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let upto = usize::try_from(now_since_start_ns / BIN_NS + 1).unwrap_or(usize::MAX);
        if bytes.len() < upto && upto <= MAX_BINS {
            bytes.resize(upto, 0);
        }
        DirectionStats {
            from: from.to_string(),
            to: to.to_string(),
            frames,
            bytes: get(&self.bytes),
            dropped_loss: get(&self.dropped_loss),
            dropped_queue: get(&self.dropped_queue),
            dropped_overrun: get(&self.dropped_overrun),
            dropped_kernel: get(&self.dropped_kernel),
            dropped_error: get(&self.dropped_error),
            gso_split: get(&self.gso_split),
            gso_whole: get(&self.gso_whole),
            late_max_ns: get(&self.late_max_ns),
            late_mean_ns: get(&self.late_sum_ns).checked_div(frames).unwrap_or(0),
            late_over_1ms: get(&self.late_over),
            first_error: self
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            bins: bytes
                .into_iter()
                .enumerate()
                .map(|(i, b)| epoch.bin(i as u64, b))
                .collect(),
        }
    }
}

/// The start of a delay line on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    pub mono_ns: u64,
    pub real_ns: i64,
}

impl Epoch {
    /// Now on both clocks: the monotonic reading between two realtime
    /// ones, paired with their midpoint, so the pair is off by at most
    /// half the (sub-µs) time the three reads take.
    pub(crate) fn now() -> Epoch {
        let before = crate::clock::now_ns();
        let mono_ns = super::sys::monotonic_ns();
        let after = crate::clock::now_ns();
        Epoch {
            mono_ns,
            real_ns: before + (after - before) / 2,
        }
    }

    fn bin(self, i: u64, bytes: u64) -> Bin {
        let offset = i * BIN_NS;
        Bin {
            start_mono_ns: self.mono_ns + offset,
            start_real_ns: self
                .real_ns
                .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX)),
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]
    use super::*;

    #[test]
    fn sends_land_in_their_bins_and_quiet_bins_are_zeros() {
        let c = Counters::default();
        let f = |len, due_ns, late_ns| Sent {
            len,
            due_ns,
            late_ns,
        };
        // Bins follow departure times, not calls: the third frame is sent
        // with the first two but was due 300 ms later.
        let frames = [
            f(1000, 50_001_000, 10),
            f(500, 60_000_000, 2_000_000),
            f(200, 350_001_000, 0),
        ];
        c.sent(1_000, frames.into_iter());
        add(&c.dropped_loss, 2);
        c.error("a: first".into());
        c.error("a: second".into());
        let epoch = Epoch {
            mono_ns: 1_000,
            real_ns: 1_700_000_000_000_000_000,
        };
        let s = c.snapshot("a", "b", epoch, 450_000_000);
        assert_eq!((s.frames, s.bytes, s.dropped_loss), (3, 1700, 2));
        assert_eq!(
            (s.late_max_ns, s.late_mean_ns, s.late_over_1ms),
            (2_000_000, 666_670, 1)
        );
        assert_eq!(s.first_error.as_deref(), Some("a: first"));
        let bytes: Vec<u64> = s.bins.iter().map(|b| b.bytes).collect();
        assert_eq!(bytes, vec![1500, 0, 0, 200, 0]);
        assert_eq!(s.bins[3].start_mono_ns, 1_000 + 300_000_000);
        assert_eq!(s.bins[3].start_real_ns, 1_700_000_000_300_000_000);
        assert_eq!(s.peak_bin_bytes(), 1500);
    }

    #[test]
    fn the_snapshot_round_trips_through_json() {
        let c = Counters::default();
        let frame = Sent {
            len: 60,
            due_ns: 0,
            late_ns: 0,
        };
        c.sent(0, [frame].into_iter());
        let epoch = Epoch::now();
        let d = c.snapshot("x", "y", epoch, 0);
        let stats = LinkStats {
            netns: "ns".into(),
            shape: LinkShape::default(),
            seed: 9,
            started_mono_ns: epoch.mono_ns,
            started_real_ns: epoch.real_ns,
            bin_ns: BIN_NS,
            realtime: true,
            a_to_b: d.clone(),
            b_to_a: d,
        };
        let json = serde_json::to_string(&stats).unwrap();
        assert!(!json.contains("first_error"), "{json}");
        assert_eq!(serde_json::from_str::<LinkStats>(&json).unwrap(), stats);
        // The realtime start is the harness's clock, read just now.
        assert!((crate::clock::now_ns() - epoch.real_ns).abs() < 1_000_000_000);
    }
}
