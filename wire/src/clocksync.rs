//! Clock offset between a controller and a remote probe, from NTP-style
//! time exchanges.
//!
//! The controller (the harness) asks the remote (`client-probe serve`,
//! `GET /v1/time`) for its clock several times. Each exchange gives four
//! timestamps, two on each clock:
//!
//! ```text
//! controller  t0 ──request──▶            t3 ◀──reply──
//! remote                   t1 (receive)  t2 (send)
//! ```
//!
//! For one exchange, as in NTP (RFC 5905, section 8):
//! - `offset = ((t1 - t0) + (t2 - t3)) / 2`: remote clock minus controller
//!   clock, exact when the request and reply take equally long;
//! - `delay = (t3 - t0) - (t2 - t1)`: the round trip, less the time the
//!   remote spent answering.
//!
//! Whatever the asymmetry of the path, the true offset lies within
//! `offset ± delay / 2`. So the exchange with the smallest delay gives the
//! tightest bound: [`estimate_offset`] keeps that one (the minimum-delay
//! filter) and reports `delay / 2` as its uncertainty.
//!
//! Pure: no clock is read here.

use serde::{Deserialize, Serialize};

/// One time exchange, every time in ns since the Unix epoch on the clock
/// named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSample {
    /// Controller clock: just before the request was sent.
    pub t0_ns: i64,
    /// Remote clock: when the request was received.
    pub t1_ns: i64,
    /// Remote clock: just before the reply was sent.
    pub t2_ns: i64,
    /// Controller clock: when the reply was received.
    pub t3_ns: i64,
}

impl TimeSample {
    /// `((t1 - t0) + (t2 - t3)) / 2`: remote minus controller, ns.
    pub fn offset_ns(&self) -> i64 {
        let a = i128::from(self.t1_ns) - i128::from(self.t0_ns);
        let b = i128::from(self.t2_ns) - i128::from(self.t3_ns);
        clamp_i64((a + b).div_euclid(2))
    }

    /// `(t3 - t0) - (t2 - t1)`: the round trip less the remote's own time, ns.
    pub fn delay_ns(&self) -> i64 {
        let rtt = i128::from(self.t3_ns) - i128::from(self.t0_ns);
        let held = i128::from(self.t2_ns) - i128::from(self.t1_ns);
        clamp_i64(rtt - held)
    }

    /// `t3 - t0`: the round trip as the controller saw it, ns.
    pub fn rtt_ns(&self) -> i64 {
        clamp_i64(i128::from(self.t3_ns) - i128::from(self.t0_ns))
    }

