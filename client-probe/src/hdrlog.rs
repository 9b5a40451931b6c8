//! The RTT as an HdrHistogram interval log (`rtt.hlog`): one histogram per
//! interval of client receive time, readable by every HdrHistogram tool
//! (`HistogramLogProcessor`, HdrHistogram's plotters, the `hdrhistogram`
//! crate's `IntervalLogIterator`).
//!
//! Values are round-trip times in µs (`rx_ns - send_ns[seq]` of each first
//! arrival, as [`crate::gaps`] defines RTT), tracked from 1 µs to 60 s with 3
//! significant digits; an RTT below 1 µs is recorded as 0, one above 60 s
//! as 60 s. The log's StartTime and BaseTime are the first probe's send
//! time (or the earliest reply, if earlier), and interval `k` holds the
//! replies received in `[base + k * interval, base + (k + 1) * interval)`.
//! Every interval from the first to the last with a reply is written, empty
//! ones included, so an outage longer than the interval shows as a hole
//! (up to [`MAX_EMPTY_RUN`] empty intervals in a row; longer runs are
//! skipped). Each histogram is tagged `rtt`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::error::ProbeError;
use measure::probe::record::ProbeRecord;

/// Lowest RTT tracked, µs.
pub const LOWEST_US: u64 = 1;
/// Highest RTT tracked, µs (60 s).
pub const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept.
pub const SIGFIG: u8 = 3;
/// The tag of every histogram in the log.
pub const TAG: &str = "rtt";
/// The longest run of empty intervals written between two with replies.
pub const MAX_EMPTY_RUN: i64 = 100_000;

fn histogram() -> Result<Histogram<u64>, ProbeError> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
        .map_err(|e| ProbeError::Histogram(format!("{e:?}")))
}

