//! What `virsh` prints about a migration: completed-job statistics,
//! domain events, and QEMU's own events relayed by the daemon.
//!
//! - `virsh domjobinfo --completed --keep-completed --rawstats DOM` prints
//!   `Job type: N` and then one `name: value` line per statistic
//!   ([`JobStats::parse_raw`]); the same statistics follow a
//!   `job-completed` event as tab-indented lines.
//! - `virsh event --all --loop --timestamp` prints one line per event,
//!   prefixed with the time virsh printed it (ms, UTC)
//!   ([`parse_events`]).
//! - `virsh qemu-monitor-event --loop` (without `--timestamp`) prints
//!   QEMU's own events with QEMU's µs timestamp: `event STOP at
//!   1796172542.961441 for domain 'vm': <null>` ([`parse_qemu_event`]).
//!
//! libvirt's completed-job `downtime` runs from the source's CPUs pausing
//! to the destination resuming them, computed on the destination, and
//! includes libvirt's own finish work; `downtime_net` leaves out the
//! control-flow handover between the daemons.

use crate::migration::qmp::QmpEvent;
use crate::migration::record::PlatformStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job statistic `virsh` printed: an integer, or text for the few
/// that are not (`operation` is a number too, in raw form).
pub type JobStats = BTreeMap<String, i64>;

/// Output of `virsh` that does not have the form its parser expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VirshOutputError(pub String);

/// Reads `domjobinfo --rawstats` output (or the tab-indented lines after
/// a `job-completed` event) into name → value. Lines that are not
/// `name: integer` are skipped, except that output with no statistic at
/// all is an error naming what virsh printed.
pub fn parse_job_stats(text: &str) -> Result<JobStats, VirshOutputError> {
    let mut stats = JobStats::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        let key = k.trim();
        if key.is_empty() || key.contains(' ') {
            continue; // `Job type: 3` and virsh's human labels
        }
        if let Ok(n) = v.trim().parse::<i64>() {
            stats.insert(key.to_string(), n);
        }
    }
    if stats.is_empty() {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(VirshOutputError(format!(
            "virsh printed no job statistics (first line: {first:?})"
        )));
    }
    Ok(stats)
}

/// What a libvirt domain event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// `lifecycle`: e.g. `Suspended Migrated`, `Resumed Migrated`,
    /// `Started Migrated`, `Stopped Migrated`.
    Lifecycle {
        /// The event (`Suspended`).
        event: String,
        /// Its detail (`Migrated`).
        detail: String,
    },
    /// `migration-iteration`: a pass over memory began.
    MigrationIteration {
        /// The pass number.
        iteration: u32,
    },
    /// `job-completed`, with the job's statistics.
    JobCompleted {
        /// The statistics that followed it.
        stats: JobStats,
    },
    /// Any other event, as printed.
    Other {
        /// Its name.
        name: String,
        /// The rest of the line.
        text: String,
    },
}

/// One domain event as `virsh event --timestamp` printed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// virsh's timestamp, ns since the epoch (ms resolution).
    pub t_ns: i64,
    /// The domain.
    pub domain: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Reads the output of `virsh event --all --loop --timestamp`. Lines that
/// are not events (virsh's own messages) are skipped; a `job-completed`
/// event takes the tab-indented statistic lines after it.
pub fn parse_events(text: &str) -> Vec<DomainEvent> {
    let mut out: Vec<DomainEvent> = Vec::new();
    for line in text.lines() {
        if line.starts_with('\t') {
            if let Some(EventKind::JobCompleted { stats }) = out.last_mut().map(|e| &mut e.kind) {
                if let Ok(s) = parse_job_stats(line) {
                    stats.extend(s);
                }
            }
            continue;
        }
        if let Some(e) = parse_event_line(line) {
            out.push(e);
        }
    }
    out
}

