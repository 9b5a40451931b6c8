//! The probe's records saved as a run goes: after every repetition, what the
//! probe recorded since the last save is written as one more segment under
//! `probe/checkpoint/`. A run that ends normally writes the whole record
//! (`probe/meta.json`, `sends.csv`, `replies.csv`) and removes the
//! segments; a run killed outright (SIGKILL, a power cut) leaves them, and
//! `harness report` reads the client's view from them.
//!
//! Segments, not one file appended to: each is written whole and renamed
//! into place, so a crash never leaves half a line to trip the reader.
//!
//! The ICMP probe's stream, when it runs, is saved the same way under
//! `probe-icmp/checkpoint/`, segment for segment beside the reflector's.

use crate::bundle::Bundle;
use anyhow::{Context, Result};
use client_probe::ProbeDelta;
use measure::probe::record::ProbeRecord;
use std::path::Path;

/// Folder of the reflector stream's segments, inside a bundle.
pub const DIR: &str = "probe/checkpoint";
/// Folder of the ICMP stream's segments.
pub const ICMP_DIR: &str = "probe-icmp/checkpoint";

/// What the probe's streams recorded since the previous checkpoint.
#[derive(Debug, Clone)]
pub struct Deltas {
    /// The reflector's stream.
    pub probe: ProbeDelta,
    /// The ICMP stream's fields as they stand and its new records, when it
    /// runs.
    pub icmp: Option<(ProbeRecord, ProbeDelta)>,
}

/// The `seq,send_ns` rows of `probe/sends.csv` for send times starting at
/// probe `first_seq`, with the header when `header`.
pub fn sends_csv(first_seq: u64, send_ns: &[i64], header: bool) -> String {
    let mut out = String::with_capacity(24 * send_ns.len() + 16);
    if header {
        out.push_str("seq,send_ns\n");
    }
    for (seq, t) in (first_seq..).zip(send_ns) {
        out.push_str(&format!("{seq},{t}\n"));
    }
    out
}

/// Saves segment `n` (1-based) of each stream: the reflector stream's
/// fields as they stand (`meta`) and what each recorded since segment
/// `n - 1`.
pub fn save(bundle: &Bundle, n: usize, meta: &ProbeRecord, delta: &Deltas) -> Result<()> {
    save_stream(bundle, DIR, n, meta, &delta.probe)?;
    if let Some((meta, d)) = &delta.icmp {
        save_stream(bundle, ICMP_DIR, n, meta, d)?;
    }
    Ok(())
}

/// Saves segment `n` of the stream whose segments are in `dir`.
fn save_stream(
    bundle: &Bundle,
    dir: &str,
    n: usize,
    meta: &ProbeRecord,
    delta: &ProbeDelta,
) -> Result<()> {
    let (sends, replies) = segment_names_in(dir, n);
    bundle.write(
        &sends,
        sends_csv(delta.first_seq, &delta.send_ns, true).as_bytes(),
    )?;
    let seg = ProbeRecord {
        replies: delta.replies.clone(),
        ..ProbeRecord::default()
    };
    let mut rows = Vec::new();
    measure::probe::csv::write_replies_csv(&seg, &mut rows)
        .context("writing a probe checkpoint")?;
    bundle.write(&replies, &rows)?;
    // Last: a segment counts once the meta file names it.
    let meta = serde_json::json!({ "record": meta, "segments": n });
    bundle.write_json(&format!("{dir}/meta.json"), &meta)?;
    Ok(())
}

/// The sends and replies file of the reflector stream's segment `n`,
/// relative to the bundle.
pub fn segment_names(n: usize) -> (String, String) {
    segment_names_in(DIR, n)
}

/// The sends and replies file of segment `n` of the stream whose segments
/// are in `dir` ([`DIR`], [`ICMP_DIR`]), relative to the bundle.
pub fn segment_names_in(dir: &str, n: usize) -> (String, String) {
    (
        format!("{dir}/sends-{n:03}.csv"),
        format!("{dir}/replies-{n:03}.csv"),
    )
}

/// The saved fields and the number of complete segments of a bundle's
/// checkpoint of the reflector's stream, if it has one.
pub fn read_meta(dir: &Path) -> Result<Option<(ProbeRecord, usize)>> {
    read_meta_in(dir, DIR)
}

/// [`read_meta`] of the stream whose segments are in `sub` ([`DIR`],
/// [`ICMP_DIR`]).
pub fn read_meta_in(dir: &Path, sub: &str) -> Result<Option<(ProbeRecord, usize)>> {
    let p = dir.join(sub).join("meta.json");
    if !p.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    #[derive(serde::Deserialize)]
    struct Meta {
        record: ProbeRecord,
        segments: usize,
    }
    let m: Meta = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a probe checkpoint record", p.display()))?;
    Ok(Some((m.record, m.segments)))
}

/// Removes the reflector stream's segments once its whole record is
/// written.
pub fn remove(bundle: &Bundle) -> Result<()> {
    remove_in(bundle, DIR)
}

/// Removes the segments in `sub` ([`DIR`], [`ICMP_DIR`]).
pub fn remove_in(bundle: &Bundle, sub: &str) -> Result<()> {
    let d = bundle.dir.join(sub);
    match std::fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", d.display()))
        }
        _ => Ok(()),
    }
}
