//! `report.html`: the page a tester hands to others. One self-contained
//! file (no network, no scripts, no external fonts or CSS) with the run's
//! facts, the verdict, plots across and within repetitions, and the tables
//! behind them; `docs/report.md` explains how to read it.
//!
//! Pure: a function of the bundle's records and the summary derived from
//! them. The same input gives byte-identical output: no timestamps of its
//! own, no hash-map iteration, fixed float formatting, and plots drawn by
//! `plotters`' SVG backend on integer pixel coordinates, inlined as `<svg>`.
//!
//! Modules: `page` writes the HTML, `plots` the SVG charts, `thin`
//! chooses which probe replies to draw when a record is large.

mod page;
mod plots;
mod thin;

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

/// Renders `report.html`. Missing data (no probe, a failed repetition, no
/// repetition at all, an unreadable scenario) is said on the page, not an
/// error; a plot that cannot be drawn is replaced by a note saying why.
pub fn render_html(input: &ReportInput<'_>) -> anyhow::Result<String> {
    Ok(page::render(input))
}

pub use measure::timeline::rep_timelines;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with a fixed number of decimals, or a dash when not measured.
pub(crate) fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<a href="x">'b' & c</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;b&#39; &amp; c&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_are_fixed_or_dash() {
        assert_eq!(num(Some(1.0 / 3.0), 2), "0.33");
        assert_eq!(num(None, 1), "—");
        assert_eq!(num(Some(f64::NAN), 1), "—");
    }
}
