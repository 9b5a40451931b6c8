//! The measurement: pure functions from a [`ProbeRecord`] to a
//! [`GapSummary`]. No I/O, no clock reads: analysing the same record always
//! gives the same numbers. This module doc is the single definition of each
//! measure; everything else refers here.
//!
//! All times are on the client's clock (CLOCK_REALTIME ns); the guest's
//! clock is never used, since it stops while the VM is paused.
//!
//! # Terms
//! - **Sent**: probe `seq` was sent at `send_ns[seq]`. Replies whose seq was
//!   never sent (`seq >= send_ns.len()`) are ignored.
//! - **First arrival**: the first reply (in arrival order) of each seq.
//! - **Window** `[from_ns, to_ns]` (inclusive; `None` = the whole record):
//!   probes count as *in the window* by their send time, replies by their
//!   receive time `rx_ns`.
//!
//! # Measures
//! - **Reply gap**: order the first arrivals by `rx_ns`; the gap between
//!   consecutive arrivals `a`, `b` is `b.rx_ns - a.rx_ns`, covering both
//!   directions together. In a window, the pairs with `b.rx_ns > from` and
//!   `a.rx_ns < to` count, each with its full length (not clipped). For each
//!   gap, `lost_in_gap` is the number of seqs strictly between `a.seq` and
//!   `b.seq` that never got a reply (0 when `b.seq < a.seq`), and
//!   `prober_stalled` says a [`SenderLate`] event overlaps it (its interval
//!   `[deadline_ns, sent_ns]` intersects `(a.rx_ns, b.rx_ns)`), so a stall of
//!   the prober is never taken for a stall of the guest.
//!   `max_gap_ms` is the largest such gap, `gaps` every one longer than the
//!   threshold, in time order. An outage still going on when the record ends
//!   has no reply after it and so is no gap: it shows only as loss.
//! - **Outage**: reply gaps over the threshold, joined while the replies
//!   between them do not flow for a *recovery span* `R = max(10 ms, 10
//!   probe intervals)`: two consecutive listed gaps `g`, `h` (in time
//!   order) are joined when `h.start_ns - g.end_ns < R`. An outage ends
//!   only when replies then keep coming for at least `R` with no gap over
//!   the threshold. A reply held in a queue through the outage (a probe the
//!   guest took in just before its vCPUs stopped, answered by the
//!   destination right after RESUME) is real and splits the reply gap in
//!   two, but it does not end the outage. `max_outage_ms` is the longest
//!   joined span, from the reply before its first gap to the reply after
//!   its last; with no gap over the threshold it is the largest reply gap.
//!   So it is never shorter than `max_gap_ms`. It uses no round-trip time,
//!   so a guest that answers slowly under load is not called out.
//! - **Forward (client-to-guest) gap**: order the first arrivals by the
//!   reflector's receive count; when consecutive ones `a`, `b` differ by
//!   exactly 1, nothing sent between them reached the reflector, so the
//!   forward outage was `send_ns[b.seq] - send_ns[a.seq]`, on the client's
//!   clock alone. Pairs count in a window when `send_ns[b] > from` and
//!   `send_ns[a] < to`; `max_forward_gap_ms` is the largest. A forward
//!   outage next to lost replies is not measured this way (requests that
//!   reached the reflector without a reply make the counts around it differ
//!   by more than 1): the forward gap is then a lower bound, read it together
//!   with `lost_forward`.
//! - **Loss**: of the probes sent in the window, those that never got any
//!   reply (at any time) are `lost`. The split by direction is an
//!   approximation from the reflector's counts: the reflector received
//!   `reached = C_in - C_before` requests, where `C_in` is the largest count
//!   carried by a replied probe sent in the window and `C_before` the largest
//!   carried by a replied probe sent before it (0 if none);
//!   `lost_forward = sent - reached`, clamped to `[0, lost]`, and
//!   `lost_return = lost - lost_forward`. It is exact for a whole record
//!   without duplicated requests; at window edges, probes sent before the
//!   window whose replies were lost shift loss from forward to return, and
//!   probes lost after the last replied one count as forward (with no reply
//!   in the window at all, all loss counts as forward).
//! - **Replies**: reply datagrams received in the window, duplicates
//!   included. **Duplicates**: replies in the window for a seq already seen.
//!   **Reordered**: first arrivals in the window whose seq is lower than the
//!   highest seq received before them (over the whole record).
//! - **RTT**: `rx_ns - send_ns[seq]` of each first arrival in the window;
//!   min, mean, p50, p99 (nearest rank) and max, all 0 without samples.
//! - **Jitter** (`jitter_ms`): the RFC 3550 interarrival jitter
//!   ([`crate::jitter`]) of the first arrivals received in the window, taken
//!   in arrival order, with `S = send_ns[seq]` and `R = rx_ns`:
//!   `D = (Rj - Ri) - (Sj - Si)`, `J += (|D| - J) / 16`, from `J = 0`. A
//!   reply lost or late in between simply makes the next pair's `D` span it.
//! - **Sender late**: [`SenderLate`] events whose `[deadline_ns, sent_ns]`
//!   overlaps the window.
//!
//! Sequence numbers are 64-bit and never wrap; nothing here assumes less.

