//! Bar charts across repetitions: a metric's mean per group with its
//! spread, the same pause measured three (four, five) ways, and any
//! figures per repetition.

use super::common::{
    font, label, legend, short, svg, tick, Area, Key, C_CLIENT, C_GAP, C_GRID, C_HOST, C_OTHER,
    C_QEMU, C_SWITCH, C_TEXT, LEFT, RIGHT,
};
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// A chart on two linear axes, as the bar charts draw them.
type LinearChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One group of values for [`bars_with_whiskers`].
pub(crate) struct Group {
    /// Shown under the bar.
    pub label: String,
    /// The repetitions' values.
    pub values: Vec<f64>,
}

/// Bars of the mean per group, whiskers from min to max, every value as a
/// hollow dot; the mean is written above.
pub(crate) fn bars_with_whiskers(
    aria: &str,
    unit: &str,
    groups: &[Group],
    color: RGBColor,
) -> Result<String> {
    bars_with_whiskers_sized(aria, unit, groups, color, 400)
}

/// [`bars_with_whiskers`], `w` pixels wide (for many groups).
pub(crate) fn bars_with_whiskers_sized(
    aria: &str,
    unit: &str,
    groups: &[Group],
    color: RGBColor,
    w: u32,
) -> Result<String> {
    let h = 300u32;
    let n = groups.len().max(1);
    let top = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .fold(0.0f64, f64::max);
    let ymax = if top > 0.0 { top * 1.18 } else { 1.0 };
    svg(w, h, aria, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(14)
            .margin_right(12)
            .set_label_area_size(LabelAreaPosition::Left, 62)
            .set_label_area_size(LabelAreaPosition::Bottom, 44)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0..ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|v| tick(*v))
            .y_desc(unit)
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        for (i, g) in groups.iter().enumerate() {
            group_bar(root, &mut chart, i as f64, g, color)?;
        }
        for (i, g) in groups.iter().enumerate() {
            group_label(root, &chart, i as f64, g)?;
        }
        Ok(())
    })
}

/// One group's bar, whisker and dots at `x`, with its mean written above.
fn group_bar(
    root: &Area<'_>,
    chart: &mut LinearChart<'_, '_>,
    x: f64,
    g: &Group,
    color: RGBColor,
) -> Result<()> {
    let Some(stats) = min_mean_max(&g.values) else {
        return Ok(());
    };
    let (lo, mean, hi) = stats;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(x - 0.3, 0.0), (x + 0.3, mean)],
        color.mix(0.85).filled(),
    )))?;
    let whisker = BLACK.stroke_width(1);
    chart.draw_series([
        PathElement::new(vec![(x, lo), (x, hi)], whisker),
        PathElement::new(vec![(x - 0.08, lo), (x + 0.08, lo)], whisker),
        PathElement::new(vec![(x - 0.08, hi), (x + 0.08, hi)], whisker),
    ])?;
    let m = g.values.len();
    chart.draw_series(g.values.iter().enumerate().map(|(k, &v)| {
        let off = if m > 1 {
            -0.18 + 0.36 * k as f64 / (m - 1) as f64
        } else {
            0.0
        };
        Circle::new((x + off, v), 3, BLACK.stroke_width(1))
    }))?;
    let (tx, ty) = chart.plotting_area().map_coordinate(&(x, hi));
    label(
        root,
        &short(mean),
        (tx, ty - 4),
        12.0,
        C_TEXT,
        HPos::Center,
        VPos::Bottom,
    )
}

/// A group's name and count under its bar at `x`.
fn group_label(root: &Area<'_>, chart: &LinearChart<'_, '_>, x: f64, g: &Group) -> Result<()> {
    let (tx, ty) = chart.plotting_area().map_coordinate(&(x, 0.0));
    label(
        root,
        &g.label,
        (tx, ty + 8),
        12.0,
        C_TEXT,
        HPos::Center,
        VPos::Top,
    )?;
    let nlab = format!("n={}", g.values.len());
    label(
        root,
        &nlab,
        (tx, ty + 24),
        11.0,
        C_OTHER,
        HPos::Center,
        VPos::Top,
    )
}

/// The smallest, mean and largest of `v`, or `None` when it is empty.
fn min_mean_max(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo, v.iter().sum::<f64>() / v.len() as f64, hi))
}

/// One repetition in [`downtime_three_ways`].
pub(crate) struct ThreeWays {
    /// `1 a->b`.
    pub label: String,
    /// QEMU downtime, the platform's downtime (libvirt's, Proxmox's, when
    /// the backend has one), STOP..RESUME, client outage, largest reply
    /// gap, and the RTP stream's worst stale picture (when there is a
    /// stream), ms.
    pub values: [Option<f64>; 6],
}

