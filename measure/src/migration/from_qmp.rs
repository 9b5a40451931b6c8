//! Markers and QEMU's statistics from what a QMP backend recorded: the
//! events of both sides, the source's `query-migrate` samples and its last
//! reading. Pure; the local backend calls it when it builds a record, and
//! the bundle loader calls it for bundles written before markers existed,
//! so both give the same markers.

use crate::migration::marker::{Marker, MarkerKind, MarkerSource, HOST_CLOCK};
use crate::migration::record::{HypervisorStats, MigrationRecord, SideEvent};

/// QMP event timestamps have microsecond resolution.
const QMP_EVENT_UNCERTAINTY_NS: i64 = 1_000;

fn event_marker(e: &SideEvent, kind: MarkerKind, pass: Option<u32>) -> Option<Marker> {
    Some(Marker {
        kind,
        pass,
        t_ns: e.event.qemu_ts_ns?,
        clock: HOST_CLOCK.into(),
        uncertainty_ns: QMP_EVENT_UNCERTAINTY_NS,
        source: MarkerSource::QmpEvent,
    })
}

fn is_completed(e: &SideEvent) -> bool {
    e.event.event == "MIGRATION"
        && e.event.data.get("status").and_then(|s| s.as_str()) == Some("completed")
}

/// The markers of one migration from its QMP events and the harness's
/// `migrate` time, in time order: requested (`migrate` sent), each source
/// `MIGRATION_PASS` (the first also ends setup), source `STOP`, source
/// `MIGRATION` `completed`, destination `RESUME`. Only the first of each
/// kind counts (a QEMU that stops twice is still stopped at the first).
pub fn markers(migrate_cmd_ns: Option<i64>, events: &[SideEvent]) -> Vec<Marker> {
    let mut out = Vec::new();
    if let Some(t) = migrate_cmd_ns {
        out.push(Marker {
            kind: MarkerKind::MigrationRequested,
            pass: None,
            t_ns: t,
            clock: HOST_CLOCK.into(),
            uncertainty_ns: 0,
            source: MarkerSource::Harness,
        });
    }
    let side = |s: &'static str| move |e: &&SideEvent| e.side == s;
    let passes: Vec<Marker> = events
        .iter()
        .filter(side("source"))
        .filter(|e| e.event.event == "MIGRATION_PASS")
        .filter_map(|e| {
            let n = u32::try_from(e.event.data.get("pass")?.as_u64()?).ok()?;
            event_marker(e, MarkerKind::Pass, Some(n))
        })
        .collect();
    if let Some(p) = passes.iter().min_by_key(|m| m.t_ns) {
        out.push(Marker {
            kind: MarkerKind::SetupDone,
            pass: None,
            ..p.clone()
        });
    }
    out.extend(passes);
    let once = [
        ("source", MarkerKind::SourceStopped),
        ("source", MarkerKind::RamCompleted),
        ("destination", MarkerKind::DestinationResumed),
    ];
    for (s, kind) in once {
        let hit = events.iter().filter(side(s)).find(|e| match kind {
            MarkerKind::SourceStopped => e.event.event == "STOP",
            MarkerKind::RamCompleted => is_completed(e),
            _ => e.event.event == "RESUME",
        });
        out.extend(hit.and_then(|e| event_marker(e, kind, None)));
    }
    out.extend(mirror_markers(events));
    out.sort_by_key(|m| (m.t_ns, m.kind));
    out
}

/// The storage steps only the harness saw: every mirror actively synced,
/// and `cont` sent once the mirrors completed and the NBD server stopped.
fn storage_harness_markers(m: &MigrationRecord) -> Vec<Marker> {
    let Some(s) = &m.storage else {
        return Vec::new();
    };
    [
        (s.actively_synced_ns, MarkerKind::MirrorActivelySynced),
        (s.cont_ns, MarkerKind::PlatformCleanupDone),
    ]
    .into_iter()
    .filter_map(|(t, kind)| {
        Some(Marker {
            kind,
            pass: None,
            t_ns: t?,
            clock: HOST_CLOCK.into(),
            uncertainty_ns: 0,
            source: MarkerSource::Harness,
        })
    })
    .collect()
}