use serde::{Deserialize, Serialize};

use crate::probe::jitter::rfc3550_jitter_ns;
use crate::probe::record::{ProbeRecord, ReplyRecord, SenderLate};

/// One reply gap, as defined in the [module documentation](self).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    /// Receive time of the last reply before the gap, ns (client clock).
    pub start_ns: i64,
    /// Receive time of the first reply after it, ns (client clock).
    pub end_ns: i64,
    /// `end_ns - start_ns`, ms.
    pub len_ms: f64,
    /// Seq of the reply that opened the gap.
    pub last_seq_before: u64,
    /// Seq of the reply that closed it.
    pub first_seq_after: u64,
    /// Seqs strictly between the two that never got a reply.
    pub lost_in_gap: u64,
    /// A sender-late event overlaps the gap: the prober itself stalled.
    pub prober_stalled: bool,
}

/// Round-trip times on the client's clock, ms.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RttStats {
    /// Number of round trips measured.
    pub samples: u64,
    /// Smallest.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// What a user of the VM saw over a window; each field is defined in the
/// [module documentation](self).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GapSummary {
    /// Probes sent in the window.
    pub probes_sent: u64,
    /// Reply datagrams received in the window, duplicates included.
    pub replies: u64,
    /// Replies in the window for a seq already answered.
    pub duplicates: u64,
    /// First arrivals in the window below the highest seq already received.
    pub reordered: u64,
    /// Probes sent in the window that never got a reply.
    pub lost: u64,
    /// Of `lost`, those that never reached the reflector (approximation).
    pub lost_forward: u64,
    /// Of `lost`, those whose reply was lost: `lost - lost_forward`.
    pub lost_return: u64,
    /// Largest gap between consecutive first arrivals, both directions, ms.
    pub max_gap_ms: f64,
    /// That largest gap, if there was any pair of replies in the window.
    pub max_gap: Option<Gap>,
    /// Longest outage (reply gaps joined until replies flow again), ms.
    #[serde(default)]
    pub max_outage_ms: f64,
    /// That longest outage, as one gap from the reply before it to the
    /// reply after it.
    #[serde(default)]
    pub max_outage: Option<Gap>,
    /// Largest client-to-guest gap, ms (0 when none could be measured).
    pub max_forward_gap_ms: f64,
    /// Every reply gap longer than the threshold, in time order.
    pub gaps: Vec<Gap>,
    /// Round-trip times of the first arrivals in the window.
    pub rtt_ms: RttStats,
    /// Sender-late events overlapping the window.
    pub sender_late: u64,
    /// The probe interval, `1000 / rate_hz` ms (0 when the rate is 0).
    pub interval_ms: f64,
    /// RFC 3550 interarrival jitter of the first arrivals in the window, ms.
    #[serde(default)]
    pub jitter_ms: f64,
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// Analyses `rec` over the window `[from_ns, to_ns]` on the client's clock
/// (`None` = the whole record), listing reply gaps longer than
/// `gap_threshold_ns`. Every measure is defined in the [module
/// documentation](self).
pub fn analyze(rec: &ProbeRecord, window: Option<(i64, i64)>, gap_threshold_ns: i64) -> GapSummary {
    let (from, to) = window.unwrap_or((i64::MIN, i64::MAX));
    let in_win = |t: i64| t >= from && t <= to;
    let sent = &rec.send_ns;
    let n = sent.len();

    let Arrivals {
        first,
        firsts,
        replies,
        duplicates,
        reordered,
    } = first_arrivals(rec, &in_win);
    let (probes_sent, lost, lost_forward) = loss(sent, &first, from, &in_win);
    // Reply gaps (receive-time order).
    let mut unreplied_before = Vec::with_capacity(n + 1); // [i] = unreplied seqs < i
    unreplied_before.push(0u64);
    for f in &first {
        let last = unreplied_before.last().copied().unwrap_or(0);
        unreplied_before.push(last + u64::from(f.is_none()));
    }
    let lost_between = |a: u64, b: u64| -> u64 {
        if b <= a.saturating_add(1) {
            return 0;
        }
        // a < b - 1 < n here, since both were sent.
        match (usize::try_from(a + 1), usize::try_from(b)) {
            (Ok(lo), Ok(hi)) => unreplied_before[hi] - unreplied_before[lo],
            _ => 0,
        }
    };
    let stalled = |start: i64, end: i64| {
        rec.sender_late
            .iter()
            .any(|l: &SenderLate| l.deadline_ns < end && l.sent_ns > start)
    };
    let make_gap = |a: &ReplyRecord, b: &ReplyRecord| Gap {
        start_ns: a.rx_ns,
        end_ns: b.rx_ns,
        len_ms: ms(b.rx_ns.saturating_sub(a.rx_ns)),
        last_seq_before: a.seq,
        first_seq_after: b.seq,
        lost_in_gap: lost_between(a.seq, b.seq),
        prober_stalled: stalled(a.rx_ns, b.rx_ns),
    };
    let mut by_rx = firsts.clone();
    by_rx.sort_by_key(|r| r.rx_ns);
    // Consecutive pairs in `arrivals` that count in the window, with length.
    let pairs = |arrivals: &[&'_ ReplyRecord]| -> Vec<(i64, usize)> {
        arrivals
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1].rx_ns > from && w[0].rx_ns < to)
            .map(|(i, w)| (w[1].rx_ns.saturating_sub(w[0].rx_ns), i))
            .collect()
    };
    // The longest pair; the first one among equals.
    let longest = |arrivals: &[&ReplyRecord]| {
        pairs(arrivals)
            .into_iter()
            .fold(None::<(i64, usize)>, |best, p| match best {
                Some(b) if b.0 >= p.0 => Some(b),
                _ => Some(p),
            })
            .map(|(_, i)| make_gap(arrivals[i], arrivals[i + 1]))
    };
    let gaps: Vec<Gap> = pairs(&by_rx)
        .into_iter()
        .filter(|&(len, _)| len > gap_threshold_ns)
        .map(|(_, i)| make_gap(by_rx[i], by_rx[i + 1]))
        .collect();
    let max_gap = longest(&by_rx);
    let max_outage = join_outages(&gaps, recovery_span_ns(rec.rate_hz), &lost_between)
        .or_else(|| max_gap.clone());
    let send_of = |r: &ReplyRecord| sent[r.seq as usize]; // seq < n: checked above
    let max_forward_ns = max_forward_ns(&firsts, sent, from, to);
    // Round trips.
    let mut rtts: Vec<i64> = firsts
        .iter()
        .filter(|r| in_win(r.rx_ns))
        .map(|r| r.rx_ns.saturating_sub(send_of(r)))
        .collect();
    rtts.sort_unstable();
    let jitter_ns = rfc3550_jitter_ns(
        firsts
            .iter()
            .filter(|r| in_win(r.rx_ns))
            .map(|r| (send_of(r), r.rx_ns)),
    );

    GapSummary {
        probes_sent,
        replies,
        duplicates,
        reordered,
        lost,
        lost_forward,
        lost_return: lost - lost_forward,
        max_gap_ms: max_gap.as_ref().map_or(0.0, |g| g.len_ms),
        max_gap,
        max_outage_ms: max_outage.as_ref().map_or(0.0, |g| g.len_ms),
        max_outage,
        max_forward_gap_ms: ms(max_forward_ns),
        gaps,
        rtt_ms: rtt_stats(&rtts),
        sender_late: rec
            .sender_late
            .iter()
            .filter(|l| l.deadline_ns <= to && l.sent_ns >= from)
            .count() as u64,
        interval_ms: if rec.rate_hz == 0 {
            0.0
        } else {
            1000.0 / f64::from(rec.rate_hz)
        },
        jitter_ms: jitter_ns / 1e6,
    }
}

