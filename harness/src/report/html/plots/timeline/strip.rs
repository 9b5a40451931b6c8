//! The strip above a timeline that names the migration's phases.

use super::frame::{Frame, Timeline};
use crate::report::html::plots::common::{label, phase_color, text_w, Area, C_TEXT, LEFT, RIGHT};
use anyhow::Result;
use measure::timeline::PhaseKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// The phase strip: one box per phase, named when the name fits, and
/// `phase` written to its left.
pub(super) fn draw_phase_strip(
    root: &Area<'_>,
    strip: &Area<'_>,
    t: &Timeline<'_>,
    f: &Frame,
) -> Result<()> {
    let strip_chart = ChartBuilder::on(strip)
        .margin_right(RIGHT)
        .set_label_area_size(LabelAreaPosition::Left, LEFT)
        .build_cartesian_2d(f.x0..f.x1, 0.0f64..1.0)?;
    let sp = strip_chart.plotting_area();
    for p in t.phases {
        let (a, b) = (f.clip(p.start_ns), f.clip(p.end_ns));
        if b <= a {
            continue;
        }
        let (xa, xb) = (f.secs(a), f.secs(b));
        sp.draw(&Rectangle::new(
            [(xa, 0.08), (xb, 0.92)],
            phase_color(p.kind, p.pass, true).filled(),
        ))?;
        sp.draw(&PathElement::new(
            vec![(xb, 0.0), (xb, 1.0)],
            WHITE.stroke_width(1),
        ))?;
        let name = match p.kind {
            PhaseKind::Before => "before migrate".to_string(),
            PhaseKind::After => "after".to_string(),
            _ => p.label(),
        };
        let (pa, py) = sp.map_coordinate(&(xa, 0.5));
        let (pb, _) = sp.map_coordinate(&(xb, 0.5));
        if pb - pa > text_w(&name, 12.0) + 6 {
            label(
                root,
                &name,
                ((pa + pb) / 2, py),
                12.0,
                C_TEXT,
                HPos::Center,
                VPos::Center,
            )?;
        }
    }
    let (sx, sy) = sp.map_coordinate(&(f.x0, 0.5));
    label(
        root,
        "phase",
        (sx - 8, sy),
        12.0,
        C_TEXT,
        HPos::Right,
        VPos::Center,
    )
}
