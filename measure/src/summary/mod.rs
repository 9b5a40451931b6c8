//! `summary.json` and `summary.csv`: every measure, defined once, computed
//! from raw records only (no I/O, no clock), so re-analysing a bundle gives
//! the same numbers.
//!
//! The schema is versioned by [`SCHEMA`]; `docs/summary.md` documents each
//! field. Missing measurements are `null`, never 0.

use crate::migration::record::{RepRecord, RepStatus};
use crate::ms;
use crate::probe::gaps::{analyze, GapSummary};
use crate::probe::guest_clock::guest_clock_offset;
use crate::probe::record::ProbeRecord;
use crate::timeline::{rep_timeline, OutageBreakdown};
use crate::verdict::{evaluate, AssertSpec, Verdict};
use serde::{Deserialize, Serialize};

/// Version tag of the summary format.
pub const SCHEMA: &str = "lmig-summary/1";

/// QEMU's own view of a migration (source side, `query-migrate`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QemuView {
    /// `total-time`: from `migrate` to completion, ms.
    pub total_time_ms: Option<f64>,
    /// `downtime`: source stop to completion, as QEMU measures it, ms.
    pub downtime_ms: Option<f64>,
    /// `setup-time`, ms.
    pub setup_time_ms: Option<f64>,
    /// `ram.transferred`, bytes.
    pub transferred_bytes: Option<i64>,
    /// Passes over memory: the highest `MIGRATION_PASS` seen, else
    /// `ram.dirty-sync-count`.
    pub passes: Option<i64>,
    /// `ram.mbps` at the end.
    pub mbps: Option<f64>,
    /// The last `expected-downtime` QEMU reported while active, ms.
    pub expected_downtime_ms: Option<f64>,
    /// The guest's dirty rate as QEMU measured it during the migration:
    /// the last non-zero `ram.dirty-pages-rate` × page size, MiB/s. QEMU
    /// updates it at bitmap syncs at least 1 s apart, counting distinct
    /// pages dirtied since the previous one.
    pub dirty_rate_mib_s: Option<f64>,
}

/// The host's view: QMP event times.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostView {
    /// Source `STOP` event to destination `RESUME` event, by QEMU's event
    /// timestamps (one host clock), ms. The guest's CPUs run nowhere in
    /// this interval.
    pub stop_to_resume_ms: Option<f64>,
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
    pub qemu: QemuView,
    /// The host's view.
    pub host: HostView,
    /// The client's view.
    pub client: ClientView,
    /// The guest's view.
    #[serde(default)]
    pub guest: GuestView,
    /// The video streams, as their viewer saw them (`crate::stream::views`).
    #[serde(default)]
    pub stream: StreamView,
    /// The client's longest outage taken apart along the migration's
    /// phases (see [`crate::timeline`]), with QEMU's downtime beside it.
    #[serde(default)]
    pub outage: Option<OutageBreakdown>,
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
            client: ClientView::default(),
            guest: GuestView::default(),
            stream: StreamView {
                rtp: Some(RtpView::default()),
                http: Some(HttpView::default()),
            },
            outage: Some(OutageBreakdown::default()),
        }
    }
}

/// How the timelines were put on one axis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClockAlignment {
    /// The client's clock minus the host's, ns.
    pub client_offset_ns: i64,
    /// How far off that offset may be, ns.
    pub client_uncertainty_ns: i64,
    /// How it was found.
    pub method: String,
    /// How the guest's clock is treated.
    pub guest: String,
}

impl ClockAlignment {
    /// The embedded lab: one host, one clock.
    pub fn shared_host_clock() -> Self {
        Self {
            client_offset_ns: 0,
            client_uncertainty_ns: 0,
            method: "the client namespace and QEMU read the same host CLOCK_REALTIME: QMP event times and probe kernel timestamps are on one axis, no offset to estimate".into(),
            guest: "untrusted (it stops while the VM is paused): never used for times on the axis; its offset from the client's clock is estimated from the reflector's timestamps (fastest exchange, NTP-style) before and after each migration, which says how far it fell behind (guest.clock_*)".into(),
        }
    }
}

/// After the last migration: is the guest still there?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FinalCheck {
    /// The agent answered its health check at the end.
    pub agent_answered: bool,
    /// Probe replies received after the last migration ended.
    pub replies_after_last_migration: u64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// [`SCHEMA`].
    pub schema: String,
    /// Scenario name.
    pub scenario: String,
    /// `complete`, `incomplete` (interrupted or aborted), or `failed` (the
    /// run could not start).
    pub run_status: String,
    /// The run's error, if it ended on one.
    pub error: Option<String>,
    /// `kvm` or `tcg`.
    pub acceleration: Option<String>,
    /// Count of repetitions per status.
    pub completed: u32,
    /// Repetitions that failed.
    pub failed: u32,
    /// Per repetition.
    pub repetitions: Vec<RepSummary>,
    /// Over the whole probe record.
    pub probe_overall: Option<GapSummary>,
    /// End-of-run check.
    pub final_check: Option<FinalCheck>,
    /// How host, client and guest times were aligned.
    #[serde(default)]
    pub clock: Option<ClockAlignment>,
    /// The scenario's `[assert]` checks, evaluated (absent without checks).
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

