//! The panel under a repetition's full timeline: the bytes QEMU still had
//! to send, from its `query-migrate` samples.

use super::frame::{Frame, Timeline};
use crate::report::html::plots::common::{
    fixed, font, label, marker_color, phase_color, tick, Area, C_GRID, C_OTHER, C_QEMU, C_TEXT,
    LEFT, RIGHT,
};
use anyhow::Result;
use measure::timeline::PhaseKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// The remaining-bytes curve in MiB over the phases' shades and the
/// markers' lines, or a note when no sample falls in the window.
pub(super) fn draw_remaining_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    t: &Timeline<'_>,
    f: &Frame,
    rem: &[(i64, i64)],
) -> Result<()> {
    let pts: Vec<(f64, f64)> = rem
        .iter()
        .filter(|r| f.in_range(r.0))
        .map(|&(ns, b)| (f.secs(ns), b as f64 / 1048576.0))
        .collect();
    let ymax = pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.12 } else { 1.0 };
    let mut c2 = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(8)
        .set_label_area_size(LabelAreaPosition::Left, LEFT)
        .set_label_area_size(LabelAreaPosition::Bottom, 44)
        .build_cartesian_2d(f.x0..f.x1, 0.0..ymax)?;
    let pa2 = c2.plotting_area();
    for p in t.phases {
        if matches!(p.kind, PhaseKind::Before | PhaseKind::After) {
            continue;
        }
        let (a, b) = (f.clip(p.start_ns), f.clip(p.end_ns));
        if b > a {
            pa2.draw(&Rectangle::new(
                [(f.secs(a), 0.0), (f.secs(b), ymax)],
                phase_color(p.kind, p.pass, false).filled(),
            ))?;
        }
    }
    c2.configure_mesh()
        .bold_line_style(C_GRID)
        .light_line_style(TRANSPARENT)
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|v| fixed(*v, f.dec))
        .y_label_formatter(&|v| tick(*v))
        .y_desc("MiB remaining")
        .x_desc("seconds since the migrate command")
        .label_style(font(12.0, C_TEXT))
        .axis_desc_style(font(12.0, C_TEXT))
        .draw()?;
    let pa2 = c2.plotting_area();
    for m in t.markers.iter().filter(|m| f.in_range(m.ns)) {
        let x = f.secs(m.ns);
        pa2.draw(&PathElement::new(
            vec![(x, 0.0), (x, ymax)],
            marker_color(&m.label).stroke_width(1),
        ))?;
    }
    if pts.is_empty() {
        let (cx, cy) = pa2.map_coordinate(&((f.x0 + f.x1) / 2.0, ymax / 2.0));
        label(
            root,
            "no query-migrate samples in this window",
            (cx, cy),
            13.0,
            C_OTHER,
            HPos::Center,
            VPos::Center,
        )?;
    } else {
        c2.draw_series(LineSeries::new(pts.iter().copied(), C_QEMU.stroke_width(2)))?;
        c2.draw_series(pts.iter().map(|&p| Circle::new(p, 3, C_QEMU.filled())))?;
    }
    Ok(())
}
