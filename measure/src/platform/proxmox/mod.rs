//! Proxmox VE's migration task log: `qm migrate VMID TARGET --online
//! --with-local-disks`, or the `qmigrate` task the API starts.
//!
//! The log is qemu-server's and pve-guest-common's lines (`QemuMigrate.pm`,
//! `QemuServer/BlockJob.pm`, `AbstractMigrate.pm`), as the task file and
//! the API's `/tasks/{upid}/log` hold them:
//!
//! - [`tasklog`]: each line read into a [`tasklog::LineKind`] with its
//!   values; a whole log from text or from the API's JSON;
//! - [`outcome`]: a log turned into what the migration record needs: how
//!   it ended, its markers, the platform's figures;
//! - [`units`]: Proxmox's sizes (`1.5 GiB`) and durations (`7m 49s`,
//!   `00:01:01`), read and written as Proxmox does;
//! - [`timestamp`]: the local `YYYY-MM-DD HH:MM:SS` of the lines, and the
//!   date arithmetic that turns it into epoch seconds.

pub mod outcome;
mod render;
pub mod tasklog;
pub mod timestamp;
pub mod units;

/// What is wrong with a task log handed to this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskLogError {
    /// The text given as the API's answer is not JSON.
    #[error("the task log is not JSON: {0}")]
    NotJson(String),
    /// JSON, but neither `{"data": [...]}` nor a bare array of lines.
    #[error("the task log's JSON is not {{\"data\": [{{\"n\": .., \"t\": ..}}]}} nor a bare array of lines: {0}")]
    NotALineArray(String),
    /// An entry of the array is not `{"n": number, "t": text}`.
    #[error("line entry {index} of the task log's JSON (0-based) {what}")]
    BadEntry {
        /// Its position in the array, from 0.
        index: usize,
        /// What is wrong with it.
        what: String,
    },
    /// The log holds no line of a migration.
    #[error("this is not a migration task log: no 'starting migration of VM' line, nor any other line qemu-server's migration writes (first line: {first_line:?})")]
    NotAMigrationLog {
        /// Its first non-empty line, to show what it is instead.
        first_line: String,
    },
}
