//! RFC 3550 interarrival jitter (section 6.4.1, appendix A.8), pure.
//!
//! For consecutive packets `i`, `j` in arrival order, with `S` the send
//! time and `R` the receive time:
//!
//! ```text
//! D(i,j) = (Rj - Ri) - (Sj - Si)
//! J     += (|D(i,j)| - J) / 16
//! ```
//!
//! starting from `J = 0`. RFC 3550 uses RTP timestamp units; here both
//! clocks are the client's own CLOCK_REALTIME in ns (the probe's send time
//! and the kernel's receive time of its reply), so `D` is the change in
//! round-trip time between consecutive replies, and the estimate is kept in
//! floating-point ns (no integer rounding of the `/ 16`).

/// The running RFC 3550 estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    last: Option<(i64, i64)>,
    j_ns: f64,
}

impl Jitter {
    /// An estimate with no packet seen (`J = 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next packet in arrival order: sent at `send_ns`, received
    /// at `rx_ns` (same clock).
    pub fn push(&mut self, send_ns: i64, rx_ns: i64) {
        if let Some((s, r)) = self.last {
            let d = (i128::from(rx_ns) - i128::from(r)) - (i128::from(send_ns) - i128::from(s));
            self.j_ns += (d.unsigned_abs() as f64 - self.j_ns) / 16.0;
        }
        self.last = Some((send_ns, rx_ns));
    }

    /// The current estimate, ns.
    pub fn ns(&self) -> f64 {
        self.j_ns
    }
}

/// The final RFC 3550 jitter of `(send_ns, rx_ns)` pairs in arrival order, ns.
pub fn rfc3550_jitter_ns(pairs: impl IntoIterator<Item = (i64, i64)>) -> f64 {
    let mut j = Jitter::new();
    for (s, r) in pairs {
        j.push(s, r);
    }
    j.ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_sequence() {
        // Sent every 1000 ns; transit 100, 300, 200, 200, 600 ns.
        // D: +200, -100, 0, +400.
        // J1 = 0 + (200 - 0) / 16          = 12.5
        // J2 = 12.5 + (100 - 12.5) / 16    = 17.96875
        // J3 = 17.96875 + (0 - 17.96875)/16 = 16.845703125
        // J4 = 16.845703125 + (400 - 16.845703125) / 16 = 40.79284667968750
        let pairs = [
            (0, 100),
            (1000, 1300),
            (2000, 2200),
            (3000, 3200),
            (4000, 4600),
        ];
        let mut j = Jitter::new();
        let expect = [0.0, 12.5, 17.96875, 16.845703125, 40.7928466796875];
        for (&(s, r), &e) in pairs.iter().zip(&expect) {
            j.push(s, r);
            assert_eq!(j.ns(), e);
        }
        assert_eq!(rfc3550_jitter_ns(pairs), 40.7928466796875);
    }

    #[test]
    fn constant_transit_has_no_jitter_and_extremes_do_not_overflow() {
        assert_eq!(
            rfc3550_jitter_ns((0..100).map(|i| (i * 7, i * 7 + 50))),
            0.0
        );
        assert_eq!(rfc3550_jitter_ns([]), 0.0);
        assert_eq!(rfc3550_jitter_ns([(5, 9)]), 0.0);
        let j = rfc3550_jitter_ns([(i64::MAX, i64::MIN), (i64::MIN, i64::MAX)]);
        assert!(j.is_finite() && j > 0.0);
    }
}
