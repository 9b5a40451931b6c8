//! What people read: `report.html` ([`html`]), and `harness compare`'s
//! table of two bundles ([`compare`]). [`regenerate`] re-derives a bundle's
//! summaries and report from its raw records, as `harness report` does and
//! as every run does at its end.

pub mod compare;
pub mod html;

use crate::bundle::load::{load, BundleRecords};
use crate::bundle::Bundle;
use anyhow::{Context, Result};
use html::{render_html, ReportInput};
use measure::probe::gaps::analyze;
use measure::summary::{to_csv, Summary};
use std::path::Path;

/// Re-derives and rewrites everything derived in the bundle at `dir`:
/// `summary.json`, `summary.csv`, `timeline/rep-NNN.json`, `probe/gaps.jsonl`
/// and `report.html`. Returns the summary.
pub fn regenerate(dir: &Path) -> Result<(Summary, BundleRecords)> {
    let rec = load(dir)?;
    let a = rec.analyze();
    let bundle = Bundle::open(dir);
    bundle.write_json("summary.json", &a.summary)?;
    bundle.write("summary.csv", to_csv(&a.summary).as_bytes())?;
    for (rep, t) in rec.reps.iter().zip(&a.timelines) {
        bundle.write_json(&format!("timeline/rep-{:03}.json", rep.repetition), t)?;
    }
    let html = render_html(&ReportInput {
        summary: &a.summary,
        reps: &rec.reps,
        timelines: &a.timelines,
        probe: rec.probe.as_ref(),
        manifest: &rec.manifest,
        scenario_toml: &rec.scenario_toml,
    })
    .context("rendering report.html")?;
    bundle.write("report.html", html.as_bytes())?;
    if let Some(p) = &rec.probe {
        let threshold = (rec.scenario.probe.gap_threshold_ms * 1e6) as i64;
        let all = analyze(p, None, threshold);
        let mut gaps = Vec::new();
        measure::probe::csv::write_gaps_jsonl(&all.gaps, &mut gaps)
            .context("writing probe/gaps.jsonl")?;
        bundle.write("probe/gaps.jsonl", &gaps)?;
    }
    Ok((a.summary, rec))
}
