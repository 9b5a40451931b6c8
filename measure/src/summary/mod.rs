//! `summary.json` and `summary.csv`: every measure, defined once, computed
//! from raw records only (no I/O, no clock), so re-analysing a bundle gives
//! the same numbers.
//!
//! The schema is versioned by [`SCHEMA`]; `docs/summary.md` documents each
//! field. Missing measurements are `null`, never 0.

pub mod csv;
pub mod junit;
pub mod rep;
pub mod table;
pub mod verdict;

pub use csv::{to_csv, CSV_HEADER};
pub use rep::{
    join_icmp, stop_to_resume_ns, summarize_rep, ClientView, GuestView, HostView, HttpView,
    QemuView, RepSummary, RtpView, StreamView,
};
pub use table::to_table;

use crate::migration::record::{RepRecord, RepStatus};
use crate::probe::gaps::{analyze, GapSummary};
use crate::probe::record::ProbeRecord;
use serde::{Deserialize, Serialize};
use verdict::{evaluate, AssertSpec, Verdict};

/// Version tag of the summary format.
pub const SCHEMA: &str = "lmig-summary/1";

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
    /// The ICMP echo stream's record (the guest's kernel), when it ran.
    pub icmp: Option<&'a ProbeRecord>,
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
    /// How the backend and the probe's placement put host, client and
    /// guest times on one axis; `None` for bundles written before the
    /// backend stated it (all lab bundles: one host clock).
    pub clock: Option<&'a ClockAlignment>,
    /// The run's error.
    pub error: Option<String>,
}

/// Builds `summary.json` from raw records.
pub fn summarize(r: &RunRecords<'_>) -> Summary {
    let clock = r
        .clock
        .cloned()
        .unwrap_or_else(ClockAlignment::shared_host_clock);
    let on_client_axis: Vec<RepRecord> = r
        .reps
        .iter()
        .map(|rep| to_client_clock(rep, &clock))
        .collect();
    let reps: Vec<RepSummary> = on_client_axis
        .iter()
        .map(|rep| {
            let mut s = summarize_rep(rep, r.probe, r.announces, r.gap_threshold_ns);
            let t = r.icmp.map_or(r.gap_threshold_ns, |i| {
                crate::probe::gaps::threshold_for(r.probe, i, r.gap_threshold_ns)
            });
            join_icmp(&mut s, rep, r.icmp, t);
            s
        })
        .collect();
    let last_end = on_client_axis
        .iter()
        .filter_map(|x| x.migration.finished_ns)
        .max();
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
        clock: Some(clock),
        verdict,
    }
}

/// A repetition's host-side times moved onto the client's clock, where the
/// probe's records are (the alignment's offset is the client's clock minus
/// the host's). Its uncertainty joins each marker's.
fn to_client_clock(rep: &RepRecord, clock: &ClockAlignment) -> RepRecord {
    let mut r = rep.clone();
    let offset_ns = clock.client_offset_ns;
    if offset_ns == 0 && clock.client_uncertainty_ns == 0 {
        return r;
    }
    r.window_start_ns += offset_ns;
    r.window_end_ns += offset_ns;
    let m = &mut r.migration;
    m.finished_ns = m.finished_ns.map(|t| t + offset_ns);
    for k in &mut m.markers {
        k.t_ns += offset_ns;
        k.uncertainty_ns += clock.client_uncertainty_ns;
    }
    r
}
