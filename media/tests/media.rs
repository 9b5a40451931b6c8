//! The test clip, its MPEG-TS form and the strict decoder, end to end
//! through FFmpeg 5.1 (Debian 12).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;
use std::sync::OnceLock;

use media::{decode_clip_count, make_clip, mpegts, ClipSpec, Decoder, FrameResult};
use wire::clip::Clip;

const SPEC: ClipSpec = ClipSpec {
    width: 320,
    height: 240,
    fps: 30,
    bitrate_bps: 300_000,
    gop: 30,
    seconds: 2,
};

/// The 2 s clip, made once for all tests of this file.
fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        // FFmpeg logs every concealed error; the tests look at results instead
        media::ffmpeg::log::set_level(media::ffmpeg::log::Level::Fatal);
        make_clip(&SPEC).unwrap()
    })
}

fn nal_types(nals: &[Vec<u8>]) -> Vec<u8> {
    nals.iter().map(|n| n[0] & 0x1f).collect()
}

#[test]
fn clip_has_numbered_frames_keyframes_and_headers() {
    let c = clip();
    assert_eq!((c.width, c.height, c.fps_num, c.fps_den), (320, 240, 30, 1));
    assert_eq!(c.bitrate, 300_000);
    assert_eq!(c.units.len(), 60);
    for (i, u) in c.units.iter().enumerate() {
        assert_eq!(u.frame as usize, i);
        assert_eq!(u.pts, i as u64 * 3000);
        assert_eq!(u.keyframe, i % 30 == 0, "frame {i}");
        let types = nal_types(&u.nals);
        assert!(u.nals.iter().all(|n| !n.is_empty()));
        if u.keyframe {
            // SPS and PPS in front of every IDR (repeat-headers); x264 puts
            // its version SEI (6) in the first one
            assert_eq!(&types[..2], &[7, 8], "frame {i}: {types:?}");
            assert_eq!(types.last(), Some(&5), "frame {i}: {types:?}");
        } else {
            assert_eq!(types, vec![1], "frame {i}: one non-IDR slice");
        }
    }
    // the encoder spent its bit rate: within a factor of two of 300 kbit/s
    let bits = c.payload_bytes() as f64 * 8.0 / 2.0;
    assert!((150_000.0..600_000.0).contains(&bits), "{bits} bit/s");
}

#[test]
fn clip_is_deterministic_and_survives_the_container() {
    let c = clip();
    assert_eq!(&Clip::decode(&c.encode()).unwrap(), c);
    assert_eq!(&make_clip(&SPEC).unwrap(), c, "same spec, same bytes");
}

#[test]
fn clip_cache_is_written_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClipSpec {
        width: 64,
        height: 48,
        seconds: 1,
        ..SPEC
    };
    let (c1, path) = media::clip_cached(&spec, dir.path()).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "clip-64x48-30fps-300000-30-1s.lmc"
    );
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let (c2, path2) = media::clip_cached(&spec, dir.path()).unwrap();
    assert_eq!((c1, &path), (c2, &path2));
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        mtime,
        "the cache file was reused, not rewritten"
    );
    // a garbled cache file is made again
    std::fs::write(&path, b"garbage").unwrap();
    let (c3, _) = media::clip_cached(&spec, dir.path()).unwrap();
    assert_eq!(c3.units.len(), 30);
    assert_eq!(Clip::decode(&std::fs::read(&path).unwrap()).unwrap(), c3);
}

#[test]
fn whole_clip_decodes() {
    assert_eq!(decode_clip_count(clip()).unwrap(), (60, 0));
}

/// Decodes the clip, skipping the frames `drop` names and flushing the
/// decoder before frame `flush_at`: the frames rejected, with why.
fn decode_with_loss(drop: impl Fn(u32) -> bool, flush_at: Option<u32>) -> (Decoder, Vec<u32>) {
    let mut d = Decoder::new_h264().unwrap();
    let mut rejected = Vec::new();
    for u in clip().units.iter().filter(|u| !drop(u.frame)) {
        if Some(u.frame) == flush_at {
            d.flush();
        }
        if let FrameResult::Rejected(why) = d.decode_frame(&u.nals) {
            eprintln!("frame {}: {why}", u.frame);
            rejected.push(u.frame);
        }
    }
    (d, rejected)
}

/// One P-frame lost mid-GOP. Observed with FFmpeg 5.1: the next P-frame's
/// `frame_num` jumps by two; the decoder fills the gap with a copy of the
/// last reference picture and decodes on, without an error and without
/// flagging the pictures corrupt (it counts the stream as recovered since
/// the IDR). So every remaining frame is accepted: the decoder conceals a
/// missing reference, and counts as rejected only what it cannot show.
#[test]
fn one_lost_p_frame_is_concealed_not_rejected() {
    let (d, rejected) = decode_with_loss(|f| f == 10, None);
    assert_eq!(rejected, Vec::<u32>::new());
    assert_eq!((d.accepted, d.rejected), (59, 0));
}

