//! One repetition's summary: QEMU's, the host's, the platform's, the
//! client's, the guest's and the streams' views of one migration, computed
//! from its record, its markers and the probe's record.

use crate::migration::marker::{interval, MarkerKind};
pub use crate::migration::record::HypervisorStats;
use crate::migration::record::{PlatformStats, RepRecord, RepStatus};
use crate::ms;
use crate::probe::gaps::{analyze, GapSummary};
use crate::probe::guest_clock::guest_clock_offset;
use crate::probe::record::ProbeRecord;
use crate::timeline::{rep_timeline, OutageBreakdown};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// QEMU's own view of a migration in a summary (the record's
/// [`HypervisorStats`]).
pub type QemuView = HypervisorStats;

/// The host's view: the backend's markers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostView {
    /// Source stopped to destination resumed, by the backend's markers
    /// (QEMU's `STOP` and `RESUME` event timestamps in the lab: one host
    /// clock), ms. The guest's CPUs run nowhere in this interval.
    pub stop_to_resume_ms: Option<f64>,
    /// How far off `stop_to_resume_ms` may be: the two markers'
    /// uncertainties added (µs for QMP events, seconds for a task log), ms.
    #[serde(default)]
    pub stop_to_resume_uncertainty_ms: Option<f64>,
    /// `migrate` command to the harness seeing the end, ms.
    pub command_to_end_ms: Option<f64>,
}

/// The client's view: the probe stream, within this repetition's window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientView {
    /// Largest gap between consecutive probe replies (kernel receive
    /// timestamps), ms: downtime as a user of the guest sees it.
    pub max_gap_ms: Option<f64>,
    /// Longest outage, ms: reply gaps over the threshold joined until
    /// replies flow again for the recovery span, so a reply held in a
    /// queue through the pause does not split it (definition in
    /// `crate::probe::gaps`).
    #[serde(default)]
    pub max_outage_ms: Option<f64>,
    /// When the longest outage began (host ns).
    #[serde(default)]
    pub max_outage_start_ns: Option<i64>,
    /// When it ended (host ns).
    #[serde(default)]
    pub max_outage_end_ns: Option<i64>,
    /// Largest client-to-guest gap, ms.
    pub max_forward_gap_ms: Option<f64>,
    /// When the largest gap began and ended (host ns).
    pub max_gap_start_ns: Option<i64>,
    /// End of the largest gap (host ns).
    pub max_gap_end_ns: Option<i64>,
    /// Probes sent in the window that got no reply.
    pub lost_probes: Option<u64>,
    /// Of those, lost on the way to the guest.
    pub lost_forward: Option<u64>,
    /// Of those, lost on the way back.
    pub lost_return: Option<u64>,
    /// Probes sent in the window.
    pub probes_sent: Option<u64>,
    /// Gaps longer than the threshold.
    pub gaps_over_threshold: Option<u64>,
    /// The probe interval used, ms.
    pub probe_interval_ms: Option<f64>,
    /// Whether the prober itself fell behind schedule in the window.
    pub sender_late: Option<u64>,
    /// RFC 3550 interarrival jitter of the replies in the window, ms.
    pub jitter_ms: Option<f64>,
    /// Median round-trip time in the window, ms.
    pub rtt_p50_ms: Option<f64>,
    /// Largest gap between consecutive replies of the ICMP echo stream,
    /// answered by the guest's kernel rather than the agent, ms.
    #[serde(default)]
    pub icmp_max_gap_ms: Option<f64>,
    /// The ICMP stream's longest outage, by the same definition as
    /// `max_outage_ms`, ms: how long the guest's kernel did not answer.
    #[serde(default)]
    pub icmp_outage_ms: Option<f64>,
    /// When the ICMP stream's longest outage began (host ns).
    #[serde(default)]
    pub icmp_outage_start_ns: Option<i64>,
    /// When it ended: the kernel answering again (host ns).
    #[serde(default)]
    pub icmp_outage_end_ns: Option<i64>,
    /// `max_outage_end_ns - icmp_outage_end_ns`: how much later the service
    /// (the agent's reflector) was back than the guest's kernel, ms; only
    /// when the two outages overlap (else they are not the same event).
    #[serde(default)]
    pub service_lag_ms: Option<f64>,
}

