//! Re-analysis: everything derived in a bundle (summaries, timelines, the
//! verdict, the report) is computed here from the raw records on disk, and
//! only here. The run itself ends by calling [`regenerate`], so `harness
//! report BUNDLE` later gives byte-identical `summary.json`.
//!
//! Raw records read: `scenario.toml`, `manifest.json`, `reps/rep-*.json`,
//! `probe/meta.json` + `probe/sends.csv` + `probe/replies.csv`, the same
//! three files of the ICMP stream under `probe-icmp/`, and
//! `probe/announces.json` when present. A bundle of an interrupted or
//! crashed run has some of them; what is missing is said, never invented.

use super::decode::{decode_stream, DecodedFrames, DECODED_FILE};
use crate::scenario::Scenario;
use anyhow::{bail, Context, Result};
use measure::migration::record::RepRecord;
use measure::probe::record::ProbeRecord;
use measure::stream::pcap::read_rtp_pcap;
use measure::stream::record::{HttpMeta, RtpMeta};
use measure::stream::rtp::{RtpAnalysisOptions, RtpArrival};
use measure::stream::views::{http_stalls, http_view, in_window, rtp_view, Break};
use measure::summary::StreamView;
use measure::summary::{summarize, ClockAlignment, RunRecords, Summary};
use measure::timeline::{rep_timelines, RepTimeline};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a run stores its clock alignment.
pub const ALIGNMENT_FILE: &str = "alignment.json";

/// The raw records of one bundle.
#[derive(Debug, Clone)]
pub struct BundleRecords {
    /// The bundle folder.
    pub dir: PathBuf,
    /// The scenario as the run resolved it.
    pub scenario: Scenario,
    /// `scenario.toml` as written.
    pub scenario_toml: String,
    /// `manifest.json` as written.
    pub manifest: Value,
    /// Every repetition's record, in order.
    pub reps: Vec<RepRecord>,
    /// How the backend and the probe's placement aligned the clocks
    /// (`alignment.json`); absent in bundles written before it was stored.
    pub clock: Option<ClockAlignment>,
    /// The probe's record, if the probe ran and its files are there.
    pub probe: Option<ProbeRecord>,
    /// The ICMP echo stream's record (`probe-icmp/`), if it ran; absent in
    /// bundles written before it, and of served probes.
    pub icmp: Option<ProbeRecord>,
    /// Receive times of announce frames seen on the client's link, ns.
    pub announces: Vec<i64>,
    /// Things missing or odd in the bundle, for a person.
    pub notes: Vec<String>,
    /// The RTP stream the client received, if the run had one.
    pub rtp: Option<(Vec<RtpArrival>, RtpMeta)>,
    /// The decoder's verdict on each RTP frame, as the run recorded it
    /// (`stream/rtp-decoded.json`); absent in bundles written before it
    /// was recorded, which are decoded again when analysed.
    pub decoded: Option<DecodedFrames>,
    /// The HTTP download's reads `(rx_ns, bytes)`, if the run had one.
    pub http: Option<(Vec<(i64, u64)>, HttpMeta)>,
}

fn read(dir: &Path, rel: &str) -> Result<String> {
    let p = dir.join(rel);
    std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
}

fn json<T: serde::de::DeserializeOwned>(dir: &Path, rel: &str) -> Result<T> {
    let text = read(dir, rel)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid record", dir.join(rel).display()))
}

/// One probe stream's files in a bundle.
struct StreamFiles {
    /// The folder of its whole record (`probe`, `probe-icmp`).
    dir: &'static str,
    /// The folder of its checkpoint segments.
    checkpoint: &'static str,
    /// What notes call it.
    name: &'static str,
}

/// The reflector's stream.
const PROBE: StreamFiles = StreamFiles {
    dir: "probe",
    checkpoint: crate::bundle::checkpoint::DIR,
    name: "the probe's",
};
/// The ICMP echo stream.
const ICMP: StreamFiles = StreamFiles {
    dir: "probe-icmp",
    checkpoint: crate::bundle::checkpoint::ICMP_DIR,
    name: "the ICMP probe's",
};

/// Reads one stream's files; `Ok(None)` when the run left none. A run
/// killed before it could write them leaves the segments it saved after
/// each repetition ([`crate::bundle::checkpoint`]): those are read instead,
/// with a note.
fn load_probe(
    dir: &Path,
    stream: &StreamFiles,
    notes: &mut Vec<String>,
) -> Result<Option<ProbeRecord>> {
    let meta = format!("{}/meta.json", stream.dir);
    if dir.join(&meta).is_file() {
        let rec: ProbeRecord = json(dir, &meta)?;
        let parts = [(
            format!("{}/sends.csv", stream.dir),
            format!("{}/replies.csv", stream.dir),
        )];
        return read_probe_parts(dir, rec, &parts).map(Some);
    }
    let Some((rec, n)) = crate::bundle::checkpoint::read_meta_in(dir, stream.checkpoint)? else {
        return Ok(None);
    };
    notes.push(format!(
        "{} record comes from {n} checkpoint(s) saved after each repetition: the run ended before it could write the whole record, so what the probe saw after the last checkpoint is missing",
        stream.name
    ));
    let parts: Vec<(String, String)> = (1..=n)
        .map(|k| crate::bundle::checkpoint::segment_names_in(stream.checkpoint, k))
        .collect();
    read_probe_parts(dir, rec, &parts).map(Some)
}

