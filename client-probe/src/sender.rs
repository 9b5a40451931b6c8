//! The sender: one probe per interval on an absolute schedule.
//!
//! Probe `seq` is due at `start + seq * interval` (computed exactly, so the
//! rate never drifts). The thread sleeps until the deadline, reads
//! CLOCK_REALTIME, and sends. When the interval is short (below
//! [`Spin::below_interval`], 2 ms by default) a sleep's overshoot would be a
//! large part of it, so the thread sleeps only until [`Spin::margin`] (about
//! 200 µs, at most a quarter of the interval: [`SPIN_SHARE`]) before the
//! deadline and spins on the monotonic clock for the rest, checking the
//! stop flag on every turn. A probe more than one interval late is sent
//! at once and recorded as [`SenderLate`]; the schedule is then re-anchored
//! so the next probe is due one interval after it: no burst of catch-up
//! probes, nothing skipped, every seq sent exactly once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wire::clock::realtime_ns;

use crate::codec::{Codec, Transport};
use crate::handover::{Cursor, Handover};
use crate::live::LiveCounters;
use measure::probe::record::SenderLate;

/// The longest single sleep, so a stop request is seen promptly even at
/// low rates.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// When each probe is due, in ns since the sender started (monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    rate_hz: u32,
    anchor_seq: u64,
    anchor_ns: i64,
}

impl Schedule {
    /// `rate_hz` must not be 0 (the configuration is checked before).
    pub fn new(rate_hz: u32) -> Self {
        Self {
            rate_hz: rate_hz.max(1),
            anchor_seq: 0,
            anchor_ns: 0,
        }
    }

    pub fn interval_ns(&self) -> i64 {
        1_000_000_000 / i64::from(self.rate_hz)
    }

    pub fn deadline(&self, seq: u64) -> i64 {
        let k = u128::from(seq.saturating_sub(self.anchor_seq));
        let off = k * 1_000_000_000 / u128::from(self.rate_hz);
        self.anchor_ns
            .saturating_add(i64::try_from(off).unwrap_or(i64::MAX))
    }

    /// More than one interval past its deadline.
    pub fn is_late(&self, seq: u64, sent_at: i64) -> bool {
        sent_at.saturating_sub(self.deadline(seq)) > self.interval_ns()
    }

    /// Makes `seq + 1` due one interval after `sent_at`.
    pub fn rebase(&mut self, seq: u64, sent_at: i64) {
        self.anchor_seq = seq;
        self.anchor_ns = sent_at;
    }
}

/// When the sender spins instead of sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spin {
    /// Spin up to this long before each deadline...
    pub margin: Duration,
    /// ...when the probe interval is shorter than this.
    pub below_interval: Duration,
}

/// The sender never spins for more than `1 / SPIN_SHARE` of the interval.
/// Spinning through whole intervals would keep a core busy: a real-time
/// thread doing so is throttled by the kernel for 50 ms of every second
/// (`sched_rt_runtime_us` 950000 of 1000000), a stall as long as the
/// outages it measures, and starves whatever shares the core (the bench
/// showed both).
pub(crate) const SPIN_SHARE: i64 = 4;

impl Spin {
    /// Whether a sender at `interval_ns` spins.
    #[cfg(test)]
    pub fn applies(&self, interval_ns: i64) -> bool {
        self.margin_ns(interval_ns) > 0
    }

    /// How long before each deadline a sender at `interval_ns` spins, ns:
    /// the margin, at most a quarter of the interval; 0 at intervals not
    /// below the threshold.
    pub fn margin_ns(&self, interval_ns: i64) -> i64 {
        let below = u128::try_from(interval_ns).is_ok_and(|i| i < self.below_interval.as_nanos());
        if !below {
            return 0;
        }
        i64::try_from(self.margin.as_nanos())
            .unwrap_or(i64::MAX)
            .min(interval_ns / SPIN_SHARE)
            .max(0)
    }
}

/// What the sender recorded.
#[derive(Debug, Default)]
pub(crate) struct SenderOutput {
    pub send_ns: Vec<i64>,
    pub sender_late: Vec<SenderLate>,
    pub send_errors: u64,
    /// Largest delay of a send after its deadline, ns (monotonic clock).
    pub max_delay_ns: i64,
    /// Whether it spun before deadlines.
    pub spun: bool,
    /// CPU time the sender thread used, ns.
    pub cpu_ns: i64,
}

