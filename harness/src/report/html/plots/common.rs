//! What every plot shares: the palette, text styles and widths, tick
//! labels, the `<svg>` wrapper, hand-placed labels and the legend row.

use crate::report::html::text::esc;
use anyhow::{Context, Result};
use measure::timeline::PhaseKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The whole canvas of one plot.
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

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
/// The guest kernel's outage (ICMP echoes): black, apart from every phase
/// tint and from the service's vermillion.
pub(crate) const C_KERNEL: RGBColor = RGBColor(0x00, 0x00, 0x00);
/// Anything else.
pub(crate) const C_OTHER: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Text and axes.
pub(super) const C_TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Grid lines.
pub(super) const C_GRID: RGBColor = RGBColor(0xE2, 0xE2, 0xE2);
/// A prompt probe reply.
pub(super) const C_REPLY: RGBColor = RGBColor(0x44, 0x44, 0x44);
/// `C_CLIENT` at 14 % over white: how a gap band looks (for its legend).
pub(super) const C_BAND: RGBColor = RGBColor(0xF9, 0xE6, 0xDB);

/// Left label area of every time plot, so panels stacked in one SVG share
/// their x mapping.
pub(super) const LEFT: u32 = 78;
/// Right margin of every time plot.
pub(super) const RIGHT: u32 = 18;

/// A text style whose SVG `font-size` is `px` (plotters divides by 1.24).
pub(super) fn font(px: f64, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&color)
}

/// Rough width of `s` in pixels at `px`, erring wide so that labels placed
/// side by side do not touch (capitals and digits are wider in sans-serif).
pub(super) fn text_w(s: &str, px: f64) -> i32 {
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
pub(super) fn fixed(v: f64, dec: usize) -> String {
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
pub(super) fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A log-axis tick label.
pub(super) fn log_tick(v: f64) -> String {
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
pub(super) fn svg(
    w: u32,
    h: u32,
    aria: &str,
    draw: impl FnOnce(&Area<'_>) -> Result<()>,
) -> Result<String> {
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
        esc(aria),
        &buf[open_end + 1..]
    ))
}

/// Writes `s` at a pixel position of the whole canvas.
pub(super) fn label(
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

/// Text size and row height of a legend.
const LEGEND_PX: f64 = 12.0;
/// See [`LEGEND_PX`].
const LEGEND_ROW_H: i32 = 20;

/// Where each legend entry goes when the row starts at `x` and wraps at
/// `max_x`: `(x, row)` of each.
fn legend_layout(x: i32, max_x: i32, items: &[(Key, String)]) -> Vec<(i32, i32)> {
    let (mut cx, mut row) = (x, 0);
    items
        .iter()
        .map(|(_, text)| {
            let w = 18 + text_w(text, LEGEND_PX) + 16;
            if cx + w > max_x && cx > x {
                cx = x;
                row += 1;
            }
            let at = (cx, row);
            cx += w;
            at
        })
        .collect()
}

/// The rows a legend of `items` takes from `x`, wrapping at `max_x`.
pub(super) fn legend_rows(x: i32, max_x: i32, items: &[(Key, String)]) -> i32 {
    legend_layout(x, max_x, items)
        .last()
        .map_or(0, |&(_, row)| row + 1)
}

/// A row of legend entries from `(x, y)`, wrapping at `max_x`; returns the
/// y below the last row.
pub(super) fn legend(
    root: &Area<'_>,
    x: i32,
    y: i32,
    max_x: i32,
    items: &[(Key, String)],
) -> Result<i32> {
    let (px, row_h) = (LEGEND_PX, LEGEND_ROW_H);
    let mut cy = y;
    for ((key, text), (cx, row)) in items.iter().zip(legend_layout(x, max_x, items)) {
        cy = y + row * row_h;
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
    }
    Ok(cy + row_h)
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