/// Fills `rec`'s send times and replies from `(sends.csv, replies.csv)`
/// pairs, in order; the seqs in the sends files must run on from file to
/// file.
fn read_probe_parts(
    dir: &Path,
    mut rec: ProbeRecord,
    parts: &[(String, String)],
) -> Result<ProbeRecord> {
    rec.send_ns.clear();
    rec.replies.clear();
    for (sends_rel, replies_rel) in parts {
        let sends = read(dir, sends_rel)?;
        for (i, line) in sends.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || {
                format!(
                    "{sends_rel} line {}: expected `seq,send_ns`, got {line:?}",
                    i + 1
                )
            };
            let (seq, t) = line.split_once(',').with_context(bad)?;
            let seq: usize = seq.trim().parse().with_context(bad)?;
            if seq != rec.send_ns.len() {
                bail!(
                    "{sends_rel} line {}: seq {seq} out of order (expected {})",
                    i + 1,
                    rec.send_ns.len()
                );
            }
            rec.send_ns.push(t.trim().parse().with_context(bad)?);
        }
        let path = dir.join(replies_rel);
        let replies = std::fs::File::open(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        rec.replies.extend(
            measure::probe::csv::read_replies_csv(replies)
                .with_context(|| format!("reading {}", path.display()))?,
        );
    }
    Ok(rec)
}

/// Reads a bundle's raw records.
pub fn load(dir: &Path) -> Result<BundleRecords> {
    if !dir.is_dir() {
        bail!("{} is not a bundle folder", dir.display());
    }
    let mut notes = Vec::new();
    let scenario_toml = read(dir, "scenario.toml")
        .context("a bundle starts with its scenario.toml; is this a bundle folder?")?;
    let scenario = Scenario::parse(
        &scenario_toml,
        &dir.join("scenario.toml").display().to_string(),
    )
    .map_err(anyhow::Error::new)?;
    let manifest: Value = json(dir, "manifest.json")?;
    let mut rep_files: Vec<PathBuf> = match std::fs::read_dir(dir.join("reps")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rep-") && n.ends_with(".json"))
            })
            .collect(),
        Err(_) => {
            notes.push("no reps/ folder: no migration was recorded".into());
            Vec::new()
        }
    };
    rep_files.sort();
    let mut reps = Vec::new();
    for p in rep_files {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut rep: RepRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid repetition record", p.display()))?;
        // Bundles written before markers were stored: the same derivation
        // the local backend makes when it records.
        measure::migration::from_qmp::complete(&mut rep.migration);
        reps.push(rep);
    }
    reps.sort_by_key(|r| r.repetition);
    let clock: Option<ClockAlignment> = if dir.join(ALIGNMENT_FILE).is_file() {
        Some(json(dir, ALIGNMENT_FILE)?)
    } else {
        None
    };
    let probe = load_probe(dir, &PROBE, &mut notes)?;
    // The ICMP stream is secondary: a record that does not read is said,
    // and the rest analysed without it.
    let icmp = load_probe(dir, &ICMP, &mut notes).unwrap_or_else(|e| {
        notes.push(format!(
            "the ICMP probe's record cannot be read ({e:#}): no kernel outage beside the reflector's"
        ));
        None
    });
    if probe.is_none() {
        notes.push(match no_probe_reason(&manifest) {
            Some(why) => format!("no probe records: {why}"),
            None => "no probe records (probe/meta.json missing): the client's view is empty".into(),
        });
    }
    let announces = if dir.join("probe/announces.json").is_file() {
        let v: Value = json(dir, "probe/announces.json")?;
        v.get("frames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|f| f.get("rx_ns")?.as_i64()).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let rtp = if dir.join("stream/rtp.json").is_file() {
        let meta: RtpMeta = json(dir, "stream/rtp.json")?;
        let pcap = std::fs::read(dir.join("stream/rtp.pcap"))
            .with_context(|| format!("cannot read {}", dir.join("stream/rtp.pcap").display()))?;
        let arrivals = read_rtp_pcap(&pcap, meta.without_kernel_ts == 0)
            .with_context(|| format!("reading {}", dir.join("stream/rtp.pcap").display()))?;
        Some((arrivals, meta))
    } else {
        None
    };
    let decoded: Option<DecodedFrames> = if dir.join(DECODED_FILE).is_file() {
        Some(json(dir, DECODED_FILE)?)
    } else {
        None
    };
    let http = if dir.join("stream/http.json").is_file() {
        let meta: HttpMeta = json(dir, "stream/http.json")?;
        let csv = read(dir, "stream/http.csv")?;
        let mut samples = Vec::new();
        for (i, line) in csv.lines().enumerate().skip(1) {
            let bad = || {
                format!(
                    "stream/http.csv line {}: expected `rx_ns,bytes`, got {line:?}",
                    i + 1
                )
            };
            let (t, n) = line.split_once(',').with_context(bad)?;
            samples.push((
                t.trim().parse().with_context(bad)?,
                n.trim().parse().with_context(bad)?,
            ));
        }
        Some((samples, meta))
    } else {
        None
    };
    Ok(BundleRecords {
        rtp,
        decoded,
        http,
        dir: dir.to_path_buf(),
        scenario,
        scenario_toml,
        manifest,
        reps,
        clock,
        probe,
        icmp,
        announces,
        notes,
    })
}

