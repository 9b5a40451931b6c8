//! The test clip: a moving test pattern with the frame number drawn into
//! every picture, encoded with libx264 and split into access units.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context as _};
use ffmpeg_next::{codec, encoder, format::Pixel, frame, Dictionary, Packet, Rational};
use wire::clip::{AccessUnit, Clip};

/// What clip to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSpec {
    /// Picture width, pixels (even, at least 16).
    pub width: u32,
    /// Picture height, pixels (even, at least 16).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bit rate, bits/s (also the VBV max rate and buffer size).
    pub bitrate_bps: u32,
    /// Keyframe (IDR) interval, frames: frames 0, `gop`, `2 × gop`, … are IDR.
    pub gop: u32,
    /// Length, seconds: the clip has `fps × seconds` frames.
    pub seconds: u32,
}

impl ClipSpec {
    /// The file name [`clip_cached`] stores this clip under.
    pub fn cache_name(&self) -> String {
        format!(
            "clip-{}x{}-{}fps-{}-{}-{}s.lmc",
            self.width, self.height, self.fps, self.bitrate_bps, self.gop, self.seconds
        )
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.width >= 16 && self.height >= 16 && self.width % 2 == 0 && self.height % 2 == 0,
            "clip size {}x{}: width and height must be even and at least 16",
            self.width,
            self.height
        );
        ensure!(
            self.width <= 8192 && self.height <= 8192,
            "clip size {}x{} is too large",
            self.width,
            self.height
        );
        ensure!(
            (1..=240).contains(&self.fps),
            "clip frame rate {} fps: must be 1..=240",
            self.fps
        );
        ensure!(
            self.bitrate_bps >= 10_000,
            "clip bit rate {} bit/s is below 10 kbit/s",
            self.bitrate_bps
        );
        ensure!(self.gop >= 1, "clip GOP must be at least 1 frame");
        ensure!(
            self.seconds >= 1 && u64::from(self.seconds) * u64::from(self.fps) <= 1_000_000,
            "clip length {} s at {} fps: must be 1 s to 1,000,000 frames",
            self.seconds,
            self.fps
        );
        Ok(())
    }
}

