//! The host's clock, in one place.
//!
//! Everything the harness records is CLOCK_REALTIME in ns since the Unix
//! epoch: the same clock QEMU stamps QMP events with and the kernel stamps
//! the probe's packets with, so in the lab all three share one timeline
//! without any offset estimation.

/// Now, ns since the Unix epoch (CLOCK_REALTIME): [`wire::clock::realtime_ns`],
/// the one clock reading the guest agent and the client probe use too,
/// under the name the harness has always called it by.
pub use wire::clock::realtime_ns as now_ns;

/// ns to ms, as shown in summaries.
pub fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// An RFC 3339 UTC time for manifests (second precision).
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A compact UTC stamp for folder names: `20261125-021500`.
pub fn compact_stamp(ns: i64) -> String {
    rfc3339(ns)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_like_date_does() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_795_000_000 * 1_000_000_000),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            compact_stamp(1_795_000_000 * 1_000_000_000),
            "20261118-110640"
        );
    }
}