/// Source STOP to destination RESUME, by QEMU's timestamps.
pub fn stop_to_resume_ns(rep: &RepRecord) -> Option<i64> {
    let m = &rep.migration;
    let stop = m.event("source", "STOP")?.event.qemu_ts_ns?;
    let resume = m.event("destination", "RESUME")?.event.qemu_ts_ns?;
    Some(resume - stop)
}

fn qemu_view(rep: &RepRecord) -> QemuView {
    let m = &rep.migration;
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
    QemuView {
        dirty_rate_mib_s,
        total_time_ms: info.total_time.map(|v| v as f64),
        downtime_ms: info.downtime.map(|v| v as f64),
        setup_time_ms: info.setup_time.map(|v| v as f64),
        transferred_bytes: ram.transferred,
        passes: passes_events.or(ram.dirty_sync_count),
        mbps: ram.mbps,
        expected_downtime_ms: expected.map(|v| v as f64),
    }
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
        max_monotonic_gap_ms: max_of(|x| x.monotonic_gap_ms),
        max_realtime_gap_ms: max_of(|x| x.realtime_gap_ms),
        ..GuestView::default()
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
        let resume = m
            .event("destination", "RESUME")
            .and_then(|e| e.event.qemu_ts_ns);
        let before = m
            .migrate_cmd_ns
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
        qemu: qemu_view(rep),
        host: HostView {
            stop_to_resume_ms: stop_to_resume_ns(rep).map(ms),
            command_to_end_ms: m.migrate_cmd_ns.zip(m.finished_ns).map(|(a, b)| ms(b - a)),
        },
        client,
        guest,
        stream: StreamView::default(),
        outage,
    }
}

/// Replies received after the end of the last repetition's migration.
pub fn replies_after(probe: &ProbeRecord, after_ns: i64) -> u64 {
    probe.replies.iter().filter(|r| r.rx_ns > after_ns).count() as u64
}

/// Inputs of [`summarize`], all raw.
pub struct RunRecords<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// `kvm`/`tcg`, if the VM came up.
    pub acceleration: Option<&'a str>,
    /// Repetitions done.
    pub reps: &'a [RepRecord],
    /// The probe's record.
    pub probe: Option<&'a ProbeRecord>,
    /// Gap threshold, ns.
    pub gap_threshold_ns: i64,
    /// Receive times of announce frames seen on the client's link, ns.
    pub announces: &'a [i64],
    /// The scenario's `[assert]` table, if it has one.
    pub asserts: Option<&'a AssertSpec>,
    /// Whether the agent answered at the end.
    pub agent_answered_at_end: Option<bool>,
    /// `complete`, `incomplete` or `failed`.
    pub run_status: &'a str,
    /// The run's error.
    pub error: Option<String>,
}

/// Builds `summary.json` from raw records.
pub fn summarize(r: &RunRecords<'_>) -> Summary {
    let reps: Vec<RepSummary> = r
        .reps
        .iter()
        .map(|rep| summarize_rep(rep, r.probe, r.announces, r.gap_threshold_ns))
        .collect();
    let last_end = r.reps.iter().filter_map(|x| x.migration.finished_ns).max();
    let final_check = r.agent_answered_at_end.map(|agent_answered| FinalCheck {
        agent_answered,
        replies_after_last_migration: match (r.probe, last_end) {
            (Some(p), Some(t)) => replies_after(p, t),
            _ => 0,
        },
    });
    let verdict = r.asserts.map(|a| evaluate(a, &reps));
    Summary {
        schema: SCHEMA.into(),
        scenario: r.scenario.into(),
        run_status: r.run_status.into(),
        error: r.error.clone(),
        acceleration: r.acceleration.map(str::to_string),
        completed: reps
            .iter()
            .filter(|x| x.status == RepStatus::Completed)
            .count() as u32,
        failed: reps
            .iter()
            .filter(|x| x.status == RepStatus::Failed)
            .count() as u32,
        repetitions: reps,
        probe_overall: r.probe.map(|p| analyze(p, None, r.gap_threshold_ns)),
        final_check,
        clock: Some(ClockAlignment::shared_host_clock()),
        verdict,
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), T::to_string)
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "repetition,status,direction,guest.sweep_value,wall_time_ms,qemu.total_time_ms,qemu.downtime_ms,qemu.setup_time_ms,qemu.transferred_bytes,qemu.passes,qemu.mbps,host.stop_to_resume_ms,client.max_gap_ms,client.max_outage_ms,client.max_forward_gap_ms,client.lost_probes,client.lost_forward,client.lost_return,client.probes_sent,client.probe_interval_ms,guest.dirty_rate_mib_s,guest.corrupted_pages,guest.max_monotonic_gap_ms,stream.rtp.max_gap_ms,stream.rtp.lost_packets,stream.rtp.freezes,stream.rtp.freeze_total_ms,stream.rtp.jitter_ms,stream.http.stalls,stream.http.stall_total_ms,stream.http.connection_survived,error";