/// Encodes the test clip `spec` describes with libx264: baseline profile, no
/// B-frames (decoding order is presentation order), `tune=zerolatency`,
/// one thread (so the same spec always gives the same bytes), VBV max rate
/// and buffer equal to the bit rate (a steady byte rate), IDR exactly every
/// `gop` frames (no scene-cut keyframes), SPS and PPS repeated before every
/// IDR (`repeat-headers=1`) so a receiver can start or recover at any
/// keyframe.
///
/// Each picture has the frame number in big seven-segment digits (top
/// left), a bar sweeping across once every two seconds and a band of fresh
/// pseudo-random blocks at the bottom, so that every frame differs and the
/// encoder spends its bit rate.
///
/// Access unit `i` has frame number `i` and pts `i × 90000 / fps` (90 kHz),
/// its NAL units without start codes.
pub fn make_clip(spec: &ClipSpec) -> anyhow::Result<Clip> {
    spec.check()?;
    crate::init()?;
    let frames = spec.fps * spec.seconds;
    let fps = i32::try_from(spec.fps).context("frame rate out of range")?;
    let codec = encoder::find_by_name("libx264")
        .context("FFmpeg has no libx264 encoder (Debian's libavcodec has it)")?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context("creating the libx264 encoder context")?;
    enc.set_width(spec.width);
    enc.set_height(spec.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(Rational(1, fps));
    enc.set_frame_rate(Some(Rational(fps, 1)));
    enc.set_bit_rate(spec.bitrate_bps as usize);
    enc.set_max_bit_rate(spec.bitrate_bps as usize);
    enc.set_gop(spec.gop);
    enc.set_max_b_frames(0);
    let mut opts = Dictionary::new();
    opts.set("bufsize", &spec.bitrate_bps.to_string());
    opts.set("threads", "1");
    opts.set("preset", "veryfast");
    opts.set("tune", "zerolatency");
    opts.set("profile", "baseline");
    opts.set(
        "x264-params",
        &format!(
            "repeat-headers=1:scenecut=0:keyint={0}:min-keyint={0}:bframes=0:threads=1",
            spec.gop
        ),
    );
    let mut enc = enc.open_with(opts).with_context(|| {
        format!(
            "opening libx264 for {}x{} {} fps {} bit/s GOP {}",
            spec.width, spec.height, spec.fps, spec.bitrate_bps, spec.gop
        )
    })?;

    let mut pic = frame::Video::new(Pixel::YUV420P, spec.width, spec.height);
    let mut units = Vec::with_capacity(frames as usize);
    let mut packet = Packet::empty();
    for i in 0..frames {
        draw_pattern(&mut pic, i, spec, frames);
        pic.set_pts(Some(i64::from(i)));
        enc.send_frame(&pic)
            .with_context(|| format!("libx264: sending frame {i}"))?;
        drain(&mut enc, &mut packet, spec, &mut units)?;
    }
    enc.send_eof().context("libx264: flushing")?;
    drain(&mut enc, &mut packet, spec, &mut units)?;

    ensure!(
        units.len() == frames as usize,
        "libx264 returned {} access units for {frames} frames",
        units.len()
    );
    for (i, u) in units.iter().enumerate() {
        ensure!(
            u.frame as usize == i,
            "libx264 returned frame {} at position {i} (expected no reordering)",
            u.frame
        );
    }
    Ok(Clip {
        fps_num: spec.fps,
        fps_den: 1,
        width: spec.width,
        height: spec.height,
        bitrate: spec.bitrate_bps,
        units,
    })
}

/// Receives every packet the encoder has ready and appends it as an access
/// unit.
fn drain(
    enc: &mut encoder::Video,
    packet: &mut Packet,
    spec: &ClipSpec,
    units: &mut Vec<AccessUnit>,
) -> anyhow::Result<()> {
    loop {
        match enc.receive_packet(packet) {
            Ok(()) => {}
            Err(ffmpeg_next::Error::Other {
                errno: ffmpeg_next::util::error::EAGAIN,
            })
            | Err(ffmpeg_next::Error::Eof) => return Ok(()),
            Err(e) => return Err(e).context("libx264: receiving a packet"),
        }
        let pts = packet
            .pts()
            .context("libx264 returned a packet without pts")?;
        let frame = u32::try_from(pts)
            .with_context(|| format!("libx264 returned a packet with pts {pts}"))?;
        let data = packet.data().unwrap_or(&[]);
        let nals: Vec<Vec<u8>> = split_annexb(data).into_iter().map(<[u8]>::to_vec).collect();
        if nals.is_empty() {
            bail!("libx264 returned frame {frame} without NAL units");
        }
        let keyframe = packet.is_key();
        if keyframe && !nals.iter().any(|n| nal_type(n) == 5) {
            bail!("libx264 flagged frame {frame} as a keyframe but it has no IDR slice");
        }
        units.push(AccessUnit {
            frame,
            pts: u64::from(frame) * 90_000 / u64::from(spec.fps),
            keyframe,
            nals,
        });
    }
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits an Annex-B byte stream into its NAL units, start codes
/// (`00 00 01` or `00 00 00 01`) removed, as well as the zero bytes that
/// trail a NAL unit before the next start code. Bytes before the first start
/// code are ignored; empty NAL units are skipped.
pub fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // index of the first byte after each start code
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        // the next start code begins 3 bytes before the next NAL's first byte
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            nals.push(&data[s..end]);
        }
    }
    nals
}

/// [`make_clip`], cached: reads `cache_dir/<spec.cache_name()>` when it is a
/// valid clip of that spec, else makes the clip and writes it there (through
/// a temporary file and a rename, so a reader never sees half a clip).
/// Returns the clip and the cache file's path.
pub fn clip_cached(spec: &ClipSpec, cache_dir: &Path) -> anyhow::Result<(Clip, PathBuf)> {
    let path = cache_dir.join(spec.cache_name());
    if let Ok(bytes) = std::fs::read(&path) {
        match Clip::decode(&bytes) {
            Ok(clip) if matches_spec(&clip, spec) => return Ok((clip, path)),
            // an unreadable or mismatched cache entry is made again
            _ => {}
        }
    }
    let clip = make_clip(spec)?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating the clip cache {}", cache_dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir)
        .with_context(|| format!("creating a temporary file in {}", cache_dir.display()))?;
    std::io::Write::write_all(&mut tmp, &clip.encode())
        .with_context(|| format!("writing the clip to {}", tmp.path().display()))?;
    tmp.persist(&path)
        .with_context(|| format!("writing the clip cache {}", path.display()))?;
    Ok((clip, path))
}

fn matches_spec(clip: &Clip, spec: &ClipSpec) -> bool {
    clip.width == spec.width
        && clip.height == spec.height
        && clip.fps_num == spec.fps
        && clip.fps_den == 1
        && clip.bitrate == spec.bitrate_bps
        && clip.units.len() as u64 == u64::from(spec.fps) * u64::from(spec.seconds)
}

// ---- drawing ---------------------------------------------------------------

const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// Seven-segment patterns of 0–9: bit 0 = a (top), b (top right),
/// c (bottom right), d (bottom), e (bottom left), f (top left), bit 6 = g
/// (middle).
const SEGMENTS: [u8; 10] = [0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f];

