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
//! - [`write_replies_csv`], [`read_replies_csv`], [`write_gaps_jsonl`] and
//!   [`write_rtt_hdr_log`] store records and results;
//! - [`serve`] is the HTTP control API (`client-probe serve`) through which
//!   a harness drives a probe on another machine;
//! - [`AnnounceWatch`] ([`announce`]) watches the client's link for the
//!   frames that announce the VM's new place after a migration (QEMU's
//!   RARP, the guest's gratuitous ARP): the network switchover markers.
//! - video streams: [`RtpReceiver`] ([`rtp_receiver`]) keeps every RTP
//!   datagram with its kernel timestamp for [`rtp_analysis`] and writes
//!   them as pcap; [`HttpStream`] ([`http_stream`]) downloads a progressive
//!   video, reconnecting with `Range` when the connection breaks, and
//!   [`playout()`] ([`mod@playout`]) models the player's stalls.
//!
//! Modules: [`socket`] (recvmsg and kernel timestamps), `sender`,
//! `receiver`, `rt` (real-time priority: the crate's only unsafe code),
//! [`record`], [`gaps`], [`jitter`], [`hdrlog`], [`live`], [`export`],
//! [`serve`], [`announce`].
#![deny(unsafe_code)] // one audited exception: `rt::set_realtime`

pub mod announce;
pub mod clock;
pub mod error;
pub mod export;
pub mod gaps;
pub mod guest_clock;
mod handover;
pub mod hdrlog;
pub mod http_stream;
pub mod jitter;
pub mod live;
pub mod playout;
mod prober;
mod receiver;
pub mod record;
mod rt;
pub mod rtp_analysis;
pub mod rtp_receiver;
mod sender;
pub mod serve;
pub mod socket;

pub use announce::{AnnounceFrame, AnnounceKind, AnnounceLog, AnnounceWatch};
pub use error::ProbeError;
pub use export::{read_replies_csv, write_gaps_jsonl, write_replies_csv, REPLIES_CSV_HEADER};
pub use gaps::{analyze, first_sustained_arrival, recovery_span_ns, Gap, GapSummary, RttStats};
pub use hdrlog::write_rtt_hdr_log;
pub use http_stream::{ConnectionEvent, HttpCapture, HttpStream};
pub use jitter::rfc3550_jitter_ns;
pub use live::LiveStats;
pub use playout::{playout, PlayoutParams, PlayoutSummary, Stall};
pub use prober::{
    ProbeConfig, ProbeDelta, ProbeOptions, Prober, MAX_PAYLOAD_LEN, MAX_RATE_HZ, RECEIVE_LINGER,
};
pub use record::{ProbeRecord, ReplyRecord, SenderLate};
pub use rtp_receiver::{write_rtp_pcap, RtpCapture, RtpLive, RtpReceiver};
