//! The guest's own view of its clocks ([`ClockView`]).
//!
//! An always-on thread, started with the agent, reads CLOCK_MONOTONIC and
//! CLOCK_REALTIME, sleeps [`TURN`], reads both again, and records every
//! turn in which either clock advanced more than [`THRESHOLD`] beyond the
//! sleep (or CLOCK_REALTIME went back by more than that): a [`ClockGap`].
//! It keeps the last [`KEEP`] gaps and the largest of each clock. It costs
//! one wake-up a millisecond.
//!
//! What it sees: scheduling delays (a busy or starved vCPU) and clock steps
//! (CLOCK_REALTIME set by NTP or by hand). What it usually does **not**
//! see is the migration pause: guest clocks stop while the VM is stopped
//! (kvm-clock, and TCG's virtual clock), so the loop resumes as if no time
//! had passed. It is the guest's own view, reported for comparison with
//! the client's and QEMU's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wire::clock::realtime_ns;
use wire::control::{ClockGap, ClockView};

/// The sleep of one turn.
pub const TURN: Duration = Duration::from_millis(1);
/// A turn longer than [`TURN`] by more than this is a gap.
pub const THRESHOLD: Duration = Duration::from_millis(5);
/// The most recent gaps kept.
pub const KEEP: usize = 1000;

/// Gaps seen so far.
#[derive(Debug, Default)]
struct Gaps {
    /// The last [`KEEP`] gaps with their sequence numbers.
    recent: VecDeque<(u64, ClockGap)>,
    seen: u64,
    largest_monotonic: Option<(u64, ClockGap)>,
    largest_realtime: Option<(u64, ClockGap)>,
}

impl Gaps {
    fn record(&mut self, gap: ClockGap) {
        self.seen += 1;
        let entry = (self.seen, gap);
        if !matches!(&self.largest_monotonic, Some((_, g)) if g.monotonic_gap_ms >= entry.1.monotonic_gap_ms)
        {
            self.largest_monotonic = Some(entry.clone());
        }
        if !matches!(&self.largest_realtime, Some((_, g)) if g.realtime_gap_ms >= entry.1.realtime_gap_ms)
        {
            self.largest_realtime = Some(entry.clone());
        }
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(entry);
    }

    fn view(&self) -> ClockView {
        let oldest_kept = self.recent.front().map_or(u64::MAX, |(n, _)| *n);
        let mut older: Vec<&(u64, ClockGap)> = [&self.largest_monotonic, &self.largest_realtime]
            .into_iter()
            .flatten()
            .filter(|(n, _)| *n < oldest_kept)
            .collect();
        older.sort_by_key(|(n, _)| *n);
        older.dedup_by_key(|(n, _)| *n);
        ClockView {
            max_monotonic_gap_ms: self
                .largest_monotonic
                .as_ref()
                .map_or(0.0, |(_, g)| g.monotonic_gap_ms),
            max_realtime_gap_ms: self
                .largest_realtime
                .as_ref()
                .map_or(0.0, |(_, g)| g.realtime_gap_ms),
            gaps: older
                .into_iter()
                .chain(&self.recent)
                .map(|(_, g)| g.clone())
                .collect(),
        }
    }
}

/// The gap of one turn, if it is one: `monotonic` and `realtime` are how
/// far each clock advanced, `expected` the sleep.
pub fn gap_of(
    monotonic: Duration,
    realtime_ns: i64,
    expected: Duration,
    end_realtime_ns: i64,
) -> Option<ClockGap> {
    let limit = expected + THRESHOLD;
    let limit_ns = i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX);
    let expected_ns = i64::try_from(expected.as_nanos()).unwrap_or(i64::MAX);
    let back = realtime_ns < expected_ns - i64::try_from(THRESHOLD.as_nanos()).unwrap_or(0);
    (monotonic > limit || realtime_ns > limit_ns || back).then(|| ClockGap {
        realtime_ns: end_realtime_ns,
        monotonic_gap_ms: monotonic.as_secs_f64() * 1e3,
        realtime_gap_ms: realtime_ns as f64 / 1e6,
    })
}

