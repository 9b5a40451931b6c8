//! FFmpeg's H.264 decoder, strict about errors: counts the frames a viewer's
//! decoder would accept and the ones it would reject.
//!
//! # What FFmpeg 5.1 does with a damaged stream (observed in `tests/media.rs`)
//! The decoder is opened single-threaded (so each packet gives its picture
//! at once; checked: the picture out is always the packet just sent) with
//! `err_detect = crccheck+bitstream+buffer+explode`. A frame is accepted
//! when `avcodec_send_packet` succeeds and a picture comes out without the
//! corrupt flag. With a clip from [`crate::make_clip`]:
//! - **one P-frame lost mid-GOP** (its reference is missing for the next
//!   one): the next frame's `frame_num` jumps; FFmpeg fills the gap with a
//!   copy of the last reference picture and decodes on, with no error and
//!   no corrupt flag (the stream counts as recovered since its IDR). Every
//!   later frame is **accepted**: a missing reference is concealed, not
//!   reported, and `explode` does not change that (the slices parse
//!   cleanly). A viewer sees a smeared picture, not a frozen one.
//! - **ten P-frames lost**: the next five frames give no picture
//!   (rejected), then pictures come again before the next IDR.
//! - **the IDR lost**: the next twelve P-frames give no picture, then
//!   pictures come again without an IDR.
//! - **no reference at all** (joining mid-GOP): `avcodec_send_packet`
//!   fails with `AVERROR_INVALIDDATA` for every P-frame until the IDR.
//! - **after [`Decoder::flush`]**: no picture until the next IDR.
//! - **garbled slice data**: usually `avcodec_send_packet` fails (rejected),
//!   and only that frame: the frames predicted from it are accepted. Bytes
//!   flipped near a slice's end can parse as valid CAVLC and go unnoticed.
//!
//! So `rejected` counts the frames a viewer's decoder could not show, and
//! is a lower bound of the damaged ones; a frame decoded against a wrong
//! reference is accepted.

use anyhow::Context as _;
use ffmpeg_next::{
    codec::{self, threading},
    decoder::{self, Check},
    frame, Packet,
};
use wire::clip::Clip;

/// What the decoder made of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameResult {
    /// The decoder took the packet and returned a picture without errors
    /// and without the corrupt flag.
    Accepted,
    /// It did not: why (FFmpeg's error, a corrupt picture, or no picture).
    Rejected(String),
}

/// FFmpeg's H.264 decoder, fed one frame (its NAL units) at a time.
pub struct Decoder {
    dec: decoder::Video,
    picture: frame::Video,
    /// Frames accepted so far.
    pub accepted: u64,
    /// Frames rejected so far.
    pub rejected: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens FFmpeg's H.264 decoder: one thread (a picture per packet, no
    /// frame-threading delay) and `err_detect =
    /// crccheck+bitstream+buffer+explode`, so that damage is reported
    /// rather than silently concealed where FFmpeg can tell.
    pub fn new_h264() -> anyhow::Result<Decoder> {
        crate::init()?;
        let codec = decoder::find(codec::Id::H264).context("FFmpeg has no H.264 decoder")?;
        let mut ctx = codec::context::Context::new_with_codec(codec);
        ctx.set_threading(threading::Config::count(1));
        let mut dec = ctx.decoder();
        dec.check(Check::CRC | Check::BISTREAM | Check::BUFFER | Check::EXPLODE);
        let dec = dec
            .open_as(codec)
            .context("opening the H.264 decoder")?
            .video()
            .context("opening the H.264 decoder as a video decoder")?;
        Ok(Decoder {
            dec,
            picture: frame::Video::empty(),
            accepted: 0,
            rejected: 0,
        })
    }

    /// Decodes one frame: its NAL units (without start codes) are joined
    /// with `00 00 00 01` start codes into one packet. Updates the counters.
    pub fn decode_frame(&mut self, nals: &[Vec<u8>]) -> FrameResult {
        let result = self.decode_inner(nals);
        match result {
            FrameResult::Accepted => self.accepted += 1,
            FrameResult::Rejected(_) => self.rejected += 1,
        }
        result
    }

    fn decode_inner(&mut self, nals: &[Vec<u8>]) -> FrameResult {
        if nals.iter().all(Vec::is_empty) {
            return FrameResult::Rejected("no NAL units".into());
        }
        let mut data = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
        for n in nals.iter().filter(|n| !n.is_empty()) {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(n);
        }
        let packet = Packet::copy(&data);
        if let Err(e) = self.dec.send_packet(&packet) {
            // a picture the decoder still holds belongs to this damaged packet
            while self.dec.receive_frame(&mut self.picture).is_ok() {}
            return FrameResult::Rejected(format!("decoder refused the frame: {e}"));
        }
        let mut pictures = 0;
        let mut corrupt = 0;
        let mut error = None;
        loop {
            match self.dec.receive_frame(&mut self.picture) {
                Ok(()) => {
                    pictures += 1;
                    if self.picture.is_corrupt() {
                        corrupt += 1;
                    }
                }
                Err(ffmpeg_next::Error::Other {
                    errno: ffmpeg_next::util::error::EAGAIN,
                })
                | Err(ffmpeg_next::Error::Eof) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        match (error, pictures, corrupt) {
            (Some(e), _, _) => FrameResult::Rejected(format!("decoder error: {e}")),
            (None, 0, _) => FrameResult::Rejected("decoder returned no picture".into()),
            (None, _, c) if c > 0 => {
                FrameResult::Rejected("decoder flagged the picture corrupt".into())
            }
            (None, _, _) => FrameResult::Accepted,
        }
    }

    /// Forgets every reference picture (as after a seek): the next frame
    /// must be an IDR to be accepted. Leaves the counters as they are.
    pub fn flush(&mut self) {
        self.dec.flush();
    }
}

/// Decodes every frame of `clip` in order with a fresh [`Decoder`]:
/// `(accepted, rejected)`. A clip as [`crate::make_clip`] makes it gives
/// `(frames, 0)`.
pub fn decode_clip_count(clip: &Clip) -> anyhow::Result<(u64, u64)> {
    let mut d = Decoder::new_h264()?;
    for u in &clip.units {
        d.decode_frame(&u.nals);
    }
    Ok((d.accepted, d.rejected))
}