/// The guest's own view, from the agent's reports around the repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GuestView {
    /// The swept parameter's value, when the scenario sweeps one.
    pub sweep_value: Option<serde_json::Value>,
    /// Dirty rate the agent achieved between its reports just before and
    /// after the migration (pages written × 4 KiB over the agent's elapsed
    /// time), MiB/s.
    pub dirty_rate_mib_s: Option<f64>,
    /// The dirty workload's target, MiB/s (0 = as fast as it can).
    pub dirty_target_mib_s: Option<f64>,
    /// Pages whose content did not verify after the migration: memory
    /// corruption. 0 for a clean migration.
    pub corrupted_pages: Option<u64>,
    /// Disk blocks whose content did not verify after the migration (the
    /// disk workload's check): a lost, stale or torn write. 0 when clean.
    #[serde(default)]
    pub corrupted_blocks: Option<u64>,
    /// Whether the host's own read of the disk image agreed with the
    /// agent's table of what it wrote ([`crate::migration::record::HostDiskCheck`]).
    #[serde(default)]
    pub host_disk_check_agrees: Option<bool>,
    /// Largest jump of the guest's CLOCK_MONOTONIC beyond its loop's
    /// sleep during the repetition, ms. Guest clocks usually stop while
    /// the VM is stopped, so this is expected to hide the pause.
    pub max_monotonic_gap_ms: Option<f64>,
    /// The same for CLOCK_REALTIME, ms.
    pub max_realtime_gap_ms: Option<f64>,
    /// The guest's CLOCK_REALTIME minus the client's before the migration,
    /// from the reflector's timestamps (the fastest exchange between the
    /// window's start and `migrate`), ms.
    #[serde(default)]
    pub clock_offset_before_ms: Option<f64>,
    /// The same after RESUME (to the window's end), ms.
    #[serde(default)]
    pub clock_offset_after_ms: Option<f64>,
    /// `before - after`: how far the guest's own clock fell behind across
    /// the migration (it stops while the VM is paused), ms, within
    /// ± `clock_uncertainty_ms`.
    #[serde(default)]
    pub clock_fell_behind_ms: Option<f64>,
    /// The two estimates' uncertainties added, ms.
    #[serde(default)]
    pub clock_uncertainty_ms: Option<f64>,
}

/// `stream.rtp` of a repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RtpView {
    /// Largest gap between consecutive packet arrivals, ms.
    pub max_gap_ms: Option<f64>,
    /// Packets lost (extended sequence numbers).
    pub lost_packets: Option<u64>,
    /// Packets received.
    pub received_packets: Option<u64>,
    /// Freezes of the picture under the playout model.
    pub freezes: Option<u64>,
    /// Their total, ms.
    pub freeze_total_ms: Option<f64>,
    /// The longest, ms.
    pub freeze_longest_ms: Option<f64>,
    /// The longest freeze measured from the last picture shown before it to
    /// the next (`end - picture_since`): the picture's age at its worst,
    /// which is what to compare with the probe's gap, ms.
    pub picture_stale_max_ms: Option<f64>,
    /// When the picture of that worst freeze was shown (client ns).
    pub picture_stale_since_ns: Option<i64>,
    /// When the next new picture was due (client ns).
    pub picture_stale_until_ns: Option<i64>,
    /// RFC 3550 interarrival jitter, ms.
    pub jitter_ms: Option<f64>,
    /// Frames whose every packet arrived.
    pub frames_complete: Option<u64>,
    /// Frames that arrived in part.
    pub frames_incomplete: Option<u64>,
    /// Frames of which nothing arrived.
    pub frames_lost: Option<u64>,
    /// Complete frames that arrived after their playout time.
    pub frames_late: Option<u64>,
    /// Largest interval between arrivals of consecutive complete frames, ms.
    pub max_frame_gap_ms: Option<f64>,
    /// Frames the H.264 decoder accepted (of those that arrived at all).
    pub decoder_accepted: Option<u64>,
    /// Frames it rejected.
    pub decoder_rejected: Option<u64>,
}

