//! `summary.json` and `summary.csv`: every measure, defined once, computed
//! from raw records only (no I/O, no clock), so re-analysing a bundle gives
//! the same numbers.
//!
//! The schema is versioned by [`SCHEMA`]; `docs/summary.md` documents each
//! field. Missing measurements are `null`, never 0.

use crate::clock::ms;
use crate::record::{RepRecord, RepStatus};
use client_probe::{analyze, GapSummary, ProbeRecord};
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
    QemuView {
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

/// Summarises one repetition.
pub fn summarize_rep(
    rep: &RepRecord,
    probe: Option<&ProbeRecord>,
    gap_threshold_ns: i64,
) -> RepSummary {
    let m = &rep.migration;
    let client = probe
        .map(|p| {
            client_view(&analyze(
                p,
                Some((rep.window_start_ns, rep.window_end_ns)),
                gap_threshold_ns,
            ))
        })
        .unwrap_or_default();
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
        .map(|rep| summarize_rep(rep, r.probe, r.gap_threshold_ns))
        .collect();
    let last_end = r.reps.iter().filter_map(|x| x.migration.finished_ns).max();
    let final_check = r.agent_answered_at_end.map(|agent_answered| FinalCheck {
        agent_answered,
        replies_after_last_migration: match (r.probe, last_end) {
            (Some(p), Some(t)) => replies_after(p, t),
            _ => 0,
        },
    });
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
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), T::to_string)
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "repetition,status,direction,wall_time_ms,qemu.total_time_ms,qemu.downtime_ms,qemu.setup_time_ms,qemu.transferred_bytes,qemu.passes,qemu.mbps,host.stop_to_resume_ms,client.max_gap_ms,client.max_forward_gap_ms,client.lost_probes,client.lost_forward,client.lost_return,client.probes_sent,client.probe_interval_ms,error";

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
            format!("{:.3}", r.wall_time_ms),
            opt(&r.qemu.total_time_ms),
            opt(&r.qemu.downtime_ms),
            opt(&r.qemu.setup_time_ms),
            opt(&r.qemu.transferred_bytes),
            opt(&r.qemu.passes),
            opt(&r.qemu.mbps),
            opt(&r.host.stop_to_resume_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.max_forward_gap_ms.map(|v| format!("{v:.3}"))),
            opt(&r.client.lost_probes),
            opt(&r.client.lost_forward),
            opt(&r.client.lost_return),
            opt(&r.client.probes_sent),
            opt(&r.client.probe_interval_ms),
            format!("\"{err}\""),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

/// The table printed at the end of a run.
pub fn to_table(s: &Summary) -> String {
    let mut out = format!(
        "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9} {:>6} {:>7}\n",
        "rep",
        "dir",
        "status",
        "qemu_dt_ms",
        "stop_res",
        "client_gap",
        "lost",
        "total_ms",
        "MiB_sent",
        "passes",
        "wall_s"
    );
    for r in &s.repetitions {
        out.push_str(&format!(
            "{:>3} {:<5} {:<11} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9} {:>6} {:>7.1}\n",
            r.repetition,
            r.direction,
            r.status.as_str(),
            cell(r.qemu.downtime_ms, 0),
            cell(r.host.stop_to_resume_ms, 1),
            cell(r.client.max_gap_ms, 1),
            r.client.lost_probes.map_or("-".into(), |v| v.to_string()),
            cell(r.qemu.total_time_ms, 0),
            cell(r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
            r.qemu.passes.map_or("-".into(), |v| v.to_string()),
            r.wall_time_ms / 1000.0,
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}
