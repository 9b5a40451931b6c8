//! The HTML of `report.html`: sections in reading order, each saying what
//! it could not show and why. All text from the bundle goes through
//! `esc`; the only markup is ours.
//!
//! Modules, in page order: `header` (the run's facts), `verdict` (the
//! checks, the three downtimes explained), `across` (across repetitions,
//! with `study`: the platform's own figures per repetition),
//! `repetition` with `rep_tables` (one section per repetition),
//! `every_rep` (the table of all), `footer`; `context` reads the input
//! once, `figure` frames a plot, `style` is the CSS.

mod across;
mod context;
mod every_rep;
mod figure;
mod footer;
mod header;
mod rep_tables;
mod repetition;
mod study;
mod style;
mod verdict;

use crate::report::html::input::ReportInput;
use crate::report::html::text::esc;
use context::Ctx;
use std::fmt::Write as _;
pub(crate) use style::CSS;

/// The whole page.
pub(super) fn render(input: &ReportInput<'_>) -> String {
    let mut cx = Ctx::new(input);
    let mut body = String::new();
    header::header(&mut body, &cx);
    verdict::verdict(&mut body, &cx);
    verdict::three_downtimes(&mut body);
    let mut rest = String::new();
    across::across(&mut rest, &cx);
    repetition::per_rep(&mut rest, &mut cx);
    every_rep::rep_table(&mut rest, &cx);
    every_rep::storage_table(&mut rest, &cx);
    footer::footer(&mut rest, &cx);
    // The list of what is missing goes near the top but is known only
    // after every section has looked.
    let mut h = String::with_capacity(body.len() + rest.len() + 8192);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{} — live migration report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&cx.name)
    );
    h.push_str(&body);
    if !cx.missing.is_empty() {
        h.push_str("<section id=\"missing\" class=\"missing\"><b>Not in this report:</b><ul class=\"missing-list\">");
        for m in &cx.missing {
            let _ = write!(h, "<li>{}</li>", esc(m));
        }
        h.push_str("</ul></section>\n");
    }
    h.push_str(&rest);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}