/// Each sequence number's first reply, and the counts of replies,
/// duplicates and reordered first arrivals in the window.
struct Arrivals<'a> {
    /// By sequence number: its first reply, if one came.
    first: Vec<Option<&'a ReplyRecord>>,
    /// The first replies, in arrival order.
    firsts: Vec<&'a ReplyRecord>,
    replies: u64,
    duplicates: u64,
    reordered: u64,
}

fn first_arrivals<'a>(rec: &'a ProbeRecord, in_win: &dyn Fn(i64) -> bool) -> Arrivals<'a> {
    let mut first: Vec<Option<&ReplyRecord>> = vec![None; rec.send_ns.len()];
    let mut firsts: Vec<&ReplyRecord> = Vec::new();
    let (mut replies, mut duplicates, mut reordered) = (0u64, 0u64, 0u64);
    let mut highest: Option<u64> = None;
    for r in &rec.replies {
        let Some(slot) = usize::try_from(r.seq).ok().and_then(|i| first.get_mut(i)) else {
            continue; // never sent: not a reply to this record
        };
        let inw = in_win(r.rx_ns);
        replies += u64::from(inw);
        if slot.is_some() {
            duplicates += u64::from(inw);
            continue;
        }
        *slot = Some(r);
        if inw && highest.is_some_and(|h| r.seq < h) {
            reordered += 1;
        }
        highest = Some(highest.map_or(r.seq, |h| h.max(r.seq)));
        firsts.push(r);
    }
    Arrivals {
        first,
        firsts,
        replies,
        duplicates,
        reordered,
    }
}

