//! One section per repetition: its figures, faults and missing markers,
//! its full timeline and a zoom on the switchover, then its tables.

use super::context::{Ctx, RepView};
use super::figure::figure;
use super::rep_tables::{breakdown_table, gap_table};
use crate::report::html::plots::{self, Timeline};
use crate::report::html::text::{esc, num};
use measure::migration::marker::MarkerKind;
use measure::migration::record::{MigrationRecord, RepRecord, RepStatus};
use measure::summary::RepSummary;
use measure::timeline::RepTimeline;
use std::fmt::Write as _;

/// About this many reply points at most in a repetition's full timeline,
/// and in its zoom on the outage: ~0.3 MB of SVG per repetition, so a
/// 30-repetition 10 kHz run stays under 10 MB.
const TIMELINE_BUDGET: usize = 2500;
/// See [`TIMELINE_BUDGET`].
const ZOOM_BUDGET: usize = 1200;
/// The marker of the client seeing the service back, by its names old and
/// new (bundles analysed before the outage measure was renamed).
const RECOVERED: [&str; 2] = ["client recovered", "first prompt reply"];

/// Every repetition's section; what they could not show joins the list of
/// what is missing.
pub(super) fn per_rep(h: &mut String, cx: &mut Ctx<'_>) {
    if cx.reps.is_empty() {
        return;
    }
    h.push_str("<section id=\"repetitions\">\n");
    // A few probe intervals either side: the replies that show a gap's edges.
    let near_ns = (cx.interval_ms.unwrap_or(1.0) * 5.0).max(2.0) * 1e6;
    let mut notes = Vec::new();
    for r in &cx.reps {
        rep_section(h, cx, r, near_ns as i64, &mut notes);
    }
    cx.missing.extend(notes);
    h.push_str("</section>\n");
}

/// One repetition's section, noting in `notes` what it lacks.
fn rep_section(
    h: &mut String,
    cx: &Ctx<'_>,
    r: &RepView<'_>,
    near_ns: i64,
    notes: &mut Vec<String>,
) {
    let s = r.s;
    let n = s.repetition;
    rep_heading(h, s);
    let Some(rec) = r.rec else {
        let _ = writeln!(
            h,
            "<p class=\"missing\">No raw record for repetition {n}: no timeline.</p></section>"
        );
        notes.push(format!("repetition {n}: no raw record, so no timeline"));
        return;
    };
    faults_list(h, rec);
    missing_markers_note(h, n, &rec.migration, notes);
    let empty_tl;
    let tl = match r.tl {
        Some(t) => t,
        None => {
            notes.push(format!(
                "repetition {n}: no timeline given, phases and gaps not drawn"
            ));
            empty_tl = empty_timeline();
            &empty_tl
        }
    };
    let outage = longest_outage(s, tl);
    let icmp_outage = kernel_outage(s, tl);
    let t = Timeline {
        aria: format!("Repetition {n} timeline: probe round-trip times, client gaps, migration phases, markers and bytes remaining"),
        t0_ns: r.t0_ns,
        range_ns: (rec.window_start_ns, rec.window_end_ns),
        replies: &r.replies,
        lost: &r.lost,
        threshold_ms: cx.threshold_ms,
        phases: &tl.phases,
        gaps: &tl.gaps,
        outage,
        icmp_outage,
        markers: &tl.markers,
        remaining: Some(&tl.remaining),
        near_ns,
        budget: TIMELINE_BUDGET,
        legend: true,
        has_probe: cx.input.probe.is_some(),
    };
    full_timeline_figure(h, cx, r, &t);
    if let Some(range) = zoom_range(cx, r, rec, tl, outage, icmp_outage) {
        zoom_figure(h, cx, r, &t, range);
    }
    gap_table(h, cx, r, tl);
    breakdown_table(h, s, tl.outage.as_ref().or(s.outage.as_ref()));
    h.push_str("</section>\n");
}

