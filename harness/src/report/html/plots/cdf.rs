//! The distribution of the client's reply gaps over the threshold.

use super::common::{font, label, log_tick, short, svg, C_CLIENT, C_GRID, C_OTHER, C_TEXT, RIGHT};
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// The empirical CDF of the client's reply gaps over the threshold, on a
/// log x axis (gaps span 5 ms to seconds).
pub(crate) fn gap_cdf(aria: &str, gaps_ms: &[f64], threshold_ms: f64) -> Result<String> {
    let (w, h) = (600u32, 320u32);
    let mut v: Vec<f64> = gaps_ms
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    v.sort_by(f64::total_cmp);
    let lo = v
        .first()
        .copied()
        .unwrap_or(threshold_ms.max(1.0))
        .min(threshold_ms.max(0.1))
        * 0.8;
    let hi = v.last().copied().unwrap_or(lo * 10.0).max(lo * 4.0) * 1.3;
    svg(w, h, aria, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(14)
            .margin_right(RIGHT)
            .set_label_area_size(LabelAreaPosition::Left, 62)
            .set_label_area_size(LabelAreaPosition::Bottom, 44)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0f64..1.05)?;
        chart
            .configure_mesh()
            .bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|v| log_tick(*v))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .x_desc("reply gap, ms (log scale)")
            .y_desc("fraction of gaps ≤ x")
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(threshold_ms.max(lo), 0.0), (threshold_ms.max(lo), 1.05)],
            C_OTHER.stroke_width(1),
        )))?;
        let (tx, ty) = chart
            .plotting_area()
            .map_coordinate(&(threshold_ms.max(lo), 1.05));
        label(
            root,
            &format!("threshold {} ms", short(threshold_ms)),
            (tx + 4, ty + 2),
            11.0,
            C_OTHER,
            HPos::Left,
            VPos::Top,
        )?;
        let n = v.len() as f64;
        let mut steps = Vec::with_capacity(v.len() * 2 + 1);
        steps.push((lo, 0.0));
        for (i, &x) in v.iter().enumerate() {
            steps.push((x, i as f64 / n));
            steps.push((x, (i + 1) as f64 / n));
        }
        if !v.is_empty() {
            steps.push((hi, 1.0));
        }
        chart.draw_series(std::iter::once(PathElement::new(
            steps,
            C_CLIENT.stroke_width(2),
        )))?;
        chart.draw_series(
            v.iter()
                .enumerate()
                .map(|(i, &x)| Circle::new((x, (i + 1) as f64 / n), 3, C_CLIENT.filled())),
        )?;
        Ok(())
    })
}
