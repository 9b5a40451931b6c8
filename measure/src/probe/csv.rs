//! Exporters: the record and its summaries as files (CSV, JSON lines), and
//! the reader for the CSV, so a stored bundle can be re-analysed.

use std::io::{self, BufRead, BufReader, Read, Write};

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
/// [`REPLIES_CSV_HEADER`]; `kernel_ts` is `true` or `false`.
pub fn write_replies_csv(rec: &ProbeRecord, w: impl Write) -> io::Result<()> {
    let mut w = io::BufWriter::new(w);
    writeln!(w, "{REPLIES_CSV_HEADER}")?;
    for r in &rec.replies {
        writeln!(
            w,
            "{},{},{},{},{},{},{}",
            r.seq,
            r.send_ns,
            r.rx_ns,
            r.kernel_ts,
            r.guest_rx_ns,
            r.guest_tx_ns,
            r.reflector_rx_count
        )?;
    }
    w.flush()
}

/// Reads what [`write_replies_csv`] wrote. Blank lines and `\r\n` line ends
/// are accepted; anything else that does not fit is an error naming the line.
pub fn read_replies_csv(r: impl Read) -> Result<Vec<ReplyRecord>, CsvError> {
    let mut out = Vec::new();
    let mut saw_header = false;
    for (i, line) in BufReader::new(r).lines().enumerate() {
        let line = line?;
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if !saw_header {
            if line.trim() != REPLIES_CSV_HEADER {
                return Err(CsvError::Line {
                    line: n,
                    reason: format!("expected the header `{REPLIES_CSV_HEADER}`"),
                });
            }
            saw_header = true;
            continue;
        }
        out.push(parse_row(line).map_err(|reason| CsvError::Line { line: n, reason })?);
    }
    if !saw_header {
        return Err(CsvError::Line {
            line: 1,
            reason: "empty: no header".into(),
        });
    }
    Ok(out)
}

fn parse_row(line: &str) -> Result<ReplyRecord, String> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() != 7 {
        return Err(format!("expected 7 fields, found {}", f.len()));
    }
    fn num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("{name} `{s}` is not a valid number"))
    }
    let kernel_ts = match f[3] {
        "true" => true,
        "false" => false,
        other => return Err(format!("kernel_ts `{other}` is neither true nor false")),
    };
    Ok(ReplyRecord {
        seq: num(f[0], "seq")?,
        send_ns: num(f[1], "send_ns")?,
        rx_ns: num(f[2], "rx_ns")?,
        kernel_ts,
        guest_rx_ns: num(f[4], "guest_rx_ns")?,
        guest_tx_ns: num(f[5], "guest_tx_ns")?,
        reflector_rx_count: num(f[6], "reflector_rx_count")?,
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
