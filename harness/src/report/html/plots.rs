//! The report's SVG plots, drawn with `plotters`' SVG backend (text is SVG
//! `<text>`, so no font files are read) and returned as `<svg>` elements
//! to inline. Every coordinate plotters writes is an integer pixel, so the
//! output is a pure function of the input.
//!
//! Categorical axes (groups, repetitions) are drawn as numeric ranges with
//! labels placed by hand: plotters' own tick choice would not fall on them.

use super::thin::{thin, PixelPoint};
use anyhow::{Context, Result};
use measure::timeline::{GapAttribution, Marker, OutageBreakdown, Phase, PhaseKind};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

// Okabe–Ito colours: told apart with the common colour-vision deficiencies.
/// QEMU's downtime; the stop-and-copy phase it roughly covers.
pub(crate) const C_QEMU: RGBColor = RGBColor(0x00, 0x72, 0xB2);
/// Source STOP to destination RESUME; the resume phase.
pub(crate) const C_HOST: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
/// The client's outage and reply gaps.
pub(crate) const C_CLIENT: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
/// The largest reply gap.
pub(crate) const C_GAP: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
/// Outage before STOP; pre-copy passes.
pub(crate) const C_BEFORE: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
/// Switchover (RESUME until replies flow again).
pub(crate) const C_SWITCH: RGBColor = RGBColor(0x00, 0x9E, 0x73);
/// Anything else.
pub(crate) const C_OTHER: RGBColor = RGBColor(0x99, 0x99, 0x99);
const C_TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const C_GRID: RGBColor = RGBColor(0xE2, 0xE2, 0xE2);
const C_REPLY: RGBColor = RGBColor(0x44, 0x44, 0x44);
/// `C_CLIENT` at 14 % over white: how a gap band looks (for its legend).
const C_BAND: RGBColor = RGBColor(0xF9, 0xE6, 0xDB);

/// Left label area of every time plot, so panels stacked in one SVG share
/// their x mapping.
const LEFT: u32 = 78;
const RIGHT: u32 = 18;

/// A text style whose SVG `font-size` is `px` (plotters divides by 1.24).
fn font(px: f64, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&color)
}

/// Rough width of `s` in pixels at `px`, erring wide so that labels placed
/// side by side do not touch (capitals and digits are wider in sans-serif).
fn text_w(s: &str, px: f64) -> i32 {
    let em: f64 = s
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'm' | 'w' => 0.75,
            '0'..='9' => 0.62,
            ' ' | 'i' | 'l' | 'j' | 't' | 'f' | 'r' | '.' | ',' => 0.36,
            _ => 0.58,
        })
        .sum();
    (em * px).ceil() as i32
}

/// `v` with `dec` decimals, never `-0.0`.
fn fixed(v: f64, dec: usize) -> String {
    if (v * 10f64.powi(dec as i32)).round() == 0.0 {
        format!("{:.dec$}", 0.0)
    } else {
        format!("{v:.dec$}")
    }
}

/// A value for a label: more decimals for small numbers.
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A linear-axis tick label: no trailing zeros (`50`, `2.5`, `0.25`).
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A log-axis tick label.
fn log_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws into a `w`×`h` SVG and returns the `<svg>` element, with
/// `role="img"` and `aria-label` (and without the `xmlns`, which inline SVG
/// in HTML does not need, so the page names no URL at all).
fn svg(w: u32, h: u32, aria: &str, draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    let open_end = buf.find('>').context("plotters wrote no <svg> tag")?;
    Ok(format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">{}",
        super::esc(aria),
        &buf[open_end + 1..]
    ))
}

