//! The measurement core: raw records in, numbers out.
//!
//! Everything that turns what was recorded during a run into the figures
//! a tester defends lives here, and nothing else does: no sockets, no
//! clocks, no processes, no files, no runtime, no FFmpeg. What the core
//! needs from the outside (a decoder's verdict on each video frame, a clock
//! reading) arrives as recorded data, so analysing the same records always
//! gives the same numbers, in the run and in `harness report` years later.
//! `cargo tree -p measure -e normal` shows the line holds.
//!
//! - [`probe`]: the client probe's record, and its gaps, outages, loss and
//!   jitter ([`probe::gaps`] defines every probe measure);
//! - [`stream`]: the RTP video stream's packets and frames, the player
//!   model of the HTTP download, and their views per repetition;
//! - [`migration`]: what a backend recorded of one migration (QMP events
//!   and samples), with the lenient QMP readings;
//! - [`timeline`]: the phases of a repetition and the attribution of the
//!   client's gaps to them;
//! - [`summary`]: `summary.json`, `summary.csv`, the terminal table and
//!   the verdict of the scenario's `[assert]` checks ([`summary::verdict`]);
//! - [`fleet`]: several VMs in one run, their summaries side by side and
//!   their migrations' overlap when a node is evacuated at once;
//! - [`storage`]: the host's check of a disk's stamped blocks against the
//!   guest agent's table;
//! - [`stats`]: descriptive statistics and Welch's t-test for comparisons;
//! - [`calibration`]: the probe against host-timed pauses and cuts;
//! - [`tools`]: parsers of ping's, irtt's and stress-ng's output;
//! - [`platform`]: what a platform writes about a migration it ran
//!   (Proxmox VE's task log), read into markers and figures.

pub mod calibration;
pub mod fleet;
pub mod migration;
pub mod platform;
pub mod probe;
pub mod stats;
pub mod storage;
pub mod stream;
pub mod summary;
pub mod timeline;
pub mod tools;

/// ns to ms, as every summary shows times.
pub fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}
