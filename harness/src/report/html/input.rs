//! [`ReportInput`]: what the report is drawn from, read by every section.

use measure::migration::record::RepRecord;
use measure::probe::record::ProbeRecord;
use measure::summary::Summary;
use measure::timeline::RepTimeline;

/// Everything the report is drawn from.
pub struct ReportInput<'a> {
    /// `summary.json`, as derived from the records below.
    pub summary: &'a Summary,
    /// Raw records, in the same order as `summary.repetitions`.
    pub reps: &'a [RepRecord],
    /// One timeline per repetition, in the same order as `reps`.
    pub timelines: &'a [RepTimeline],
    /// The whole probe record (all repetitions), if the probe ran.
    pub probe: Option<&'a ProbeRecord>,
    /// `manifest.json` as read (versions, host facts, status).
    pub manifest: &'a serde_json::Value,
    /// `scenario.toml` as written in the bundle.
    pub scenario_toml: &'a str,
}