/// Everything the sender thread needs.
pub(crate) struct Sender<'a, S, C> {
    pub socket: &'a S,
    pub target: SocketAddr,
    /// Writes each probe.
    pub codec: &'a C,
    /// Bytes of each datagram sent.
    pub datagram_len: usize,
    pub rate_hz: u32,
    pub live: &'a LiveCounters,
    pub stop: &'a AtomicBool,
    pub spin: Spin,
    /// Where send times are handed over while it runs.
    pub handover: &'a Handover<i64>,
}

fn since(start: Instant) -> i64 {
    i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

impl<S: Transport, C: Codec> Sender<'_, S, C> {
    /// Sends until `stop` is set.
    pub fn run(self) -> SenderOutput {
        let mut out = SenderOutput::default();
        let mut buf = vec![0u8; self.datagram_len];
        let mut sched = Schedule::new(self.rate_hz);
        let margin = self.spin.margin_ns(sched.interval_ns());
        let spin = margin > 0;
        out.spun = spin;
        let cpu_start = crate::rt::thread_cpu_ns();
        let start = Instant::now();
        let start_real = realtime_ns();
        let mut seq = 0u64;
        let mut handed = Cursor::default();
        'probes: loop {
            let deadline = sched.deadline(seq);
            loop {
                self.handover.serve(&out.send_ns, &mut handed);
                if self.stop.load(Ordering::Acquire) {
                    break 'probes;
                }
                let left = deadline.saturating_sub(since(start));
                if left <= 0 {
                    break;
                }
                let sleep = if spin { left - margin } else { left };
                if sleep <= 0 {
                    std::hint::spin_loop();
                    continue;
                }
                std::thread::sleep(Duration::from_nanos(sleep.unsigned_abs()).min(MAX_SLEEP));
            }
            let now = since(start);
            let sent_ns = realtime_ns();
            let late = sched.is_late(seq, now);
            out.max_delay_ns = out.max_delay_ns.max(now.saturating_sub(deadline));
            self.codec.encode(seq, sent_ns, &mut buf);
            out.send_ns.push(sent_ns);
            // Published before sending, so a reply can never beat it.
            self.live.sent.store(seq + 1, Ordering::Release);
            if self.socket.send_to(&buf, self.target).is_err() {
                out.send_errors += 1;
            }
            if late {
                out.sender_late.push(SenderLate {
                    seq,
                    deadline_ns: start_real.saturating_add(deadline),
                    sent_ns,
                });
                sched.rebase(seq, now);
            }
            seq += 1;
        }
        out.cpu_ns = crate::rt::thread_cpu_ns().saturating_sub(cpu_start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_exact_at_rates_that_do_not_divide_a_second() {
        let s = Schedule::new(3);
        assert_eq!(s.interval_ns(), 333_333_333);
        assert_eq!(s.deadline(3), 1_000_000_000);
        assert_eq!(s.deadline(3_000_000), 1_000_000_000_000_000);
        let s = Schedule::new(1000);
        assert_eq!(s.deadline(u64::MAX), i64::MAX);
    }

    #[test]
    fn spinning_only_below_the_interval_threshold() {
        let spin = Spin {
            margin: Duration::from_micros(200),
            below_interval: Duration::from_millis(2),
        };
        assert!(spin.applies(Schedule::new(20_000).interval_ns()));
        assert!(spin.applies(Schedule::new(1000).interval_ns()));
        assert!(!spin.applies(Schedule::new(500).interval_ns())); // exactly 2 ms
        assert!(!spin.applies(Schedule::new(10).interval_ns()));
        let off = Spin {
            margin: Duration::ZERO,
            ..spin
        };
        assert!(!off.applies(Schedule::new(20_000).interval_ns()));
        // Never more than a quarter of the interval.
        assert_eq!(spin.margin_ns(1_000_000), 200_000);
        assert_eq!(spin.margin_ns(50_000), 12_500);
        assert_eq!(spin.margin_ns(2_000_000), 0);
    }

    #[test]
    fn late_means_more_than_one_interval_and_rebases() {
        let mut s = Schedule::new(1000);
        assert!(!s.is_late(10, 10_999_999));
        assert!(!s.is_late(10, 11_000_000));
        assert!(s.is_late(10, 11_000_001));
        // Sent 50 ms late: the next one is due 1 ms after, not at once.
        s.rebase(10, 60_000_000);
        assert_eq!(s.deadline(11), 61_000_000);
        assert_eq!(s.deadline(20), 70_000_000);
        assert!(!s.is_late(11, 61_500_000));
    }
}
