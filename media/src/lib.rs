//! Video for the streaming measurements (issue 5), through FFmpeg's
//! libraries by way of the `ffmpeg-next` bindings:
//!
//! - [`make_clip`] / [`clip_cached`]: the H.264 test clip (libx264, a moving
//!   test pattern with the frame number drawn into every picture), split
//!   into access units of NAL units in our clip container
//!   ([`wire::clip::Clip`]);
//! - [`mpegts()`]: the clip muxed into MPEG-TS for the HTTP progressive
//!   stream;
//! - [`Decoder`]: FFmpeg's H.264 decoder, strict about errors, to count the
//!   frames a viewer's decoder would accept and reject.
//!
//! # Why ffmpeg-next, and why only here
//! Encoding H.264, muxing MPEG-TS and, above all, judging whether a real
//! decoder takes a frame are what FFmpeg is the reference for; writing our
//! own would measure our code instead of what a viewer's player does. The
//! design card for issue 5 names `ffmpeg-next`.
//!
//! The guest agent does **not** link this crate: it is a statically linked
//! PID 1 with no video library in the guest image, and all it does with
//! video is pace and packetize a clip that arrives already encoded and split
//! into access units (`wire::clip`). The harness (which makes and caches the
//! clip) and the client probe (which decodes what arrived) use this crate;
//! they need FFmpeg's shared libraries (`libavcodec-dev` and friends, see
//! `scripts/install-deps.sh`) at build and run time.
//!
//! # Unsafe
//! None in this crate. [`mpegts()`] writes to a temporary file that it reads
//! back and deletes, rather than to memory through a custom `AVIOContext`,
//! because `ffmpeg-next` has no safe wrapper for a write callback.

mod clip;
mod decode;
mod ts;

pub use clip::{clip_cached, make_clip, split_annexb, ClipSpec};
pub use decode::{decode_clip_count, Decoder, FrameResult};
pub use ts::{mpegts, Ts};

/// `ffmpeg-next` itself, for callers that need more of it (for example to
/// set FFmpeg's log level with `media::ffmpeg::log::set_level`).
pub use ffmpeg_next as ffmpeg;

use anyhow::Context as _;

/// Initializes FFmpeg once (idempotent, cheap after the first call).
pub(crate) fn init() -> anyhow::Result<()> {
    ffmpeg_next::init().context("initializing FFmpeg")
}