#[derive(Debug, Default)]
struct Inner {
    gaps: Mutex<Gaps>,
    /// Test hook: extra sleep inside the next turn.
    stall: Mutex<Option<Duration>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The clock-watching thread's findings; the thread ends when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct ClockWatch(Arc<Inner>);

impl ClockWatch {
    /// Starts the thread.
    pub fn spawn() -> std::io::Result<Self> {
        let inner = Arc::new(Inner::default());
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("clock-watch".into())
            .spawn(move || watch(&weak))?;
        Ok(Self(inner))
    }

    /// The gaps seen so far.
    pub fn view(&self) -> ClockView {
        lock(&self.0.gaps).view()
    }

    /// Test hook: makes the thread sleep `extra` more inside its next turn,
    /// as if the guest had stalled; that turn is then a gap of at least
    /// `extra`.
    pub fn inject_stall(&self, extra: Duration) {
        *lock(&self.0.stall) = Some(extra);
    }
}

fn watch(inner: &Weak<Inner>) {
    let mut mono = Instant::now();
    let mut real = realtime_ns();
    loop {
        let stall = match inner.upgrade() {
            Some(i) => lock(&i.stall).take(),
            None => return,
        };
        std::thread::sleep(TURN + stall.unwrap_or_default());
        let (m, r) = (Instant::now(), realtime_ns());
        if let Some(gap) = gap_of(
            m.saturating_duration_since(mono),
            r.saturating_sub(real),
            TURN,
            r,
        ) {
            match inner.upgrade() {
                Some(i) => lock(&i.gaps).record(gap),
                None => return,
            }
        }
        (mono, real) = (m, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(ns: i64, mono_ms: f64, real_ms: f64) -> ClockGap {
        ClockGap {
            realtime_ns: ns,
            monotonic_gap_ms: mono_ms,
            realtime_gap_ms: real_ms,
        }
    }

    #[test]
    fn gap_threshold() {
        let ms = Duration::from_millis;
        assert_eq!(gap_of(ms(1), 1_000_000, TURN, 5), None);
        assert_eq!(gap_of(ms(6), 6_000_000, TURN, 5), None);
        let g = gap_of(ms(7), 7_000_000, TURN, 5).unwrap();
        assert_eq!(g, gap(5, 7.0, 7.0));
        // Only the realtime clock jumped (a step), or went back.
        assert_eq!(gap_of(ms(1), 50_000_000, TURN, 9), Some(gap(9, 1.0, 50.0)));
        assert_eq!(
            gap_of(ms(1), -20_000_000, TURN, 9),
            Some(gap(9, 1.0, -20.0))
        );
    }

    #[test]
    fn keeps_last_and_largest() {
        let mut g = Gaps::default();
        g.record(gap(1, 500.0, 10.0));
        g.record(gap(2, 10.0, 900.0));
        for i in 0..KEEP as i64 {
            g.record(gap(10 + i, 7.0, 7.0));
        }
        let v = g.view();
        assert_eq!(v.max_monotonic_gap_ms, 500.0);
        assert_eq!(v.max_realtime_gap_ms, 900.0);
        assert_eq!(v.gaps.len(), KEEP + 2);
        assert_eq!(v.gaps[0].realtime_ns, 1);
        assert_eq!(v.gaps[1].realtime_ns, 2);
        assert_eq!(v.gaps[2].realtime_ns, 10);
        // The largest, still among the recent ones, is not listed twice.
        let mut g = Gaps::default();
        g.record(gap(1, 50.0, 50.0));
        g.record(gap(2, 7.0, 7.0));
        assert_eq!(g.view().gaps.len(), 2);
        assert_eq!(Gaps::default().view(), ClockView::default());
    }

    #[test]
    fn thread_records_an_injected_stall() {
        let w = ClockWatch::spawn().unwrap();
        w.inject_stall(Duration::from_millis(60));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = w.view();
            if v.max_monotonic_gap_ms >= 60.0 {
                let g = v.gaps.iter().find(|g| g.monotonic_gap_ms >= 60.0).unwrap();
                assert!(g.realtime_gap_ms >= 55.0, "{g:?}");
                assert!(g.realtime_ns > 1_600_000_000_000_000_000);
                break;
            }
            assert!(Instant::now() < deadline, "no gap recorded: {v:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
