//! The "Across repetitions" section: the three downtimes at a glance, the
//! outage-to-downtime ratio, the platform's own figures per repetition
//! (`study`), and the plots comparing repetitions.

use super::context::{Ctx, RepView};
use super::figure::{drawn, figure};
use crate::report::html::plots::{self, BreakdownRow, Group, ThreeWays};
use crate::report::html::text::{esc, num};
use measure::summary::RepSummary;
use plotters::style::RGBColor;
use serde_json::Value;
use std::fmt::Write as _;

/// One row of the at-a-glance table.
struct Stat {
    name: String,
    decimals: usize,
    values: Vec<f64>,
    /// Left out when no repetition has a value (the platform's downtime
    /// on a backend that is no platform).
    optional: bool,
}

/// The whole section, or a note that no repetition ran.
pub(super) fn across(h: &mut String, cx: &Ctx<'_>) {
    h.push_str("<section id=\"across\"><h2>Across repetitions</h2>\n");
    if cx.reps.is_empty() {
        h.push_str(
            "<p class=\"missing\">No repetition ran: there is nothing to compare.</p></section>\n",
        );
        return;
    }
    let done = cx.completed();
    glance_table(h, &done);
    ratio_line(h, &done);
    super::study::study(h, cx);
    bar_charts(h, cx, &done);
    three_ways_figure(h, cx);
    breakdown_figure(h, cx);
    gap_cdf_figure(h, cx);
    h.push_str("</section>\n");
}

/// At a glance: min / mean / max of the three downtimes, the largest
/// reply gap and the lost probes over the completed repetitions.
fn glance_table(h: &mut String, done: &[&RepView<'_>]) {
    let n_done = done.len();
    let platform: Vec<f64> = done
        .iter()
        .filter_map(|r| r.s.platform.as_ref().and_then(|p| p.downtime_ms))
        .collect();
    let platform_name = done
        .iter()
        .find_map(|r| r.s.platform.as_ref())
        .map_or("platform".into(), |p| p.platform.clone());
    let stats = [
        Stat {
            name: "QEMU downtime, ms".into(),
            decimals: 1,
            values: done.iter().filter_map(|r| r.s.qemu.downtime_ms).collect(),
            optional: false,
        },
        Stat {
            name: format!("{platform_name}'s downtime, ms"),
            decimals: 1,
            values: platform,
            optional: true,
        },
        Stat {
            name: "STOP → RESUME, ms".into(),
            decimals: 1,
            values: done
                .iter()
                .filter_map(|r| r.s.host.stop_to_resume_ms)
                .collect(),
            optional: false,
        },
        Stat {
            name: "client outage, ms".into(),
            decimals: 1,
            values: done
                .iter()
                .filter_map(|r| r.s.client.max_outage_ms)
                .collect(),
            optional: false,
        },
        Stat {
            name: "largest reply gap, ms".into(),
            decimals: 1,
            values: done.iter().filter_map(|r| r.s.client.max_gap_ms).collect(),
            optional: false,
        },
        Stat {
            name: "lost probes".into(),
            decimals: 0,
            values: done
                .iter()
                .filter_map(|r| r.s.client.lost_probes.map(|v| v as f64))
                .collect(),
            optional: false,
        },
    ];
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"table-glance\"><tr><th class=\"l\">over {n_done} completed repetition{}</th><th>n</th><th>min</th><th>mean</th><th>max</th></tr>",
        if n_done == 1 { "" } else { "s" }
    );
    // The platform's row only where the backend is a platform.
    for st in stats
        .iter()
        .filter(|st| !(st.optional && st.values.is_empty()))
    {
        let (lo, mean, hi) = min_mean_max(&st.values);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.name),
            st.values.len(),
            num(lo, st.decimals),
            num(mean, 1),
            num(hi, st.decimals)
        );
    }
    h.push_str("</table></div>\n");
}

