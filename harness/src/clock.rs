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

/// An RFC 3339 UTC time for manifests (second precision), by `humantime`.
/// Times before the epoch (a clock that was never set) read as the epoch.
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A compact UTC stamp for folder names: `20261125-021500`.
pub fn compact_stamp(ns: i64) -> String {
    rfc3339(ns)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
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