/// The section's heading, a banner when the migration did not complete,
/// and its figures in one line.
fn rep_heading(h: &mut String, s: &RepSummary) {
    let n = s.repetition;
    let _ = write!(
        h,
        "<section class=\"rep\" id=\"rep-{n}\"><h2>Repetition {n}: {}, {}</h2>",
        esc(&s.direction),
        esc(s.status.as_str())
    );
    if s.status != RepStatus::Completed {
        let _ = writeln!(
            h,
            "<div class=\"banner bad\">This migration {}{}</div>",
            esc(s.status.as_str()),
            s.error
                .as_deref()
                .map_or(String::new(), |e| format!(": {}", esc(e)))
        );
    }
    let _ = writeln!(
        h,
        "<p>QEMU downtime <b>{}</b> ms · STOP → RESUME <b>{}</b> ms · client outage <b>{}</b> ms · largest reply gap <b>{}</b> ms · lost probes <b>{}</b> ({} on the way to the guest, {} back) · total time {} ms · {} MiB sent in {} passes</p>",
        num(s.qemu.downtime_ms, 0),
        num(s.host.stop_to_resume_ms, 1),
        num(s.client.max_outage_ms, 1),
        num(s.client.max_gap_ms, 1),
        s.client.lost_probes.map_or("—".into(), |v| v.to_string()),
        s.client.lost_forward.map_or("—".into(), |v| v.to_string()),
        s.client.lost_return.map_or("—".into(), |v| v.to_string()),
        num(s.qemu.total_time_ms, 0),
        num(s.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0), 1),
        s.qemu.passes.map_or("—".into(), |v| v.to_string()),
    );
    if let Some(k) = s.client.icmp_outage_ms {
        let lag = match s.client.service_lag_ms {
            Some(l) => format!(
                "; the service (the agent's reflector) was back <b>{}</b> ms after the kernel",
                num(Some(l), 1)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<p>Guest kernel (ICMP echoes): outage <b>{}</b> ms, largest reply gap {} ms{lag}.</p>",
            num(Some(k), 1),
            num(s.client.icmp_max_gap_ms, 1),
        );
    }
}

