//! A fleet's `summary.json`: several VMs (and conditions) in one run,
//! each measured into its own member bundle, put side by side.
//!
//! Nothing is measured again here: each member's [`Summary`] is the one
//! its own bundle derives, carried whole (every repetition's client,
//! kernel, host, QEMU and stream views, per VM). What the fleet adds is
//! what no member can see alone: how long each took, which repetitions
//! failed where, and, when a node was evacuated at once, how the
//! members' migrations overlapped on the one clock they share.

use crate::migration::marker::{first, MarkerKind};
use crate::migration::record::{RepRecord, RepStatus};
use crate::summary::junit::{to_junit_suites, Suite};
use crate::summary::{RepSummary, Summary};
use serde::{Deserialize, Serialize};

/// Version tag of the fleet summary.
pub const SCHEMA: &str = "lmig-fleet/1";
/// Version tag of the fleet's raw record (`fleet.json`).
pub const RECORD_SCHEMA: &str = "lmig-fleet-record/1";

/// What the run wrote about its members as it went (`fleet.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetRecord {
    /// [`RECORD_SCHEMA`].
    pub schema: String,
    /// The scenario's name.
    pub scenario: String,
    /// `sequential` or `evacuate`.
    pub mode: String,
    /// When the run started, ns.
    pub started_ns: i64,
    /// When it ended, ns (`None`: it did not get there).
    pub ended_ns: Option<i64>,
    /// The members, in the order they were planned.
    pub members: Vec<MemberRecord>,
}

/// One member as the run recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberRecord {
    /// `<vm>` or `<vm>-<condition>`; its bundle is `vms/<id>/`.
    pub id: String,
    /// The VM's name.
    pub vm: String,
    /// The condition's name (empty without conditions).
    pub condition: String,
    /// When its run started and ended, ns (`None`: not started, or did not end).
    pub started_ns: Option<i64>,
    /// See `started_ns`.
    pub ended_ns: Option<i64>,
    /// The member run's error, if it ended on one.
    pub error: Option<String>,
}

/// A member's results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberResult {
    /// As in [`MemberRecord`].
    pub id: String,
    /// The VM's name.
    pub vm: String,
    /// The condition's name.
    pub condition: String,
    /// Its bundle, relative to the fleet's.
    pub bundle: String,
    /// Its run's wall time, s.
    pub wall_s: Option<f64>,
    /// Mean wall time of its repetitions, s.
    pub rep_wall_mean_s: Option<f64>,
    /// The member run's error, or why its bundle has no summary.
    pub error: Option<String>,
    /// Its bundle's own summary (`vms/<id>/summary.json`), when it has one.
    pub summary: Option<Summary>,
}

/// A repetition that did not complete, or a member that did not run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    /// The member.
    pub member: String,
    /// The repetition (`None`: the member's run itself).
    pub repetition: Option<u32>,
    /// Why.
    pub error: String,
}

/// One member's migration in an evacuation round, on the shared clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Span {
    /// The member.
    pub member: String,
    /// The migrate command was sent, ns.
    pub start_ns: Option<i64>,
    /// The harness saw it end, ns.
    pub end_ns: Option<i64>,
    /// The source's CPUs stopped, ns.
    pub stopped_ns: Option<i64>,
    /// The destination's CPUs resumed, ns.
    pub resumed_ns: Option<i64>,
    /// The client's longest outage of that VM, ns (from, to).
    pub outage_ns: Option<(i64, i64)>,
    /// The guest kernel's (ICMP) longest outage, ns (from, to).
    pub icmp_outage_ns: Option<(i64, i64)>,
}

/// The members' migrations of one repetition number (evacuate mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Round {
    /// 1-based repetition.
    pub repetition: u32,
    /// Each member's.
    pub spans: Vec<Span>,
    /// How long every migration of the round ran at the same time, ms
    /// (0 when they did not all overlap; `None` without two spans).
    pub all_at_once_ms: Option<f64>,
    /// From the first migration's start to the last one's end, ms.
    pub round_ms: Option<f64>,
}

