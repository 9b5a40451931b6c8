//! The clip as an MPEG-TS byte stream, for the HTTP progressive stream.

use anyhow::{ensure, Context as _};
use ffmpeg_next::{codec, decoder, format, packet, Packet, Rational};
use wire::clip::Clip;

/// A clip muxed into MPEG-TS.
#[derive(Debug, Clone, PartialEq)]
pub struct Ts {
    /// The transport stream: 188-byte packets, each starting with 0x47.
    pub bytes: Vec<u8>,
    /// The clip's duration, seconds (frames × frame duration).
    pub duration_s: f64,
}

impl Ts {
    /// The mean byte rate, bytes/s (`bytes / duration`): the pace at which
    /// to send the stream so that it plays in real time.
    pub fn byte_rate(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.bytes.len() as f64 / self.duration_s
        } else {
            0.0
        }
    }
}

/// Muxes the clip's access units into MPEG-TS with FFmpeg's `mpegts` muxer,
/// one H.264 stream, pts = dts = each unit's 90 kHz pts (no B-frames).
///
/// FFmpeg writes to a temporary file that is read back and deleted: a safe
/// stand-in for an in-memory `AVIOContext`, which `ffmpeg-next` only offers
/// through `unsafe` FFI.
pub fn mpegts(clip: &Clip) -> anyhow::Result<Ts> {
    crate::init()?;
    ensure!(!clip.units.is_empty(), "the clip has no frames to mux");
    let frame_ticks = clip.frame_ticks();
    ensure!(frame_ticks > 0, "the clip has no frame rate");
    let fps = Rational(
        i32::try_from(clip.fps_num).context("frame rate out of range")?,
        i32::try_from(clip.fps_den).context("frame rate out of range")?,
    );
    let tb90k = Rational(1, 90_000);

    let dir = tempfile::tempdir().context("creating a temporary directory for MPEG-TS")?;
    let path = dir.path().join("clip.ts");
    let mut octx = format::output_as(&path, "mpegts").context("opening FFmpeg's mpegts muxer")?;
    {
        // stream parameters: H.264 video of the clip's size
        let h264 = decoder::find(codec::Id::H264).context("FFmpeg has no H.264 codec")?;
        let mut params = codec::context::Context::new_with_codec(h264)
            .encoder()
            .video()
            .context("describing the H.264 stream")?;
        params.set_width(clip.width);
        params.set_height(clip.height);
        params.set_format(format::Pixel::YUV420P);
        params.set_time_base(tb90k);
        params.set_frame_rate(Some(fps));
        let mut st = octx
            .add_stream_with(&params)
            .context("adding the H.264 stream to the muxer")?;
        st.set_time_base(tb90k);
        st.set_avg_frame_rate(fps);
        st.set_rate(fps);
    }
    octx.write_header().context("writing the MPEG-TS header")?;
    let stream_tb = octx
        .stream(0)
        .map(|s| s.time_base())
        .context("the muxer lost its stream")?;

    let mut data = Vec::new();
    for u in &clip.units {
        data.clear();
        for n in &u.nals {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(n);
        }
        let mut pkt = Packet::copy(&data);
        pkt.set_stream(0);
        let pts = i64::try_from(u.pts).context("pts out of range")?;
        pkt.set_pts(Some(pts));
        pkt.set_dts(Some(pts));
        pkt.set_duration(i64::try_from(frame_ticks).context("frame duration out of range")?);
        if u.keyframe {
            pkt.set_flags(packet::Flags::KEY);
        }
        pkt.rescale_ts(tb90k, stream_tb);
        pkt.write_interleaved(&mut octx)
            .with_context(|| format!("muxing frame {} into MPEG-TS", u.frame))?;
    }
    octx.write_trailer()
        .context("writing the MPEG-TS trailer")?;
    drop(octx);

    let bytes = std::fs::read(&path).with_context(|| format!("reading back {}", path.display()))?;
    ensure!(
        !bytes.is_empty() && bytes.len() % 188 == 0,
        "FFmpeg's MPEG-TS is {} bytes, not whole 188-byte packets",
        bytes.len()
    );
    let duration_s = clip.units.len() as f64 * frame_ticks as f64 / 90_000.0;
    Ok(Ts { bytes, duration_s })
}
