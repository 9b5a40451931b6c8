//! Sequence accounting: first arrivals, duplicates, reordering, and the
//! expected and received counts loss comes from (see the [RTP
//! module](super), "Packet measures").

use std::collections::HashSet;

use super::extended::Pkt;
use super::h264::parse_h264;

/// The first arrival of each extended seq, and what the others were.
pub(super) struct FirstArrivals<'p, 'a> {
    /// First arrivals, in arrival order.
    pub(super) list: Vec<&'p Pkt<'a>>,
    /// The same, in increasing extended seq (each seq once).
    pub(super) by_seq: Vec<&'p Pkt<'a>>,
    /// Datagrams whose extended seq was already received.
    pub(super) duplicates: u64,
    /// First arrivals below the highest seq received before them.
    pub(super) reordered: u64,
}

/// Sorts `packets` (in arrival order) into first arrivals and duplicates,
/// counting reordering.
pub(super) fn first_arrivals<'p, 'a>(packets: &'p [Pkt<'a>]) -> FirstArrivals<'p, 'a> {
    let mut seen: HashSet<i64> = HashSet::new();
    let mut list: Vec<&Pkt<'_>> = Vec::new();
    let (mut duplicates, mut reordered) = (0u64, 0u64);
    let mut highest: Option<i64> = None;
    for k in packets {
        if !seen.insert(k.seq) {
            duplicates += 1;
            continue;
        }
        if highest.is_some_and(|h| k.seq < h) {
            reordered += 1;
        }
        highest = Some(highest.map_or(k.seq, |h| h.max(k.seq)));
        list.push(k);
    }
    let mut by_seq = list.clone();
    by_seq.sort_unstable_by_key(|k| k.seq); // seqs are distinct
    FirstArrivals {
        list,
        by_seq,
        duplicates,
        reordered,
    }
}

/// The counts over the first arrivals; lost is `expected - received`.
pub(super) struct SeqBooks {
    /// Distinct extended seqs received.
    pub(super) received: u64,
    /// `max - min + 1` over the extended seqs received (0 with none).
    pub(super) expected: u64,
    /// Lowest and highest extended seq received.
    pub(super) seq_range: Option<(i64, i64)>,
    /// First arrivals whose H.264 payload is malformed.
    pub(super) malformed_payload: u64,
}

/// Counts the first arrivals `firsts`.
pub(super) fn seq_books(firsts: &[&Pkt<'_>]) -> SeqBooks {
    let seq_range = firsts
        .iter()
        .map(|k| k.seq)
        .min()
        .zip(firsts.iter().map(|k| k.seq).max());
    SeqBooks {
        received: firsts.len() as u64,
        // Saturated: a hostile stream can span more than u64 seqs.
        expected: seq_range.map_or(0, |(lo, hi)| {
            u64::try_from(i128::from(hi) - i128::from(lo) + 1).unwrap_or(u64::MAX)
        }),
        seq_range,
        malformed_payload: firsts
            .iter()
            .filter(|k| parse_h264(k.p.payload).is_malformed())
            .count() as u64,
    }
}
