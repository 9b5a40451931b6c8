//! The H.264 decoder's verdict on each RTP frame: the one part of the
//! stream analysis that needs FFmpeg, kept out of the `measure` core. The
//! run writes its result beside the capture; `harness report` reads it (or
//! decodes again for bundles written before it was recorded).

use measure::stream::rtp::{depacketize, RtpArrival};
use measure::stream::views::frames_for_decoder;
use serde::{Deserialize, Serialize};

/// Where a run stores the decoder's verdict on each frame.
pub const DECODED_FILE: &str = "stream/rtp-decoded.json";

/// `stream/rtp-decoded.json`: per frame of the RTP stream, in timestamp
/// order, when its last packet arrived (client clock, ns) and whether the
/// H.264 decoder accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodedFrames {
    /// Which decoder judged them.
    pub decoder: String,
    /// `(last packet's arrival ns, accepted)` per frame.
    pub frames: Vec<(i64, bool)>,
}

/// Decodes the stream ([`decode_stream`]) into the record the run stores.
pub fn decoded_frames(arrivals: &[RtpArrival], ssrc: Option<u32>) -> Option<DecodedFrames> {
    Some(DecodedFrames {
        decoder: "FFmpeg's H.264 decoder (libavcodec, through ffmpeg-next), strict".into(),
        frames: decode_stream(arrivals, ssrc)?,
    })
}

/// Decodes the whole stream once, frame by frame in timestamp order, with
/// a real H.264 decoder (decoding must start where the stream starts, at
/// its first keyframe, not at a window's edge): for each frame, when its
/// last packet arrived and whether the decoder accepted it. `None` when no
/// decoder can be made.
pub fn decode_stream(arrivals: &[RtpArrival], ssrc: Option<u32>) -> Option<Vec<(i64, bool)>> {
    media::ffmpeg::log::set_level(media::ffmpeg::log::Level::Quiet);
    let mut dec = media::Decoder::new_h264().ok()?;
    let out = frames_for_decoder(arrivals, ssrc)
        .into_iter()
        .map(|(t, f)| {
            let pk: Vec<(i64, &[u8])> = f.iter().map(|(s, b)| (*s, b.as_slice())).collect();
            let d = depacketize(&pk);
            (
                t,
                matches!(dec.decode_frame(&d.nals), media::FrameResult::Accepted),
            )
        })
        .collect();
    Some(out)
}