/// `stream.http` of a repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpView {
    /// Player stalls overlapping the window.
    pub stalls: Option<u64>,
    /// Stall time inside the window, ms.
    pub stall_total_ms: Option<f64>,
    /// The TCP connection did not break in the window.
    pub connection_survived: Option<bool>,
    /// When it broke, if it did (client ns).
    pub broke_ns: Option<i64>,
    /// Break to the resumed download, ms.
    pub reconnect_ms: Option<f64>,
    /// Bytes downloaded in the window.
    pub bytes: Option<u64>,
    /// Largest gap between reads of the download in the window, ms.
    pub max_read_gap_ms: Option<f64>,
}

/// `stream` of a repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamView {
    /// The RTP stream, when the scenario has one.
    pub rtp: Option<RtpView>,
    /// The HTTP stream, when the scenario has one.
    pub http: Option<HttpView>,
}

/// The storage migration's view: what the disk mirror cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StorageView {
    /// `local` (mirrored) or `shared` (nothing copied).
    pub storage: Option<String>,
    /// The disks' size, bytes.
    pub disk_bytes: Option<u64>,
    /// Bytes the mirrors copied (at least the disks' size: rewrites are
    /// copied again).
    pub bytes_mirrored: Option<u64>,
    /// Mirror started to every mirror ready, ms.
    pub time_to_ready_ms: Option<f64>,
    /// Bytes copied by the time every mirror was ready over that time, MiB/s.
    pub mirror_throughput_mib_s: Option<f64>,
    /// Mirror ready to actively synced (`write-blocking`), ms.
    pub ready_to_synced_ms: Option<f64>,
    /// RAM completed (source side) to the destination resuming the guest,
    /// ms: the mirrors' completion, the NBD server's stop and the platform's
    /// cleanup, all while the guest is paused. Proxmox's log does not
    /// report it.
    pub ram_completed_to_resume_ms: Option<f64>,
}

/// A shaped link's view: its shape beside what it carried during the
/// migration, and QEMU's own limit, reported apart.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkView {
    /// `migration` or `client`.
    pub link: String,
    /// The link's rate, Mbit/s (`None`: unlimited).
    pub rate_mbit: Option<f64>,
    /// One-way delay, ms.
    pub delay_ms: Option<f64>,
    /// QEMU's `max-bandwidth`, Mbit/s (the migration link).
    pub qemu_limit_mbit: Option<f64>,
    /// Mean rate the link carried from the migration's start to its end,
    /// the busier direction, Mbit/s (whole frames).
    pub throughput_mbit: Option<f64>,
    /// The busiest 100 ms bin, Mbit/s.
    pub peak_mbit: Option<f64>,
    /// Frames the link had dropped by the migration's end, since it was
    /// set up.
    pub dropped_frames: Option<u64>,
}

/// One repetition in `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepSummary {
    /// 1-based.
    pub repetition: u32,
    /// `completed`, `failed` or `interrupted`.
    pub status: RepStatus,
    /// `a->b` or `b->a`.
    pub direction: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The repetition's wall time including pauses, ms.
    pub wall_time_ms: f64,
    /// QEMU's view.
    pub qemu: HypervisorStats,
    /// The host's view.
    pub host: HostView,
    /// The platform's own view (libvirt's, Proxmox's), when the backend is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformStats>,
    /// The client's view.
    pub client: ClientView,
    /// The guest's view.
    #[serde(default)]
    pub guest: GuestView,
    /// The video streams, as their viewer saw them (`crate::stream::views`).
    #[serde(default)]
    pub stream: StreamView,
    /// The storage migration, when the VM has a disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageView>,
    /// The shaped links (`[link.*]`), when the lab shaped any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkView>,
    /// The client's longest outage taken apart along the migration's
    /// phases (see [`crate::timeline`]), with QEMU's downtime beside it.
    #[serde(default)]
    pub outage: Option<OutageBreakdown>,
    /// Why a view is `null`, by its dotted name (`host.stop_to_resume_ms`:
    /// "no destination-resumed marker"), for the values a backend could
    /// not measure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_measured: BTreeMap<String, String>,
}