/// Probes sent in the window, those lost, and those lost on the way to the
/// guest (by the reflector's receive counter).
fn loss(
    sent: &[i64],
    first: &[Option<&ReplyRecord>],
    from: i64,
    in_win: &dyn Fn(i64) -> bool,
) -> (u64, u64, u64) {
    let (mut probes_sent, mut replied) = (0u64, 0u64);
    let (mut c_in, mut c_before) = (0u64, 0u64);
    for (seq, &t) in sent.iter().enumerate() {
        let reply = first[seq];
        if in_win(t) {
            probes_sent += 1;
            if let Some(r) = reply {
                replied += 1;
                c_in = c_in.max(r.reflector_rx_count);
            }
        } else if t < from {
            if let Some(r) = reply {
                c_before = c_before.max(r.reflector_rx_count);
            }
        }
    }
    let lost = probes_sent - replied;
    let reached = c_in.saturating_sub(c_before);
    (
        probes_sent,
        lost,
        probes_sent.saturating_sub(reached).min(lost),
    )
}

/// The longest outage: reply gaps joined while replies resume for less than
/// the recovery span between them; the first among equals.
fn join_outages(
    gaps: &[Gap],
    recovery: i64,
    lost_between: &dyn Fn(u64, u64) -> u64,
) -> Option<Gap> {
    let mut outages: Vec<Gap> = Vec::new();
    for g in gaps {
        match outages.last_mut() {
            Some(o) if g.start_ns - o.end_ns < recovery => {
                *o = Gap {
                    start_ns: o.start_ns,
                    end_ns: g.end_ns,
                    len_ms: ms(g.end_ns.saturating_sub(o.start_ns)),
                    last_seq_before: o.last_seq_before,
                    first_seq_after: g.first_seq_after,
                    lost_in_gap: lost_between(o.last_seq_before, g.first_seq_after),
                    prober_stalled: o.prober_stalled || g.prober_stalled,
                };
            }
            _ => outages.push(g.clone()),
        }
    }
    outages.into_iter().fold(None::<Gap>, |best, o| match best {
        Some(b) if b.end_ns - b.start_ns >= o.end_ns - o.start_ns => Some(b),
        _ => Some(o),
    })
}

/// The largest client-to-guest gap, ns: between two probes the reflector
/// received one after the other (its counter says so), their send times
/// apart, for pairs that overlap the window.
fn max_forward_ns(firsts: &[&ReplyRecord], sent: &[i64], from: i64, to: i64) -> i64 {
    let send_of = |r: &ReplyRecord| sent[r.seq as usize]; // seq < n: checked by the caller
    let mut by_count = firsts.to_vec();
    by_count.sort_by_key(|r| r.reflector_rx_count);
    let mut max_forward_ns = 0i64;
    for w in by_count.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.reflector_rx_count.checked_sub(a.reflector_rx_count) != Some(1) {
            continue;
        }
        let (sa, sb) = (send_of(a), send_of(b));
        if sb > from && sa < to {
            max_forward_ns = max_forward_ns.max(sb.saturating_sub(sa));
        }
    }
    max_forward_ns
}

/// The recovery span `R` of the outage measure: `max(10 ms, 10 probe
/// intervals)` at `rate_hz` (10 ms when the rate is 0).
pub fn recovery_span_ns(rate_hz: u32) -> i64 {
    let interval = if rate_hz == 0 {
        0
    } else {
        1_000_000_000 / i64::from(rate_hz)
    };
    (10 * interval).max(10_000_000)
}