/// Why the bundle has no client view, when its manifest says (a bundle
/// `harness import` made: no probe ran at all).
fn no_probe_reason(manifest: &Value) -> Option<&str> {
    manifest.get("client_not_measured").and_then(Value::as_str)
}

/// What the analysis derives from a bundle's records.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// `summary.json`.
    pub summary: Summary,
    /// One timeline per repetition, in order.
    pub timelines: Vec<RepTimeline>,
}

impl BundleRecords {
    /// The run's status as the manifest says, with a run that never wrote
    /// its end (killed, crashed, power loss) called `incomplete`.
    pub fn run_status(&self) -> (String, Option<String>) {
        let status = self
            .manifest
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("");
        let error = self
            .manifest
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string);
        match status {
            "complete" | "incomplete" | "failed" => (status.to_string(), error),
            "running" => (
                "incomplete".into(),
                Some(
                    "the run did not finish writing its bundle (killed or crashed); what it recorded is analysed"
                        .into(),
                ),
            ),
            other => ("incomplete".into(), Some(format!("unknown run status {other:?} in manifest.json"))),
        }
    }

    /// The streams over one window; `decoded` is [`decode_stream`] of the
    /// whole RTP stream.
    fn stream_view(&self, from: i64, to: i64, decoded: Option<&[(i64, bool)]>) -> StreamView {
        let rtp = self.rtp.as_ref().map(|(arrivals, meta)| {
            let opts = RtpAnalysisOptions {
                ssrc: Some(meta.ssrc),
                gap_threshold_ns: (meta.gap_threshold_ms * 1e6) as i64,
                playout_delay_ns: (meta.playout_delay_ms * 1e6) as i64,
                ..RtpAnalysisOptions::default()
            };
            rtp_view(&in_window(arrivals, from, to), decoded, (from, to), &opts).0
        });
        let http = self.http.as_ref().map(|(samples, meta)| {
            let until = samples.last().map_or(to, |s| s.0.max(to));
            let stalls = http_stalls(samples, meta, until);
            let breaks: Vec<Break> = meta
                .capture
                .as_ref()
                .map(|c| {
                    c.events
                        .iter()
                        .map(|e| Break {
                            broke_ns: e.broke_ns,
                            resumed_ns: e.reconnected_ns,
                        })
                        .collect()
                })
                .unwrap_or_default();
            http_view(samples, &stalls, &breaks, from, to)
        });
        StreamView { rtp, http }
    }

    /// Derives the summary and the timelines.
    pub fn analyze(&self) -> Analysis {
        let threshold = (self.scenario.probe.gap_threshold_ms * 1e6) as i64;
        let (run_status, error) = self.run_status();
        let acceleration = self.manifest.get("acceleration").and_then(Value::as_str);
        // Older bundles kept the end-of-run health check only in the summary.
        let answered = self
            .manifest
            .get("agent_answered_at_end")
            .and_then(Value::as_bool)
            .or_else(|| {
                let old: Value = json(&self.dir, "summary.json").ok()?;
                old.pointer("/final_check/agent_answered")?.as_bool()
            });
        let mut summary = summarize(&RunRecords {
            scenario: &self.scenario.name,
            acceleration,
            reps: &self.reps,
            probe: self.probe.as_ref(),
            icmp: self.icmp.as_ref(),
            gap_threshold_ns: threshold,
            announces: &self.announces,
            // Evaluated below, once the streams are in.
            asserts: None,
            agent_answered_at_end: answered,
            run_status: &run_status,
            error,
            clock: self.clock.as_ref(),
        });
        let decoded = match &self.decoded {
            Some(d) => Some(d.frames.clone()),
            None => self
                .rtp
                .as_ref()
                .and_then(|(a, meta)| decode_stream(a, Some(meta.ssrc))),
        };
        for (r, rep) in summary.repetitions.iter_mut().zip(&self.reps) {
            r.stream = self.stream_view(rep.window_start_ns, rep.window_end_ns, decoded.as_deref());
        }
        if let (None, Some(why)) = (&self.probe, no_probe_reason(&self.manifest)) {
            // The summary only knows that no probe record is there; the
            // manifest knows why.
            for r in &mut summary.repetitions {
                r.not_measured.insert("client".into(), why.to_string());
            }
        }
        summary.verdict = self
            .scenario
            .asserts
            .as_ref()
            .map(|a| measure::summary::verdict::evaluate(a, &summary.repetitions));
        let timelines = rep_timelines(
            &self.reps,
            self.probe.as_ref(),
            self.icmp.as_ref(),
            &self.announces,
            threshold,
        );
        Analysis { summary, timelines }
    }
}
