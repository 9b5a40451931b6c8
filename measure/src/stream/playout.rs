//! The HTTP progressive player model: pure functions from a download's
//! samples to what a viewer of the video would have seen ([`playout`] →
//! [`PlayoutSummary`]). No I/O, no clock reads: the same samples always
//! give the same numbers. This module doc is the single definition of each
//! measure; everything else refers here.
//!
//! # Input
//! - **Samples** `(rx_ns, bytes)`: `bytes` of the body arrived at `rx_ns`
//!   (client clock, ns; [`crate::http_stream`] records one per read).
//!   They are taken in time order (sorted by `rx_ns`, stable); samples after
//!   `until_ns` are ignored. Bytes arrive in steps, all of a sample's at
//!   its `rx_ns`.
//! - **Byte rate** `r` (bytes per second of media), constant. *Assumption*:
//!   the clip is constant-bit-rate-ish (our MPEG-TS test clip, whose byte
//!   rate is its size over its duration), so the media received is
//!   `M(t) = bytes received at or before t / r` seconds, and a player
//!   needs no demuxing to know how much it holds. A rate that is not a
//!   positive finite number gives `M = 0` throughout (nothing ever plays).
//! - **Parameters** ([`PlayoutParams`]): `start_s` (default 2.5), `resume_s`
//!   (default 5.0): the thresholds our issue 5 takes from a widely used
//!   player, all configurable; `origin_ns`, the moment the viewer pressed play (default: the first
//!   sample's `rx_ns`); `total_bytes`, the whole file's size if known.
//! - **`until_ns`**: the end of the evaluation; everything is as of then.
//!
//! # The player
//! The playhead `P(t)` (seconds of media played) advances at 1 s per s
//! while *playing* and stands still otherwise. The **buffer** is
//! `B(t) = M(t) - P(t)`. States, starting in *startup*:
//! - *startup* → *playing* at the first sample time `t` with
//!   `B(t) ≥ start_s`, or with the whole file received (`total_bytes`
//!   known and reached).
//! - *playing* → *stalled* at the moment `B` reaches 0 strictly before the
//!   next sample arrives (data arriving exactly when the buffer runs dry is
//!   in time); unless the whole file has been received: then play has
//!   *ended* (the end of the video, no stall).
//! - *stalled* → *playing* at the first sample time `t` with
//!   `B(t) ≥ resume_s`, or with the whole file received.
//!
//! Samples at time `t` are added before the state at `t` is decided.
//! Times at which the buffer runs dry are rounded to the nearest ns.
//!
//! # Measures
//! - **Startup delay** (`startup_delay_ms`): from `origin_ns` to the start
//!   of play; `None` when play had not started by `until_ns`.
//! - **Stall**: an interval `[start_ns, end_ns]` in *stalled*, from the
//!   moment the buffer ran dry to the moment play resumed. A stall still
//!   going on at `until_ns` counts, clipped to end at `until_ns`. Startup
//!   is not a stall. `stall_count`, `stall_total_ms` (sum of lengths),
//!   `longest_stall_ms` (0 with none).
//! - **Played** (`played_s`): `P(until_ns)`, which is also the time spent
//!   playing, since play runs at 1 s/s.
//! - **Rebuffering ratio**: stall time over (play time + stall time), that
//!   is `stall_total / (played + stall_total)`; 0 when both are 0.
//! - **Bytes** (`bytes`): body bytes received up to `until_ns`;
//!   `media_s_received = bytes / r`.

use serde::{Deserialize, Serialize};

/// The player's thresholds and the moments that frame the model; see the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayoutParams {
    /// Media buffered before play starts, s (default 2.5).
    pub start_s: f64,
    /// Media buffered before play resumes after a stall, s (default 5.0).
    pub resume_s: f64,
    /// When the viewer asked to play, ns; `None` = the first sample's time.
    pub origin_ns: Option<i64>,
    /// The whole file's size, bytes, if known: once it is all received,
    /// the player plays to the end and running dry is no stall.
    pub total_bytes: Option<u64>,
}

impl Default for PlayoutParams {
    /// Start at 2.5 s buffered, resume at 5 s, origin at the first sample,
    /// file size unknown.
    fn default() -> Self {
        Self {
            start_s: 2.5,
            resume_s: 5.0,
            origin_ns: None,
            total_bytes: None,
        }
    }
}

/// One stall, as defined in the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    /// When the buffer ran dry, ns.
    pub start_ns: i64,
    /// When play resumed (or `until_ns`, if it had not), ns.
    pub end_ns: i64,
}

impl Stall {
    /// `end_ns - start_ns`, ms.
    pub fn len_ms(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e6
    }
}

