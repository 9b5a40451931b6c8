//! The stream: every datagram parsed, the malformed ones counted, and the
//! packets of one SSRC kept in arrival order (see the [RTP module](super)).

use std::collections::HashMap;

use super::header::{parse_rtp, RtpPacket};
use super::RtpArrival;

/// The stream's packets and what was set aside to get them.
pub(super) struct Selected<'a> {
    /// The stream's SSRC (`None`: no well-formed packet to choose from).
    pub(super) ssrc: Option<u32>,
    /// Payload type of the stream's first packet.
    pub(super) payload_type: Option<u8>,
    /// Datagrams skipped as malformed RTP (any SSRC).
    pub(super) malformed: u64,
    /// Well-formed datagrams of other SSRCs.
    pub(super) foreign_ssrc: u64,
    /// The stream's packets with their `rx_ns`, in arrival order.
    pub(super) stream: Vec<(i64, RtpPacket<'a>)>,
}

/// Parses `arrivals` and keeps the packets of `want`, or else of the SSRC
/// with the most well-formed packets.
pub(super) fn select_stream(arrivals: &[RtpArrival], want: Option<u32>) -> Selected<'_> {
    let (parsed, malformed) = parse_all(arrivals);
    let ssrc = want.or_else(|| busiest_ssrc(&parsed));
    let mut stream: Vec<(i64, RtpPacket<'_>)> = Vec::new();
    let mut foreign_ssrc = 0u64;
    for (rx, p) in parsed {
        if Some(p.ssrc) == ssrc {
            stream.push((rx, p));
        } else {
            foreign_ssrc += 1;
        }
    }
    stream.sort_by_key(|&(rx, _)| rx); // stable: ties keep input order
    Selected {
        ssrc,
        payload_type: stream.first().map(|(_, p)| p.payload_type),
        malformed,
        foreign_ssrc,
        stream,
    }
}

/// The well-formed packets with their `rx_ns`, in input order, and the
/// number of malformed datagrams.
fn parse_all(arrivals: &[RtpArrival]) -> (Vec<(i64, RtpPacket<'_>)>, u64) {
    let mut malformed = 0u64;
    let mut parsed = Vec::with_capacity(arrivals.len());
    for a in arrivals {
        match parse_rtp(&a.bytes) {
            Some(p) => parsed.push((a.rx_ns, p)),
            None => malformed += 1,
        }
    }
    (parsed, malformed)
}

/// The SSRC with the most packets; on a tie, the one seen first.
fn busiest_ssrc(parsed: &[(i64, RtpPacket<'_>)]) -> Option<u32> {
    let mut per_ssrc: HashMap<u32, (u64, usize)> = HashMap::new(); // count, first index
    for (n, (_, p)) in parsed.iter().enumerate() {
        let e = per_ssrc.entry(p.ssrc).or_insert((0, n));
        e.0 += 1;
    }
    per_ssrc
        .iter()
        .max_by_key(|(_, &(count, first))| (count, std::cmp::Reverse(first)))
        .map(|(&s, _)| s)
}
