//! Exporters: the record and its summaries as files (CSV, JSON lines), and
//! the reader for the CSV, so a stored bundle can be re-analysed.

use std::io::{self, Read, Write};

use crate::probe::gaps::Gap;
use crate::probe::record::{ProbeRecord, ReplyRecord};

/// A stored replies CSV that is not in the format [`write_replies_csv`]
/// writes, or that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// A line that does not parse.
    #[error("replies CSV, line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading failed.
    #[error("cannot read the replies CSV")]
    Io(#[from] io::Error),
}

/// The header line of `replies.csv`.
pub const REPLIES_CSV_HEADER: &str =
    "seq,send_ns,rx_ns,kernel_ts,guest_rx_ns,guest_tx_ns,reflector_rx_count";

/// Writes every reply of `rec`, in arrival order, as CSV with the header
/// [`REPLIES_CSV_HEADER`]; `kernel_ts` is `true` or `false`. Written with
/// the `csv` crate (`\n` line ends; numbers and booleans never need
/// quoting), byte for byte what bundles have always held.
pub fn write_replies_csv(rec: &ProbeRecord, w: impl Write) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(w);
    w.write_record(REPLIES_CSV_HEADER.split(','))?;
    for r in &rec.replies {
        w.write_record([
            r.seq.to_string(),
            r.send_ns.to_string(),
            r.rx_ns.to_string(),
            r.kernel_ts.to_string(),
            r.guest_rx_ns.to_string(),
            r.guest_tx_ns.to_string(),
            r.reflector_rx_count.to_string(),
        ])?;
    }
    w.flush()
}

/// Reads what [`write_replies_csv`] wrote. Blank lines, `\r\n` line ends,
/// spaces around fields and a UTF-8 BOM are accepted; anything else that
/// does not fit is an error naming the line and the column.
pub fn read_replies_csv(r: impl Read) -> Result<Vec<ReplyRecord>, CsvError> {
    // Split on `\n` only (a lone `\r` ends no line, so line numbers count
    // `\n`s as editors do) and on every comma, without quoting: a file
    // reads as it did before the `csv` crate. The `\n` added at the end
    // makes every record end with one, so that its line is the reader's
    // line after it minus one (the record's own position is from before
    // the blank lines the reader skipped).
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .quoting(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(r.chain(&b"\n"[..]));
    let mut out = Vec::new();
    let mut saw_header = false;
    let mut row = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut row);
        let line = usize::try_from(reader.position().line().saturating_sub(1))
            .unwrap_or(usize::MAX)
            .max(1);
        if !more.map_err(|e| read_failure(e, line))? {
            break;
        }
        let bad = |reason| CsvError::Line { line, reason };
        if row.len() == 1 && row.iter().all(|f| f.trim().is_empty()) {
            continue; // a blank line
        }
        if !saw_header {
            if row.iter().collect::<Vec<_>>().join(",").trim() != REPLIES_CSV_HEADER {
                return Err(bad(format!("expected the header `{REPLIES_CSV_HEADER}`")));
            }
            saw_header = true;
            continue;
        }
        out.push(parse_row(&row).map_err(bad)?);
    }
    if !saw_header {
        return Err(CsvError::Line {
            line: 1,
            reason: "empty: no header".into(),
        });
    }
    Ok(out)
}

/// The reader's own failures: I/O, or bytes that are not UTF-8 on `line`
/// (said with the line, though not as a [`CsvError::Line`]: the text could
/// not be read at all, as before the `csv` crate).
fn read_failure(e: csv::Error, line: usize) -> CsvError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => CsvError::Io(e),
        csv::ErrorKind::Utf8 { err, .. } => CsvError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line}: {err}"),
        )),
        // Unequal lengths (the reader is flexible), seeks and serde are
        // not used here.
        other => CsvError::Io(io::Error::other(format!("{other:?}"))),
    }
}

