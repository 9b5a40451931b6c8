//! The client's longest outage per repetition, taken apart along the
//! migration's phases.

use super::common::{
    font, label, legend, short, svg, tick, Area, Key, C_BEFORE, C_GRID, C_HOST, C_OTHER, C_QEMU,
    C_SWITCH, C_TEXT, RIGHT,
};
use anyhow::Result;
use measure::timeline::OutageBreakdown;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One repetition in [`outage_breakdown`].
pub(crate) struct BreakdownRow {
    /// `rep 1 a->b`.
    pub label: String,
    /// The breakdown, when the client saw an outage.
    pub breakdown: Option<OutageBreakdown>,
}

/// The names and colours of the outage's parts, in drawing order.
pub(crate) fn breakdown_parts() -> [(&'static str, RGBColor); 5] {
    [
        ("before STOP", C_BEFORE),
        ("stop-and-copy", C_QEMU),
        ("resume", C_HOST),
        ("switchover", C_SWITCH),
        ("other", C_OTHER),
    ]
}

/// The parts' lengths in ms, in the order of [`breakdown_parts`].
fn parts(b: &OutageBreakdown) -> [f64; 5] {
    [
        b.before_stop_ms,
        b.stop_and_copy_ms,
        b.resume_ms,
        b.switchover_ms,
        b.other_ms,
    ]
}

/// A stacked horizontal bar per repetition: the client's longest outage
/// taken apart along the migration's phases, with QEMU's downtime drawn as
/// a thin bar under it starting at STOP (where QEMU starts timing).
pub(crate) fn outage_breakdown(aria: &str, rows: &[BreakdownRow]) -> Result<String> {
    let n = rows.len().max(1);
    let row_h = 38u32;
    let (w, h) = (1200u32, 34 + 40 + row_h * n as u32);
    let top = rows
        .iter()
        .filter_map(|r| r.breakdown.as_ref())
        .map(|b| {
            let q = b.before_stop_ms + b.qemu_downtime_ms.unwrap_or(0.0);
            b.outage_ms.max(q).max(parts(b).iter().sum())
        })
        .fold(0.0f64, f64::max);
    let xmax = if top > 0.0 { top * 1.22 } else { 1.0 };
    svg(w, h, aria, |root| {
        let mut items: Vec<(Key, String)> = breakdown_parts()
            .iter()
            .map(|(s, c)| (Key::Box(*c), s.to_string()))
            .collect();
        items.push((Key::Bar(BLACK), "QEMU downtime (from STOP)".into()));
        legend(root, 110, 4, w as i32 - 20, &items)?;
        let (_, body) = root.split_vertically(30);
        let mut chart = ChartBuilder::on(&body)
            .margin_right(RIGHT)
            .margin_top(4)
            .set_label_area_size(LabelAreaPosition::Left, 110)
            .set_label_area_size(LabelAreaPosition::Bottom, 40)
            .build_cartesian_2d(0.0..xmax, 0.0f64..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(10)
            .bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| tick(*v))
            .x_desc("ms of the client's longest outage")
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        for (i, r) in rows.iter().enumerate() {
            // Row i from the top.
            breakdown_row(root, &mut chart, n as f64 - i as f64 - 0.5, r)?;
        }
        Ok(())
    })
}

/// One repetition's row centred on `yc`: its name, the stacked parts, the
/// QEMU downtime bar and the figures written after them.
fn breakdown_row(
    root: &Area<'_>,
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    yc: f64,
    r: &BreakdownRow,
) -> Result<()> {
    let (lx, ly) = chart.plotting_area().map_coordinate(&(0.0, yc));
    label(
        root,
        &r.label,
        (lx - 8, ly),
        12.0,
        C_TEXT,
        HPos::Right,
        VPos::Center,
    )?;
    let Some(b) = &r.breakdown else {
        return label(
            root,
            "no outage measured",
            (lx + 6, ly),
            12.0,
            C_OTHER,
            HPos::Left,
            VPos::Center,
        );
    };
    let mut x = 0.0;
    for (k, v) in parts(b).iter().enumerate() {
        if *v > 0.0 {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, yc - 0.05), (x + v, yc + 0.32)],
                breakdown_parts()[k].1.filled(),
            )))?;
        }
        x += v;
    }
    if let Some(q) = b.qemu_downtime_ms {
        let q0 = b.before_stop_ms;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(q0, yc - 0.3), (q0 + q, yc - 0.16)],
            BLACK.filled(),
        )))?;
    }
    let end = x.max(b.outage_ms);
    let (ex, ey) = chart.plotting_area().map_coordinate(&(end, yc + 0.14));
    let qtext = b
        .qemu_downtime_ms
        .map_or("QEMU: not reported".to_string(), |q| {
            format!("QEMU {} ms", short(q))
        });
    label(
        root,
        &format!("{} ms outage · {qtext}", short(b.outage_ms)),
        (ex + 6, ey),
        12.0,
        C_TEXT,
        HPos::Left,
        VPos::Center,
    )
}
