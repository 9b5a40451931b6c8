//! The timeline's RTT panel: phases behind, reply gaps, the axes, the
//! threshold, probes never answered, the replies, then the outage and the
//! markers on top (in that order: later is drawn over earlier).

use super::events::{draw_markers, draw_outage_bar};
use super::frame::{is_reply_gap, Frame, RttPlot, Timeline};
use super::replies::{draw_replies, ReplyStats};
use crate::report::html::plots::common::{
    fixed, font, label, log_tick, phase_color, short, text_w, Area, C_CLIENT, C_GRID, C_OTHER,
    C_TEXT, LEFT, RIGHT,
};
use anyhow::Result;
use measure::timeline::PhaseKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// The RTT panel in `area`, with the x axis named when there is no
/// bytes-remaining panel under it; returns what was drawn of the replies.
pub(super) fn draw_rtt_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    t: &Timeline<'_>,
    f: &Frame,
) -> Result<ReplyStats> {
    let bottom = if t.remaining.is_some() { 26 } else { 44 };
    let mut chart = ChartBuilder::on(area)
        .margin_right(RIGHT)
        .margin_top(4)
        .set_label_area_size(LabelAreaPosition::Left, LEFT)
        .set_label_area_size(LabelAreaPosition::Bottom, bottom)
        .build_cartesian_2d(f.x0..f.x1, (f.ylo..f.yhi).log_scale())?;
    shade_phases(chart.plotting_area(), t, f)?;
    draw_gap_bands(chart.plotting_area(), t, f)?;
    let xfmt = |v: &f64| fixed(*v, f.dec);
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
    draw_threshold_line(root, pa, t, f)?;
    draw_lost_probes(root, pa, t, f)?;
    let stats = draw_replies(pa, t, f)?;
    draw_threshold_label(root, pa, t, f)?;
    let placed = draw_outage_bar(root, pa, t, f)?;
    draw_markers(root, pa, t, f, placed)?;
    Ok(stats)
}

/// The migration's phases as light background bands (not before or after).
fn shade_phases(pa: &RttPlot<'_>, t: &Timeline<'_>, f: &Frame) -> Result<()> {
    for p in t.phases {
        if matches!(p.kind, PhaseKind::Before | PhaseKind::After) {
            continue;
        }
        let (a, b) = (f.clip(p.start_ns), f.clip(p.end_ns));
        if b > a {
            pa.draw(&Rectangle::new(
                [(f.secs(a), f.ylo), (f.secs(b), f.yhi)],
                phase_color(p.kind, p.pass, false).filled(),
            ))?;
        }
    }
    Ok(())
}

/// Reply gaps over the threshold as tinted bands with edges; the outage
/// (which may hold late replies) is left to the bar on top.
fn draw_gap_bands(pa: &RttPlot<'_>, t: &Timeline<'_>, f: &Frame) -> Result<()> {
    for g in t.gaps {
        if !is_reply_gap(t.replies, g) {
            continue; // the outage, not a reply gap: drawn as the bar on top
        }
        let (a, b) = (f.clip(g.start_ns), f.clip(g.end_ns));
        if b > a {
            let (xa, xb) = (f.secs(a), f.secs(b));
            pa.draw(&Rectangle::new(
                [(xa, f.ylo), (xb, f.yhi)],
                C_CLIENT.mix(0.14).filled(),
            ))?;
            // Edges, so a gap stays visible over any phase colour.
            for x in [xa, xb] {
                pa.draw(&PathElement::new(
                    vec![(x, f.ylo), (x, f.yhi)],
                    C_CLIENT.mix(0.45).stroke_width(1),
                ))?;
            }
        }
    }
    Ok(())
}

/// The threshold as a horizontal line, or, without a probe record, a note
/// that there are no round-trip times.
fn draw_threshold_line(
    root: &Area<'_>,
    pa: &RttPlot<'_>,
    t: &Timeline<'_>,
    f: &Frame,
) -> Result<()> {
    if t.has_probe {
        pa.draw(&PathElement::new(
            vec![(f.x0, t.threshold_ms), (f.x1, t.threshold_ms)],
            C_OTHER.stroke_width(1),
        ))?;
    } else {
        let (cx, cy) = pa.map_coordinate(&((f.x0 + f.x1) / 2.0, (f.ylo * f.yhi).sqrt()));
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
    Ok(())
}

/// Probes never answered: ticks along the bottom; a run of them in
/// neighbouring pixels (an outage) becomes one bar, not a tick each.
fn draw_lost_probes(root: &Area<'_>, pa: &RttPlot<'_>, t: &Timeline<'_>, f: &Frame) -> Result<()> {
    let tick_top = f.ylo * (f.yhi / f.ylo).powf(0.045);
    let (_, y_bottom) = pa.map_coordinate(&(f.x0, f.ylo));
    let (_, y_top) = pa.map_coordinate(&(f.x0, tick_top));
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &s in t.lost.iter().filter(|&&s| f.in_range(s)) {
        let (px, _) = pa.map_coordinate(&(f.secs(s), f.ylo));
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
    Ok(())
}

/// The threshold named over the points, on a white ground.
fn draw_threshold_label(
    root: &Area<'_>,
    pa: &RttPlot<'_>,
    t: &Timeline<'_>,
    f: &Frame,
) -> Result<()> {
    let (tx, ty) = pa.map_coordinate(&(f.x1, t.threshold_ms));
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
    Ok(())
}
