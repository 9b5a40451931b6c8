//! Everything derived in a fleet's bundle, re-derived from its raw
//! records as `harness report` does and as the run does at its end: each
//! member's own files ([`crate::report::regenerate`] on `vms/<id>/`),
//! then the fleet's `summary.json`, `summary.csv` and `report.html`.

use super::RECORD_FILE;
use crate::bundle::Bundle;
use crate::report::html::render_fleet_html;
use crate::run::RunOutcome;
use anyhow::{Context, Result};
use measure::fleet::{summarize, FleetRecord, FleetSummary, MemberInput};
use measure::migration::record::RepRecord;
use measure::summary::verdict::{CheckResult, Verdict};
use measure::summary::{to_csv, Summary};
use std::path::Path;

/// Whether `dir` holds a fleet's bundle.
pub fn is_fleet(dir: &Path) -> bool {
    dir.join(RECORD_FILE).is_file()
}

/// Re-derives the fleet bundle at `dir` (its members first).
pub fn regenerate(dir: &Path) -> Result<RunOutcome> {
    let path = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let record: FleetRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fleet record", path.display()))?;
    let members: Vec<(Result<Summary, String>, Vec<RepRecord>)> =
        record.members.iter().map(|m| member(dir, &m.id)).collect();
    let inputs: Vec<MemberInput<'_>> = record
        .members
        .iter()
        .zip(&members)
        .map(|(r, (s, reps))| MemberInput {
            record: r,
            summary: s.as_ref().map_err(Clone::clone),
            reps,
        })
        .collect();
    let fleet = summarize(&record, &inputs);
    let bundle = Bundle::open(dir);
    bundle.write_json("summary.json", &fleet)?;
    bundle.write("summary.csv", fleet_csv(&fleet).as_bytes())?;
    let scenario_toml = std::fs::read_to_string(dir.join("scenario.toml")).unwrap_or_default();
    let html = render_fleet_html(&fleet, &scenario_toml).context("rendering report.html")?;
    bundle.write("report.html", html.as_bytes())?;
    Ok(RunOutcome {
        bundle: dir.to_path_buf(),
        summary: flattened(&fleet),
        calibration: None,
        fleet: Some(fleet),
    })
}

/// A member's summary (re-derived) and raw repetitions, or why it has none.
fn member(dir: &Path, id: &str) -> (Result<Summary, String>, Vec<RepRecord>) {
    let at = dir.join("vms").join(id);
    if !at.is_dir() {
        return (Err("it did not run (no bundle)".into()), Vec::new());
    }
    match crate::report::regenerate(&at) {
        Ok((s, rec)) => (Ok(s), rec.reps),
        Err(e) => (
            Err(format!("its bundle could not be analysed: {e:#}")),
            Vec::new(),
        ),
    }
}

/// Every member's `summary.csv` rows, each after its member, VM and
/// condition.
fn fleet_csv(f: &FleetSummary) -> String {
    let mut out = format!("member,vm,condition,{}\n", measure::summary::CSV_HEADER);
    for m in &f.members {
        let Some(s) = &m.summary else { continue };
        for row in to_csv(s).lines().skip(1) {
            // Member names are letters, digits, `-` and `_`: no quoting.
            out.push_str(&format!("{},{},{},{row}\n", m.id, m.vm, m.condition));
        }
    }
    out
}

/// The fleet as one run's summary: its counts, the members' first error,
/// and their verdicts joined (each check named with its member).
fn flattened(f: &FleetSummary) -> Summary {
    let summaries: Vec<(&str, &Summary)> = f
        .members
        .iter()
        .filter_map(|m| Some((m.id.as_str(), m.summary.as_ref()?)))
        .collect();
    let checks: Vec<CheckResult> = summaries
        .iter()
        .filter_map(|(id, s)| Some((id, s.verdict.as_ref()?)))
        .flat_map(|(id, v)| {
            v.checks.iter().map(move |c| CheckResult {
                check: format!("{id}: {}", c.check),
                ..c.clone()
            })
        })
        .collect();
    Summary {
        schema: measure::summary::SCHEMA.into(),
        scenario: f.scenario.clone(),
        run_status: f.run_status.clone(),
        error: f
            .failures
            .first()
            .map(|x| format!("{}: {}", x.member, x.error)),
        acceleration: summaries.iter().find_map(|(_, s)| s.acceleration.clone()),
        completed: f.completed,
        failed: f.failed,
        repetitions: Vec::new(),
        probe_overall: None,
        final_check: None,
        clock: None,
        verdict: (!checks.is_empty()).then(|| Verdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }),
    }
}