impl RepSummary {
    /// A repetition with every section present and every value empty: the
    /// shape of a repetition in `summary.json` (its dotted leaf paths are
    /// the metrics a scenario's `[assert]` may name).
    pub fn example() -> Self {
        Self {
            repetition: 1,
            status: RepStatus::Completed,
            direction: "a->b".into(),
            error: None,
            wall_time_ms: 0.0,
            qemu: QemuView::default(),
            host: HostView::default(),
            platform: Some(PlatformStats::default()),
            client: ClientView::default(),
            guest: GuestView::default(),
            stream: StreamView {
                rtp: Some(RtpView::default()),
                http: Some(HttpView::default()),
            },
            storage: Some(StorageView::default()),
            links: Vec::new(),
            outage: Some(OutageBreakdown::default()),
            not_measured: BTreeMap::new(),
        }
    }
}

/// Source stopped to destination resumed, by the backend's markers, ns,
/// with its uncertainty.
pub fn stop_to_resume_ns(rep: &RepRecord) -> Option<(i64, i64)> {
    interval(
        &rep.migration.markers,
        MarkerKind::SourceStopped,
        MarkerKind::DestinationResumed,
    )
}

fn client_view(g: &GapSummary) -> ClientView {
    ClientView {
        max_gap_ms: Some(g.max_gap_ms),
        max_outage_ms: Some(g.max_outage_ms),
        max_outage_start_ns: g.max_outage.as_ref().map(|x| x.start_ns),
        max_outage_end_ns: g.max_outage.as_ref().map(|x| x.end_ns),
        max_forward_gap_ms: Some(g.max_forward_gap_ms),
        max_gap_start_ns: g.max_gap.as_ref().map(|x| x.start_ns),
        max_gap_end_ns: g.max_gap.as_ref().map(|x| x.end_ns),
        lost_probes: Some(g.lost),
        lost_forward: Some(g.lost_forward),
        lost_return: Some(g.lost_return),
        probes_sent: Some(g.probes_sent),
        gaps_over_threshold: Some(g.gaps.len() as u64),
        probe_interval_ms: Some(g.interval_ms),
        sender_late: Some(g.sender_late),
        jitter_ms: Some(g.jitter_ms),
        rtt_p50_ms: (g.rtt_ms.samples > 0).then_some(g.rtt_ms.p50),
        // The ICMP stream's, joined by `join_icmp`.
        ..ClientView::default()
    }
}

fn guest_view(rep: &RepRecord) -> GuestView {
    let Some(g) = &rep.guest else {
        return GuestView::default();
    };
    let dirty = |r: &Option<wire::control::AgentReport>| {
        r.as_ref().and_then(|r| r.workloads.get("dirty").cloned())
    };
    let (b, a) = (dirty(&g.before), dirty(&g.after));
    let dirty_rate_mib_s = match (&b, &a) {
        (Some(b), Some(a)) if a.elapsed_ms > b.elapsed_ms => Some(
            a.pages_written.saturating_sub(b.pages_written) as f64 * 4096.0
                / 1048576.0
                / ((a.elapsed_ms - b.elapsed_ms) as f64 / 1000.0),
        ),
        _ => None,
    };
    let seen_before = g
        .before
        .as_ref()
        .and_then(|r| r.clock.gaps.iter().map(|x| x.realtime_ns).max())
        .unwrap_or(i64::MIN);
    let new_gaps: Vec<&wire::control::ClockGap> = g
        .after
        .as_ref()
        .map(|r| {
            r.clock
                .gaps
                .iter()
                .filter(|x| x.realtime_ns > seen_before)
                .collect()
        })
        .unwrap_or_default();
    let max_of = |f: fn(&wire::control::ClockGap) -> f64| {
        g.after
            .as_ref()
            .map(|_| new_gaps.iter().map(|x| f(x)).fold(0.0, f64::max))
    };
    GuestView {
        sweep_value: g
            .sweep_value
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok()),
        dirty_rate_mib_s,
        dirty_target_mib_s: a.as_ref().and_then(|a| a.target_mib_s),
        corrupted_pages: g.integrity.as_ref().map(|i| i.corrupted_pages),
        corrupted_blocks: g.disk_integrity.as_ref().map(|i| i.corrupted_pages),
        host_disk_check_agrees: g.disk_host_check.as_ref().map(|c| c.agrees),
        max_monotonic_gap_ms: max_of(|x| x.monotonic_gap_ms),
        max_realtime_gap_ms: max_of(|x| x.realtime_gap_ms),
        ..GuestView::default()
    }
}

