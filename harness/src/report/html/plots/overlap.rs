//! One evacuation round: every VM's migration on the clock they share,
//! one row each, so it shows how long they ran at the same time and where
//! each VM's users lost it.

use super::common::{
    font, label, legend, svg, tick, Key, C_BEFORE, C_CLIENT, C_GRID, C_HOST, C_SWITCH, C_TEXT,
    LEFT, RIGHT,
};
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Intervals of one VM in a round, ms from the round's first migration
/// command.
pub(crate) struct OverlapRow {
    /// The VM (member) name.
    pub label: String,
    /// Migrate command to its end.
    pub migration: Option<(f64, f64)>,
    /// Source STOP to destination RESUME.
    pub paused: Option<(f64, f64)>,
    /// The client's longest outage.
    pub outage: Option<(f64, f64)>,
    /// The guest kernel's (ICMP) longest outage.
    pub icmp: Option<(f64, f64)>,
}

/// Rows of bars on one time axis.
pub(crate) fn overlap(aria: &str, rows: &[OverlapRow]) -> Result<String> {
    let row_h = 34u32;
    let (w, plot_h) = (900u32, 52 + rows.len() as u32 * row_h);
    let h = plot_h + 60;
    let xmax = rows
        .iter()
        .flat_map(|r| [r.migration, r.paused, r.outage, r.icmp])
        .flatten()
        .map(|(_, b)| b)
        .fold(1.0f64, f64::max)
        * 1.04;
    let n = rows.len().max(1) as f64;
    svg(w, h, aria, |root| {
        let (top, bottom) = root.split_vertically(plot_h);
        let mut chart = ChartBuilder::on(&top)
            .margin_top(8)
            .margin_right(RIGHT)
            .set_label_area_size(LabelAreaPosition::Left, LEFT + 40)
            .set_label_area_size(LabelAreaPosition::Bottom, 44)
            .build_cartesian_2d(0.0..xmax, -0.5..(n - 0.5))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(10)
            .bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| tick(*v))
            .x_desc("ms since the round's first migrate command")
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        for (i, r) in rows.iter().enumerate() {
            // The first row on top.
            let y = n - 1.0 - i as f64;
            let bars = [
                (r.migration, 0.10, C_BEFORE),
                (r.paused, 0.22, C_HOST),
                (r.outage, 0.0, C_CLIENT),
            ];
            for (span, half, color) in bars {
                let Some((a, b)) = span else { continue };
                let (lo, hi) = if half > 0.0 {
                    (y - half, y + half)
                } else {
                    (y - 0.40, y - 0.30)
                };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(a, lo), (b.max(a), hi)],
                    color.filled(),
                )))?;
            }
            if let Some((a, b)) = r.icmp {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(a, y + 0.30), (b.max(a), y + 0.40)],
                    C_SWITCH.filled(),
                )))?;
            }
            let (px, py) = chart.plotting_area().map_coordinate(&(0.0, y));
            label(
                root,
                &r.label,
                (px - 8, py),
                12.0,
                C_TEXT,
                HPos::Right,
                VPos::Center,
            )?;
        }
        legend(
            &bottom,
            LEFT as i32,
            8,
            w as i32 - RIGHT as i32,
            &[
                (
                    Key::Bar(C_BEFORE),
                    "migration (migrate command to end)".into(),
                ),
                (Key::Box(C_HOST), "source STOP to destination RESUME".into()),
                (Key::Bar(C_CLIENT), "client outage (probe, below)".into()),
                (Key::Bar(C_SWITCH), "kernel outage (ICMP, above)".into()),
            ],
        )?;
        Ok(())
    })
}
