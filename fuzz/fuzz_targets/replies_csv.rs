//! Fuzz target: the stored replies CSV read back
//! (`measure::probe::csv::read_replies_csv`). Never a panic; what reads is
//! written back by `write_replies_csv` in the canonical form, which reads
//! back to the same replies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::probe::csv::{read_replies_csv, write_replies_csv, CsvError};
use measure::probe::record::ProbeRecord;

fuzz_target!(|data: &[u8]| {
    match read_replies_csv(data) {
        Ok(replies) => {
            let rec = ProbeRecord {
                replies: replies.clone(),
                ..ProbeRecord::default()
            };
            let mut buf = Vec::new();
            write_replies_csv(&rec, &mut buf).expect("writing to memory");
            let again = read_replies_csv(&buf[..]).expect("what we write reads back");
            assert_eq!(again, replies);
            // At most one reply per line of the input.
            assert!(replies.len() <= data.split(|&b| b == b'\n').count());
        }
        Err(CsvError::Line { line, reason }) => {
            assert!(line >= 1 && line <= data.split(|&b| b == b'\n').count().max(1));
            assert!(!reason.is_empty());
        }
        Err(CsvError::Io(_)) => {} // not UTF-8
    }
});
