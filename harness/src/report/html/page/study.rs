//! The study's three charts, one bar per repetition: data transferred,
//! downtime and total migration time as the platform itself reported
//! them. The study this project grew from (Proxmox, 30 migrations per VM)
//! showed exactly these; drawn for any bundle whose repetitions have a
//! platform view (`platform.*`: Proxmox's task log, libvirt's job
//! statistics), so an imported task log reads as the study did.

use super::context::{Ctx, RepView};
use super::figure::{drawn, figure};
use crate::report::html::plots::{self, RepBars};
use crate::report::html::text::esc;
use measure::migration::record::{PlatformStats, RepStatus};
use plotters::style::RGBColor;
use std::fmt::Write as _;

/// A figure of the platform's, read off its statistics.
type Metric = fn(&PlatformStats) -> Option<f64>;

/// One of the three charts.
struct Chart {
    id: &'static str,
    title: String,
    unit: &'static str,
    /// Each series' name, colour and value (in `unit`).
    series: Vec<(&'static str, RGBColor, Metric)>,
    caption: String,
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// The three charts, or nothing when no repetition has a platform view.
pub(super) fn study(h: &mut String, cx: &Ctx<'_>) {
    let Some(p) = cx.reps.iter().find_map(|r| r.s.platform.as_ref()) else {
        return;
    };
    let _ = writeln!(
        h,
        "<div id=\"study\"><p>Per repetition, as {} itself reported it: what it sent, the downtime it logged and how long the whole migration took. These are the platform's figures, not what the VM's users saw (that is the client's outage, when a probe ran). ✗ under a bar: a migration that did not complete.</p>",
        esc(&p.platform)
    );
    for c in charts(cx, p) {
        chart(h, cx, &c);
    }
    h.push_str("</div>\n");
}

/// Data (RAM, and disks when any repetition mirrored some), downtime,
/// duration, with their captions.
fn charts(cx: &Ctx<'_>, p: &PlatformStats) -> [Chart; 3] {
    let gib = largest(cx, |p| p.ram_transferred_bytes) >= GIB
        || largest(cx, |p| p.disk_transferred_bytes) >= GIB;
    let ram: Metric = if gib {
        |p| bytes(p.ram_transferred_bytes, GIB)
    } else {
        |p| bytes(p.ram_transferred_bytes, MIB)
    };
    let disk: Metric = if gib {
        |p| bytes(p.disk_transferred_bytes, GIB)
    } else {
        |p| bytes(p.disk_transferred_bytes, MIB)
    };
    let mut data = vec![("RAM (VM state)", plots::C_BEFORE, ram)];
    if largest(cx, |p| p.disk_transferred_bytes) > 0.0 {
        data.push(("local disks (mirror)", plots::C_SWITCH, disk));
    }
    let downtime_source = p
        .downtime_source
        .as_deref()
        .unwrap_or("the platform's own figure");
    [
        Chart {
            id: "plot-study-data",
            title: "Data transferred per repetition".into(),
            unit: if gib { "GiB" } else { "MiB" },
            series: data,
            caption: "RAM: <code>platform.ram_transferred_bytes</code> (Proxmox: <i>migration completed, transferred … VM-state</i>, QEMU's count to the one decimal printed); local disks: <code>platform.disk_transferred_bytes</code> (Proxmox: each mirror job's last progress line, summed; what the guest writes after a mirror is ready is copied too, and no line counts it). n/a: not reported.".into(),
        },
        Chart {
            id: "plot-study-downtime",
            title: "Downtime per repetition".into(),
            unit: "ms",
            series: vec![("platform's downtime", plots::C_OTHER, |p| p.downtime_ms)],
            caption: format!("<code>platform.downtime_ms</code>: {}. n/a: not reported (Proxmox logs it only for a migration that reached QEMU and took at least a second).", esc(downtime_source)),
        },
        Chart {
            id: "plot-study-duration",
            title: "Total migration time per repetition".into(),
            unit: "s",
            series: vec![("migration time", plots::C_OTHER, |p| p.duration_ms.map(|d| d / 1000.0))],
            caption: "<code>platform.duration_ms</code> in seconds: the whole task as the platform timed it (Proxmox: <i>migration finished successfully (duration HH:MM:SS)</i>, whole seconds, from the task's start through the disk mirrors, the RAM and the cleanup).".into(),
        },
    ]
}

/// One chart, or why it has nothing to draw.
fn chart(h: &mut String, cx: &Ctx<'_>, c: &Chart) {
    let rows: Vec<RepBars> = cx
        .reps
        .iter()
        .map(|r| RepBars {
            label: label(r),
            values: c
                .series
                .iter()
                .map(|(_, _, f)| r.s.platform.as_ref().and_then(f))
                .collect(),
        })
        .collect();
    let title = format!("{}, {}", c.title, c.unit);
    let plot = if rows.iter().all(|r| r.values.iter().all(Option::is_none)) {
        Err(format!("{title}: no repetition has a value"))
    } else {
        let series: Vec<(&str, RGBColor)> = c.series.iter().map(|(n, col, _)| (*n, *col)).collect();
        drawn(plots::per_rep_bars(
            &format!("{title}, one bar per repetition"),
            c.unit,
            &series,
            &rows,
        ))
    };
    figure(h, c.id, &title, plot, &c.caption);
}

/// A repetition's number, marked when it did not complete.
fn label(r: &RepView<'_>) -> String {
    match r.s.status {
        RepStatus::Completed => r.s.repetition.to_string(),
        _ => format!("{} ✗", r.s.repetition),
    }
}

/// The largest of a byte count over the repetitions (0 when none has it).
fn largest(cx: &Ctx<'_>, f: fn(&PlatformStats) -> Option<i64>) -> f64 {
    cx.reps
        .iter()
        .filter_map(|r| f(r.s.platform.as_ref()?))
        .fold(0.0, |m, b| m.max(b as f64))
}

/// Bytes in units of `unit` bytes.
fn bytes(b: Option<i64>, unit: f64) -> Option<f64> {
    b.map(|b| b as f64 / unit)
}
