//! Lenient readings of QMP replies.
//!
//! Fields come and go between QEMU versions (`skipped`, `disk` and
//! `compression` went away in 9.1), so every field is optional and read on
//! its own: a field of an unexpected type is dropped, never the reply. The
//! raw reply is always stored beside the reading.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One QMP event as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QmpEvent {
    /// Event name (`STOP`, `RESUME`, `MIGRATION`, `MIGRATION_PASS`, ...).
    pub event: String,
    /// Its `data`, as sent.
    pub data: Value,
    /// QEMU's timestamp (host wall clock at emission), ns since the epoch.
    pub qemu_ts_ns: Option<i64>,
    /// When the harness read it (host CLOCK_REALTIME), ns.
    pub host_rx_ns: i64,
}

fn int(v: &Value, key: &str) -> Option<i64> {
    let f = v.get(key)?;
    f.as_i64()
        .or_else(|| f.as_u64().map(|u| u as i64))
        .or_else(|| f.as_f64().map(|x| x as i64))
}

fn float(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_string)
}

/// The `ram` part of `query-migrate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RamStats {
    /// Bytes sent so far.
    pub transferred: Option<i64>,
    /// Bytes still to send.
    pub remaining: Option<i64>,
    /// Guest RAM in bytes.
    pub total: Option<i64>,
    /// Zero pages (sent as a flag, not as data).
    pub duplicate: Option<i64>,
    /// Normal pages sent.
    pub normal: Option<i64>,
    /// Bytes of normal pages.
    pub normal_bytes: Option<i64>,
    /// Pages dirtied per second, as QEMU estimates it.
    pub dirty_pages_rate: Option<i64>,
    /// Throughput in Mbit/s.
    pub mbps: Option<f64>,
    /// Dirty-bitmap synchronisations: the number of passes begun.
    pub dirty_sync_count: Option<i64>,
    /// Guest page size.
    pub page_size: Option<i64>,
    /// Bytes sent before the guest was stopped.
    pub precopy_bytes: Option<i64>,
    /// Bytes sent while the guest was stopped.
    pub downtime_bytes: Option<i64>,
}

/// A reading of `query-migrate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MigrationInfo {
    /// `setup`, `active`, `completed`, `failed`, ... kept as text, so a
    /// status this build does not know is still recorded.
    pub status: Option<String>,
    /// ms spent setting up.
    pub setup_time: Option<i64>,
    /// ms from start to end (or so far).
    pub total_time: Option<i64>,
    /// QEMU's estimate while active, ms.
    pub expected_downtime: Option<i64>,
    /// Downtime as QEMU measures it on the source (stop to completion), ms;
    /// only once completed.
    pub downtime: Option<i64>,
    /// Percent of throttling by auto-converge.
    pub cpu_throttle_percentage: Option<i64>,
    /// RAM statistics.
    pub ram: Option<RamStats>,
    /// Why it failed.
    pub error_desc: Option<String>,
}

impl MigrationInfo {
    /// Reads a `query-migrate` return value; never fails.
    pub fn from_value(v: &Value) -> Self {
        Self {
            status: text(v, "status"),
            setup_time: int(v, "setup-time"),
            total_time: int(v, "total-time"),
            expected_downtime: int(v, "expected-downtime"),
            downtime: int(v, "downtime"),
            cpu_throttle_percentage: int(v, "cpu-throttle-percentage"),
            error_desc: text(v, "error-desc"),
            ram: v.get("ram").filter(|r| r.is_object()).map(|r| RamStats {
                transferred: int(r, "transferred"),
                remaining: int(r, "remaining"),
                total: int(r, "total"),
                duplicate: int(r, "duplicate"),
                normal: int(r, "normal"),
                normal_bytes: int(r, "normal-bytes"),
                dirty_pages_rate: int(r, "dirty-pages-rate"),
                mbps: float(r, "mbps"),
                dirty_sync_count: int(r, "dirty-sync-count"),
                page_size: int(r, "page-size"),
                precopy_bytes: int(r, "precopy-bytes"),
                downtime_bytes: int(r, "downtime-bytes"),
            }),
        }
    }