/// Writes `s` at a pixel position of the whole canvas.
fn label(
    root: &Area<'_>,
    s: &str,
    at: (i32, i32),
    px: f64,
    color: RGBColor,
    h: HPos,
    v: VPos,
) -> Result<()> {
    root.draw(&Text::new(
        s.to_string(),
        at,
        font(px, color).pos(Pos::new(h, v)),
    ))?;
    Ok(())
}

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    /// A filled box.
    Box(RGBColor),
    /// A dot.
    Dot(RGBColor),
    /// A vertical line.
    Line(RGBColor),
    /// A thick horizontal bar.
    Bar(RGBColor),
}

/// A row of legend entries from `(x, y)`, wrapping at `max_x`; returns the
/// y below the last row.
fn legend(root: &Area<'_>, x: i32, y: i32, max_x: i32, items: &[(Key, String)]) -> Result<i32> {
    let (px, row_h) = (12.0, 20);
    let (mut cx, mut cy) = (x, y);
    for (key, text) in items {
        let w = 18 + text_w(text, px) + 16;
        if cx + w > max_x && cx > x {
            cx = x;
            cy += row_h;
        }
        let mid = cy + row_h / 2;
        match *key {
            Key::Box(c) => root.draw(&Rectangle::new(
                [(cx, mid - 6), (cx + 12, mid + 6)],
                c.filled(),
            ))?,
            Key::Dot(c) => root.draw(&Circle::new((cx + 6, mid), 3, c.filled()))?,
            Key::Line(c) => root.draw(&PathElement::new(
                vec![(cx + 6, mid - 8), (cx + 6, mid + 8)],
                c.stroke_width(2),
            ))?,
            Key::Bar(c) => root.draw(&Rectangle::new(
                [(cx, mid - 3), (cx + 14, mid + 3)],
                c.filled(),
            ))?,
        }
        label(
            root,
            text,
            (cx + 18, mid),
            px,
            C_TEXT,
            HPos::Left,
            VPos::Center,
        )?;
        cx += w;
    }
    Ok(cy + row_h)
}

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
    let (w, h) = (400u32, 300u32);
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
            let x = i as f64;
            let Some(stats) = min_mean_max(&g.values) else {
                continue;
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
            )?;
        }
        for (i, g) in groups.iter().enumerate() {
            let (tx, ty) = chart.plotting_area().map_coordinate(&(i as f64, 0.0));
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
            )?;
        }
        Ok(())
    })
}

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
    /// QEMU downtime, STOP..RESUME, client outage, largest reply gap, and
    /// the RTP stream's worst stale picture (when there is a stream), ms.
    pub values: [Option<f64>; 5],
}

