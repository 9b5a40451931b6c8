//! The probe replies on the RTT panel, thinned to a budget of points but
//! never near a gap's edge or a marker.

use super::frame::{Frame, RttPlot, Timeline};
use crate::report::html::plots::common::{C_CLIENT, C_REPLY};
use crate::report::html::thin::{thin, PixelPoint};
use anyhow::Result;
use plotters::prelude::*;

/// How many replies were in range and what became of them.
#[derive(Default)]
pub(super) struct ReplyStats {
    /// Replies in the range.
    pub replies: usize,
    /// Reply points drawn.
    pub drawn: usize,
    /// Replies merged with an identical pixel.
    pub same_pixel: usize,
    /// Away from gaps and markers, every `step`-th reply was drawn (0: all).
    pub step: usize,
}

/// The replies in range as dots, prompt ones grey and slow ones in the
/// client's colour, keeping every reply near a gap edge or a marker.
pub(super) fn draw_replies(pa: &RttPlot<'_>, t: &Timeline<'_>, f: &Frame) -> Result<ReplyStats> {
    let keys = key_moments(t);
    let pts: Vec<(f64, f64, bool)> = t
        .replies
        .iter()
        .filter(|r| f.in_range(r.0) && r.1.is_finite())
        .map(|&(ns, rtt)| (f.secs(ns), rtt.clamp(f.ylo, f.yhi), rtt > t.threshold_ms))
        .collect();
    let pix: Vec<PixelPoint> = t
        .replies
        .iter()
        .filter(|r| f.in_range(r.0) && r.1.is_finite())
        .zip(&pts)
        .map(|(&(ns, _), &(x, y, slow))| {
            let (px, py) = pa.map_coordinate(&(x, y));
            PixelPoint {
                x: px,
                y: py,
                class: u8::from(slow),
                important: slow || is_near(&keys, ns, t.near_ns),
            }
        })
        .collect();
    let chosen = thin(&pix, t.budget);
    draw_points(pa, &chosen.keep, &pts)?;
    Ok(ReplyStats {
        replies: pts.len(),
        drawn: chosen.keep.len(),
        same_pixel: chosen.same_pixel,
        step: chosen.step,
    })
}

/// The moments whose nearby replies are always drawn: markers and gap
/// edges, sorted.
fn key_moments(t: &Timeline<'_>) -> Vec<i64> {
    let mut keys: Vec<i64> = t.markers.iter().map(|m| m.ns).collect();
    for g in t.gaps {
        keys.push(g.start_ns);
        keys.push(g.end_ns);
    }
    keys.sort_unstable();
    keys
}

/// Whether `ns` is within `near_ns` of one of the sorted `keys`.
fn is_near(keys: &[i64], ns: i64, near_ns: i64) -> bool {
    let i = keys.partition_point(|&k| k < ns);
    let d1 = keys.get(i).map_or(i64::MAX, |&k| k - ns);
    let d0 = i
        .checked_sub(1)
        .and_then(|j| keys.get(j))
        .map_or(i64::MAX, |&k| ns - k);
    d0.min(d1) <= near_ns
}

/// The chosen points: prompt replies first, slow ones on top of them.
fn draw_points(pa: &RttPlot<'_>, keep: &[usize], pts: &[(f64, f64, bool)]) -> Result<()> {
    for slow in [false, true] {
        for &i in keep {
            let Some(&(x, y, s)) = pts.get(i) else {
                continue;
            };
            if s == slow {
                let (c, r) = if slow { (C_CLIENT, 3) } else { (C_REPLY, 2) };
                pa.draw(&Circle::new((x, y), r, c.filled()))?;
            }
        }
    }
    Ok(())
}