/// What a viewer saw; each field is defined in the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayoutSummary {
    /// From `origin_ns` to the start of play, ms (`None`: never started).
    pub startup_delay_ms: Option<f64>,
    /// Every stall, in time order.
    pub stalls: Vec<Stall>,
    /// Number of stalls.
    pub stall_count: u64,
    /// Sum of the stalls' lengths, ms.
    pub stall_total_ms: f64,
    /// Longest stall, ms.
    pub longest_stall_ms: f64,
    /// Stall time / (play time + stall time).
    pub rebuffering_ratio: f64,
    /// Body bytes received up to `until_ns`.
    pub bytes: u64,
    /// `bytes / byte_rate`, s.
    pub media_s_received: f64,
    /// Media played by `until_ns`, s.
    pub played_s: f64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Startup,
    /// Playing since `since` with the playhead at `p0` (media ns) then.
    Playing {
        since: i64,
        p0: f64,
    },
    /// Stalled since `since`, the playhead standing at `p`.
    Stalled {
        since: i64,
        p: f64,
    },
    /// The whole file played.
    Ended {
        p: f64,
    },
}

/// Runs the player model over `samples` up to `until_ns`; see the [module
/// documentation](self).
pub fn playout(
    samples: &[(i64, u64)],
    byte_rate: f64,
    params: &PlayoutParams,
    until_ns: i64,
) -> PlayoutSummary {
    let mut sorted: Vec<(i64, u64)> = samples
        .iter()
        .copied()
        .filter(|s| s.0 <= until_ns)
        .collect();
    sorted.sort_by_key(|s| s.0);
    let rate_ok = byte_rate.is_finite() && byte_rate > 0.0;
    // Media ns held after `bytes` bytes.
    let media_ns = |bytes: u64| {
        if rate_ok {
            bytes as f64 * 1e9 / byte_rate
        } else {
            0.0
        }
    };
    let start_ns = params.start_s * 1e9;
    let resume_ns = params.resume_s * 1e9;
    let origin = params
        .origin_ns
        .or_else(|| sorted.first().map(|s| s.0))
        .unwrap_or(until_ns);

    let mut state = State::Startup;
    let mut bytes: u64 = 0;
    let mut started_ns: Option<i64> = None;
    let mut stalls: Vec<Stall> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        // Before this sample's bytes: did the buffer run dry before `t`?
        if let State::Playing { since, p0 } = state {
            let m = media_ns(bytes);
            let dry = since.saturating_add((m - p0).round() as i64);
            if dry < t {
                state = dry_state(dry, m, bytes, params.total_bytes);
            }
        }
        while i < sorted.len() && sorted[i].0 == t {
            bytes = bytes.saturating_add(sorted[i].1);
            i += 1;
        }
        let m = media_ns(bytes);
        let complete = params.total_bytes.is_some_and(|n| bytes >= n);
        match state {
            State::Startup if m >= start_ns || complete => {
                started_ns = Some(t);
                state = State::Playing { since: t, p0: 0.0 };
            }
            State::Stalled { since, p } if m - p >= resume_ns || complete => {
                stalls.push(Stall {
                    start_ns: since,
                    end_ns: t,
                });
                state = State::Playing { since: t, p0: p };
            }
            _ => {}
        }
    }
    // The state at `until_ns`.
    let m = media_ns(bytes);
    let complete = params.total_bytes.is_some_and(|n| bytes >= n);
    let played_ns = match state {
        State::Startup => 0.0,
        State::Playing { since, p0 } => {
            let dry = since.saturating_add((m - p0).round() as i64);
            if dry < until_ns {
                if !complete {
                    stalls.push(Stall {
                        start_ns: dry,
                        end_ns: until_ns,
                    });
                }
                m
            } else {
                p0 + (until_ns - since) as f64
            }
        }
        State::Stalled { since, p } => {
            stalls.push(Stall {
                start_ns: since,
                end_ns: until_ns,
            });
            p
        }
        State::Ended { p } => p,
    };
    let stall_total_ms = stalls.iter().map(Stall::len_ms).fold(0.0, |a, b| a + b);
    let played_s = played_ns / 1e9;
    let denom = played_s * 1e3 + stall_total_ms;
    PlayoutSummary {
        startup_delay_ms: started_ns.map(|s| (s - origin) as f64 / 1e6),
        stall_count: stalls.len() as u64,
        stall_total_ms,
        longest_stall_ms: stalls.iter().map(Stall::len_ms).fold(0.0, f64::max),
        rebuffering_ratio: if denom > 0.0 {
            stall_total_ms / denom
        } else {
            0.0
        },
        stalls,
        bytes,
        media_s_received: m / 1e9,
        played_s,
    }
}