/// Longer losses, and joining or flushing mid-GOP (observed with FFmpeg
/// 5.1): the frames the decoder cannot stand on are rejected, in one run
/// right after the loss, and it is back by the next IDR at the latest.
#[test]
fn longer_losses_are_rejected_until_the_decoder_recovers() {
    // ten P-frames lost: the decoder shows no picture for the next five
    // (observed: 20..=24), then decodes on
    let (_, rejected) = decode_with_loss(|f| (10..20).contains(&f), None);
    assert!(!rejected.is_empty() && rejected[0] == 20, "{rejected:?}");
    assert!(
        rejected.windows(2).all(|w| w[1] == w[0] + 1),
        "{rejected:?}"
    );
    assert!(*rejected.last().unwrap() < 30, "{rejected:?}");

    // the IDR itself lost: no picture for a run of P-frames after it
    // (observed: 31..=42), then pictures again without an IDR
    let (_, rejected) = decode_with_loss(|f| f == 30, None);
    assert!(!rejected.is_empty() && rejected[0] == 31, "{rejected:?}");
    assert!(
        rejected.windows(2).all(|w| w[1] == w[0] + 1),
        "{rejected:?}"
    );

    // joining mid-GOP (no reference at all): send_packet fails with
    // AVERROR_INVALIDDATA ("no frame!" exploded) until the IDR
    let (d, rejected) = decode_with_loss(|f| f < 10, None);
    assert_eq!(rejected, (10..30).collect::<Vec<_>>());
    assert_eq!((d.accepted, d.rejected), (30, 20));

    // after flush(): no picture until the next IDR
    let (d, rejected) = decode_with_loss(|_| false, Some(10));
    assert_eq!(rejected, (10..30).collect::<Vec<_>>());
    assert_eq!((d.accepted, d.rejected), (40, 20));
}

/// Garbled slice data (observed with FFmpeg 5.1): 8 bytes flipped 10 % into
/// a slice make `avcodec_send_packet` fail (`explode`), and only that frame
/// is rejected; the frames predicted from it decode without a flag. Damage
/// near a slice's end can parse as valid CAVLC and go unnoticed, so
/// `rejected` is a lower bound of the damage.
#[test]
fn corrupt_nal_bytes_are_rejected_without_panic() {
    let c = clip();
    let mut d = Decoder::new_h264().unwrap();
    let mut rejected = Vec::new();
    for u in &c.units {
        let mut nals = u.nals.clone();
        if u.frame == 5 || u.frame == 40 {
            let n = nals.last_mut().unwrap();
            let at = n.len() / 10;
            for b in &mut n[at..at + 8] {
                *b ^= 0xa5;
            }
        }
        if let FrameResult::Rejected(why) = d.decode_frame(&nals) {
            assert!(why.contains("refused"), "{why}");
            rejected.push(u.frame);
        }
    }
    assert_eq!(rejected, vec![5, 40]);
    assert_eq!((d.accepted, d.rejected), (58, 2));

    // truncated NAL units and garbage: rejected or not, never a panic
    for u in &c.units[..3] {
        for cut in [1, 2, 5, 17] {
            let nals: Vec<Vec<u8>> = u
                .nals
                .iter()
                .map(|n| n[..cut.min(n.len())].to_vec())
                .collect();
            let _ = d.decode_frame(&nals);
        }
    }
    assert!(matches!(d.decode_frame(&[]), FrameResult::Rejected(_)));
    assert!(matches!(
        d.decode_frame(&[vec![0xff; 40]]),
        FrameResult::Rejected(_)
    ));
    assert!(matches!(
        d.decode_frame(&[vec![0x65; 3], vec![0x00; 7]]),
        FrameResult::Rejected(_)
    ));
    // and it still decodes a good stream afterwards, from an IDR on
    let before = d.accepted;
    for u in &c.units[30..] {
        d.decode_frame(&u.nals);
    }
    assert_eq!(d.accepted - before, 30);
}

#[test]
fn mpegts_is_whole_packets_that_ffprobe_reads_as_60_h264_frames() {
    let c = clip();
    let ts = mpegts(c).unwrap();
    assert!((ts.duration_s - 2.0).abs() < 1e-9);
    assert_eq!(ts.bytes.len() % 188, 0);
    for (i, p) in ts.bytes.chunks(188).enumerate() {
        assert_eq!(p[0], 0x47, "sync byte of TS packet {i}");
    }
    assert!((ts.byte_rate() - ts.bytes.len() as f64 / 2.0).abs() < 1e-6);
    // TS overhead on top of the payload, but not wildly more
    assert!(ts.bytes.len() > c.payload_bytes());
    assert!(ts.bytes.len() < 2 * c.payload_bytes() + 20_000);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.ts");
    std::fs::write(&path, &ts.bytes).unwrap();
    let out = match Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames,width,height",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "ffprobe could not be run ({e}): install Debian's `ffmpeg` package \
             (scripts/install-deps.sh does) to check the MPEG-TS independently"
        ),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("codec_name=h264"), "{text}");
    assert!(
        text.contains("width=320") && text.contains("height=240"),
        "{text}"
    );
    assert!(text.contains("nb_read_frames=60"), "{text}");
}
