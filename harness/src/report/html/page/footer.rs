//! The page's footer: the scenario as stored, and how to re-check the
//! bundle and read the plots.

use super::context::Ctx;
use crate::report::html::text::esc;
use std::fmt::Write as _;

/// The footer with the scenario folded away.
pub(super) fn footer(h: &mut String, cx: &Ctx<'_>) {
    h.push_str("<footer id=\"footer\"><details><summary>The scenario (<code>scenario.toml</code> as stored in the bundle)</summary>");
    let _ = writeln!(h, "<pre>{}</pre></details>", esc(cx.input.scenario_toml));
    h.push_str(
        "<p><b>Re-checking this bundle.</b> Every number here is derived from the bundle's raw records (<code>reps/</code>, <code>probe/</code>). \
<code>harness report BUNDLE</code> recomputes <code>summary.json</code>, <code>summary.csv</code> and this page from them; \
<code>harness verify BUNDLE</code> checks that every file is present and unchanged against <code>SHA256SUMS</code>.</p>\n\
<p>How to read each plot: <code>docs/report.md</code> in the live-migration-lab repository. Field definitions: <code>docs/summary.md</code>.</p>\n</footer>\n",
    );
}
