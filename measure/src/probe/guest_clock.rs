//! The guest's clock seen through the reflector: each reply carries the
//! guest's receive and send times (`guest_rx_ns`, `guest_tx_ns`, the
//! guest's CLOCK_REALTIME) between the client's send and receive times, so
//! every reply is an NTP-style exchange (`t0 = send_ns`, `t1 = guest_rx_ns`,
//! `t2 = guest_tx_ns`, `t3 = rx_ns`). The guest clock's offset from the
//! client's over a window is the offset of the exchange with the smallest
//! delay in it, within ± half that delay ([`wire::clocksync`]).
//!
//! The guest's clock is untrusted: it usually stops while the VM is paused.
//! It is never used to place events on the timeline; comparing its offset
//! before and after a migration says how far it fell behind, which is what
//! an application in the guest that trusts its own clock would get wrong.

use crate::probe::record::ProbeRecord;
use wire::clocksync::{estimate_offset, OffsetEstimate, TimeSample};

/// The guest clock's offset from the client's (guest minus client), from
/// the replies received in `[from_ns, to_ns]` (client clock); `None`
/// without a usable reply.
pub fn guest_clock_offset(rec: &ProbeRecord, from_ns: i64, to_ns: i64) -> Option<OffsetEstimate> {
    let samples: Vec<TimeSample> = rec
        .replies
        .iter()
        .filter(|r| r.rx_ns >= from_ns && r.rx_ns <= to_ns)
        .filter(|r| r.guest_rx_ns != 0 && r.guest_tx_ns != 0)
        .filter_map(|r| {
            let sent = *rec.send_ns.get(usize::try_from(r.seq).ok()?)?;
            Some(TimeSample {
                t0_ns: sent,
                t1_ns: r.guest_rx_ns,
                t2_ns: r.guest_tx_ns,
                t3_ns: r.rx_ns,
            })
        })
        .filter(TimeSample::is_plausible)
        .collect();
    estimate_offset(&samples)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::probe::record::ReplyRecord;

    #[test]
    fn offset_of_the_fastest_exchange_and_a_clock_that_fell_behind() {
        const MS: i64 = 1_000_000;
        // Guest clock 1 s behind; each exchange 0.2 ms out, 0.1 ms in the
        // guest, 0.2 ms back; one slow exchange (queued) in between.
        let mut rec = ProbeRecord::default();
        for i in 0..10i64 {
            let send = i * MS;
            rec.send_ns.push(send);
            let extra = if i == 3 { 50 * MS } else { 0 };
            let g_rx = send + 200_000 + extra - 1000 * MS;
            rec.replies.push(ReplyRecord {
                seq: i as u64,
                send_ns: send,
                rx_ns: send + 500_000 + extra,
                kernel_ts: true,
                guest_rx_ns: g_rx,
                guest_tx_ns: g_rx + 100_000,
                reflector_rx_count: i as u64 + 1,
            });
        }
        let e = guest_clock_offset(&rec, 0, 20 * MS).unwrap();
        assert_eq!(e.offset_ns, -1000 * MS);
        assert_eq!(e.uncertainty_ns, 200_000);
        // After a 300 ms pause the guest's clock is 300 ms further behind.
        for r in rec.replies.iter_mut().skip(5) {
            r.guest_rx_ns -= 300 * MS;
            r.guest_tx_ns -= 300 * MS;
        }
        let late = guest_clock_offset(&rec, 5 * MS, 20 * MS).unwrap();
        assert_eq!(late.offset_ns - e.offset_ns, -300 * MS);
        assert!(guest_clock_offset(&rec, 100 * MS, 200 * MS).is_none());
    }
}
