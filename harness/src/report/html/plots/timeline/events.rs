//! What is drawn over the RTT panel's data: the longest outage as a bar
//! along the top, the kernel's (ICMP) outage as a bar in the row under it,
//! and the markers as lines with their labels in rows.

use super::frame::{Frame, RttPlot, Timeline};
use crate::report::html::plots::common::{
    label, marker_color, short, text_w, Area, C_CLIENT, C_KERNEL,
};
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Label space already taken along the top: `(row, left px, right px)`.
pub(super) type Placed = Vec<(usize, i32, i32)>;

/// Pixels between label rows along the top.
const ROW_PX: i32 = 17;

/// The longest outage: a bar along the top, labelled beside it, and the
/// kernel's outage as a bar in the row under it; returns the space the
/// bars and their labels take.
pub(super) fn draw_outage_bar(
    root: &Area<'_>,
    pa: &RttPlot<'_>,
    t: &Timeline<'_>,
    f: &Frame,
) -> Result<Placed> {
    let mut placed: Placed = Vec::new();
    if let Some(o) = t.outage {
        bar(root, pa, f, o, 0, "outage", C_CLIENT, &mut placed)?;
    }
    if let Some(o) = t.icmp_outage {
        bar(
            root,
            pa,
            f,
            o,
            1,
            "kernel (ICMP) outage",
            C_KERNEL,
            &mut placed,
        )?;
    }
    Ok(placed)
}

/// One outage `(start, end)` ns as a bar in label row `row`, named `name`
/// with its length beside it (right of it when there is room).
#[expect(clippy::too_many_arguments, reason = "a bar's place, name and colour")]
fn bar(
    root: &Area<'_>,
    pa: &RttPlot<'_>,
    f: &Frame,
    (a, b): (i64, i64),
    row: usize,
    name: &str,
    color: RGBColor,
    placed: &mut Placed,
) -> Result<()> {
    let px_r = pa.get_pixel_range().0.end;
    let y = pa.get_pixel_range().1.start + 6 + ROW_PX * row as i32;
    let (a, b) = (f.clip(a), f.clip(b));
    if b <= a {
        return Ok(());
    }
    let (pxa, _) = pa.map_coordinate(&(f.secs(a), f.yhi));
    let (pxb, _) = pa.map_coordinate(&(f.secs(b), f.yhi));
    root.draw(&Rectangle::new(
        [(pxa, y - 3), (pxb.max(pxa + 2), y + 3)],
        color.filled(),
    ))?;
    let text = format!("{name} {} ms", short((b - a) as f64 / 1e6));
    let tw = text_w(&text, 12.0);
    let x = if pxb + 6 + tw < px_r {
        pxb + 6
    } else {
        pxa - 6 - tw
    };
    if row > 0 {
        // Over the replies and phases, on a white ground like the markers'.
        root.draw(&Rectangle::new(
            [(x - 2, y - 8), (x + tw + 2, y + 8)],
            WHITE.mix(0.85).filled(),
        ))?;
    }
    label(root, &text, (x, y), 12.0, color, HPos::Left, VPos::Center)?;
    placed.push((row, x - 4, x + tw + 4));
    placed.push((row, pxa, pxb));
    Ok(())
}

/// Markers: a line each, labels in the first free row from the top (a
/// label with no free row among six is left out).
pub(super) fn draw_markers(
    root: &Area<'_>,
    pa: &RttPlot<'_>,
    t: &Timeline<'_>,
    f: &Frame,
    mut placed: Placed,
) -> Result<()> {
    let (px_l, px_r) = {
        let r = pa.get_pixel_range();
        (r.0.start, r.0.end)
    };
    let top_px = pa.get_pixel_range().1.start;
    for m in t.markers.iter().filter(|m| f.in_range(m.ns)) {
        let x = f.secs(m.ns);
        let c = marker_color(&m.label);
        let width = if m.label == "STOP" || m.label == "RESUME" {
            2
        } else {
            1
        };
        pa.draw(&PathElement::new(
            vec![(x, f.ylo), (x, f.yhi)],
            c.stroke_width(width),
        ))?;
        let (px, _) = pa.map_coordinate(&(x, f.yhi));
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
            let y = top_px + 6 + ROW_PX * row as i32;
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
    Ok(())
}
