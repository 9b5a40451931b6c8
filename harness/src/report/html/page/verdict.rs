//! The verdict box (the scenario's checks, passed or failed) and the
//! explanation of the three downtimes under it.

use super::context::Ctx;
use crate::report::html::text::esc;
use std::fmt::Write as _;

/// The verdict box: PASS or FAIL in large, then each check with its
/// scope and message; or a note that the scenario has no checks.
pub(super) fn verdict(h: &mut String, cx: &Ctx<'_>) {
    let Some(v) = &cx.input.summary.verdict else {
        h.push_str("<p id=\"verdict\" class=\"missing\">No verdict: the scenario has no <code>[assert]</code> checks.</p>\n");
        return;
    };
    let (class, word) = if v.passed {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let failed = v.checks.iter().filter(|c| !c.passed).count();
    let _ = write!(
        h,
        "<section id=\"verdict\" class=\"verdict {class}\"><div class=\"big\">{word}</div><div><b>{}</b><ul>",
        if failed == 0 {
            format!("all {} checks held", v.checks.len())
        } else {
            format!("{failed} of {} checks failed", v.checks.len())
        }
    );
    for c in &v.checks {
        let (mc, mw) = if c.passed {
            ("ok", "pass")
        } else {
            ("bad", "FAIL")
        };
        let _ = write!(
            h,
            "<li><span class=\"mark {mc}\">{mw}</span> <code>{}</code> ({}): {}</li>",
            esc(&c.check),
            esc(&c.scope),
            esc(&c.message)
        );
    }
    h.push_str("</ul></div></section>\n");
}

/// Why QEMU's downtime, STOP → RESUME and the client's outage differ.
pub(super) fn three_downtimes(h: &mut String) {
    h.push_str(
        "<section id=\"three-downtimes\" class=\"explain\"><b>The three downtimes.</b> \
QEMU's downtime is timed by the source from stopping the guest to sending its last byte, so it leaves out the destination resuming the guest and the network learning where the guest went. \
STOP → RESUME runs from the source's STOP event to the destination's RESUME event, the time in which the guest's CPUs run nowhere, so it is at least QEMU's downtime. \
The client's outage ends only when the probe's replies flow again, after RESUME, QEMU's announce and a round trip, so as a rule QEMU's downtime ≤ STOP → RESUME ≤ the client's outage, and the last is what a user feels (to within one probe interval).</section>\n",
    );
}
