//! Conversions the measures share: RTP clock ticks to ns, ns to ms, and
//! saturation to `i64` (hostile streams drive numbers to the limits).

/// `floor(ticks × 10^9 / rate)`, saturated to `i64`.
pub(super) fn ticks_to_ns(ticks: i64, rate: u32) -> i64 {
    let ns = (i128::from(ticks) * 1_000_000_000).div_euclid(i128::from(rate.max(1)));
    clamp_i64(ns)
}

/// `v` saturated to the range of `i64`.
pub(super) fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// ns to ms.
pub(super) fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_with_floor() {
        // One frame at 30 fps: floor(3000 × 10^9 / 90000).
        assert_eq!(ticks_to_ns(3000, 90_000), 33_333_333);
        assert_eq!(ticks_to_ns(-1, 90_000), -11112);
    }
}