/// One reply from its fields; the error names the column.
fn parse_row(row: &csv::StringRecord) -> Result<ReplyRecord, String> {
    let f: Vec<&str> = row.iter().map(str::trim).collect();
    let [seq, send_ns, rx_ns, kernel_ts, guest_rx_ns, guest_tx_ns, reflector_rx_count] = f[..]
    else {
        return Err(format!("expected 7 fields, found {}", f.len()));
    };
    fn num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("{name} `{s}` is not a valid number"))
    }
    let kernel_ts = match kernel_ts {
        "true" => true,
        "false" => false,
        other => return Err(format!("kernel_ts `{other}` is neither true nor false")),
    };
    Ok(ReplyRecord {
        seq: num(seq, "seq")?,
        send_ns: num(send_ns, "send_ns")?,
        rx_ns: num(rx_ns, "rx_ns")?,
        kernel_ts,
        guest_rx_ns: num(guest_rx_ns, "guest_rx_ns")?,
        guest_tx_ns: num(guest_tx_ns, "guest_tx_ns")?,
        reflector_rx_count: num(reflector_rx_count, "reflector_rx_count")?,
    })
}

/// Writes one JSON object per gap, one per line (`gaps.jsonl`).
pub fn write_gaps_jsonl(gaps: &[Gap], w: impl Write) -> io::Result<()> {
    let mut w = io::BufWriter::new(w);
    for g in gaps {
        serde_json::to_writer(&mut w, g)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(replies: Vec<ReplyRecord>) -> ProbeRecord {
        ProbeRecord {
            session: 1,
            rate_hz: 1000,
            payload_len: 64,
            target: "127.0.0.1:9".into(),
            replies,
            ..ProbeRecord::default()
        }
    }

    #[test]
    fn replies_csv_round_trips() {
        let replies = vec![
            ReplyRecord {
                seq: 0,
                send_ns: 1,
                rx_ns: 2,
                kernel_ts: true,
                guest_rx_ns: -3,
                guest_tx_ns: 4,
                reflector_rx_count: 1,
            },
            ReplyRecord {
                seq: u64::MAX,
                send_ns: i64::MIN,
                rx_ns: i64::MAX,
                kernel_ts: false,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: u64::MAX,
            },
        ];
        let mut buf = Vec::new();
        write_replies_csv(&rec(replies.clone()), &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert_eq!(
            text,
            "seq,send_ns,rx_ns,kernel_ts,guest_rx_ns,guest_tx_ns,reflector_rx_count\n\
             0,1,2,true,-3,4,1\n\
             18446744073709551615,-9223372036854775808,9223372036854775807,false,0,0,18446744073709551615\n"
        );
        assert_eq!(read_replies_csv(&buf[..]).unwrap(), replies);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(read_replies_csv(crlf.as_bytes()).unwrap(), replies);
    }

    #[test]
    fn written_bytes_are_those_of_the_hand_written_writer() {
        // The expected text is what the writer before the `csv` crate
        // wrote for these replies: zeros, negatives, both ends of each type.
        let replies = vec![
            ReplyRecord {
                seq: 0,
                send_ns: 0,
                rx_ns: 0,
                kernel_ts: false,
                guest_rx_ns: 0,
                guest_tx_ns: 0,
                reflector_rx_count: 0,
            },
            ReplyRecord {
                seq: 1,
                send_ns: -1,
                rx_ns: -1_000_000_000,
                kernel_ts: true,
                guest_rx_ns: -3,
                guest_tx_ns: i64::MIN,
                reflector_rx_count: 1,
            },
            ReplyRecord {
                seq: u64::MAX,
                send_ns: i64::MAX,
                rx_ns: i64::MIN,
                kernel_ts: false,
                guest_rx_ns: i64::MAX,
                guest_tx_ns: 1_795_579_024_872_584_158,
                reflector_rx_count: u64::MAX,
            },
        ];
        let mut buf = Vec::new();
        write_replies_csv(&rec(replies.clone()), &mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "seq,send_ns,rx_ns,kernel_ts,guest_rx_ns,guest_tx_ns,reflector_rx_count\n\
             0,0,0,false,0,0,0\n\
             1,-1,-1000000000,true,-3,-9223372036854775808,1\n\
             18446744073709551615,9223372036854775807,-9223372036854775808,false,9223372036854775807,1795579024872584158,18446744073709551615\n"
        );
        assert_eq!(read_replies_csv(&buf[..]).unwrap(), replies);
        let mut empty = Vec::new();
        write_replies_csv(&rec(vec![]), &mut empty).unwrap();
        assert_eq!(empty, format!("{REPLIES_CSV_HEADER}\n").into_bytes());
    }

    #[test]
    fn a_committed_bundle_reads_and_writes_back_byte_for_byte() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../harness/tests/fixtures/bundle-split-gap/probe/replies.csv"
        );
        let stored = std::fs::read(path).unwrap();
        let replies = read_replies_csv(&stored[..]).unwrap();
        assert_eq!(replies.len(), 4755);
        assert_eq!(replies[0].send_ns, 1_795_579_025_862_690_917);
        let mut again = Vec::new();
        write_replies_csv(&rec(replies), &mut again).unwrap();
        assert!(
            again == stored,
            "rewritten replies.csv differs from the stored one"
        );
    }

    #[test]
    fn empty_record_round_trips() {
        let mut buf = Vec::new();
        write_replies_csv(&rec(vec![]), &mut buf).unwrap();
        assert!(read_replies_csv(&buf[..]).unwrap().is_empty());
    }

    #[test]
    fn bad_csv_names_the_line() {
        let bad = format!("{REPLIES_CSV_HEADER}\n0,1,2,true,3,4,5\n0,1,2,maybe,3,4,5\n");
        match read_replies_csv(bad.as_bytes()) {
            Err(CsvError::Line { line: 3, reason }) => assert!(reason.contains("maybe")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_replies_csv("a,b\n".as_bytes()),
            Err(CsvError::Line { line: 1, .. })
        ));
        assert!(matches!(
            read_replies_csv(&b""[..]),
            Err(CsvError::Line { line: 1, .. })
        ));
        let short = format!("{REPLIES_CSV_HEADER}\n0,1,2\n");
        assert!(matches!(
            read_replies_csv(short.as_bytes()),
            Err(CsvError::Line { line: 2, .. })
        ));
        // Lines count every `\n`, blank lines and CRLF ends included; the
        // reason names the column.
        let late = format!("\n{REPLIES_CSV_HEADER}\r\n\r\n\n0,1,2,true,3,x,5\r\n");
        match read_replies_csv(late.as_bytes()) {
            Err(CsvError::Line { line: 5, reason }) => {
                assert_eq!(reason, "guest_tx_ns `x` is not a valid number")
            }
            other => panic!("{other:?}"),
        }
        let missing = format!("{REPLIES_CSV_HEADER}\n0,1,2,true,3,4,5\n\n0,,2,true,3,4,5");
        match read_replies_csv(missing.as_bytes()) {
            Err(CsvError::Line { line: 4, reason }) => {
                assert_eq!(reason, "send_ns `` is not a valid number")
            }
            other => panic!("{other:?}"),
        }
        let mut not_utf8 = format!("{REPLIES_CSV_HEADER}\n\n").into_bytes();
        not_utf8.extend_from_slice(b"0,1,\xff,true,3,4,5\n");
        match read_replies_csv(&not_utf8[..]) {
            Err(CsvError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                assert!(e.to_string().starts_with("line 3: "), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let overflow = format!("{REPLIES_CSV_HEADER}\n-1,1,2,true,3,4,5\n");
        assert!(matches!(
            read_replies_csv(overflow.as_bytes()),
            Err(CsvError::Line { line: 2, .. })
        ));
    }

    #[test]
    fn gaps_are_one_json_object_per_line() {
        let g = Gap {
            start_ns: 1,
            end_ns: 2_000_001,
            len_ms: 2.0,
            last_seq_before: 3,
            first_seq_after: 5,
            lost_in_gap: 1,
            prober_stalled: false,
        };
        let mut buf = Vec::new();
        write_gaps_jsonl(&[g.clone(), g.clone()], &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(serde_json::from_str::<Gap>(lines[0]).unwrap(), g);
    }
}