/// The state once the buffer ran dry at `dry` with the playhead at `m`.
fn dry_state(dry: i64, m: f64, bytes: u64, total: Option<u64>) -> State {
    if total.is_some_and(|n| bytes >= n) {
        State::Ended { p: m }
    } else {
        State::Stalled { since: dry, p: m }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const T0: i64 = 1_700_000_000_000_000_000;

    /// Samples every 10 ms over `(from_ms, to_ms]`, `per` bytes each.
    fn steady(from_ms: i64, to_ms: i64, per: u64) -> Vec<(i64, u64)> {
        (from_ms / 10 + 1..=to_ms / 10)
            .map(|k| (T0 + k * 10 * MS, per))
            .collect()
    }

    fn params() -> PlayoutParams {
        PlayoutParams {
            origin_ns: Some(T0),
            ..PlayoutParams::default()
        }
    }

    #[test]
    fn steady_download_at_twice_the_media_rate_never_stalls() {
        // Media: 1000 B/s; download 20 B per 10 ms = 2000 B/s.
        let s = steady(0, 10_000, 20);
        let p = playout(&s, 1000.0, &params(), T0 + 10_000 * MS);
        // 2.5 s of media = 2500 B = 125 samples: at 1.25 s.
        assert_eq!(p.startup_delay_ms, Some(1250.0));
        assert!(p.stalls.is_empty());
        assert_eq!(
            (p.stall_count, p.stall_total_ms, p.longest_stall_ms),
            (0, 0.0, 0.0)
        );
        assert_eq!(p.rebuffering_ratio, 0.0);
        // +0.0, not the -0.0 of an empty f64 sum, in the JSON.
        assert!(p.stall_total_ms.is_sign_positive() && p.rebuffering_ratio.is_sign_positive());
        assert_eq!(p.bytes, 20_000);
        assert_eq!(p.media_s_received, 20.0);
        assert_eq!(p.played_s, 8.75);
    }

    #[test]
    fn outage_after_a_one_second_buffer_stalls_until_five_seconds_are_buffered() {
        // 2x until play starts at 1.25 s (2.5 s buffered), then 0.5x for
        // 3 s (buffer 2.5 + 1.5 - 3 = 1 s at 4.25 s), then nothing for 3 s,
        // then 2x again from 7.25 s.
        let mut s = steady(0, 1250, 20);
        s.extend(steady(1250, 4250, 5));
        s.extend(steady(7250, 12_000, 20));
        let p = playout(&s, 1000.0, &params(), T0 + 12_000 * MS);
        assert_eq!(p.startup_delay_ms, Some(1250.0));
        // Dry at 4.25 + 1 = 5.25 s; 5 s (5000 B = 250 samples) buffered
        // again at 7.25 + 2.5 = 9.75 s.
        assert_eq!(
            p.stalls,
            vec![Stall {
                start_ns: T0 + 5250 * MS,
                end_ns: T0 + 9750 * MS
            }]
        );
        assert_eq!(p.stall_count, 1);
        assert_eq!(p.stall_total_ms, 4500.0);
        assert_eq!(p.longest_stall_ms, 4500.0);
        // Played 1.25..5.25 and 9.75..12: 6.25 s.
        assert_eq!(p.played_s, 6.25);
        assert_eq!(p.rebuffering_ratio, 4500.0 / (6250.0 + 4500.0));
        assert_eq!(p.bytes, 2500 + 1500 + 475 * 20);
    }

    #[test]
    fn stall_going_on_at_the_end_counts_clipped() {
        let s = steady(0, 1250, 20);
        let p = playout(&s, 1000.0, &params(), T0 + 5000 * MS);
        // Dry at 1.25 + 2.5 = 3.75 s, still stalled at 5 s.
        assert_eq!(
            p.stalls,
            vec![Stall {
                start_ns: T0 + 3750 * MS,
                end_ns: T0 + 5000 * MS
            }]
        );
        assert_eq!(p.played_s, 2.5);
        assert_eq!(p.stall_total_ms, 1250.0);
    }

    #[test]
    fn running_dry_at_the_end_of_the_file_is_no_stall() {
        let s = steady(0, 1000, 20);
        let params = PlayoutParams {
            total_bytes: Some(2000),
            ..params()
        };
        // 2 s of media in all, less than start_s: play starts when it is
        // all there (1 s) and ends at 3 s.
        let p = playout(&s, 1000.0, &params, T0 + 5000 * MS);
        assert_eq!(p.startup_delay_ms, Some(1000.0));
        assert!(p.stalls.is_empty());
        assert_eq!(p.played_s, 2.0);
    }

    #[test]
    fn data_arriving_just_as_the_buffer_runs_dry_is_in_time() {
        // 2.5 s at once at 0, then the next 2.5 s exactly 2.5 s later.
        let s = vec![(T0, 2500), (T0 + 2500 * MS, 2500)];
        let p = playout(&s, 1000.0, &params(), T0 + 4000 * MS);
        assert!(p.stalls.is_empty());
        assert_eq!(p.played_s, 4.0);
    }

    #[test]
    fn nothing_received_or_a_bad_rate_never_plays() {
        let p = playout(&[], 1000.0, &PlayoutParams::default(), T0);
        assert_eq!(p.startup_delay_ms, None);
        assert_eq!((p.bytes, p.played_s, p.rebuffering_ratio), (0, 0.0, 0.0));
        let p = playout(&steady(0, 1000, 20), 0.0, &params(), T0 + 2000 * MS);
        assert_eq!(p.startup_delay_ms, None);
        assert_eq!(p.bytes, 2000);
        assert!(p.stalls.is_empty());
    }

    #[test]
    fn samples_out_of_order_and_after_the_end_are_handled() {
        let mut s = steady(0, 10_000, 20);
        s.reverse();
        let p = playout(&s, 1000.0, &params(), T0 + 5000 * MS);
        assert_eq!(p.startup_delay_ms, Some(1250.0));
        assert_eq!(p.bytes, 10_000);
        assert_eq!(p.played_s, 3.75);
    }
}