struct Plane<'a> {
    data: &'a mut [u8],
    stride: usize,
    width: usize,
    height: usize,
}

impl Plane<'_> {
    /// Fills `[x0, x1) × [y0, y1)`, clipped to the plane.
    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, v: u8) {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        for y in y0..y1 {
            if let Some(row) = self
                .data
                .get_mut(y * self.stride + x0..y * self.stride + x1)
            {
                row.fill(v);
            }
        }
    }
}

fn plane<'a>(pic: &'a mut frame::Video, index: usize, sub: u32) -> Plane<'a> {
    let width = (pic.width() / sub) as usize;
    let height = (pic.height() / sub) as usize;
    let stride = pic.stride(index);
    Plane {
        data: pic.data_mut(index),
        stride,
        width,
        height,
    }
}

/// Draws picture `i` of `frames` into `pic`.
fn draw_pattern(pic: &mut frame::Video, i: u32, spec: &ClipSpec, frames: u32) {
    let (w, h) = (spec.width as usize, spec.height as usize);
    // the sweeping bar: crosses the picture once every two seconds
    let bar_w = (w / 16).max(2) & !1;
    let period = (2 * spec.fps).max(1) as usize;
    let bar_x = ((i as usize % period) * w / period) & !1;
    // the noise band at the bottom: fresh blocks every frame
    let band_y = (h - h / 8) & !7;

    {
        let mut y = plane(pic, 0, 1);
        for row in 0..h {
            // a vertical gradient background
            let v = 48 + (row * 128 / h) as u8;
            y.fill(0, row, w, row + 1, v);
        }
        y.fill(bar_x, 0, bar_x + bar_w, band_y, WHITE);
        let mut seed = 0x9e37_79b9_u32 ^ i.wrapping_mul(0x85eb_ca6b);
        for by in (band_y..h).step_by(8) {
            for bx in (0..w).step_by(8) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                y.fill(bx, by, bx + 8, by + 8, BLACK + (seed % 220) as u8);
            }
        }
        draw_number(&mut y, i, frames, w, h);
    }
    for (index, v) in [(1, 90u8), (2, 240u8)] {
        let mut c = plane(pic, index, 2);
        let (cw, ch) = (c.width, c.height);
        c.fill(0, 0, cw, ch, 128);
        c.fill(bar_x / 2, 0, (bar_x + bar_w) / 2, band_y / 2, v);
    }
}

/// Draws `n` in seven-segment digits, white on a black box, top left; as
/// many digits as the clip's last frame number needs, at least four.
fn draw_number(y: &mut Plane<'_>, n: u32, frames: u32, w: usize, h: usize) {
    let digits = frames
        .saturating_sub(1)
        .max(1000)
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    let margin = (h / 24).max(2);
    // digit cell: width dw, height 2·dw, gap dw/4 between digits
    let dw = (w.saturating_sub(2 * margin) * 4 / (digits * 5 + 1))
        .min(h / 6)
        .max(3);
    let dh = 2 * dw;
    let t = (dw / 5).max(1); // segment thickness
    let gap = dw / 4;
    let box_w = digits * (dw + gap) + gap;
    y.fill(margin, margin, margin + box_w, margin + dh + 2 * gap, BLACK);
    let mut rest = n;
    for k in (0..digits).rev() {
        let d = (rest % 10) as usize;
        rest /= 10;
        let x = margin + gap + k * (dw + gap);
        let top = margin + gap;
        let mid = top + dh / 2 - t / 2;
        let bottom = top + dh - t;
        let seg = SEGMENTS[d];
        let on = |bit: u8| seg & (1 << bit) != 0;
        if on(0) {
            y.fill(x, top, x + dw, top + t, WHITE);
        }
        if on(1) {
            y.fill(x + dw - t, top, x + dw, mid + t, WHITE);
        }
        if on(2) {
            y.fill(x + dw - t, mid, x + dw, bottom + t, WHITE);
        }
        if on(3) {
            y.fill(x, bottom, x + dw, bottom + t, WHITE);
        }
        if on(4) {
            y.fill(x, mid, x + t, bottom + t, WHITE);
        }
        if on(5) {
            y.fill(x, top, x + t, mid + t, WHITE);
        }
        if on(6) {
            y.fill(x, mid, x + dw, mid + t, WHITE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_annexb_handles_both_start_codes_and_trailing_zeros() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = split_annexb(&s);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert!(split_annexb(&[]).is_empty());
        assert!(split_annexb(&[0, 0, 1]).is_empty());
        assert!(split_annexb(&[1, 2, 3]).is_empty());
    }
}