/// The storage view from the record's disks, mirror samples and markers.
fn storage_view(rep: &RepRecord) -> Option<StorageView> {
    let m = &rep.migration;
    let s = m.storage.as_ref()?;
    let between = |a, b| m.marker_ns(a).zip(m.marker_ns(b)).map(|(a, b)| ms(b - a));
    let ready_ns = m.marker_ns(MarkerKind::MirrorReady);
    let copied_by_ready: Option<u64> = ready_ns.map(|t| {
        let mut by_job = BTreeMap::new();
        for x in s.samples.iter().filter(|x| x.host_ns <= t) {
            by_job.insert(x.job.clone(), x.offset);
        }
        if by_job.is_empty() {
            // No samples (libvirt ran the mirror): the ready events say.
            for e in m
                .events
                .iter()
                .filter(|e| e.side == "source" && e.event.event == "BLOCK_JOB_READY")
            {
                let job = e.event.data["device"].as_str().unwrap_or("").to_string();
                by_job.insert(job, e.event.data["offset"].as_u64().unwrap_or(0));
            }
        }
        by_job.values().sum()
    });
    let mirrored: Vec<u64> = s.disks.iter().filter_map(|d| d.mirrored_bytes).collect();
    let time_to_ready_ms = between(MarkerKind::MirrorStarted, MarkerKind::MirrorReady);
    Some(StorageView {
        storage: Some(s.storage.clone()),
        disk_bytes: Some(s.disks.iter().map(|d| d.size_bytes).sum()),
        bytes_mirrored: (!mirrored.is_empty()).then(|| mirrored.iter().sum()),
        time_to_ready_ms,
        mirror_throughput_mib_s: copied_by_ready
            .zip(time_to_ready_ms)
            .filter(|(b, t)| *b > 0 && *t > 0.0)
            .map(|(b, t)| b as f64 / 1048576.0 / (t / 1000.0)),
        ready_to_synced_ms: between(MarkerKind::MirrorReady, MarkerKind::MirrorActivelySynced),
        ram_completed_to_resume_ms: between(
            MarkerKind::RamCompleted,
            MarkerKind::DestinationResumed,
        ),
    })
}

/// A shaped link's view from its record.
fn link_view(l: &crate::migration::record::LinkRecord) -> LinkView {
    let secs = l.bins.len() as f64 * l.bin_ns as f64 / 1e9;
    let (ab, ba): (u64, u64) = l
        .bins
        .iter()
        .fold((0, 0), |(a, b), x| (a + x.a_to_b, b + x.b_to_a));
    let mbit = |bytes: f64, s: f64| (s > 0.0).then(|| bytes * 8.0 / s / 1e6);
    let peak = l.bins.iter().map(|x| x.a_to_b.max(x.b_to_a)).max();
    LinkView {
        link: l.link.clone(),
        rate_mbit: l.rate_mbit,
        delay_ms: Some(l.delay_ms),
        qemu_limit_mbit: l.qemu_limit_mbit,
        throughput_mbit: mbit(ab.max(ba) as f64, secs),
        peak_mbit: peak.and_then(|p| mbit(p as f64, l.bin_ns as f64 / 1e9)),
        dropped_frames: Some(l.dropped_frames),
    }
}

/// Joins the ICMP stream's view of the repetition's window to its client
/// view: the kernel's outage beside the reflector's, measured by the same
/// [`analyze`] (one definition of an outage), and the service's lag behind
/// the kernel. Without an ICMP record (a served probe, an older bundle)
/// the fields stay `null`.
pub fn join_icmp(
    s: &mut RepSummary,
    rep: &RepRecord,
    icmp: Option<&ProbeRecord>,
    gap_threshold_ns: i64,
) {
    let Some(icmp) = icmp else {
        return;
    };
    let g = analyze(
        icmp,
        Some((rep.window_start_ns, rep.window_end_ns)),
        gap_threshold_ns,
    );
    let c = &mut s.client;
    if g.max_gap.is_some() {
        c.icmp_max_gap_ms = Some(g.max_gap_ms);
    }
    let Some(o) = g.max_outage else {
        s.not_measured.insert(
            "client.icmp_outage_ms".into(),
            "fewer than two ICMP echo replies in the window".into(),
        );
        return;
    };
    c.icmp_outage_ms = Some(o.len_ms);
    c.icmp_outage_start_ns = Some(o.start_ns);
    c.icmp_outage_end_ns = Some(o.end_ns);
    match c.max_outage_start_ns.zip(c.max_outage_end_ns) {
        Some((a, b)) if a < o.end_ns && o.start_ns < b => {
            c.service_lag_ms = Some(ms(b - o.end_ns));
        }
        Some(_) => {
            s.not_measured.insert(
                "client.service_lag_ms".into(),
                "the ICMP stream's longest outage and the reflector's do not overlap".into(),
            );
        }
        None => {}
    }
}