/// `summary.json` of a fleet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FleetSummary {
    /// [`SCHEMA`].
    pub schema: String,
    /// The scenario's name.
    pub scenario: String,
    /// `sequential` or `evacuate`.
    pub mode: String,
    /// `complete` when every member completed, else `incomplete` (or
    /// `failed` when no member measured anything).
    pub run_status: String,
    /// The whole run's wall time, s.
    pub wall_s: Option<f64>,
    /// Repetitions completed, over all members.
    pub completed: u32,
    /// Repetitions failed, over all members.
    pub failed: u32,
    /// Each member, in order.
    pub members: Vec<MemberResult>,
    /// What failed, where and why.
    pub failures: Vec<Failure>,
    /// The evacuation rounds (evacuate mode only).
    pub rounds: Vec<Round>,
}

/// One member's inputs: its record, its summary (or why none) and its raw
/// repetitions.
pub struct MemberInput<'a> {
    /// As the run recorded it.
    pub record: &'a MemberRecord,
    /// Its bundle's summary, or why there is none.
    pub summary: Result<&'a Summary, String>,
    /// Its repetitions' raw records (for the spans).
    pub reps: &'a [RepRecord],
}

fn secs(a: Option<i64>, b: Option<i64>) -> Option<f64> {
    Some((b? - a?) as f64 / 1e9)
}