/// How many times QEMU's downtime the client's outage was, from the
/// smallest to the largest ratio (nothing when no repetition has both).
fn ratio_line(h: &mut String, done: &[&RepView<'_>]) {
    let ratios: Vec<f64> = done
        .iter()
        .filter_map(|r| {
            let q = r.s.qemu.downtime_ms.filter(|q| *q > 0.0)?;
            Some(r.s.client.max_outage_ms? / q)
        })
        .collect();
    if let (Some(lo), Some(hi)) = (
        ratios.iter().copied().reduce(f64::min),
        ratios.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            h,
            "<p id=\"ratio\">Per repetition, the client's outage was <b>{}× to {}×</b> the downtime QEMU reported.</p>",
            num(Some(lo), 1),
            num(Some(hi), 1)
        );
    }
}

/// The study's three bar charts side by side: data transferred, QEMU
/// downtime and total time per group of repetitions.
fn bar_charts(h: &mut String, cx: &Ctx<'_>, done: &[&RepView<'_>]) {
    let by = match &cx.sweep_param {
        Some(p) if done.iter().any(|r| r.s.guest.sweep_value.is_some()) => {
            format!("by value of <code>{}</code>", esc(p))
        }
        _ => "by direction".into(),
    };
    let bar_caption = format!(
        "Completed repetitions only, {by}: bar = mean, whisker = min to max, circles = each repetition."
    );
    h.push_str("<div class=\"grid3\">\n");
    type Metric = fn(&RepSummary) -> Option<f64>;
    let charts: [(&str, &str, &str, RGBColor, Metric); 3] = [
        (
            "plot-bars-transferred",
            "Data transferred",
            "MiB",
            plots::C_BEFORE,
            |r| r.qemu.transferred_bytes.map(|b| b as f64 / 1048576.0),
        ),
        (
            "plot-bars-downtime",
            "QEMU downtime",
            "ms",
            plots::C_QEMU,
            |r| r.qemu.downtime_ms,
        ),
        (
            "plot-bars-total-time",
            "Total migration time",
            "ms",
            plots::C_OTHER,
            |r| r.qemu.total_time_ms,
        ),
    ];
    for (id, title, unit, color, value) in charts {
        let g = groups(cx, value);
        let plot = if g.iter().all(|g| g.values.is_empty()) {
            Err(format!("{title}: no completed repetition has a value"))
        } else {
            drawn(plots::bars_with_whiskers(
                &format!("{title} per group of repetitions, {unit}"),
                unit,
                &g,
                color,
            ))
        };
        figure(h, id, &format!("{title}, {unit}"), plot, &bar_caption);
    }
    h.push_str("</div>\n");
}

/// Downtime three ways: per repetition, QEMU's downtime, STOP → RESUME,
/// the client's outage, the largest reply gap (and the video's freeze).
fn three_ways_figure(h: &mut String, cx: &Ctx<'_>) {
    let rows: Vec<ThreeWays> = cx
        .reps
        .iter()
        .map(|r| ThreeWays {
            label: format!("{} {}", r.s.repetition, r.s.direction),
            values: [
                r.s.qemu.downtime_ms,
                r.s.platform.as_ref().and_then(|p| p.downtime_ms),
                r.s.host.stop_to_resume_ms,
                r.s.client.max_outage_ms,
                r.s.client.max_gap_ms,
                r.s.stream.rtp.as_ref().and_then(|v| v.picture_stale_max_ms),
            ],
        })
        .collect();
    figure(
        h,
        "plot-downtime-three-ways",
        "Downtime three ways, per repetition",
        drawn(plots::downtime_three_ways(
            "Per repetition: QEMU downtime, STOP to RESUME, client outage and largest reply gap, ms",
            &rows,
        )),
        "Each group is one repetition (number and direction). The platform's downtime, when the backend has one, is what libvirt's job statistics or Proxmox's task log report (<code>platform.downtime_ms</code>; what it spans is in <code>platform.downtime_source</code>). The client's outage is the longest stretch in which replies did not flow (<code>client.max_outage_ms</code>); the largest reply gap is shorter when a reply held over the pause splits it. With an RTP video stream, the fifth bar is how long its viewer's picture stayed frozen at worst (<code>stream.rtp.picture_stale_max_ms</code>, under the jitter-buffer model). n/a: not measured (a failed migration, no probe).",
    );
}

