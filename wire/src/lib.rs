//! Wire formats shared by the guest agent, the client probe and the harness.
//!
//! The formats live here, and only here, so the three programs can never
//! disagree about them:
//! - [`clip`]: the pre-encoded H.264 test clip the agent streams;
//! - [`clock`]: the clock every time is read on (CLOCK_REALTIME, ns);
//! - [`random`]: tokens and ids from the operating system's random
//!   bytes, with no weak fallback;
//! - [`probe`]: the UDP probe packet the client sends and the agent's
//!   reflector echoes, with the timestamps both sides add;
//! - [`control`]: the JSON bodies of the agent's HTTP control API;
//! - [`disk_block`]: the stamp of each block the agent's `disk` workload
//!   writes, and the digest of its version table;
//! - [`clocksync`]: the clock offset between a controller and a remote
//!   probe from NTP-style time exchanges (pure arithmetic);
//! - [`rtp_ext`]: the RTP header extension that tags every video packet
//!   with its frame number and send time.
//!
//! This crate does no I/O (it only reads the clock, in [`clock`], and
//! asks the operating system for random bytes, in [`random`]).
#![forbid(unsafe_code)]

pub mod clip;
pub mod clock;
pub mod clocksync;
pub mod control;
pub mod disk_block;
pub mod probe;
pub mod random;
pub mod rtp_ext;
