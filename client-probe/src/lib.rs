//! The client-side probe.
//!
//! It sends UDP probes ([`wire::probe`]) at a fixed rate to the guest
//! agent's reflector, records every reply with the kernel's receive
//! timestamp, and measures the gaps a user of the VM sees during live
//! migration.
//!
//! - [`Prober`] runs the probe on a socket the caller created (the harness
//!   makes it inside a network namespace) and returns a
//!   [`measure::probe::record::ProbeRecord`] of raw events; everything
//!   measured from it is in the `measure` crate (`measure::probe::gaps`
//!   defines every measure);
//! - [`IcmpProber`] ([`icmp`]) runs a second stream beside it: ICMP echoes
//!   answered by the guest's kernel, so each outage shows when the kernel
//!   was back as well as when the service was; the same engine, a
//!   different codec and socket, the same kind of record;
//! - [`write_rtt_hdr_log`] stores the round trips as an HdrHistogram log;
//! - [`serve`] is the HTTP control API (`client-probe serve`) through which
//!   a harness drives a probe on another machine;
//! - [`AnnounceWatch`] ([`announce`]) watches the client's link for the
//!   frames that announce the VM's new place after a migration (QEMU's
//!   RARP, the guest's gratuitous ARP): the network switchover markers.
//! - video streams: [`RtpReceiver`] ([`rtp_receiver`]) keeps every RTP
//!   datagram with its kernel timestamp for `measure::stream::rtp` and
//!   writes them as pcap; [`HttpStream`] ([`http_stream`]) downloads a
//!   progressive video, reconnecting with `Range` when the connection
//!   breaks (`measure::stream::playout` models the player's stalls).
//!
//! Modules: [`socket`] (recvmsg and kernel timestamps), `codec` (what a
//! stream sends and how its replies are read), `engine` (the threads every
//! stream shares: `sender`, `receiver`, `handover`), [`icmp`], `rt`
//! (real-time priority: the crate's only unsafe code), [`hdrlog`],
//! [`live`], [`serve`], [`announce`].
#![deny(unsafe_code)] // one audited exception: `rt::set_realtime`

pub mod announce;
mod codec;
mod engine;
pub mod error;
mod handover;
pub mod hdrlog;
pub mod http_stream;
pub mod icmp;
pub mod live;
mod prober;
mod receiver;
mod rt;
pub mod rtp_receiver;
mod sender;
pub mod serve;
pub mod socket;

pub use announce::{AnnounceFrame, AnnounceKind, AnnounceLog, AnnounceWatch};
pub use error::ProbeError;
pub use hdrlog::write_rtt_hdr_log;
pub use http_stream::{ConnectionEvent, HttpCapture, HttpStream};
pub use icmp::{IcmpConfig, IcmpProber, IcmpSocket};
pub use live::LiveStats;
pub use prober::{
    ProbeConfig, ProbeDelta, ProbeOptions, Prober, MAX_PAYLOAD_LEN, MAX_RATE_HZ, RECEIVE_LINGER,
};
pub use rtp_receiver::{write_rtp_pcap, RtpCapture, RtpLive, RtpReceiver};