    /// Whether the sample is physically possible: the controller's round
    /// trip and the remote's holding time are not negative, and the
    /// remote did not hold the request longer than the round trip lasted.
    pub fn is_plausible(&self) -> bool {
        let rtt = i128::from(self.t3_ns) - i128::from(self.t0_ns);
        let held = i128::from(self.t2_ns) - i128::from(self.t1_ns);
        rtt >= 0 && held >= 0 && held <= rtt
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// The remote clock's offset from the controller's, with its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetEstimate {
    /// Remote clock minus controller clock, ns: add it to a controller time
    /// to get the remote time of the same instant.
    pub offset_ns: i64,
    /// Half the delay of the chosen sample, ns: the true offset lies within
    /// `offset_ns ± uncertainty_ns` whatever the path's asymmetry.
    pub uncertainty_ns: i64,
    /// The chosen sample's round trip as the controller saw it (`t3 - t0`), ns.
    pub rtt_ns: i64,
    /// Plausible samples the estimate was chosen from.
    pub samples: usize,
}

/// The minimum-delay estimate over `samples`, as described in the [module
/// documentation](self): the plausible sample with the smallest delay
/// (the earliest of equals) gives the offset, half its delay the
/// uncertainty. `None` when no sample is plausible
/// ([`TimeSample::is_plausible`]).
pub fn estimate_offset(samples: &[TimeSample]) -> Option<OffsetEstimate> {
    let plausible = samples.iter().filter(|s| s.is_plausible());
    let count = plausible.clone().count();
    let best = plausible.min_by_key(|s| s.delay_ns())?;
    Some(OffsetEstimate {
        offset_ns: best.offset_ns(),
        uncertainty_ns: best.delay_ns().div_euclid(2) + best.delay_ns().rem_euclid(2),
        rtt_ns: best.rtt_ns(),
        samples: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000_000_000;
    const US: i64 = 1_000;

    /// A sample where the remote's clock is `offset` ahead, the request takes
    /// `up`, the remote holds it `hold`, and the reply takes `down`.
    fn sample(t0: i64, offset: i64, up: i64, hold: i64, down: i64) -> TimeSample {
        let t1 = t0 + up + offset;
        let t2 = t1 + hold;
        TimeSample {
            t0_ns: t0,
            t1_ns: t1,
            t2_ns: t2,
            t3_ns: t0 + up + hold + down,
        }
    }

    #[test]
    fn symmetric_path_gives_the_exact_offset() {
        let s = sample(T, 2_500 * US, 100 * US, 20 * US, 100 * US);
        assert_eq!(s.offset_ns(), 2_500 * US);
        assert_eq!(s.delay_ns(), 200 * US);
        assert_eq!(s.rtt_ns(), 220 * US);
        let e = estimate_offset(&[s]).unwrap();
        assert_eq!(
            e,
            OffsetEstimate {
                offset_ns: 2_500 * US,
                uncertainty_ns: 100 * US,
                rtt_ns: 220 * US,
                samples: 1
            }
        );
    }

    #[test]
    fn asymmetric_path_errs_by_half_the_asymmetry_within_the_bound() {
        // Remote 1 ms behind; request 300 µs, reply 100 µs: the estimate is
        // off by (300 - 100) / 2 = 100 µs, inside the ±200 µs bound.
        let s = sample(T, -1_000 * US, 300 * US, 0, 100 * US);
        let e = estimate_offset(&[s]).unwrap();
        assert_eq!(e.offset_ns, -1_000 * US + 100 * US);
        assert_eq!(e.uncertainty_ns, 200 * US);
        assert!((e.offset_ns - (-1_000 * US)).abs() <= e.uncertainty_ns);
        // The extreme: all of the delay one way, the error equals the bound.
        let s = sample(T, 0, 400 * US, 0, 0);
        let e = estimate_offset(&[s]).unwrap();
        assert_eq!((e.offset_ns, e.uncertainty_ns), (200 * US, 200 * US));
    }

    #[test]
    fn minimum_delay_sample_wins() {
        let off = 7 * US;
        let samples = [
            sample(T, off, 900 * US, 10 * US, 100 * US), // queued request
            sample(T + 1_000_000, off, 60 * US, 10 * US, 40 * US), // best: delay 100 µs
            sample(T + 2_000_000, off, 100 * US, 10 * US, 700 * US), // queued reply
            sample(T + 3_000_000, off, 50 * US, 10 * US, 50 * US), // equal delay, later
        ];
        let e = estimate_offset(&samples).unwrap();
        assert_eq!(e.samples, 4);
        assert_eq!(e.uncertainty_ns, 50 * US);
        assert_eq!(e.rtt_ns, 110 * US);
        // (60 - 40) / 2 = 10 µs of asymmetry error on the chosen one.
        assert_eq!(e.offset_ns, off + 10 * US);
    }

    #[test]
    fn implausible_samples_are_skipped() {
        let good = sample(T, 0, 100, 0, 100);
        let backwards = TimeSample {
            t0_ns: T,
            t1_ns: T,
            t2_ns: T,
            t3_ns: T - 1,
        };
        let held_too_long = TimeSample {
            t0_ns: T,
            t1_ns: T,
            t2_ns: T + 1_000,
            t3_ns: T + 10,
        };
        assert!(!backwards.is_plausible() && !held_too_long.is_plausible());
        assert_eq!(estimate_offset(&[]), None);
        assert_eq!(estimate_offset(&[backwards, held_too_long]), None);
        let e = estimate_offset(&[backwards, good, held_too_long]).unwrap();
        assert_eq!((e.offset_ns, e.uncertainty_ns, e.samples), (0, 100, 1));
    }

    #[test]
    fn odd_delays_round_the_bound_up_and_extremes_do_not_overflow() {
        let s = sample(T, 0, 1, 0, 2);
        let e = estimate_offset(&[s]).unwrap();
        assert_eq!(e.uncertainty_ns, 2); // delay 3: the bound is never understated
        let wild = TimeSample {
            t0_ns: i64::MIN,
            t1_ns: i64::MAX,
            t2_ns: i64::MAX,
            t3_ns: i64::MAX,
        };
        let e = estimate_offset(&[wild]).unwrap();
        assert_eq!(e.offset_ns, i64::MAX);
        assert_eq!(e.rtt_ns, i64::MAX);
    }
}