/// `summary.csv`: one row per repetition, dotted column names as in JSON.
pub fn to_csv(s: &Summary) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in &s.repetitions {
        let err = r.error.as_deref().unwrap_or("").replace('"', "\"\"");
        let row = [
            r.repetition.to_string(),
            r.status.as_str().into(),
            r.direction.clone(),
            r.guest
                .sweep_value
                .as_ref()
                .map_or(String::new(), |v| v.to_string().replace(',', ";")),
            format!("{:.3}", r.wall_time_ms),
            opt(&r.qemu.total_time_ms),
            opt(&r.qemu.downtime_ms),
            opt(&r.qemu.setup_time_ms),
            opt(&r.qemu.transferred_bytes),
            opt(&r.qemu.passes),
            opt(&r.qemu.mbps),
            opt(&r.host.stop_to_resume_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_outage_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_forward_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.lost_probes),
            opt(&r.client.lost_forward),
            opt(&r.client.lost_return),
            opt(&r.client.probes_sent),
            opt(&r.client.probe_interval_ms),
            opt(&r.guest.dirty_rate_mib_s.map(|v| format!("{v:.2}"))),
            opt(&r.guest.corrupted_pages),
            opt(&r.guest.max_monotonic_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.max_gap_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.rtp.as_ref().and_then(|v| v.lost_packets)),
            opt(&r.stream.rtp.as_ref().and_then(|v| v.freezes)),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.freeze_total_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r
                .stream
                .rtp
                .as_ref()
                .and_then(|v| v.jitter_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.http.as_ref().and_then(|v| v.stalls)),
            opt(&r
                .stream
                .http
                .as_ref()
                .and_then(|v| v.stall_total_ms)
                .map(|v| format!("{v:.3}"))),
            opt(&r.stream.http.as_ref().and_then(|v| v.connection_survived)),
            format!("\"{err}\""),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{:.prec$}", x + 0.0))
}

/// The table printed at the end of a run.
pub fn to_table(s: &Summary) -> String {
    let mut out = format!(
        "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>6} {:>7} {:>9} {:>7}\n",
        "rep",
        "dir",
        "status",
        "qemu_dt_ms",
        "stop_res",
        "client_gap",
        "outage",
        "lost",
        "total_ms",
        "MiB_sent",
        "passes",
        "wall_s",
        "dirty_MBs",
        "corrupt"
    );
    for r in &s.repetitions {
        out.push_str(&format!(
            "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>6} {:>7.1} {:>9} {:>7}\n",
            r.repetition,
            r.direction,
            r.status.as_str(),
            cell(r.qemu.downtime_ms, 0),
            cell(r.host.stop_to_resume_ms, 1),
            cell(r.client.max_gap_ms, 1),
            cell(r.client.max_outage_ms, 1),
            r.client.lost_probes.map_or("-".into(), |v| v.to_string()),
            cell(r.qemu.total_time_ms, 0),
            cell(r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
            r.qemu.passes.map_or("-".into(), |v| v.to_string()),
            r.wall_time_ms / 1000.0,
            cell(r.guest.dirty_rate_mib_s, 1),
            r.guest
                .corrupted_pages
                .map_or("-".into(), |v| v.to_string()),
        ));
        if let Some(v) = &r.stream.rtp {
            out.push_str(&format!(
                "    rtp: largest gap {} ms, {} lost, freezes {} ({} ms in all, picture stale up to {} ms), frames complete {} / decoded {}\n",
                cell(v.max_gap_ms, 1),
                v.lost_packets.map_or("-".into(), |x| x.to_string()),
                v.freezes.map_or("-".into(), |x| x.to_string()),
                cell(v.freeze_total_ms, 1),
                cell(v.picture_stale_max_ms, 1),
                v.frames_complete.map_or("-".into(), |x| x.to_string()),
                v.decoder_accepted.map_or("-".into(), |x| x.to_string()),
            ));
        }
        if let Some(v) = &r.stream.http {
            out.push_str(&format!(
                "    http: stalls {} ({} ms), connection {}, largest read gap {} ms\n",
                v.stalls.map_or("-".into(), |x| x.to_string()),
                cell(v.stall_total_ms, 1),
                match v.connection_survived {
                    Some(true) => "survived",
                    Some(false) => "BROKE",
                    None => "-",
                },
                cell(v.max_read_gap_ms, 1),
            ));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}
