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
//! Modules, each depending only on those listed after it: `page` writes
//! the HTML, `plots` the SVG charts, `thin` chooses which probe replies to
//! draw when a record is large, `input` holds [`ReportInput`], `text`
//! escapes and formats numbers.

mod fleet;
mod input;
mod page;
mod plots;
mod text;
mod thin;

pub use fleet::render_fleet_html;
pub use input::ReportInput;

/// Renders `report.html`. Missing data (no probe, a failed repetition, no
/// repetition at all, an unreadable scenario) is said on the page, not an
/// error; a plot that cannot be drawn is replaced by a note saying why.
pub fn render_html(input: &ReportInput<'_>) -> anyhow::Result<String> {
    Ok(page::render(input))
}

pub use measure::timeline::rep_timelines;
