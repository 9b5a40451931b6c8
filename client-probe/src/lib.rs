//! The client-side probe.
//!
//! It sends UDP probes ([`wire::probe`]) at a fixed rate to the guest
//! agent's reflector, records every reply with the kernel's receive
//! timestamp, and measures the gaps a user of the VM sees during live
//! migration.
//!
//! - [`Prober`] runs the probe on a socket the caller created (the harness
//!   makes it inside a network namespace) and returns a [`ProbeRecord`] of
//!   raw events;
//! - [`analyze`] turns a record into a [`GapSummary`]: pure, no I/O; its
//!   module [`gaps`] defines every measure;
//! - [`write_replies_csv`], [`read_replies_csv`] and [`write_gaps_jsonl`]
//!   store records and results.
//!
//! Modules: [`socket`] (recvmsg and kernel timestamps), `sender`,
//! `receiver`, [`record`], [`gaps`], [`live`], [`export`].
#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod export;
pub mod gaps;
pub mod live;
mod prober;
mod receiver;
pub mod record;
mod sender;
pub mod socket;

pub use error::ProbeError;
pub use export::{read_replies_csv, write_gaps_jsonl, write_replies_csv, REPLIES_CSV_HEADER};
pub use gaps::{analyze, Gap, GapSummary, RttStats};
pub use live::LiveStats;
pub use prober::{ProbeConfig, Prober, MAX_PAYLOAD_LEN, MAX_RATE_HZ, RECEIVE_LINGER};
pub use record::{ProbeRecord, ReplyRecord, SenderLate};
