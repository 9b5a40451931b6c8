//! A repetition's tables: its client gaps with the phases they fell in,
//! and its outage taken apart.

use super::context::{Ctx, RepView};
use crate::report::html::plots::{self, is_reply_gap};
use crate::report::html::text::{esc, num};
use measure::summary::RepSummary;
use measure::timeline::{OutageBreakdown, RepTimeline};
use std::fmt::Write as _;

/// `ns` as seconds since `t0`, three decimals.
fn rel_s(ns: i64, t0: i64) -> String {
    format!("{:.3}", (ns - t0) as f64 / 1e9)
}

/// Every gap over the threshold in the repetition's window: when, how
/// long, what it was (reply gap, largest, outage), the phases it overlaps;
/// and the kernel's (ICMP) outage, when that stream ran.
pub(super) fn gap_table(h: &mut String, cx: &Ctx<'_>, r: &RepView<'_>, tl: &RepTimeline) {
    let s = r.s;
    let _ = write!(
        h,
        "<h3>Client gaps of repetition {} and the phases they fell in</h3>",
        s.repetition
    );
    if cx.input.probe.is_none() {
        h.push_str("<p class=\"missing\">No probe record: no gaps.</p>\n");
        return;
    }
    if tl.gaps.is_empty() {
        let _ = writeln!(
            h,
            "<p>No reply gap over the {} ms threshold in this repetition's window.</p>",
            plots::short(cx.threshold_ms)
        );
        return;
    }
    let _ = write!(
        h,
        "<div class=\"scroll\"><table class=\"gaps\" id=\"table-rep-{}-gaps\"><tr><th>start, s</th><th>end, s</th><th>length, ms</th><th class=\"l\">what</th><th class=\"l\">phases it overlaps, ms in each</th></tr>",
        s.repetition
    );
    let kernel = tl.icmp_outage.iter().map(|g| (g, true));
    for (g, is_kernel) in tl.gaps.iter().map(|g| (g, false)).chain(kernel) {
        let mut what = Vec::new();
        if is_kernel {
            what.push("longest kernel outage (ICMP echoes)");
        }
        if !is_kernel && is_reply_gap(&r.replies, g) {
            what.push("reply gap");
        }
        if !is_kernel
            && Some(g.start_ns) == s.client.max_gap_start_ns
            && Some(g.end_ns) == s.client.max_gap_end_ns
        {
            what.push("largest reply gap");
        }
        if !is_kernel
            && (g.is_outage
                || (Some(g.start_ns) == s.client.max_outage_start_ns
                    && Some(g.end_ns) == s.client.max_outage_end_ns))
        {
            what.push("longest outage");
        }
        let phases = g
            .phases
            .iter()
            .map(|o| format!("{} {}", esc(&o.phase), num(Some(o.ms), 1)))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            rel_s(g.start_ns, r.t0_ns),
            rel_s(g.end_ns, r.t0_ns),
            num(Some(g.len_ms), 1),
            esc(&what.join(", ")),
            phases
        );
    }
    h.push_str("</table></div>\n");
}

/// The client's outage split by phase, beside QEMU's downtime, STOP →
/// RESUME and the announce, or why there is none.
pub(super) fn breakdown_table(h: &mut String, s: &RepSummary, b: Option<&OutageBreakdown>) {
    let _ = writeln!(
        h,
        "<h3>The outage of repetition {} taken apart</h3>",
        s.repetition
    );
    let Some(b) = b else {
        h.push_str("<p class=\"missing\">No client outage was measured in this repetition (no probe, or no reply on both sides of one): nothing to take apart.</p>\n");
        return;
    };
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"table-rep-{}-breakdown\"><tr><th class=\"l\">client outage</th><th>before STOP</th><th>stop-and-copy</th><th>resume</th><th>switchover</th><th>other</th><th>QEMU downtime</th><th>STOP → RESUME</th><th>announce after RESUME</th></tr>",
        s.repetition
    );
    let _ = write!(
        h,
        "<tr><td class=\"l\"><b>{} ms</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table></div>",
        num(Some(b.outage_ms), 1),
        num(Some(b.before_stop_ms), 1),
        num(Some(b.stop_and_copy_ms), 1),
        num(Some(b.resume_ms), 1),
        num(Some(b.switchover_ms), 1),
        num(Some(b.other_ms), 1),
        num(b.qemu_downtime_ms, 0),
        num(s.host.stop_to_resume_ms, 1),
        b.announce_after_resume_ms.map_or("not seen".into(), |v| num(Some(v), 1)),
    );
}