/// The names of [`ThreeWays::values`], with their colours, and whether
/// the series is drawn even when no repetition has a value (as `n/a`).
pub(crate) fn three_ways_series() -> [(&'static str, RGBColor, bool); 6] {
    [
        ("QEMU downtime", C_QEMU, true),
        ("platform's downtime", C_OTHER, false),
        ("STOP → RESUME (host)", C_HOST, true),
        ("client outage", C_CLIENT, true),
        ("largest reply gap", C_GAP, true),
        ("video frozen (RTP viewer)", C_SWITCH, false),
    ]
}

/// The series drawn: the four every run has, and the platform's and the
/// video's when some repetition has them.
fn shown_series(reps: &[ThreeWays]) -> Vec<usize> {
    three_ways_series()
        .iter()
        .enumerate()
        .filter(|(k, (_, _, always))| *always || reps.iter().any(|r| r.values[*k].is_some()))
        .map(|(k, _)| k)
        .collect()
}

/// Grouped bars, one group per repetition: the same pause measured three
/// (four) ways.
pub(crate) fn downtime_three_ways(aria: &str, reps: &[ThreeWays]) -> Result<String> {
    let all = three_ways_series();
    let shown = shown_series(reps);
    let series: Vec<(&str, RGBColor)> = shown.iter().map(|&k| (all[k].0, all[k].1)).collect();
    let rows: Vec<RepBars> = reps
        .iter()
        .map(|r| RepBars {
            label: r.label.clone(),
            values: shown.iter().map(|&k| r.values[k]).collect(),
        })
        .collect();
    per_rep_bars(aria, "ms", &series, &rows)
}

/// One repetition in [`per_rep_bars`].
pub(crate) struct RepBars {
    /// Shown under its group (every label when there are up to 20).
    pub label: String,
    /// One value per series, `None` drawn as `n/a`.
    pub values: Vec<Option<f64>>,
}

/// Grouped bars, one group per repetition and one bar per series (named
/// with its colour in the legend), each with its value above when it
/// fits, `n/a` where a repetition has none.
pub(crate) fn per_rep_bars(
    aria: &str,
    unit: &str,
    series: &[(&str, RGBColor)],
    reps: &[RepBars],
) -> Result<String> {
    let (w, h) = (1200u32, 340u32);
    let n = reps.len().max(1);
    let top = reps
        .iter()
        .flat_map(|r| r.values.iter().flatten().copied())
        .fold(0.0f64, f64::max);
    let ymax = if top > 0.0 { top * 1.15 } else { 1.0 };
    svg(w, h, aria, |root| {
        let items: Vec<(Key, String)> = series
            .iter()
            .map(|(name, c)| (Key::Box(*c), name.to_string()))
            .collect();
        legend(root, LEFT as i32, 4, w as i32 - 20, &items)?;
        let (_, body) = root.split_vertically(30);
        let mut chart = ChartBuilder::on(&body)
            .margin_right(RIGHT)
            .margin_top(6)
            .set_label_area_size(LabelAreaPosition::Left, LEFT)
            .set_label_area_size(LabelAreaPosition::Bottom, 34)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0..ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(8)
            .bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|v| tick(*v))
            .y_desc(unit)
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        let colors: Vec<RGBColor> = series.iter().map(|(_, c)| *c).collect();
        let every = n.div_ceil(20);
        for (i, r) in reps.iter().enumerate() {
            rep_group(root, &mut chart, i, &r.values, &colors)?;
            if i % every == 0 {
                let (tx, ty) = chart.plotting_area().map_coordinate(&(i as f64, 0.0));
                label(
                    root,
                    &r.label,
                    (tx, ty + 8),
                    12.0,
                    C_TEXT,
                    HPos::Center,
                    VPos::Top,
                )?;
            }
        }
        Ok(())
    })
}

/// Repetition `i`'s bars, one per colour, each with its value above when
/// it fits, or `n/a` where there is no value.
fn rep_group(
    root: &Area<'_>,
    chart: &mut LinearChart<'_, '_>,
    i: usize,
    values: &[Option<f64>],
    colors: &[RGBColor],
) -> Result<()> {
    let bw = 0.8 / colors.len() as f64;
    let px_per_bar = {
        let (a, _) = chart.plotting_area().map_coordinate(&(0.0, 0.0));
        let (b, _) = chart.plotting_area().map_coordinate(&(bw, 0.0));
        b - a
    };
    for (slot, (v, c)) in values.iter().zip(colors).enumerate() {
        let x0 = i as f64 - 0.4 + slot as f64 * bw;
        match v {
            Some(v) => {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0 + 0.01, 0.0), (x0 + bw - 0.01, *v)],
                    c.filled(),
                )))?;
                if px_per_bar >= 24 {
                    let (tx, ty) = chart.plotting_area().map_coordinate(&(x0 + bw / 2.0, *v));
                    label(
                        root,
                        &short(*v),
                        (tx, ty - 3),
                        11.0,
                        C_TEXT,
                        HPos::Center,
                        VPos::Bottom,
                    )?;
                }
            }
            None if px_per_bar >= 12 => {
                let (tx, ty) = chart.plotting_area().map_coordinate(&(x0 + bw / 2.0, 0.0));
                label(
                    root,
                    "n/a",
                    (tx, ty - 3),
                    10.0,
                    C_OTHER,
                    HPos::Center,
                    VPos::Bottom,
                )?;
            }
            None => {}
        }
    }
    Ok(())
}
