//! `harness import`: migrations the harness did not run, from the records
//! their platform already wrote, made into a result bundle that `harness
//! report`, `verify` and `compare` treat like any other.
//!
//! - [`proxmox`]: Proxmox VE's migration task logs;
//! - [`offset`]: the UTC offset a platform's local times are read with;
//! - [`write`]: the bundle, written whole or not at all.
//!
//! An import has no client, guest or host of its own: what the platform
//! logged is all there is, and every view it cannot give is `null` in the
//! summary with the reason.

pub mod offset;
pub mod proxmox;
pub mod write;

use measure::summary::Summary;
use std::path::PathBuf;

/// What an import made.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The bundle's folder.
    pub bundle: PathBuf,
    /// Its `summary.json`.
    pub summary: Summary,
    /// What the records' times are, in a sentence, to print.
    pub times: String,
    /// What a person should know about the files read.
    pub notes: Vec<String>,
}
