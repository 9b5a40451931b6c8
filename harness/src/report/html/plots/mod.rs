//! The report's SVG plots, drawn with `plotters`' SVG backend (text is SVG
//! `<text>`, so no font files are read) and returned as `<svg>` elements
//! to inline. Every coordinate plotters writes is an integer pixel, so the
//! output is a pure function of the input.
//!
//! Categorical axes (groups, repetitions) are drawn as numeric ranges with
//! labels placed by hand: plotters' own tick choice would not fall on them.
//!
//! Modules: `bars` (a metric per group; downtime three ways; figures per
//! repetition), `breakdown` (where the outage went), `cdf` (reply gaps),
//! `timeline` (one repetition), all drawing with what `common` holds.

mod bars;
mod breakdown;
mod cdf;
mod common;
mod overlap;
mod timeline;

pub(crate) use bars::{
    bars_with_whiskers, bars_with_whiskers_sized, downtime_three_ways, per_rep_bars, Group,
    RepBars, ThreeWays,
};
pub(crate) use breakdown::{outage_breakdown, BreakdownRow};
pub(crate) use cdf::gap_cdf;
pub(crate) use common::{short, C_BEFORE, C_CLIENT, C_HOST, C_OTHER, C_QEMU, C_SWITCH};
pub(crate) use overlap::{overlap, OverlapRow};
pub(crate) use timeline::{is_reply_gap, timeline, DrawnTimeline, Timeline};