/// Summarises one repetition.
pub fn summarize_rep(
    rep: &RepRecord,
    probe: Option<&ProbeRecord>,
    announces: &[i64],
    gap_threshold_ns: i64,
) -> RepSummary {
    let m = &rep.migration;
    let stop_to_resume = stop_to_resume_ns(rep);
    let gaps = probe.map(|p| {
        analyze(
            p,
            Some((rep.window_start_ns, rep.window_end_ns)),
            gap_threshold_ns,
        )
    });
    let client = gaps.as_ref().map(client_view).unwrap_or_default();
    let outage = rep_timeline(rep, probe, gaps.as_ref(), announces, gap_threshold_ns).outage;
    let mut guest = guest_view(rep);
    if let Some(p) = probe {
        let resume = m.marker_ns(MarkerKind::DestinationResumed);
        let before = m
            .marker_ns(MarkerKind::MigrationRequested)
            .and_then(|t| guest_clock_offset(p, rep.window_start_ns, t));
        let after = resume.and_then(|t| guest_clock_offset(p, t, rep.window_end_ns));
        guest.clock_offset_before_ms = before.map(|e| ms(e.offset_ns));
        guest.clock_offset_after_ms = after.map(|e| ms(e.offset_ns));
        if let (Some(b), Some(a)) = (before, after) {
            guest.clock_fell_behind_ms = Some(ms(b.offset_ns - a.offset_ns));
            guest.clock_uncertainty_ms = Some(ms(b.uncertainty_ns + a.uncertainty_ns));
        }
    }
    RepSummary {
        repetition: rep.repetition,
        status: m.status,
        direction: format!("{}->{}", m.source, m.destination),
        error: m.error.clone(),
        wall_time_ms: ms(rep.window_end_ns - rep.window_start_ns),
        qemu: m.hypervisor.clone().unwrap_or_default(),
        host: HostView {
            stop_to_resume_ms: stop_to_resume.map(|(d, _)| ms(d)),
            stop_to_resume_uncertainty_ms: stop_to_resume.map(|(_, u)| ms(u)),
            command_to_end_ms: m
                .marker_ns(MarkerKind::MigrationRequested)
                .zip(m.finished_ns)
                .map(|(a, b)| ms(b - a)),
        },
        platform: m.platform.clone(),
        client,
        guest,
        stream: StreamView::default(),
        storage: storage_view(rep),
        links: m.links.iter().map(link_view).collect(),
        outage,
        not_measured: not_measured(rep, probe.is_some()),
    }
}

/// The reasons for the views of `rep` that stay `null`.
fn not_measured(rep: &RepRecord, probed: bool) -> BTreeMap<String, String> {
    let m = &rep.migration;
    let mut out = BTreeMap::new();
    let stop = m.marker(MarkerKind::SourceStopped);
    let resume = m.marker(MarkerKind::DestinationResumed);
    let why = match (stop, resume) {
        (None, _) => Some("no source-stopped marker".to_string()),
        (_, None) => Some("no destination-resumed marker".to_string()),
        (Some(a), Some(b)) if a.clock != b.clock => Some(format!(
            "source-stopped is on clock {} and destination-resumed on {}",
            a.clock, b.clock
        )),
        _ => None,
    };
    if let Some(w) = why {
        out.insert("host.stop_to_resume_ms".into(), w);
    }
    if m.hypervisor.is_none() {
        out.insert(
            "qemu".into(),
            "the backend recorded no hypervisor statistics".into(),
        );
    }
    if !probed {
        out.insert("client".into(), "no probe record".into());
    }
    out
}