fn system_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Writes the RTT of every first arrival of `rec` as an interval log, one
/// histogram per `interval_ns` of receive time (see the [module
/// documentation](self)), with the V2 deflate encoding.
pub fn write_rtt_hdr_log(
    rec: &ProbeRecord,
    interval_ns: i64,
    mut w: impl Write,
) -> Result<(), ProbeError> {
    if interval_ns <= 0 {
        return Err(ProbeError::Config(format!(
            "histogram interval {interval_ns} ns must be positive"
        )));
    }
    // First arrivals, as in gaps.rs.
    let mut seen = vec![false; rec.send_ns.len()];
    let mut samples: Vec<(i64, u64)> = Vec::new(); // (rx_ns, rtt µs)
    for r in &rec.replies {
        let Some(slot) = usize::try_from(r.seq).ok().and_then(|i| seen.get_mut(i)) else {
            continue;
        };
        if std::mem::replace(slot, true) {
            continue;
        }
        let send = rec.send_ns[r.seq as usize]; // seq < len: checked above
        let rtt_ns = r.rx_ns.saturating_sub(send).max(0);
        samples.push((r.rx_ns, (rtt_ns / 1000).unsigned_abs()));
    }
    let first_rx = samples.iter().map(|s| s.0).min();
    let base = match (rec.send_ns.first().copied(), first_rx) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 0,
    };

    let mut intervals: BTreeMap<i64, Histogram<u64>> = BTreeMap::new();
    for &(rx, rtt_us) in &samples {
        let k = rx.saturating_sub(base) / interval_ns;
        let h = match intervals.entry(k) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(histogram()?),
        };
        h.saturating_record(rtt_us.min(HIGHEST_US));
    }

    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "client-probe RTT, microseconds; target {}, {} probes/s, session {:016x}; one histogram per {} ms of client receive time",
            rec.target,
            rec.rate_hz,
            rec.session,
            interval_ns as f64 / 1e6
        ))
        .with_start_time(system_time(base))
        .with_base_time(system_time(base))
        .begin_log_with(&mut w, &mut serializer)?;
    let tag = Tag::new(TAG);
    let dur = Duration::from_nanos(interval_ns.unsigned_abs());
    let at = |k: i64| Duration::from_nanos(k.saturating_mul(interval_ns).unsigned_abs());
    let empty = histogram()?;
    let mut prev: Option<i64> = None;
    for (&k, h) in &intervals {
        if let Some(p) = prev {
            if k - p - 1 <= MAX_EMPTY_RUN {
                for e in p + 1..k {
                    log.write_histogram(&empty, at(e), dur, tag)
                        .map_err(|e| ProbeError::Histogram(e.to_string()))?;
                }
            }
        }
        log.write_histogram(h, at(k), dur, tag)
            .map_err(|e| ProbeError::Histogram(e.to_string()))?;
        prev = Some(k);
    }
    drop(log);
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    use measure::probe::record::ReplyRecord;

    const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    fn record() -> ProbeRecord {
        // 1 kHz for 4.5 s; RTT (seq % 50) * 10 µs + 100 µs; no replies to
        // the probes sent from 1.2 s to 3.1 s (interval 2 is empty).
        let mut rec = ProbeRecord {
            session: 9,
            rate_hz: 1000,
            payload_len: 64,
            target: "127.0.0.1:9".into(),
            ..ProbeRecord::default()
        };
        for seq in 0..4500i64 {
            let send = T0 + seq * MS;
            rec.send_ns.push(send);
            if (1200..3100).contains(&seq) {
                continue;
            }
            rec.replies.push(ReplyRecord {
                seq: seq as u64,
                send_ns: send,
                rx_ns: send + 100_000 + (seq % 50) * 10_000,
                kernel_ts: true,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: 0,
            });
        }
        // A duplicate (not counted) and a reply to a seq never sent (ignored).
        let dup = rec.replies[3].clone();
        rec.replies.push(dup);
        rec.replies.push(ReplyRecord {
            seq: 99_999,
            ..rec.replies[0].clone()
        });
        rec
    }

    #[test]
    fn round_trip_through_the_crates_reader() {
        let rec = record();
        let mut buf = Vec::new();
        write_rtt_hdr_log(&rec, 1000 * MS, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.starts_with("#client-probe RTT, microseconds"),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1700000000.000"), "{text}");
        assert!(text.contains("#[BaseTime: 1700000000.000"), "{text}");

        let mut de = Deserializer::new();
        let mut got = Vec::new();
        for entry in IntervalLogIterator::new(&buf) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                assert_eq!(h.tag().map(|t| t.as_str()), Some(TAG));
                assert_eq!(h.duration(), Duration::from_secs(1));
                let b64 = h.encoded_histogram();
                let bytes = base64_decode(b64);
                let hist: Histogram<u64> = de.deserialize(&mut &bytes[..]).unwrap();
                got.push((h.start_timestamp(), hist));
            }
        }
        let starts: Vec<u64> = got.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(starts, vec![0, 1, 2, 3, 4]);
        // First arrivals per second of receive time (every reply arrives
        // within the second its probe was sent in): seqs 0..1000,
        // 1000..1200, none, 3100..4000, 4000..4500.
        let counts: Vec<u64> = got.iter().map(|(_, h)| h.len()).collect();
        assert_eq!(counts, vec![1000, 200, 0, 900, 500]);
        // The values themselves, to 3 significant digits.
        let all = got.iter().fold(histogram().unwrap(), |mut a, (_, h)| {
            a.add(h).unwrap();
            a
        });
        assert_eq!(all.min(), 100);
        assert!(all.equivalent(all.max(), 590));
        assert_eq!(all.count_at(250), 24 + 28); // seq % 50 == 15, duplicate not counted
    }

    #[test]
    fn empty_records_and_bad_intervals() {
        let mut rec = record();
        rec.replies.clear();
        let mut buf = Vec::new();
        write_rtt_hdr_log(&rec, MS, &mut buf).unwrap();
        assert_eq!(
            IntervalLogIterator::new(&buf)
                .filter(|e| matches!(e, Ok(LogEntry::Interval(_))))
                .count(),
            0
        );
        assert!(matches!(
            write_rtt_hdr_log(&rec, 0, Vec::new()),
            Err(ProbeError::Config(_))
        ));
    }

    #[test]
    fn hostile_times_do_not_panic_or_explode() {
        let mut rec = record();
        rec.replies[5].rx_ns = i64::MAX;
        rec.replies[6].rx_ns = i64::MIN;
        let mut buf = Vec::new();
        write_rtt_hdr_log(&rec, MS, &mut buf).unwrap();
        assert!(buf.len() < 50_000_000);
    }

    /// Standard base64, as the interval log uses.
    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        } as u32;
        let mut out = Vec::new();
        for chunk in s.trim_end_matches('=').as_bytes().chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= val(c) << (18 - 6 * i);
            }
            for i in 0..chunk.len().saturating_sub(1) {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}