/// The names of [`ThreeWays::values`], with their colours.
pub(crate) fn three_ways_series() -> [(&'static str, RGBColor); 5] {
    [
        ("QEMU downtime", C_QEMU),
        ("STOP → RESUME (host)", C_HOST),
        ("client outage", C_CLIENT),
        ("largest reply gap", C_GAP),
        ("video frozen (RTP viewer)", C_SWITCH),
    ]
}

/// Grouped bars, one group per repetition: the same pause measured three
/// (four) ways.
pub(crate) fn downtime_three_ways(aria: &str, reps: &[ThreeWays]) -> Result<String> {
    let (w, h) = (1200u32, 340u32);
    let n = reps.len().max(1);
    let top = reps
        .iter()
        .flat_map(|r| r.values.iter().flatten().copied())
        .fold(0.0f64, f64::max);
    let ymax = if top > 0.0 { top * 1.15 } else { 1.0 };
    svg(w, h, aria, |root| {
        let series = three_ways_series();
        let with_video = reps.iter().any(|r| r.values[4].is_some());
        let items: Vec<(Key, String)> = series
            .iter()
            .take(if with_video { 5 } else { 4 })
            .map(|(s, c)| (Key::Box(*c), s.to_string()))
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
            .y_desc("ms")
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT))
            .draw()?;
        // A fifth bar only when some repetition had a video stream.
        let shown = if reps.iter().any(|r| r.values[4].is_some()) {
            5
        } else {
            4
        };
        let bw = 0.8 / shown as f64;
        let px_per_bar = {
            let (a, _) = chart.plotting_area().map_coordinate(&(0.0, 0.0));
            let (b, _) = chart.plotting_area().map_coordinate(&(bw, 0.0));
            b - a
        };
        let every = n.div_ceil(20);
        for (i, r) in reps.iter().enumerate() {
            for (k, v) in r.values.iter().enumerate().take(shown) {
                let x0 = i as f64 - 0.4 + k as f64 * bw;
                let (_, c) = series[k];
                match v {
                    Some(v) => {
                        chart.draw_series(std::iter::once(Rectangle::new(
                            [(x0 + 0.01, 0.0), (x0 + bw - 0.01, *v)],
                            c.filled(),
                        )))?;
                        if px_per_bar >= 24 {
                            let (tx, ty) =
                                chart.plotting_area().map_coordinate(&(x0 + bw / 2.0, *v));
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
            let yc = n as f64 - i as f64 - 0.5;
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
                label(
                    root,
                    "no outage measured",
                    (lx + 6, ly),
                    12.0,
                    C_OTHER,
                    HPos::Left,
                    VPos::Center,
                )?;
                continue;
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
            )?;
        }
        Ok(())
    })
}

/// The colour of a phase: light for shading behind data, stronger for the
/// phase strip.
pub(crate) fn phase_color(kind: PhaseKind, pass: Option<u32>, strong: bool) -> RGBColor {
    let (light, strong_c) = match kind {
        PhaseKind::Before | PhaseKind::After => {
            (RGBColor(0xFF, 0xFF, 0xFF), RGBColor(0xF2, 0xF2, 0xF2))
        }
        PhaseKind::Setup => (RGBColor(0xF0, 0xF0, 0xF0), RGBColor(0xDD, 0xDD, 0xDD)),
        // Alternate shades so consecutive passes are told apart.
        PhaseKind::PreCopy if pass.unwrap_or(0) & 1 == 0 => {
            (RGBColor(0xD9, 0xEC, 0xF8), RGBColor(0xA9, 0xD4, 0xF0))
        }
        PhaseKind::PreCopy => (RGBColor(0xE9, 0xF4, 0xFB), RGBColor(0xC6, 0xE3, 0xF5)),
        PhaseKind::StopAndCopy => (RGBColor(0xCC, 0xE0, 0xF0), RGBColor(0x7F, 0xB4, 0xDA)),
        PhaseKind::Resume => (RGBColor(0xFB, 0xEA, 0xC4), RGBColor(0xF2, 0xC8, 0x6B)),
        PhaseKind::Switchover => (RGBColor(0xCF, 0xEE, 0xE2), RGBColor(0x80, 0xCE, 0xB3)),
    };
    if strong {
        strong_c
    } else {
        light
    }
}

/// The colour of a marker line, by its label.
pub(crate) fn marker_color(label: &str) -> RGBColor {
    match label {
        "migrate" => RGBColor(0x44, 0x44, 0x44),
        "STOP" => C_QEMU,
        "completed" => RGBColor(0x00, 0x3F, 0x66),
        "RESUME" => RGBColor(0xB3, 0x6B, 0x00),
        "announce" => RGBColor(0x7A, 0x3E, 0x9D),
        "client recovered" | "first prompt reply" => RGBColor(0x00, 0x6E, 0x50),
        _ => BLACK,
    }
}

/// What a timeline plot shows.
pub(crate) struct Timeline<'a> {
    /// Shown in the `aria-label`.
    pub aria: String,
    /// Time zero of the x axis (the `migrate` command), host ns.
    pub t0_ns: i64,
    /// The x range, host ns.
    pub range_ns: (i64, i64),
    /// `(receive time ns, RTT ms)` of every reply in the range.
    pub replies: &'a [(i64, f64)],
    /// Send times of probes never answered, ns.
    pub lost: &'a [i64],
    /// Replies slower than this are drawn as slow, ms.
    pub threshold_ms: f64,
    /// The repetition's phases.
    pub phases: &'a [Phase],
    /// Reply gaps over the threshold.
    pub gaps: &'a [GapAttribution],
    /// The longest outage `(start, end)` ns, drawn as a bar over the gaps.
    pub outage: Option<(i64, i64)>,
    /// Marked moments.
    pub markers: &'a [Marker],
    /// `(ns, bytes remaining)`: drawn in a second panel when `Some`.
    pub remaining: Option<&'a [(i64, i64)]>,
    /// Replies this close to a gap edge or a marker are always drawn, ns.
    pub near_ns: i64,
    /// About how many reply points to draw at most.
    pub budget: usize,
    /// Draw the legend on top.
    pub legend: bool,
    /// There is a probe record (else the RTT panel says there is none).
    pub has_probe: bool,
}

/// A drawn timeline and what was left out of it.
pub(crate) struct DrawnTimeline {
    /// The `<svg>`.
    pub svg: String,
    /// Replies in the range.
    pub replies: usize,
    /// Reply points drawn.
    pub drawn: usize,
    /// Replies merged with an identical pixel.
    pub same_pixel: usize,
    /// Away from gaps and markers, every `step`-th reply was drawn (0: all).
    pub step: usize,
}

fn secs(ns: i64, t0: i64) -> f64 {
    (ns - t0) as f64 / 1e9
}

fn tick_decimals(span_s: f64) -> usize {
    let d = (-(span_s / 10.0).log10()).ceil();
    if d.is_finite() {
        d.clamp(0.0, 4.0) as usize
    } else {
        1
    }
}

/// Legend entries of a timeline: the reply marks, and the phases and
/// markers this timeline has.
fn timeline_legend(t: &Timeline<'_>) -> Vec<(Key, String)> {
    let (threshold_ms, phases, markers) = (t.threshold_ms, t.phases, t.markers);
    let mut v = vec![
        (
            Key::Dot(C_REPLY),
            format!("reply, RTT ≤ {} ms", short(threshold_ms)),
        ),
        (
            Key::Dot(C_CLIENT),
            format!("reply, RTT > {} ms", short(threshold_ms)),
        ),
        (
            Key::Line(C_OTHER),
            "probe never answered (at send)".to_string(),
        ),
        (Key::Box(C_BAND), "reply gap over threshold".to_string()),
        (Key::Bar(C_CLIENT), "longest outage".to_string()),
    ];
    if !t.has_probe {
        v.clear();
    }
    for (k, p, s) in [
        (PhaseKind::Setup, None, "setup"),
        (PhaseKind::PreCopy, Some(1), "pre-copy pass"),
        (PhaseKind::StopAndCopy, None, "stop-and-copy"),
        (PhaseKind::Resume, None, "resume"),
        (PhaseKind::Switchover, None, "switchover"),
    ] {
        if phases.iter().any(|x| x.kind == k) {
            v.push((Key::Box(phase_color(k, p, true)), s.to_string()));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for m in markers {
        if !seen.contains(&m.label.as_str()) {
            seen.push(&m.label);
            v.push((Key::Line(marker_color(&m.label)), m.label.clone()));
        }
    }
    v
}

/// A repetition's timeline: probe RTT (log y) with gaps, phases and
/// markers; a strip naming the phases; bytes remaining below.
pub(crate) fn timeline(t: &Timeline<'_>) -> Result<DrawnTimeline> {
    let w = 1200u32;
    let legend_h: u32 = if t.legend { 48 } else { 0 };
    let strip_h = 26u32;
    let rtt_h = if t.remaining.is_some() { 300u32 } else { 280 };
    let rem_h = if t.remaining.is_some() { 190u32 } else { 0 };
    let h = legend_h + strip_h + rtt_h + rem_h;
    let (lo_ns, hi_ns) = if t.range_ns.1 > t.range_ns.0 {
        t.range_ns
    } else {
        (t.range_ns.0, t.range_ns.0 + 1_000_000_000)
    };
    let (x0, x1) = (secs(lo_ns, t.t0_ns), secs(hi_ns, t.t0_ns));
    let dec = tick_decimals(x1 - x0);
    let in_range = |ns: i64| ns >= lo_ns && ns <= hi_ns;
    let rtts = t
        .replies
        .iter()
        .map(|r| r.1)
        .filter(|v| v.is_finite() && *v > 0.0);
    let rmin = rtts.clone().fold(f64::INFINITY, f64::min);
    let rmax = rtts.fold(0.0f64, f64::max);
    let ylo = if rmin.is_finite() {
        rmin.min(t.threshold_ms)
    } else {
        0.1
    }
    .max(0.005)
        / 2.5;
    let yhi = rmax.max(t.threshold_ms).max(ylo * 100.0) * 2.5;
    let clip = |ns: i64| ns.clamp(lo_ns, hi_ns);
    let mut stats = (0usize, 0usize, 0usize, 0usize);

    let svg_text = svg(w, h, &t.aria, |root| {
        if t.legend {
            legend(
                root,
                LEFT as i32 - 60,
                4,
                w as i32 - 10,
                &timeline_legend(t),
            )?;
        }
        let (_, rest) = root.split_vertically(legend_h);
        let (strip, rest) = rest.split_vertically(strip_h);
        let (rtt_area, rem_area) = rest.split_vertically(rtt_h);

        // The phase strip: one box per phase, named when the name fits.
        let strip_chart = ChartBuilder::on(&strip)
            .margin_right(RIGHT)
            .set_label_area_size(LabelAreaPosition::Left, LEFT)
            .build_cartesian_2d(x0..x1, 0.0f64..1.0)?;
        let sp = strip_chart.plotting_area();
        for p in t.phases {
            let (a, b) = (clip(p.start_ns), clip(p.end_ns));
            if b <= a {
                continue;
            }
            let (xa, xb) = (secs(a, t.t0_ns), secs(b, t.t0_ns));
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
        let (sx, sy) = sp.map_coordinate(&(x0, 0.5));
        label(
            root,
            "phase",
            (sx - 8, sy),
            12.0,
            C_TEXT,
            HPos::Right,
            VPos::Center,
        )?;

        // RTT panel.
        let bottom = if t.remaining.is_some() { 26 } else { 44 };
        let mut chart = ChartBuilder::on(&rtt_area)
            .margin_right(RIGHT)
            .margin_top(4)
            .set_label_area_size(LabelAreaPosition::Left, LEFT)
            .set_label_area_size(LabelAreaPosition::Bottom, bottom)
            .build_cartesian_2d(x0..x1, (ylo..yhi).log_scale())?;
        shade_phases(chart.plotting_area(), t, ylo, yhi, lo_ns, hi_ns)?;
        for g in t.gaps {
            if !is_reply_gap(t.replies, g) {
                continue; // the outage, not a reply gap: drawn as the bar below
            }
            let (a, b) = (clip(g.start_ns), clip(g.end_ns));
            if b > a {
                let (xa, xb) = (secs(a, t.t0_ns), secs(b, t.t0_ns));
                let pa = chart.plotting_area();
                pa.draw(&Rectangle::new(
                    [(xa, ylo), (xb, yhi)],
                    C_CLIENT.mix(0.14).filled(),
                ))?;
                // Edges, so a gap stays visible over any phase colour.
                for x in [xa, xb] {
                    pa.draw(&PathElement::new(
                        vec![(x, ylo), (x, yhi)],
                        C_CLIENT.mix(0.45).stroke_width(1),
                    ))?;
                }
            }
        }
        let xfmt = |v: &f64| fixed(*v, dec);
        let yfmt = |v: &f64| log_tick(*v);
        let mut mesh = chart.configure_mesh();
        mesh.bold_line_style(C_GRID)
            .light_line_style(TRANSPARENT)
            .x_labels(12)
            .y_labels(8)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .y_desc("RTT, ms (log scale)")
            .label_style(font(12.0, C_TEXT))
            .axis_desc_style(font(12.0, C_TEXT));
        if t.remaining.is_none() {
            mesh.x_desc("seconds since the migrate command");
        }
        mesh.draw()?;
        let pa = chart.plotting_area();
        if t.has_probe {
            pa.draw(&PathElement::new(
                vec![(x0, t.threshold_ms), (x1, t.threshold_ms)],
                C_OTHER.stroke_width(1),
            ))?;
        } else {
            let (cx, cy) = pa.map_coordinate(&((x0 + x1) / 2.0, (ylo * yhi).sqrt()));
            label(
                root,
                "no probe record: no round-trip times",
                (cx, cy),
                14.0,
                C_OTHER,
                HPos::Center,
                VPos::Center,
            )?;
        }
        // Probes never answered: ticks along the bottom; a run of them in
        // neighbouring pixels (an outage) becomes one bar, not a tick each.
        let tick_top = ylo * (yhi / ylo).powf(0.045);
        let (_, y_bottom) = pa.map_coordinate(&(x0, ylo));
        let (_, y_top) = pa.map_coordinate(&(x0, tick_top));
        let mut runs: Vec<(i32, i32)> = Vec::new();
        for &s in t.lost.iter().filter(|&&s| in_range(s)) {
            let (px, _) = pa.map_coordinate(&(secs(s, t.t0_ns), ylo));
            match runs.last_mut() {
                Some(r) if px >= r.0 && px <= r.1 + 2 => r.1 = r.1.max(px),
                _ => runs.push((px, px)),
            }
        }
        for (a, b) in runs {
            root.draw(&Rectangle::new(
                [(a, y_top), (b + 1, y_bottom)],
                C_OTHER.filled(),
            ))?;
        }

        // Replies: mark the ones to keep whatever the budget.
        let mut keys: Vec<i64> = t.markers.iter().map(|m| m.ns).collect();
        for g in t.gaps {
            keys.push(g.start_ns);
            keys.push(g.end_ns);
        }
        keys.sort_unstable();
        let near = |ns: i64| {
            let i = keys.partition_point(|&k| k < ns);
            let d1 = keys.get(i).map_or(i64::MAX, |&k| k - ns);
            let d0 = i
                .checked_sub(1)
                .and_then(|j| keys.get(j))
                .map_or(i64::MAX, |&k| ns - k);
            d0.min(d1) <= t.near_ns
        };
        let pts: Vec<(f64, f64, bool)> = t
            .replies
            .iter()
            .filter(|r| in_range(r.0) && r.1.is_finite())
            .map(|&(ns, rtt)| (secs(ns, t.t0_ns), rtt.clamp(ylo, yhi), rtt > t.threshold_ms))
            .collect();
        let pix: Vec<PixelPoint> = t
            .replies
            .iter()
            .filter(|r| in_range(r.0) && r.1.is_finite())
            .zip(&pts)
            .map(|(&(ns, _), &(x, y, slow))| {
                let (px, py) = pa.map_coordinate(&(x, y));
                PixelPoint {
                    x: px,
                    y: py,
                    class: u8::from(slow),
                    important: slow || near(ns),
                }
            })
            .collect();
        let chosen = thin(&pix, t.budget);
        stats = (pts.len(), chosen.keep.len(), chosen.same_pixel, chosen.step);
        pa.draw_series_points(&chosen.keep, &pts)?;

        // The threshold named over the points, on a white ground.
        let (tx, ty) = pa.map_coordinate(&(x1, t.threshold_ms));
        if t.has_probe {
            let text = format!("RTT {} ms", short(t.threshold_ms));
            let tw = text_w(&text, 11.0);
            root.draw(&Rectangle::new(
                [(tx - 6 - tw, ty - 16), (tx - 2, ty - 2)],
                WHITE.mix(0.8).filled(),
            ))?;
            label(
                root,
                &text,
                (tx - 4, ty - 3),
                11.0,
                C_OTHER,
                HPos::Right,
                VPos::Bottom,
            )?;
        }

        // Longest outage: a bar along the top, labelled.
        let (px_l, px_r) = {
            let r = pa.get_pixel_range();
            (r.0.start, r.0.end)
        };
        let top_px = pa.get_pixel_range().1.start;
        let mut placed: Vec<(usize, i32, i32)> = Vec::new();
        if let Some((a, b)) = t.outage {
            let (a, b) = (clip(a), clip(b));
            if b > a {
                let (pxa, _) = pa.map_coordinate(&(secs(a, t.t0_ns), yhi));
                let (pxb, _) = pa.map_coordinate(&(secs(b, t.t0_ns), yhi));
                root.draw(&Rectangle::new(
                    [(pxa, top_px + 3), (pxb.max(pxa + 2), top_px + 9)],
                    C_CLIENT.filled(),
                ))?;
                let text = format!("outage {} ms", short((b - a) as f64 / 1e6));
                let tw = text_w(&text, 12.0);
                let x = if pxb + 6 + tw < px_r {
                    pxb + 6
                } else {
                    pxa - 6 - tw
                };
                label(
                    root,
                    &text,
                    (x, top_px + 6),
                    12.0,
                    C_CLIENT,
                    HPos::Left,
                    VPos::Center,
                )?;
                placed.push((0, x - 4, x + tw + 4));
                placed.push((0, pxa, pxb));
            }
        }

        // Markers: a line each, labels in the first free row from the top.
        for m in t.markers.iter().filter(|m| in_range(m.ns)) {
            let x = secs(m.ns, t.t0_ns);
            let c = marker_color(&m.label);
            let width = if m.label == "STOP" || m.label == "RESUME" {
                2
            } else {
                1
            };
            pa.draw(&PathElement::new(
                vec![(x, ylo), (x, yhi)],
                c.stroke_width(width),
            ))?;
            let (px, _) = pa.map_coordinate(&(x, yhi));
            let tw = text_w(&m.label, 12.0);
            let (l, r) = if px + 4 + tw < px_r {
                (px + 3, px + 5 + tw)
            } else {
                (px - 5 - tw, px - 3)
            };
            let l = l.max(px_l);
            let row = (0..6).find(|row| {
                !placed
                    .iter()
                    .any(|&(pr, a, b)| pr == *row && a < r + 4 && l < b + 4)
            });
            if let Some(row) = row {
                placed.push((row, l, r));
                let y = top_px + 6 + 17 * row as i32;
                root.draw(&Rectangle::new(
                    [(l - 1, y - 8), (r + 1, y + 8)],
                    WHITE.mix(0.85).filled(),
                ))?;
                label(
                    root,
                    &m.label,
                    (l + 1, y),
                    12.0,
                    c,
                    HPos::Left,
                    VPos::Center,
                )?;
            }
        }

        // Bytes remaining.
        if let Some(rem) = t.remaining {
            let pts: Vec<(f64, f64)> = rem
                .iter()
                .filter(|r| in_range(r.0))
                .map(|&(ns, b)| (secs(ns, t.t0_ns), b as f64 / 1048576.0))
                .collect();
            let ymax = pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
            let ymax = if ymax > 0.0 { ymax * 1.12 } else { 1.0 };
            let mut c2 = ChartBuilder::on(&rem_area)
                .margin_right(RIGHT)
                .margin_top(8)
                .set_label_area_size(LabelAreaPosition::Left, LEFT)
                .set_label_area_size(LabelAreaPosition::Bottom, 44)
                .build_cartesian_2d(x0..x1, 0.0..ymax)?;
            let pa2 = c2.plotting_area();
            for p in t.phases {
                if matches!(p.kind, PhaseKind::Before | PhaseKind::After) {
                    continue;
                }
                let (a, b) = (clip(p.start_ns), clip(p.end_ns));
                if b > a {
                    pa2.draw(&Rectangle::new(
                        [(secs(a, t.t0_ns), 0.0), (secs(b, t.t0_ns), ymax)],
                        phase_color(p.kind, p.pass, false).filled(),
                    ))?;
                }
            }
            c2.configure_mesh()
                .bold_line_style(C_GRID)
                .light_line_style(TRANSPARENT)
                .x_labels(12)
                .y_labels(5)
                .x_label_formatter(&|v| fixed(*v, dec))
                .y_label_formatter(&|v| tick(*v))
                .y_desc("MiB remaining")
                .x_desc("seconds since the migrate command")
                .label_style(font(12.0, C_TEXT))
                .axis_desc_style(font(12.0, C_TEXT))
                .draw()?;
            let pa2 = c2.plotting_area();
            for m in t.markers.iter().filter(|m| in_range(m.ns)) {
                let x = secs(m.ns, t.t0_ns);
                pa2.draw(&PathElement::new(
                    vec![(x, 0.0), (x, ymax)],
                    marker_color(&m.label).stroke_width(1),
                ))?;
            }
            if pts.is_empty() {
                let (cx, cy) = pa2.map_coordinate(&((x0 + x1) / 2.0, ymax / 2.0));
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
        }
        Ok(())
    })?;
    Ok(DrawnTimeline {
        svg: svg_text,
        replies: stats.0,
        drawn: stats.1,
        same_pixel: stats.2,
        step: stats.3,
    })
}

/// Whether `g` is a reply gap: no reply arrived inside it. The timeline
/// also lists the longest outage, which may hold late replies.
/// `replies` is sorted by receive time.
fn is_reply_gap(replies: &[(i64, f64)], g: &GapAttribution) -> bool {
    let i = replies.partition_point(|r| r.0 <= g.start_ns);
    replies.get(i).is_none_or(|r| r.0 >= g.end_ns)
}

fn shade_phases<X, Y>(
    pa: &DrawingArea<SVGBackend<'_>, Cartesian2d<X, Y>>,
    t: &Timeline<'_>,
    ylo: f64,
    yhi: f64,
    lo_ns: i64,
    hi_ns: i64,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for p in t.phases {
        if matches!(p.kind, PhaseKind::Before | PhaseKind::After) {
            continue;
        }
        let (a, b) = (p.start_ns.clamp(lo_ns, hi_ns), p.end_ns.clamp(lo_ns, hi_ns));
        if b > a {
            pa.draw(&Rectangle::new(
                [(secs(a, t.t0_ns), ylo), (secs(b, t.t0_ns), yhi)],
                phase_color(p.kind, p.pass, false).filled(),
            ))?;
        }
    }
    Ok(())
}

trait DrawPoints {
    fn draw_series_points(&self, keep: &[usize], pts: &[(f64, f64, bool)]) -> Result<()>;
}

impl<X, Y> DrawPoints for DrawingArea<SVGBackend<'_>, Cartesian2d<X, Y>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    /// Prompt replies first, slow ones on top of them.
    fn draw_series_points(&self, keep: &[usize], pts: &[(f64, f64, bool)]) -> Result<()> {
        for slow in [false, true] {
            for &i in keep {
                let Some(&(x, y, s)) = pts.get(i) else {
                    continue;
                };
                if s == slow {
                    let (c, r) = if slow { (C_CLIENT, 3) } else { (C_REPLY, 2) };
                    self.draw(&Circle::new((x, y), r, c.filled()))?;
                }
            }
        }
        Ok(())
    }
}