/// The first reply received at or after `after_ns` from which replies keep
/// coming for the recovery span ([`recovery_span_ns`]) with no gap over
/// `gap_threshold_ns`: when the client saw the service back. `None` if the
/// record never shows that.
pub fn first_sustained_arrival(
    rec: &ProbeRecord,
    after_ns: i64,
    gap_threshold_ns: i64,
) -> Option<i64> {
    let n = rec.send_ns.len();
    let mut seen = vec![false; n];
    let mut rx: Vec<i64> = Vec::new();
    for r in &rec.replies {
        let Some(slot) = usize::try_from(r.seq).ok().and_then(|i| seen.get_mut(i)) else {
            continue;
        };
        if !*slot {
            *slot = true;
            if r.rx_ns >= after_ns {
                rx.push(r.rx_ns);
            }
        }
    }
    rx.sort_unstable();
    let span = recovery_span_ns(rec.rate_hz);
    let mut start = 0;
    for i in 1..rx.len() {
        if rx[i] - rx[i - 1] > gap_threshold_ns {
            start = i;
        } else if rx[i] - rx[start] >= span {
            return Some(rx[start]);
        }
    }
    None
}

/// Min, mean, nearest-rank p50 and p99, max of sorted samples (ns), in ms.
fn rtt_stats(sorted: &[i64]) -> RttStats {
    let (Some(&min), Some(&max)) = (sorted.first(), sorted.last()) else {
        return RttStats::default();
    };
    let rank = |p: f64| {
        let k = (p * sorted.len() as f64).ceil() as usize;
        sorted[k.clamp(1, sorted.len()) - 1]
    };
    let sum: f64 = sorted.iter().map(|&x| x as f64).sum();
    RttStats {
        samples: sorted.len() as u64,
        min: ms(min),
        mean: sum / sorted.len() as f64 / 1e6,
        p50: ms(rank(0.50)),
        p99: ms(rank(0.99)),
        max: ms(max),
    }
}