/// A disk mirror's job, by the name it is given: `mirror-<drive>`
/// (qemu-server's, and the lab's), `drive-<alias>` (libvirt's).
fn is_mirror_job(e: &SideEvent) -> bool {
    let id = e
        .event
        .data
        .get("id")
        .or_else(|| e.event.data.get("device"));
    e.side == "source"
        && id
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.starts_with("mirror-") || s.starts_with("drive-"))
}

/// The source's block-job events as markers: the first mirror running,
/// the last one ready (then every one is), the last one completed.
fn mirror_markers(events: &[SideEvent]) -> Vec<Marker> {
    let mirror =
        |name: &'static str| move |e: &&SideEvent| e.event.event == name && is_mirror_job(e);
    let started = events
        .iter()
        .filter(mirror("JOB_STATUS_CHANGE"))
        .find(|e| e.event.data.get("status").and_then(|s| s.as_str()) == Some("running"));
    let ready = events.iter().rev().find(mirror("BLOCK_JOB_READY"));
    let completed = events.iter().rev().find(mirror("BLOCK_JOB_COMPLETED"));
    [
        (started, MarkerKind::MirrorStarted),
        (ready, MarkerKind::MirrorReady),
        (completed, MarkerKind::MirrorCompleted),
    ]
    .into_iter()
    .filter_map(|(e, kind)| event_marker(e?, kind, None))
    .collect()
}

/// QEMU's statistics from the source's last `query-migrate` reading, its
/// samples and its pass events.
pub fn hypervisor_stats(m: &MigrationRecord) -> HypervisorStats {
    let info = m.final_info.clone().unwrap_or_default();
    let ram = info.ram.clone().unwrap_or_default();
    let passes_events = m
        .events
        .iter()
        .filter(|e| e.side == "source" && e.event.event == "MIGRATION_PASS")
        .filter_map(|e| e.event.data.get("pass").and_then(serde_json::Value::as_i64))
        .max();
    let expected = m.samples.iter().rev().find_map(|s| {
        s.info
            .expected_downtime
            .filter(|_| s.info.status.as_deref() == Some("active"))
    });
    let dirty_rate_mib_s = m.samples.iter().rev().find_map(|s| {
        let ram = s.info.ram.as_ref()?;
        let rate = ram.dirty_pages_rate.filter(|&r| r > 0)?;
        Some(rate as f64 * ram.page_size.unwrap_or(4096) as f64 / 1048576.0)
    });
    HypervisorStats {
        dirty_rate_mib_s,
        total_time_ms: info.total_time.map(|v| v as f64),
        downtime_ms: info.downtime.map(|v| v as f64),
        downtime_note: None,
        setup_time_ms: info.setup_time.map(|v| v as f64),
        transferred_bytes: ram.transferred,
        passes: passes_events.or(ram.dirty_sync_count),
        mbps: ram.mbps,
        expected_downtime_ms: expected.map(|v| v as f64),
    }
}

/// QEMU's downtime read off its own events, ms: from the source's `STOP`
/// to its `MIGRATION` `completed`, the two moments between which QEMU
/// counts its `downtime` (it sets the status right after computing it).
/// On the local lab's split-gap fixture this gives 35.3 and 68.4 ms where
/// `query-migrate` said 36 and 69 (QEMU rounds to whole ms and starts its
/// count a moment before the event is stamped).
pub fn downtime_from_events(events: &[SideEvent]) -> Option<f64> {
    let source = |e: &&SideEvent| e.side == "source";
    let stop = events
        .iter()
        .filter(source)
        .find(|e| e.event.event == "STOP")?;
    let done = events.iter().filter(source).find(|e| is_completed(e))?;
    let (a, b) = (stop.event.qemu_ts_ns?, done.event.qemu_ts_ns?);
    (b >= a).then(|| (b - a) as f64 / 1e6)
}

/// Fills in the markers and QEMU's statistics of a QMP backend's record
/// where they are missing (a bundle written before they were stored).
pub fn complete(m: &mut MigrationRecord) {
    if m.markers.is_empty() {
        m.markers = markers(m.migrate_cmd_ns, &m.events);
        m.markers.extend(storage_harness_markers(m));
        m.markers.sort_by_key(|x| (x.t_ns, x.kind));
    }
    if m.hypervisor.is_none() && (m.final_info.is_some() || !m.events.is_empty()) {
        m.hypervisor = Some(hypervisor_stats(m));
    }
}
