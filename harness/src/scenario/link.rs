//! `[link.migration]` and `[link.client]`: how the lab's links are
//! shaped like a WAN. The lab's delay line
//! (`backend/local/lab/delayline`) applies it.

use serde::{Deserialize, Serialize};

/// The lab's two shapeable links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Links {
    /// Between the two nodes: QEMU's stream and the disk mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<LinkShape>,
    /// Between the client and the nodes' switch: the probe, the streams,
    /// the agent's control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<LinkShape>,
}

impl Links {
    /// Checks both, naming the link and the field.
    pub fn check(&self) -> Result<(), String> {
        for (name, l) in [("migration", &self.migration), ("client", &self.client)] {
            if let Some(l) = l {
                l.check().map_err(|e| format!("`link.{name}`: {e}"))?;
            }
        }
        Ok(())
    }
}

/// How one link is shaped, in each direction alike.
///
/// `[link]`-style keys: every one may be left out (see [`Default`]).
/// Lengths are whole Ethernet frames (destination MAC to the end of the
/// payload; no preamble, FCS or inter-frame gap), so a TCP stream over an
/// MTU-1500 link carries at most 1448/1514 of `rate_mbit` as goodput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkShape {
    /// The bottleneck's rate in Mbit/s (10^6 bit/s); absent: unlimited (no
    /// serialization time and no queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
    /// One-way propagation delay, ms.
    pub delay_ms: f64,
    /// Half-width of the uniform jitter added to `delay_ms`, ms. It may
    /// exceed `delay_ms`: a frame still never departs before it arrived.
    pub jitter_ms: f64,
    /// Probability of losing each frame, percent (0 to 100).
    pub loss_pct: f64,
    /// Depth of the bottleneck queue in time at `rate_mbit`, ms: a frame
    /// that would wait longer than this before its serialization starts is
    /// dropped (tail drop). Unused without a rate.
    pub queue_ms: f64,
}

impl Default for LinkShape {
    /// No rate limit, no delay, no jitter, no loss, a 50 ms queue.
    fn default() -> Self {
        Self {
            rate_mbit: None,
            delay_ms: 0.0,
            jitter_ms: 0.0,
            loss_pct: 0.0,
            queue_ms: 50.0,
        }
    }
}

/// A field of [`LinkShape`] with a value it cannot have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("link shape: {field} = {value} {rule}")]
pub struct ShapeError {
    /// The field's name, as in the scenario file.
    pub field: &'static str,
    /// The value it had.
    pub value: f64,
    /// What it must be.
    pub rule: &'static str,
}

impl LinkShape {
    /// Checks every field, naming the first bad one.
    pub fn check(&self) -> Result<(), ShapeError> {
        if let Some(rate) = self.rate_mbit {
            require("rate_mbit", rate, rate > 0.0, "must be a number > 0")?;
        }
        for (field, value) in [
            ("delay_ms", self.delay_ms),
            ("jitter_ms", self.jitter_ms),
            ("queue_ms", self.queue_ms),
        ] {
            require(field, value, value >= 0.0, "must be a number >= 0")?;
        }
        require(
            "loss_pct",
            self.loss_pct,
            (0.0..=100.0).contains(&self.loss_pct),
            "must be a number from 0 to 100",
        )
    }

    /// Whether this shape changes nothing: frames pass at once, all of them.
    pub fn is_transparent(&self) -> bool {
        self.rate_mbit.is_none()
            && self.delay_ms == 0.0
            && self.jitter_ms == 0.0
            && self.loss_pct == 0.0
    }
}

/// `ok` for a finite `value`, else the error naming `field`.
fn require(
    field: &'static str,
    value: f64,
    ok: bool,
    rule: &'static str,
) -> Result<(), ShapeError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(ShapeError { field, value, rule })
    }
}