    /// Whether the migration has ended, one way or the other.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_deref(),
            Some("completed" | "failed" | "cancelled")
        )
    }
}

/// QMP's event timestamp `{seconds, microseconds}` as ns since the epoch;
/// `None` when either is missing or the sum does not fit in an `i64`.
pub fn event_timestamp_ns(ev: &Value) -> Option<i64> {
    let ts = ev.get("timestamp")?;
    let ns = i128::from(int(ts, "seconds")?) * 1_000_000_000
        + i128::from(int(ts, "microseconds")?) * 1000;
    i64::try_from(ns).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from QEMU 7.2 in the lab (TCG, 256 MiB guest).
    const COMPLETED: &str = r#"{"expected-downtime": 300, "status": "completed", "setup-time": 2, "total-time": 612, "downtime": 24, "ram": {"total": 268959744, "postcopy-requests": 0, "dirty-sync-count": 3, "multifd-bytes": 0, "pages-per-second": 40610, "downtime-bytes": 391620, "page-size": 4096, "remaining": 0, "postcopy-bytes": 0, "mbps": 1097.85, "transferred": 84188712, "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 83797092, "duplicate": 45180, "dirty-pages-rate": 0, "skipped": 0, "normal-bytes": 83243008, "normal": 20323}}"#;

    #[test]
    fn a_completed_reply_is_read_field_by_field() {
        let v: Value = serde_json::from_str(COMPLETED).unwrap();
        let m = MigrationInfo::from_value(&v);
        assert_eq!(m.status.as_deref(), Some("completed"));
        assert_eq!(m.downtime, Some(24));
        assert_eq!(m.total_time, Some(612));
        let ram = m.ram.unwrap();
        assert_eq!(ram.transferred, Some(84188712));
        assert_eq!(ram.dirty_sync_count, Some(3));
        assert_eq!(ram.mbps, Some(1097.85));
        assert!(MigrationInfo::from_value(&v).is_finished());
    }

    #[test]
    fn odd_replies_keep_what_can_be_read() {
        let v: Value = serde_json::from_str(
            r#"{"status": "wait-unplug-v2", "total-time": "soon", "downtime": 7, "ram": 5}"#,
        )
        .unwrap();
        let m = MigrationInfo::from_value(&v);
        assert_eq!(m.status.as_deref(), Some("wait-unplug-v2"));
        assert_eq!(m.total_time, None);
        assert_eq!(m.downtime, Some(7));
        assert_eq!(m.ram, None);
        assert!(!m.is_finished());
        assert_eq!(
            MigrationInfo::from_value(&Value::Null),
            MigrationInfo::default()
        );
    }

    #[test]
    fn event_timestamps_become_nanoseconds() {
        let v: Value = serde_json::from_str(
            r#"{"timestamp": {"seconds": 1700000000, "microseconds": 123456}, "event": "STOP"}"#,
        )
        .unwrap();
        assert_eq!(event_timestamp_ns(&v), Some(1_700_000_000_123_456_000));
        assert_eq!(event_timestamp_ns(&Value::Null), None);
    }

    #[test]
    fn an_event_timestamp_out_of_range_is_none_not_an_overflow() {
        // Found by fuzz/fuzz_targets/qmp.rs: seconds * 10^9 overflowed.
        let v: Value = serde_json::from_str(
            r#"{"data":{"pass":1},"evefnt":"MIG*RATION_PASS","timestamp":{"micr=oseconds":779732,"seconds":17955790228}}"#,
        )
        .unwrap();
        assert_eq!(event_timestamp_ns(&v), None);
        let v = serde_json::json!({"timestamp": {"seconds": 17955790228i64, "microseconds": 0}});
        assert_eq!(event_timestamp_ns(&v), None);
        let v = serde_json::json!({"timestamp": {"seconds": i64::MIN, "microseconds": i64::MIN}});
        assert_eq!(event_timestamp_ns(&v), None);
        // The product overflows on its own, the sum does not.
        let v = serde_json::json!({"timestamp": {"seconds": 9_300_000_000i64, "microseconds": -1_000_000_000_000_000i64}});
        assert_eq!(event_timestamp_ns(&v), Some(8_300_000_000_000_000_000));
    }
}