/// Builds the fleet's summary from its record and its members' results.
pub fn summarize(fleet: &FleetRecord, members: &[MemberInput<'_>]) -> FleetSummary {
    let results: Vec<MemberResult> = members.iter().map(member_result).collect();
    let failures = failures(&results);
    let count = |st: RepStatus| {
        results
            .iter()
            .filter_map(|m| m.summary.as_ref())
            .flat_map(|s| &s.repetitions)
            .filter(|r| r.status == st)
            .count() as u32
    };
    let (completed, failed) = (count(RepStatus::Completed), count(RepStatus::Failed));
    let all_complete = results.iter().all(|m| {
        m.error.is_none()
            && m.summary
                .as_ref()
                .is_some_and(|s| s.run_status == "complete")
    });
    let run_status = match (all_complete, completed + failed) {
        (true, _) => "complete",
        (false, 0) => "failed",
        _ => "incomplete",
    };
    FleetSummary {
        schema: SCHEMA.into(),
        scenario: fleet.scenario.clone(),
        mode: fleet.mode.clone(),
        run_status: run_status.into(),
        wall_s: secs(Some(fleet.started_ns), fleet.ended_ns),
        completed,
        failed,
        rounds: if fleet.mode == "evacuate" {
            rounds(members)
        } else {
            Vec::new()
        },
        members: results,
        failures,
    }
}

fn member_result(m: &MemberInput<'_>) -> MemberResult {
    let r = m.record;
    let summary = m.summary.as_ref().ok().map(|s| (*s).clone());
    let walls: Vec<f64> = summary
        .iter()
        .flat_map(|s| &s.repetitions)
        .map(|x| x.wall_time_ms / 1e3)
        .collect();
    MemberResult {
        id: r.id.clone(),
        vm: r.vm.clone(),
        condition: r.condition.clone(),
        bundle: format!("vms/{}", r.id),
        wall_s: secs(r.started_ns, r.ended_ns),
        rep_wall_mean_s: (!walls.is_empty())
            .then(|| walls.iter().sum::<f64>() / walls.len() as f64),
        error: r
            .error
            .clone()
            .or_else(|| m.summary.as_ref().err().cloned()),
        summary,
    }
}

fn failures(results: &[MemberResult]) -> Vec<Failure> {
    let mut out = Vec::new();
    for m in results {
        if let Some(e) = &m.error {
            out.push(Failure {
                member: m.id.clone(),
                repetition: None,
                error: e.clone(),
            });
        }
        for r in m.summary.iter().flat_map(|s| &s.repetitions) {
            if r.status != RepStatus::Completed {
                out.push(Failure {
                    member: m.id.clone(),
                    repetition: Some(r.repetition),
                    error: r
                        .error
                        .clone()
                        .unwrap_or_else(|| r.status.as_str().to_string()),
                });
            }
        }
    }
    out
}

/// The spans of each repetition number across the members.
fn rounds(members: &[MemberInput<'_>]) -> Vec<Round> {
    let last = members
        .iter()
        .flat_map(|m| m.reps.iter().map(|r| r.repetition))
        .max()
        .unwrap_or(0);
    (1..=last)
        .map(|n| {
            let spans: Vec<Span> = members
                .iter()
                .filter_map(|m| {
                    let rep = m.reps.iter().find(|r| r.repetition == n)?;
                    let s = m
                        .summary
                        .as_ref()
                        .ok()
                        .and_then(|s| s.repetitions.iter().find(|r| r.repetition == n));
                    Some(span(&m.record.id, rep, s))
                })
                .collect();
            round(n, spans)
        })
        .collect()
}

fn span(member: &str, rep: &RepRecord, s: Option<&RepSummary>) -> Span {
    let at = |k| first(&rep.migration.markers, k).map(|m| m.t_ns);
    let c = s.map(|s| &s.client);
    Span {
        member: member.to_string(),
        start_ns: rep.migration.migrate_cmd_ns,
        end_ns: rep.migration.finished_ns,
        stopped_ns: at(MarkerKind::SourceStopped),
        resumed_ns: at(MarkerKind::DestinationResumed),
        outage_ns: c.and_then(|c| Some((c.max_outage_start_ns?, c.max_outage_end_ns?))),
        icmp_outage_ns: c.and_then(|c| Some((c.icmp_outage_start_ns?, c.icmp_outage_end_ns?))),
    }
}

fn round(repetition: u32, spans: Vec<Span>) -> Round {
    let starts: Vec<i64> = spans.iter().filter_map(|s| s.start_ns).collect();
    let ends: Vec<i64> = spans.iter().filter_map(|s| s.end_ns).collect();
    let whole = starts.len() == spans.len() && ends.len() == spans.len() && spans.len() >= 2;
    let (first_start, last_start) = (starts.iter().min(), starts.iter().max());
    let (first_end, last_end) = (ends.iter().min(), ends.iter().max());
    let ms = |a: Option<&i64>, b: Option<&i64>| Some((*b? - *a?) as f64 / 1e6);
    Round {
        repetition,
        all_at_once_ms: whole.then(|| ms(last_start, first_end).unwrap_or(0.0).max(0.0)),
        round_ms: ms(first_start, last_end),
        spans,
    }
}

/// A member's completed repetitions.
pub fn completed_reps(m: &MemberResult) -> impl Iterator<Item = &RepSummary> {
    m.summary
        .iter()
        .flat_map(|s| &s.repetitions)
        .filter(|r| r.status == RepStatus::Completed)
}

/// Mean of `metric` over a member's completed repetitions.
pub fn member_mean(m: &MemberResult, metric: impl Fn(&RepSummary) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = completed_reps(m).filter_map(metric).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// A figure of one repetition, in ms.
pub type RepMetric = fn(&RepSummary) -> Option<f64>;

/// The means a member's row shows (terminal table, report), with their
/// column names: the host's figures, then what the users saw.
pub const MEMBER_MEANS: [(&str, RepMetric); 4] = [
    ("QEMU downtime ms", |r| r.qemu.downtime_ms),
    ("STOP→RESUME ms", |r| r.host.stop_to_resume_ms),
    ("client outage ms", |r| r.client.max_outage_ms),
    ("kernel outage ms", |r| r.client.icmp_outage_ms),
];

/// The terminal's table: one line per member, with its times and the
/// The fleet's verdict as JUnit XML: one suite per member (its own run's
/// cases and checks, named `<scenario>/<member>`), a member that left no
/// summary as a suite whose `run complete` is an error with its reason.
pub fn to_junit(f: &FleetSummary) -> String {
    let suites: Vec<Suite> = f
        .members
        .iter()
        .map(|m| match &m.summary {
            Some(s) => Suite::of(s),
            None => Suite::failed_run(
                &format!("{}/{}", f.scenario, m.id),
                m.error.as_deref().unwrap_or("the member left no summary"),
            ),
        })
        .collect();
    to_junit_suites(&suites)
}

/// means of what its users and its host saw.
pub fn to_table(f: &FleetSummary) -> String {
    let show = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |x| format!("{x:.d$}"));
    let mut out = format!(
        "{:<24} {:>9} {:>8} {:>7}",
        "member", "done/fail", "wall s", "s/rep"
    );
    for (name, _) in MEMBER_MEANS {
        out.push_str(&format!(" {name:>17}"));
    }
    out.push('\n');
    for m in &f.members {
        let (done, failed) = m
            .summary
            .as_ref()
            .map_or((0, 0), |s| (s.completed, s.failed));
        out.push_str(&format!(
            "{:<24} {:>9} {:>8} {:>7}",
            m.id,
            format!("{done}/{failed}"),
            show(m.wall_s, 1),
            show(m.rep_wall_mean_s, 2),
        ));
        for (_, metric) in MEMBER_MEANS {
            out.push_str(&format!(" {:>17}", show(member_mean(m, metric), 1)));
        }
        out.push('\n');
    }
    for r in &f.rounds {
        out.push_str(&format!(
            "round {}: all {} migrations at once for {} ms, the round took {} ms\n",
            r.repetition,
            r.spans.len(),
            show(r.all_at_once_ms, 1),
            show(r.round_ms, 1)
        ));
    }
    for x in &f.failures {
        out.push_str(&format!(
            "failed: {}{}: {}\n",
            x.member,
            x.repetition
                .map_or(String::new(), |n| format!(" repetition {n}")),
            x.error
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::record::MigrationRecord;

    fn rep(n: u32, start: i64, end: i64) -> RepRecord {
        RepRecord {
            repetition: n,
            window_start_ns: start - 1,
            window_end_ns: end + 1,
            migration: MigrationRecord {
                migrate_cmd_ns: Some(start),
                finished_ns: Some(end),
                ..MigrationRecord::starting(n, "a", "b")
            },
            guest: None,
        }
    }

    fn record(id: &str) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            vm: id.into(),
            condition: String::new(),
            started_ns: Some(0),
            ended_ns: Some(2_000_000_000),
            error: None,
        }
    }

    #[test]
    fn overlapping_migrations_are_measured_on_the_shared_clock() {
        let (a, b) = (record("a"), record("b"));
        let reps_a = [rep(1, 100_000_000, 600_000_000)];
        let reps_b = [rep(1, 120_000_000, 900_000_000)];
        let fleet = FleetRecord {
            schema: RECORD_SCHEMA.into(),
            scenario: "s".into(),
            mode: "evacuate".into(),
            started_ns: 0,
            ended_ns: Some(3_000_000_000),
            members: vec![a.clone(), b.clone()],
        };
        let s = summarize(
            &fleet,
            &[
                MemberInput {
                    record: &a,
                    summary: Err("no summary".into()),
                    reps: &reps_a,
                },
                MemberInput {
                    record: &b,
                    summary: Err("no summary".into()),
                    reps: &reps_b,
                },
            ],
        );
        let r = &s.rounds[0];
        assert_eq!(r.all_at_once_ms, Some(480.0));
        assert_eq!(r.round_ms, Some(800.0));
        assert_eq!(s.wall_s, Some(3.0));
        assert_eq!(s.run_status, "failed");
        assert_eq!(s.failures.len(), 2, "{:?}", s.failures);
        assert_eq!(s.members[0].wall_s, Some(2.0));
    }

    #[test]
    fn migrations_one_after_another_do_not_overlap() {
        let r = round(
            1,
            vec![
                span("a", &rep(1, 0, 10), None),
                span("b", &rep(1, 20, 30), None),
            ],
        );
        assert_eq!(r.all_at_once_ms, Some(0.0));
        let one = round(1, vec![span("a", &rep(1, 0, 10), None)]);
        assert_eq!(one.all_at_once_ms, None);
    }
}
