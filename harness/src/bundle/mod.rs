//! The result bundle: one folder per run, written as the run goes so that a
//! crash loses nothing already measured.
//!
//! ```text
//! <name>-<UTC stamp>-<run id>/
//!   scenario.toml            the scenario with every default written out
//!   manifest.json            versions, host, guest image hashes, times, status
//!   alignment.json           how the clocks were put on one axis
//!   qemu-cmdlines.txt        every QEMU command line (the token redacted)
//!   reps/rep-001.json        each migration's markers, statistics, raw QMP data
//!   probe/replies.csv        every probe reply (kernel timestamps)
//!   probe/sends.csv          every probe's send time
//!   probe/meta.json          probe session, rate, counters
//!   probe/gaps.jsonl         every gap over the threshold (whole run; derived)
//!   probe-icmp/              the ICMP echoes to the guest's kernel, in the
//!                            same files (in-process probe only)
//!   timeline/rep-001.json    phases, markers, gap attribution (derived)
//!   agent/report.json        the guest agent's final report
//!   stream/                  RTP capture and decoder verdicts, HTTP reads
//!   logs/                    guest consoles and QEMU stderr
//!   summary.json, summary.csv   derived by `report::regenerate`
//!   report.html              derived: plots and tables for people
//!   SHA256SUMS               checksums of all of the above, written last
//! ```

pub mod checkpoint;
pub mod decode;
pub mod load;
pub mod manifest;
pub mod verify;

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A bundle's folder name, `<name>-<stamp>-<id>`, with every character of
/// `name` that is not ASCII alphanumeric, `-` or `_` made `_`.
pub fn folder_name(name: &str, stamp: &str, id: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{stamp}-{id}")
}

/// An open bundle folder.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The folder.
    pub dir: PathBuf,
}

impl Bundle {
    /// Creates `<out>/<name>-<stamp>-<id>/`.
    pub fn create(out: &Path, name: &str, stamp: &str, id: &str) -> Result<Bundle> {
        let dir = out.join(folder_name(name, stamp, id));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create bundle folder {}", dir.display()))?;
        Ok(Bundle { dir })
    }

    /// An existing bundle folder (for re-analysis).
    pub fn open(dir: &Path) -> Bundle {
        Bundle {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes `rel` (creating parent folders) atomically: a temporary file
    /// renamed into place, so a crash never leaves half a file.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Writes pretty JSON.
    pub fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<PathBuf> {
        let mut text = serde_json::to_string_pretty(value).context("serialising JSON")?;
        text.push('\n');
        self.write(rel, text.as_bytes())
    }
}