/// Where the client's outage went: each repetition's longest outage split
/// by migration phase.
fn breakdown_figure(h: &mut String, cx: &Ctx<'_>) {
    let rows: Vec<BreakdownRow> = cx
        .reps
        .iter()
        .map(|r| BreakdownRow {
            label: format!("rep {} {}", r.s.repetition, r.s.direction),
            breakdown: r
                .tl
                .and_then(|t| t.outage.clone())
                .or_else(|| r.s.outage.clone()),
        })
        .collect();
    let bd = if rows.iter().all(|r| r.breakdown.is_none()) {
        Err("No repetition has a measured client outage to take apart.".to_string())
    } else {
        drawn(plots::outage_breakdown(
            "Per repetition: the client's longest outage taken apart by migration phase, with QEMU's downtime",
            &rows,
        ))
    };
    figure(
        h,
        "plot-outage-breakdown",
        "Where the client's outage went",
        bd,
        "Each bar is a repetition's longest client outage split by the phase it fell in: before STOP (the guest still on the source), stop-and-copy (STOP to QEMU's completed), resume (completed to RESUME on the destination), switchover (RESUME until the client's replies flow again). The thin black bar is QEMU's downtime, drawn from STOP: what QEMU reports covers about the stop-and-copy part only.",
    );
}

/// The CDF of every reply gap over the threshold, with its median, p95
/// and maximum in the caption.
fn gap_cdf_figure(h: &mut String, cx: &Ctx<'_>) {
    let gaps: Vec<f64> = match &cx.input.summary.probe_overall {
        Some(g) => g.gaps.iter().map(|x| x.len_ms).collect(),
        None => cx
            .reps
            .iter()
            .filter_map(|r| r.tl)
            .flat_map(|t| t.gaps.iter().map(|g| g.len_ms))
            .collect(),
    };
    let cdf = if cx.input.probe.is_none() && cx.input.summary.probe_overall.is_none() {
        Err("No probe record: no client gaps to plot.".to_string())
    } else if gaps.is_empty() {
        Err(format!(
            "No reply gap exceeded the {} ms threshold.",
            plots::short(cx.threshold_ms)
        ))
    } else {
        drawn(plots::gap_cdf(
            "Cumulative distribution of the client's reply gaps over the threshold",
            &gaps,
            cx.threshold_ms,
        ))
    };
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |p: f64| -> Option<f64> {
        let k = (p * sorted.len() as f64).ceil() as usize;
        sorted.get(k.clamp(1, sorted.len().max(1)) - 1).copied()
    };
    h.push_str("<div class=\"narrow\">");
    figure(
        h,
        "plot-gap-cdf",
        "Client reply gaps over the threshold (CDF)",
        cdf,
        &format!(
            "Every gap between consecutive probe replies longer than {} ms, over the whole probe record ({} gaps; median {} ms, p95 {} ms, max {} ms). Read: the fraction of gaps (y) that were at most x ms long.",
            plots::short(cx.threshold_ms),
            sorted.len(),
            num(pick(0.5), 1),
            num(pick(0.95), 1),
            num(sorted.last().copied(), 1)
        ),
    );
    h.push_str("</div>\n");
}

/// Groups of completed repetitions: by swept value when the scenario
/// sweeps, else by direction, with "all" first when there are several.
fn groups(cx: &Ctx<'_>, value: impl Fn(&RepSummary) -> Option<f64>) -> Vec<Group> {
    let done = cx.completed();
    let key = |r: &RepSummary| -> String {
        match &r.guest.sweep_value {
            Some(v) => match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            None => r.direction.clone(),
        }
    };
    // First-appearance order: a sweep's values in the order they ran.
    let mut keys: Vec<String> = Vec::new();
    for r in &done {
        let k = key(r.s);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut out = Vec::new();
    if keys.len() > 1 {
        out.push(Group {
            label: "all".into(),
            values: done.iter().filter_map(|r| value(r.s)).collect(),
        });
    }
    for k in keys {
        out.push(Group {
            values: done
                .iter()
                .filter(|r| key(r.s) == k)
                .filter_map(|r| value(r.s))
                .collect(),
            label: k,
        });
    }
    out
}

/// The smallest, mean and largest of `v`; all `None` when it is empty.
fn min_mean_max(v: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None, None);
    }
    (
        v.iter().copied().reduce(f64::min),
        Some(v.iter().sum::<f64>() / v.len() as f64),
        v.iter().copied().reduce(f64::max),
    )
}
