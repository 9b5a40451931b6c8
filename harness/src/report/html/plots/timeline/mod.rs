//! A repetition's timeline, top to bottom: the legend, the strip naming
//! the phases, probe RTTs (log y) with gaps, the outage and markers, and
//! the bytes remaining. One module per part; `frame` holds what they share.

mod events;
mod frame;
mod legend;
mod remaining;
mod replies;
mod rtt;
mod strip;

pub(crate) use frame::{is_reply_gap, DrawnTimeline, Timeline};

use super::common::{legend, legend_rows, svg, LEFT};
use anyhow::Result;
use frame::Frame;
use legend::timeline_legend;
use remaining::draw_remaining_panel;
use replies::ReplyStats;
use rtt::draw_rtt_panel;
use strip::draw_phase_strip;

/// A repetition's timeline: probe RTT (log y) with gaps, phases and
/// markers; a strip naming the phases; bytes remaining below.
pub(crate) fn timeline(t: &Timeline<'_>) -> Result<DrawnTimeline> {
    let w = 1200u32;
    let legend_x = LEFT as i32 - 60;
    let legend_items = timeline_legend(t);
    // Two rows as a rule (4 px above them, 4 below); more when the
    // timeline has many kinds of marker.
    let legend_h: u32 = if t.legend {
        8 + 20 * legend_rows(legend_x, w as i32 - 10, &legend_items).max(2) as u32
    } else {
        0
    };
    let strip_h = 26u32;
    let rtt_h = if t.remaining.is_some() { 300u32 } else { 280 };
    let rem_h = if t.remaining.is_some() { 190u32 } else { 0 };
    let h = legend_h + strip_h + rtt_h + rem_h;
    let f = Frame::new(t);
    let mut stats = ReplyStats::default();
    let svg_text = svg(w, h, &t.aria, |root| {
        if t.legend {
            legend(root, legend_x, 4, w as i32 - 10, &legend_items)?;
        }
        let (_, rest) = root.split_vertically(legend_h);
        let (strip, rest) = rest.split_vertically(strip_h);
        let (rtt_area, rem_area) = rest.split_vertically(rtt_h);
        draw_phase_strip(root, &strip, t, &f)?;
        stats = draw_rtt_panel(root, &rtt_area, t, &f)?;
        if let Some(rem) = t.remaining {
            draw_remaining_panel(root, &rem_area, t, &f, rem)?;
        }
        Ok(())
    })?;
    Ok(DrawnTimeline {
        svg: svg_text,
        replies: stats.replies,
        drawn: stats.drawn,
        same_pixel: stats.same_pixel,
        step: stats.step,
    })
}
