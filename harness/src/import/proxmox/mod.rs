//! `harness import proxmox TASKLOG...`: Proxmox VE migration task logs a
//! user already has (the task files under `/var/log/pve/tasks/`, the web
//! UI's task viewer saved as text, the API's `/tasks/{upid}/log` JSON)
//! made into one bundle, one repetition per log in the order given.
//!
//! Every log is read and checked before anything is written: a file that
//! cannot be read, or is not a migration's log, stops the import with its
//! name and leaves nothing behind.
//!
//! - [`record`]: one file read and turned into a repetition's record;
//! - [`upid`]: the node and start time a task file's name holds.

pub mod record;
pub mod upid;

use super::offset::UtcOffset;
use super::write::{write_bundle, ImportBundle};
use super::Imported;
use crate::bundle::manifest::{
    git_describe, without_folders, ImportFacts, ImportManifest, ImportedFile, SCHEMA,
};
use crate::clock::{compact_stamp, now_ns, rfc3339};
use anyhow::Result;
use measure::summary::ClockAlignment;
use record::{read_log_file, rep_record, LogFile};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The manifest's `backend` for an import of Proxmox task logs.
pub const BACKEND: &str = "proxmox-import";

/// Why such a bundle has no client view.
pub const NO_PROBE: &str = "imported from a Proxmox task log: no client probe ran";

/// `harness import proxmox`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The task logs, one repetition each, in this order.
    pub logs: Vec<PathBuf>,
    /// The folder the bundle goes in.
    pub out: PathBuf,
    /// The node's offset from UTC: the logs print its local time.
    pub utc_offset: UtcOffset,
    /// The bundle's name.
    pub name: String,
    /// The command line, as typed (stored without folders).
    pub command: Vec<String>,
}

/// Reads every log, then writes the bundle.
pub fn import(opts: &Options) -> Result<Imported> {
    let started = now_ns();
    let files = opts
        .logs
        .iter()
        .map(|p| read_log_file(p))
        .collect::<Result<Vec<LogFile>>>()?;
    let mut reps = Vec::new();
    let mut notes = Vec::new();
    for (f, n) in files.iter().zip(1u32..) {
        let (rep, more) = rep_record(n, f, opts.utc_offset)?;
        reps.push(rep);
        notes.extend(more);
    }
    let times = times_sentence(opts.utc_offset);
    let manifest = manifest(opts, &files, started, &times, &notes);
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let description = format!(
        "{} Proxmox VE migration task log{} imported: {}. {times}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let (bundle, summary) = write_bundle(&ImportBundle {
        out: &opts.out,
        name: &opts.name,
        description: &description,
        stamp: &compact_stamp(started),
        manifest: &manifest,
        alignment: &alignment(opts.utc_offset),
        reps: &reps,
    })?;
    Ok(Imported {
        bundle,
        summary,
        times,
        notes,
    })
}

/// What the records' times are.
fn times_sentence(offset: UtcOffset) -> String {
    format!(
        "The task logs' times are the Proxmox node's local time (to the second, no zone given); they were read as UTC{offset} (--utc-offset)."
    )
}

/// `manifest.json` for the files read.
fn manifest(
    opts: &Options,
    files: &[LogFile],
    started: i64,
    times: &str,
    notes: &[String],
) -> ImportManifest {
    ImportManifest {
        schema: SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_git: git_describe(),
        command: opts.command.iter().map(|a| without_folders(a)).collect(),
        run_id: run_id(files),
        status: "complete".into(),
        error: None,
        started: rfc3339(started),
        ended: Some(rfc3339(now_ns())),
        backend: BACKEND.into(),
        import: ImportFacts {
            from: "Proxmox VE migration task logs".into(),
            files: files
                .iter()
                .zip(1u32..)
                .map(|(f, n)| ImportedFile {
                    repetition: n,
                    name: f.name.clone(),
                    format: serde_json::to_value(f.format)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    node: f.upid.as_ref().map(|u| u.node.clone()),
                })
                .collect(),
            utc_offset: opts.utc_offset.to_string(),
            times: times.to_string(),
        },
        client_not_measured: NO_PROBE.into(),
        notes: notes.to_vec(),
    }
}

/// The import's id: the first 8 hex digits of a SHA-256 over the files'
/// names and lines, so the same logs give the same id.
fn run_id(files: &[LogFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update([0]);
        for l in &f.log.lines {
            h.update(l.text.as_bytes());
            h.update([b'\n']);
        }
        h.update([0]);
    }
    format!("{:x}", h.finalize())[..8].to_string()
}

/// `alignment.json`: one clock, the node's; no client's to align with it.
fn alignment(offset: UtcOffset) -> ClockAlignment {
    ClockAlignment {
        client_offset_ns: 0,
        client_uncertainty_ns: 0,
        method: format!(
            "imported from Proxmox task logs: every time is the Proxmox node's clock as its log printed it (local time to the second, read as UTC{offset}); no client ran, so there is no client clock to align"
        ),
        guest: "no guest agent ran: the guest's clock was not read".into(),
    }
}