/// One line of `virsh event --timestamp`:
/// `2026-12-02 00:48:44.954+0000: event 'lifecycle' for domain 'vm': Suspended Migrated`.
pub fn parse_event_line(line: &str) -> Option<DomainEvent> {
    let (stamp, rest) = line.split_once(": event '")?;
    let t_ns = parse_virsh_timestamp(stamp)?;
    let (name, rest) = rest.split_once("' for domain '")?;
    let (domain, tail) = rest.split_once("':")?;
    let tail = tail.trim();
    let kind = match name {
        "lifecycle" => {
            let (event, detail) = tail.split_once(' ').unwrap_or((tail, ""));
            EventKind::Lifecycle {
                event: event.to_string(),
                detail: detail.trim().to_string(),
            }
        }
        "migration-iteration" => EventKind::MigrationIteration {
            iteration: tail
                .strip_prefix("iteration: '")?
                .trim_end_matches('\'')
                .parse()
                .ok()?,
        },
        "job-completed" => EventKind::JobCompleted {
            stats: JobStats::new(),
        },
        _ => EventKind::Other {
            name: name.to_string(),
            text: tail.to_string(),
        },
    };
    Some(DomainEvent {
        t_ns,
        domain: domain.to_string(),
        kind,
    })
}

/// `YYYY-MM-DD HH:MM:SS.mmm+0000` (virsh prints UTC) → ns since the epoch.
pub fn parse_virsh_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(' ')?;
    let (clock, zone) = time.split_at(time.find(['+', '-'])?);
    let zone_s = parse_zone(zone)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':');
    let h: i64 = c.next()?.parse().ok()?;
    let mi: i64 = c.next()?.parse().ok()?;
    let sec = c.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, "0"));
    let whole: i64 = whole.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || whole > 60 {
        return None;
    }
    let frac_ns = frac_to_ns(frac)?;
    let days = days_from_civil(y, mo, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + whole - zone_s;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

fn parse_zone(z: &str) -> Option<i64> {
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let digits = &z[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

fn frac_to_ns(frac: &str) -> Option<i64> {
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = frac.parse().ok()?;
    Some(n * 10_i64.pow(9 - frac.len() as u32))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One line of `virsh qemu-monitor-event --loop` (no `--timestamp`):
/// `event STOP at 1796172542.961441 for domain 'vm': <null>`. `host_rx_ns`
/// is when the harness read the line.
pub fn parse_qemu_event(line: &str, host_rx_ns: i64) -> Option<(String, QmpEvent)> {
    let rest = line.trim().strip_prefix("event ")?;
    let (name, rest) = rest.split_once(" at ")?;
    let (stamp, rest) = rest.split_once(" for domain '")?;
    let (domain, data) = rest.split_once("': ")?;
    let (secs, micros) = stamp.split_once('.')?;
    let secs: i64 = secs.parse().ok()?;
    let micros: i64 = micros.parse().ok().filter(|u| (0..1_000_000).contains(u))?;
    let data = match data.trim() {
        "<null>" => serde_json::Value::Null,
        text => serde_json::from_str(text).ok()?,
    };
    let ts = secs
        .checked_mul(1_000_000_000)?
        .checked_add(micros * 1000)?;
    Some((
        domain.to_string(),
        QmpEvent {
            event: name.to_string(),
            data,
            qemu_ts_ns: Some(ts),
            host_rx_ns,
        },
    ))
}

/// What the platform view of a libvirt migration says, from the
/// destination's completed-job statistics (where libvirt computes the
/// downtime), falling back to the source's; the disks' figures from the
/// source, which copies them.
pub fn platform_stats(source: Option<&JobStats>, destination: Option<&JobStats>) -> PlatformStats {
    let get = |k: &str| {
        destination
            .and_then(|s| s.get(k))
            .or_else(|| source.and_then(|s| s.get(k)))
            .copied()
    };
    PlatformStats {
        platform: "libvirt".into(),
        downtime_ms: get("downtime").map(|v| v as f64),
        downtime_source: get("downtime").map(|_| {
            "libvirt's completed-job downtime (domjobinfo --completed): from the source's CPUs pausing to the destination resuming them, computed on the destination, including libvirt's finish work".into()
        }),
        duration_ms: get("time_elapsed").map(|v| v as f64),
        ram_transferred_bytes: get("memory_processed"),
        // The source copies the disks (libvirt's NBD mirror); the
        // destination's completed job says 0 for them.
        disk_transferred_bytes: source
            .and_then(|s| s.get("disk_processed"))
            .copied()
            .or_else(|| get("disk_processed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_job_stats_are_read_and_labels_skipped() {
        let text = "Job type: 3\n\noperation: 4\ntime_elapsed: 851\ndowntime: 107\ndowntime_net: 105\nmemory_iteration: 3\n";
        let s = parse_job_stats(text).unwrap();
        assert_eq!(s.get("downtime"), Some(&107));
        assert_eq!(s.get("time_elapsed"), Some(&851));
        assert_eq!(s.len(), 5);
        let e = parse_job_stats("error: Requested operation is not valid: domain is not running\n")
            .unwrap_err();
        assert!(e.0.contains("domain is not running"), "{e}");
    }

    #[test]
    fn events_and_the_stats_after_job_completed_are_read() {
        let text =
            "2026-12-02 00:48:44.954+0000: event 'lifecycle' for domain 'vm': Suspended Migrated\n\
2026-12-02 00:48:44.510+0000: event 'migration-iteration' for domain 'vm': iteration: '2'\n\
2026-12-02 00:48:47.080+0000: event 'job-completed' for domain 'vm':\n\
\toperation: 5\n\tdowntime: 107\n\
garbage line\n";
        let ev = parse_events(text);
        assert_eq!(ev.len(), 3);
        // 2026-12-02 00:48:44.954 UTC: 20789 days after the epoch.
        assert_eq!(
            ev[0].t_ns,
            (20_789 * 86_400 + 48 * 60 + 44) * 1_000_000_000 + 954_000_000
        );
        assert_eq!(
            ev[0].kind,
            EventKind::Lifecycle {
                event: "Suspended".into(),
                detail: "Migrated".into()
            }
        );
        assert_eq!(ev[1].kind, EventKind::MigrationIteration { iteration: 2 });
        match &ev[2].kind {
            EventKind::JobCompleted { stats } => assert_eq!(stats.get("downtime"), Some(&107)),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn timestamps_honour_the_zone_and_reject_nonsense() {
        let utc = parse_virsh_timestamp("2026-12-02 00:00:00.000+0000").unwrap();
        let cet = parse_virsh_timestamp("2026-12-02 01:00:00.000+0100").unwrap();
        assert_eq!(utc, cet);
        assert_eq!(parse_virsh_timestamp("2026-13-02 00:00:00.000+0000"), None);
        assert_eq!(parse_virsh_timestamp("2026-12-02 00:00:00.000"), None);
        assert_eq!(parse_virsh_timestamp("x"), None);
    }

    #[test]
    fn qemu_events_keep_qemu_s_microsecond_stamp() {
        let (dom, e) =
            parse_qemu_event("event STOP at 1796172542.961441 for domain 'vm': <null>", 7).unwrap();
        assert_eq!(dom, "vm");
        assert_eq!(e.event, "STOP");
        assert_eq!(e.qemu_ts_ns, Some(1_796_172_542_961_441_000));
        let (_, p) = parse_qemu_event(
            "event MIGRATION_PASS at 1796172542.000001 for domain 'vm': {\"pass\":3}",
            7,
        )
        .unwrap();
        assert_eq!(p.data["pass"], 3);
        assert!(parse_qemu_event("event STOP at x for domain 'vm': <null>", 0).is_none());
        assert!(parse_qemu_event("event STOP at 1.5 for domain 'vm': {bad", 0).is_none());
    }

    #[test]
    fn the_platform_view_prefers_the_destination() {
        let src: JobStats = [
            ("downtime".to_string(), 90),
            ("time_elapsed".to_string(), 800),
        ]
        .into_iter()
        .collect();
        let dst: JobStats = [("downtime".to_string(), 107)].into_iter().collect();
        let p = platform_stats(Some(&src), Some(&dst));
        assert_eq!(p.downtime_ms, Some(107.0));
        assert_eq!(p.duration_ms, Some(800.0));
        assert!(platform_stats(None, None).downtime_source.is_none());
    }
}