/// The faults injected into this migration, if any.
fn faults_list(h: &mut String, rec: &RepRecord) {
    if !rec.migration.faults.is_empty() {
        h.push_str("<p>Faults injected:</p><ul>");
        for f in &rec.migration.faults {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>\n");
    }
}

/// A note when the STOP or RESUME marker is missing (the phases after it
/// are then not drawn).
fn missing_markers_note(h: &mut String, n: u32, m: &MigrationRecord, notes: &mut Vec<String>) {
    let mut gone = Vec::new();
    if m.marker(MarkerKind::SourceStopped).is_none() {
        gone.push("source-stopped");
    }
    if m.marker(MarkerKind::DestinationResumed).is_none() {
        gone.push("destination-resumed");
    }
    if !gone.is_empty() {
        let what = gone.join(" and ");
        let _ = writeln!(
            h,
            "<p class=\"missing\">No {what} marker was recorded: the phases after it are not drawn, and their time falls to the phase before.</p>"
        );
        notes.push(format!(
            "repetition {n}: no {what} event, so no complete phase breakdown"
        ));
    }
}

/// A timeline with nothing in it, for a repetition given none.
fn empty_timeline() -> RepTimeline {
    RepTimeline {
        phases: Vec::new(),
        markers: Vec::new(),
        gaps: Vec::new(),
        outage: None,
        remaining: Vec::new(),
        icmp_outage: None,
    }
}

/// The client's longest outage `(start, end)` ns: the summary's, else the
/// timeline's outage gap.
fn longest_outage(s: &RepSummary, tl: &RepTimeline) -> Option<(i64, i64)> {
    s.client
        .max_outage_start_ns
        .zip(s.client.max_outage_end_ns)
        .or_else(|| {
            let g = tl.gaps.iter().find(|g| g.is_outage)?;
            Some((g.start_ns, g.end_ns))
        })
}

/// The ICMP stream's longest outage `(start, end)` ns: the summary's, else
/// the timeline's.
fn kernel_outage(s: &RepSummary, tl: &RepTimeline) -> Option<(i64, i64)> {
    s.client
        .icmp_outage_start_ns
        .zip(s.client.icmp_outage_end_ns)
        .or_else(|| tl.icmp_outage.as_ref().map(|g| (g.start_ns, g.end_ns)))
}

/// What the x axis counts from, in words.
fn origin(r: &RepView<'_>) -> &'static str {
    if r.t0_is_migrate {
        "seconds since the migrate command"
    } else {
        "seconds since the start of the window (no migrate command was recorded)"
    }
}

/// The repetition's whole window as a figure, captioned.
fn full_timeline_figure(h: &mut String, cx: &Ctx<'_>, r: &RepView<'_>, t: &Timeline<'_>) {
    let n = r.s.repetition;
    let main = plots::timeline(t);
    let caption = timeline_caption(cx, &main, origin(r), t, "the repetition's whole window");
    figure(
        h,
        &format!("plot-rep-{n}-timeline"),
        &format!("Repetition {n}: timeline"),
        main.map(|d| d.svg)
            .map_err(|e| format!("plot not drawn: {e:#}")),
        &caption,
    );
}

/// The range of the zoom on the end of the migration, where the markers
/// crowd: STOP, RESUME, the outage (the service's and the kernel's), the
/// largest gap, completion and recovery, padded; `None` when none of them
/// is known.
fn zoom_range(
    cx: &Ctx<'_>,
    r: &RepView<'_>,
    rec: &RepRecord,
    tl: &RepTimeline,
    outage: Option<(i64, i64)>,
    icmp_outage: Option<(i64, i64)>,
) -> Option<(i64, i64)> {
    let (m, s) = (&rec.migration, r.s);
    let focus: Vec<i64> = [
        m.marker_ns(MarkerKind::SourceStopped),
        m.marker_ns(MarkerKind::DestinationResumed),
        outage.map(|o| o.0),
        outage.map(|o| o.1),
        icmp_outage.map(|o| o.0),
        icmp_outage.map(|o| o.1),
        s.client.max_gap_start_ns,
        s.client.max_gap_end_ns,
    ]
    .into_iter()
    .flatten()
    .chain(
        tl.markers
            .iter()
            .filter(|k| RECOVERED.contains(&k.label.as_str()) || k.label == "completed")
            .map(|k| k.ns),
    )
    .collect();
    let (a, b) = (focus.iter().min()?, focus.iter().max()?);
    let span = (b - a) as f64;
    let pad = (span * 0.3)
        .max(15e6)
        .max(cx.interval_ms.unwrap_or(1.0) * 3e6) as i64;
    Some((
        (a - pad).max(rec.window_start_ns),
        (b + pad).min(rec.window_end_ns),
    ))
}

/// The zoom on `range` as a figure: the full timeline's data without the
/// legend and the bytes-remaining panel.
fn zoom_figure(h: &mut String, cx: &Ctx<'_>, r: &RepView<'_>, t: &Timeline<'_>, range: (i64, i64)) {
    let n = r.s.repetition;
    let z = Timeline {
        aria: format!("Repetition {n}, zoomed on the stop, resume and switchover"),
        range_ns: range,
        remaining: None,
        budget: ZOOM_BUDGET,
        legend: false,
        ..*t
    };
    let zd = plots::timeline(&z);
    let caption = timeline_caption(cx, &zd, origin(r), t, "the stop, resume and switchover");
    figure(
        h,
        &format!("plot-rep-{n}-zoom"),
        &format!(
            "Repetition {n}: around the switchover ({} ms)",
            num(Some((range.1 - range.0) as f64 / 1e6), 0)
        ),
        zd.map(|d| d.svg)
            .map_err(|e| format!("plot not drawn: {e:#}")),
        &caption,
    );
}

/// A timeline's caption: its axes and marks, and how many replies were
/// drawn of how many.
fn timeline_caption(
    cx: &Ctx<'_>,
    d: &anyhow::Result<plots::DrawnTimeline>,
    origin: &str,
    t: &Timeline<'_>,
    what: &str,
) -> String {
    let near_ns = t.near_ns;
    let mut c = if cx.input.probe.is_some() {
        format!(
            "x: {origin} ({}), over {what}. Top: round-trip time of each probe reply on a <b>log scale</b>; replies with a round trip over {} ms in vermillion (a reply held over the pause shows as one); grey ticks (bars, for runs of them) along the bottom: probes never answered, at their send time; shaded red: reply gaps over the threshold; the vermillion bar on top: the longest outage (<code>client.max_outage_ms</code>). Background colours: migration phases, named in the strip above. Vertical lines: events.",
            cx.clock_name(),
            plots::short(cx.threshold_ms)
        )
    } else {
        format!("x: {origin} ({}), over {what}. No probe record: no replies, gaps or outage to draw. Background colours: migration phases, named in the strip above. Vertical lines: events.", cx.clock_name())
    };
    if cx.input.probe.is_some() && t.icmp_outage.is_some() {
        c.push_str(" The black bar under it: the guest kernel's longest outage, measured the same way on ICMP echoes the kernel answers (<code>client.icmp_outage_ms</code>); it ends before the service's when the kernel was back first.");
    }
    if what.contains("window") {
        c.push_str(" Bottom: bytes QEMU still had to send (<code>query-migrate</code> samples).");
    }
    match d {
        Ok(_) if cx.input.probe.is_none() => {}
        Ok(d) => {
            let _ = write!(
                c,
                " Drawn: {} of {} replies ({} fell on an already drawn pixel",
                d.drawn, d.replies, d.same_pixel
            );
            if d.step > 0 {
                let _ = write!(
                    c,
                    "; every reply within {} ms of a gap or an event, and every slow reply, is drawn, and one in {} of the others",
                    num(Some(near_ns as f64 / 1e6), 0),
                    d.step
                );
            }
            c.push_str(").");
        }
        Err(_) => {}
    }
    c
}
