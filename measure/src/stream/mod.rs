//! The video streams' view.
//!
//! - [`rtp`]: the RTP H.264 stream's packets and frames as the client
//!   received them (its module doc defines every RTP measure);
//! - [`playout`]: the player model of an HTTP progressive download;
//! - [`record`]: what the client's receivers stored in the bundle;
//! - [`pcap`]: the RTP capture read back;
//! - [`views`]: both streams over one repetition's window.

pub mod pcap;
pub mod playout;
pub mod record;
pub mod rtp;
pub mod views;