/// The gap threshold for a second stream (the ICMP echoes) probing at
/// another rate than the probe the threshold was set for (`reference`):
/// the same number of that stream's own intervals when it is slower, so a
/// stream whose interval is as long as the threshold does not count every
/// interval as a gap (at 200 echoes/s, a 5 ms threshold would).
pub fn threshold_for(
    reference: Option<&ProbeRecord>,
    stream: &ProbeRecord,
    threshold_ns: i64,
) -> i64 {
    match reference {
        Some(r) if stream.rate_hz > 0 && stream.rate_hz < r.rate_hz => {
            threshold_ns.saturating_mul(i64::from(r.rate_hz)) / i64::from(stream.rate_hz)
        }
        _ => threshold_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;
    const RTT: i64 = 200_000;

    #[derive(Clone, Copy, PartialEq)]
    enum Fate {
        Ok,
        /// Never reached the reflector.
        Fwd,
        /// Reached it (counted), reply lost.
        Ret,
    }
    use Fate::*;

    fn empty() -> ProbeRecord {
        ProbeRecord {
            session: 7,
            rate_hz: 1000,
            payload_len: 64,
            target: "127.0.0.1:9".into(),
            ..ProbeRecord::default()
        }
    }

    /// A 1 kHz stream, probe `seq` sent at `T0 + seq ms`, each reply
    /// arriving `RTT` later, the reflector counting what reached it.
    fn stream(fates: &[Fate]) -> ProbeRecord {
        let mut rec = empty();
        let mut count = 0;
        for (seq, &f) in fates.iter().enumerate() {
            let send = T0 + seq as i64 * MS;
            rec.send_ns.push(send);
            if f != Fwd {
                count += 1;
            }
            if f == Ok {
                rec.replies.push(reply(seq as u64, send, send + RTT, count));
            }
        }
        rec
    }

    fn reply(seq: u64, send_ns: i64, rx_ns: i64, count: u64) -> ReplyRecord {
        ReplyRecord {
            seq,
            send_ns,
            rx_ns,
            kernel_ts: true,
            guest_rx_ns: 0,
            guest_tx_ns: 0,
            reflector_rx_count: count,
        }
    }

    #[test]
    fn a_slower_stream_keeps_the_threshold_in_its_own_intervals() {
        // 200 echoes/s (5 ms apart, replies ±0.3 ms of jitter) with 100 ms
        // unanswered in the middle.
        let mut slow = empty();
        slow.rate_hz = 200;
        for seq in 0..200u64 {
            let send = T0 + seq as i64 * 5 * MS;
            slow.send_ns.push(send);
            let jitter = if seq % 2 == 0 { 0 } else { 600_000 };
            if !(80..100).contains(&seq) {
                slow.replies
                    .push(reply(seq, send, send + RTT + jitter, seq + 1));
            }
        }
        let fast = empty();
        let t = threshold_for(Some(&fast), &slow, 5 * MS);
        assert_eq!(t, 25 * MS);
        let o = analyze(&slow, None, t).max_outage.unwrap();
        assert!((o.len_ms - 105.0).abs() < 1.0, "{}", o.len_ms);
        // With the fast stream's 5 ms, every 5 ms interval is a gap.
        let every = analyze(&slow, None, 5 * MS).max_outage.unwrap();
        assert!(every.len_ms > 900.0, "{}", every.len_ms);
        assert_eq!(threshold_for(None, &slow, 5 * MS), 5 * MS);
        assert_eq!(threshold_for(Some(&slow), &fast, 5 * MS), 5 * MS);
    }

    fn fates(n: usize, outage: std::ops::Range<usize>, f: Fate) -> Vec<Fate> {
        (0..n)
            .map(|i| if outage.contains(&i) { f } else { Ok })
            .collect()
    }

    fn at(seq: i64) -> i64 {
        T0 + seq * MS
    }

    #[test]
    fn forward_outage_of_100_ms_in_a_1khz_stream() {
        let rec = stream(&fates(1000, 500..600, Fwd));
        let s = analyze(&rec, None, 5 * MS);
        assert_eq!((s.probes_sent, s.replies, s.lost), (1000, 900, 100));
        assert_eq!((s.lost_forward, s.lost_return), (100, 0));
        assert_eq!((s.duplicates, s.reordered, s.sender_late), (0, 0, 0));
        assert_eq!(s.max_gap_ms, 101.0);
        assert_eq!(s.max_forward_gap_ms, 101.0);
        let g = Gap {
            start_ns: at(499) + RTT,
            end_ns: at(600) + RTT,
            len_ms: 101.0,
            last_seq_before: 499,
            first_seq_after: 600,
            lost_in_gap: 100,
            prober_stalled: false,
        };
        assert_eq!(s.max_gap, Some(g.clone()));
        assert_eq!(s.gaps, vec![g]);
        assert_eq!(s.interval_ms, 1.0);
        assert_eq!(s.rtt_ms.samples, 900);
        assert_eq!(
            (s.rtt_ms.min, s.rtt_ms.p50, s.rtt_ms.p99, s.rtt_ms.max),
            (0.2, 0.2, 0.2, 0.2)
        );
    }

    #[test]
    fn return_path_loss_is_told_apart_by_the_reflector_counts() {
        let rec = stream(&fates(1000, 500..600, Ret));
        let s = analyze(&rec, None, 5 * MS);
        assert_eq!(s.max_gap_ms, 101.0);
        assert_eq!((s.lost, s.lost_forward, s.lost_return), (100, 0, 100));
        // Requests kept reaching the guest: the forward direction never broke.
        assert_eq!(s.max_forward_gap_ms, 1.0);

        let mut mixed = fates(1000, 500..550, Fwd);
        mixed[550..600].fill(Ret);
        let s = analyze(&stream(&mixed), None, 5 * MS);
        assert_eq!((s.lost, s.lost_forward, s.lost_return), (100, 50, 50));
        // Requests 550..600 reached the guest without replies, so the counts
        // around the gap differ by 51: the forward gap is not measurable.
        assert_eq!(s.max_forward_gap_ms, 1.0);
        let mut mixed = fates(1000, 500..550, Ret);
        mixed[550..600].fill(Fwd);
        let s = analyze(&stream(&mixed), None, 5 * MS);
        assert_eq!((s.lost, s.lost_forward, s.lost_return), (100, 50, 50));
        assert_eq!(s.max_forward_gap_ms, 1.0);
        assert_eq!(s.max_gap_ms, 101.0);
    }

    #[test]
    fn duplicates_and_reordering_are_counted() {
        let mut rec = stream(&[Ok; 10]);
        // Seq 4 overtakes seq 3; seq 2 arrives twice.
        rec.replies.swap(3, 4);
        rec.replies[3].rx_ns = at(3) + RTT;
        rec.replies[4].rx_ns = at(4) + RTT;
        let dup = rec.replies[2].clone();
        rec.replies.push(ReplyRecord {
            rx_ns: at(10),
            ..dup
        });
        let s = analyze(&rec, None, 5 * MS);
        assert_eq!(
            (s.replies, s.duplicates, s.reordered, s.lost),
            (11, 1, 1, 0)
        );
        assert_eq!(s.max_gap_ms, 1.0);
        assert!(s.gaps.is_empty());
    }

    #[test]
    fn window_clips_probes_replies_and_gaps() {
        let rec = stream(&fates(1000, 500..600, Fwd));
        // Well before the outage.
        let s = analyze(&rec, Some((at(100), at(300))), 5 * MS);
        assert_eq!((s.probes_sent, s.lost, s.max_gap_ms), (201, 0, 1.0));
        assert!(s.gaps.is_empty());
        // Ending inside the outage: the gap counts whole; loss is what the
        // window sent.
        let s = analyze(&rec, Some((at(450), at(550))), 5 * MS);
        assert_eq!(
            (s.probes_sent, s.lost, s.lost_forward, s.lost_return),
            (101, 51, 51, 0)
        );
        assert_eq!(s.max_gap_ms, 101.0);
        assert_eq!(s.gaps.len(), 1);
        // Entirely inside the outage: no reply at all, the gap spans it.
        let s = analyze(&rec, Some((at(520), at(580))), 5 * MS);
        assert_eq!(
            (s.probes_sent, s.replies, s.lost, s.lost_forward),
            (61, 0, 61, 61)
        );
        assert_eq!(s.max_gap_ms, 101.0);
        assert_eq!(s.rtt_ms, RttStats::default());
        // After the outage, seen from the counts before the window.
        let s = analyze(&rec, Some((at(700), at(999))), 5 * MS);
        assert_eq!((s.probes_sent, s.lost, s.lost_forward), (300, 0, 0));
        assert_eq!(s.max_gap_ms, 1.0);
    }

    #[test]
    fn a_stalled_prober_is_flagged_not_blamed_on_the_guest() {
        // The sender stalls 50 ms before seq 300, then resumes on a new
        // schedule; later a real 20 ms forward outage.
        let mut rec = empty();
        let mut count = 0;
        for seq in 0..1000i64 {
            let send = if seq < 300 { at(seq) } else { at(seq + 50) };
            rec.send_ns.push(send);
            if (700..720).contains(&seq) {
                continue;
            }
            count += 1;
            rec.replies.push(reply(seq as u64, send, send + RTT, count));
        }
        rec.sender_late.push(SenderLate {
            seq: 300,
            deadline_ns: at(300),
            sent_ns: at(350),
        });
        let s = analyze(&rec, None, 5 * MS);
        assert_eq!(s.sender_late, 1);
        assert_eq!(s.gaps.len(), 2);
        assert_eq!(
            (
                s.gaps[0].len_ms,
                s.gaps[0].prober_stalled,
                s.gaps[0].lost_in_gap
            ),
            (51.0, true, 0)
        );
        assert_eq!(
            (
                s.gaps[1].len_ms,
                s.gaps[1].prober_stalled,
                s.gaps[1].lost_in_gap
            ),
            (21.0, false, 20)
        );
        assert_eq!(s.max_gap.as_ref().map(|g| g.prober_stalled), Some(true));
        // A window after the stall does not count it.
        let s = analyze(&rec, Some((at(600), at(1100))), 5 * MS);
        assert_eq!(s.sender_late, 0);
        assert_eq!(s.max_gap_ms, 21.0);
    }

    #[test]
    fn threshold_is_strict_and_gaps_are_in_time_order() {
        let mut f = fates(1000, 100..104, Fwd); // 5 ms gap
        f[200..210].fill(Ret); // 11 ms
        f[300..305].fill(Fwd); // 6 ms
        let s = analyze(&stream(&f), None, 5 * MS);
        let lens: Vec<f64> = s.gaps.iter().map(|g| g.len_ms).collect();
        assert_eq!(lens, vec![11.0, 6.0]);
        assert_eq!(s.max_gap_ms, 11.0);
        assert_eq!(s.lost, 19);
    }

    #[test]
    fn rtt_percentiles_use_nearest_rank() {
        let mut rec = stream(&[Ok; 100]);
        for (i, r) in rec.replies.iter_mut().enumerate() {
            r.rx_ns = r.send_ns + (i as i64 + 1) * 10_000;
        }
        let s = analyze(&rec, None, 5 * MS);
        let r = s.rtt_ms;
        assert_eq!(r.samples, 100);
        assert_eq!((r.min, r.p50, r.p99, r.max), (0.01, 0.5, 0.99, 1.0));
        assert!((r.mean - 0.505).abs() < 1e-9);
    }

    #[test]
    fn large_sequence_numbers_and_hostile_records_do_not_panic() {
        let s = analyze(&empty(), None, 5 * MS);
        assert_eq!(s.probes_sent, 0);
        assert_eq!(s.max_gap, None);
        let mut rec = stream(&[Ok; 3]);
        rec.rate_hz = 0;
        rec.replies
            .push(reply(u64::MAX, i64::MIN, i64::MAX, u64::MAX));
        rec.replies.push(reply(2, i64::MIN, i64::MIN, u64::MAX));
        rec.replies.push(reply(1 << 40, 0, 0, 0));
        rec.sender_late.push(SenderLate {
            seq: u64::MAX,
            deadline_ns: i64::MAX,
            sent_ns: i64::MIN,
        });
        let s = analyze(&rec, None, i64::MIN);
        assert_eq!(s.replies, 4); // the three real ones and one duplicate of seq 2
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.interval_ms, 0.0);
        let _ = analyze(&rec, Some((i64::MAX, i64::MIN)), i64::MAX);
    }

    #[test]
    fn jitter_follows_rfc3550_over_first_arrivals_in_arrival_order() {
        let mut rec = stream(&[Ok; 5]);
        // Transit 0.2, 0.4, 0.3, 0.3, 0.7 ms: D = +0.2, -0.1, 0, +0.4 ms.
        for (r, t) in rec
            .replies
            .iter_mut()
            .zip([200_000, 400_000, 300_000, 300_000, 700_000])
        {
            r.rx_ns = r.send_ns + t;
        }
        // A duplicate is not a first arrival and changes nothing.
        let dup = rec.replies[1].clone();
        rec.replies.insert(
            2,
            ReplyRecord {
                rx_ns: at(9),
                ..dup
            },
        );
        let s = analyze(&rec, None, 5 * MS);
        // By hand, in ns: 12500, 17968.75, 16845.703125, 40792.8466796875.
        assert!(
            (s.jitter_ms - 0.0407928466796875).abs() < 1e-12,
            "{}",
            s.jitter_ms
        );
        // In a window holding only the last two arrivals: J = 400000 / 16 ns.
        let s = analyze(&rec, Some((at(3), at(5))), 5 * MS);
        assert!((s.jitter_ms - 0.025).abs() < 1e-12, "{}", s.jitter_ms);
        assert_eq!(analyze(&empty(), None, 5 * MS).jitter_ms, 0.0);
        // A steady stream has none.
        assert_eq!(analyze(&stream(&[Ok; 50]), None, 5 * MS).jitter_ms, 0.0);
    }

    #[test]
    fn reply_gaps_follow_receive_time_not_list_order() {
        let mut rec = stream(&[Ok; 5]);
        // Seq 4's reply recorded first but received last: gap from seq 3.
        rec.replies.rotate_right(1);
        rec.replies[0].rx_ns = at(30);
        let s = analyze(&rec, None, 5 * MS);
        let g = s.max_gap.unwrap();
        assert_eq!((g.last_seq_before, g.first_seq_after), (3, 4));
        assert_eq!(g.end_ns, at(30));
    }

    #[test]
    fn a_reply_held_through_the_pause_splits_the_gap_but_not_the_outage() {
        // Outage from seq 100 to 199; seq 100 reached the guest just before
        // it stopped and its reply came back 80 ms late, in the middle.
        let mut rec = stream(&fates(300, 100..200, Fwd));
        rec.replies.push(reply(100, at(100), at(180), 100));
        rec.replies.sort_by_key(|r| r.rx_ns);
        let s = analyze(&rec, None, 5 * MS);
        // Reply gaps: 99 -> 100 (80.8 ms), 100 -> 200 (20.2 ms).
        assert!((s.max_gap_ms - 80.8).abs() < 1e-9, "{}", s.max_gap_ms);
        assert_eq!(s.gaps.len(), 2);
        // The outage runs from the reply before the first gap (99) to the
        // one after the second (200): one held reply does not end it.
        let o = s.max_outage.expect("an outage");
        assert_eq!((o.last_seq_before, o.first_seq_after), (99, 200));
        assert!(
            (s.max_outage_ms - 101.0).abs() < 1e-9,
            "{}",
            s.max_outage_ms
        );
        assert_eq!(o.lost_in_gap, 99);
        // Without held replies, outage and largest gap are the same.
        let plain = analyze(&stream(&fates(300, 100..200, Fwd)), None, 5 * MS);
        assert_eq!(plain.max_outage, plain.max_gap);
    }

    #[test]
    fn recovery_needs_replies_to_flow_for_the_recovery_span() {
        assert_eq!(recovery_span_ns(1000), 10 * MS);
        assert_eq!(recovery_span_ns(100), 100 * MS);
        assert_eq!(recovery_span_ns(0), 10 * MS);
        // Outage 100..199, one held reply (seq 100) arriving at 180 ms.
        let mut rec = stream(&fates(300, 100..200, Fwd));
        rec.replies.push(reply(100, at(100), at(180), 100));
        // From 150 ms on, the held reply is no recovery; seq 200 is.
        assert_eq!(
            first_sustained_arrival(&rec, at(150), 5 * MS),
            Some(at(200) + RTT)
        );
        // Replies that stop before the span is over are no recovery either.
        let short = stream(&fates(205, 100..200, Fwd));
        assert_eq!(first_sustained_arrival(&short, at(150), 5 * MS), None);
    }
}
