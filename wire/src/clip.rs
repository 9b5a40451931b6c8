//! The test-clip container: an H.264 clip as the harness makes it and the
//! guest agent streams it, one access unit (one video frame) at a time.
//!
//! The agent is statically linked and carries no video library, so the clip
//! travels pre-encoded, already split into access units with their
//! presentation times: the agent only paces and packetizes. Layout (all
//! integers big-endian):
//!
//! ```text
//! magic      8 bytes  "LMIGCLP1"
//! fps_num    u32      frame rate = fps_num / fps_den
//! fps_den    u32
//! width      u32
//! height     u32
//! bitrate    u32      target bits per second of the encoding
//! count      u32      number of access units
//! then `count` times:
//!   frame    u32      frame number (0-based, as drawn into the picture)
//!   pts      u64      presentation time, 90 kHz ticks from the first frame
//!   flags    u8       bit 0: keyframe (IDR)
//!   nal_count u16
//!   then `nal_count` times:
//!     len    u32
//!     nal    `len` bytes, one NAL unit without start code
//! ```
//!
//! The parser checks every length against what is left: a truncated or
//! garbled clip is an error naming the byte offset, never a panic.

use serde::{Deserialize, Serialize};

/// The magic bytes a clip starts with.
pub const MAGIC: &[u8; 8] = b"LMIGCLP1";
/// Largest accepted clip, bytes (the agent holds it in memory).
pub const MAX_CLIP_BYTES: usize = 256 << 20;

/// One video frame: its NAL units in decoding order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessUnit {
    /// Frame number, as drawn into the picture.
    pub frame: u32,
    /// Presentation time, 90 kHz ticks from the first frame.
    pub pts: u64,
    /// An IDR frame (decodable on its own).
    pub keyframe: bool,
    /// NAL units without start codes (SPS/PPS before each IDR included).
    pub nals: Vec<Vec<u8>>,
}

/// A whole clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clip {
    /// Frame-rate numerator.
    pub fps_num: u32,
    /// Frame-rate denominator.
    pub fps_den: u32,
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Target bit rate of the encoding, bits/s.
    pub bitrate: u32,
    /// The frames, in decoding order.
    pub units: Vec<AccessUnit>,
}

/// Why bytes are not a clip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid clip at byte {offset}: {reason}")]
pub struct ClipError {
    /// Where the problem is.
    pub offset: usize,
    /// What it is.
    pub reason: String,
}

impl Clip {
    /// The frame duration in 90 kHz ticks (0 with a zero frame rate).
    pub fn frame_ticks(&self) -> u64 {
        if self.fps_num == 0 {
            return 0;
        }
        90_000 * u64::from(self.fps_den) / u64::from(self.fps_num)
    }

    /// Total payload bytes of all NAL units.
    pub fn payload_bytes(&self) -> usize {
        self.units
            .iter()
            .flat_map(|u| u.nals.iter())
            .map(Vec::len)
            .sum()
    }

    /// The clip in the container format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.payload_bytes() + self.units.len() * 20);
        out.extend_from_slice(MAGIC);
        for v in [
            self.fps_num,
            self.fps_den,
            self.width,
            self.height,
            self.bitrate,
            u32::try_from(self.units.len()).unwrap_or(u32::MAX),
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for u in &self.units {
            out.extend_from_slice(&u.frame.to_be_bytes());
            out.extend_from_slice(&u.pts.to_be_bytes());
            out.push(u8::from(u.keyframe));
            out.extend_from_slice(
                &u16::try_from(u.nals.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            for n in u.nals.iter().take(usize::from(u16::MAX)) {
                out.extend_from_slice(&u32::try_from(n.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(n);
            }
        }
        out
    }

    /// Parses the container format.
    pub fn decode(bytes: &[u8]) -> Result<Clip, ClipError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(r.error(0, "wrong magic (expected LMIGCLP1)"));
        }
        let fps_num = r.u32()?;
        let fps_den = r.u32()?;
        if fps_num == 0 || fps_den == 0 {
            return Err(r.error(8, "zero frame rate"));
        }
        let width = r.u32()?;
        let height = r.u32()?;
        let bitrate = r.u32()?;
        let count = r.u32()? as usize;
        let mut units = Vec::with_capacity(count.min(bytes.len() / 15));
        for _ in 0..count {
            let frame = r.u32()?;
            let pts = r.u64()?;
            let keyframe = r.take(1)?.first().copied().unwrap_or(0) & 1 == 1;
            let nal_count = usize::from(r.u16()?);
            let mut nals = Vec::with_capacity(nal_count.min(16));
            for _ in 0..nal_count {
                let len = r.u32()? as usize;
                nals.push(r.take(len)?.to_vec());
            }
            units.push(AccessUnit {
                frame,
                pts,
                keyframe,
                nals,
            });
        }
        if r.pos != bytes.len() {
            return Err(r.error(r.pos, "trailing bytes after the last access unit"));
        }
        Ok(Clip {
            fps_num,
            fps_den,
            width,
            height,
            bitrate,
            units,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, offset: usize, reason: &str) -> ClipError {
        ClipError {
            offset,
            reason: reason.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ClipError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.error(
                    self.pos,
                    &format!("needs {n} more bytes, the clip ends first"),
                )
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, ClipError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ClipError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ClipError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Clip {
        Clip {
            fps_num: 30,
            fps_den: 1,
            width: 320,
            height: 240,
            bitrate: 500_000,
            units: (0..3)
                .map(|i| AccessUnit {
                    frame: i,
                    pts: u64::from(i) * 3000,
                    keyframe: i == 0,
                    nals: vec![vec![0x65, 1, 2, 3], vec![0x41; i as usize + 1]],
                })
                .collect(),
        }
    }

    #[test]
    fn round_trip_and_frame_ticks() {
        let c = sample();
        assert_eq!(Clip::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.frame_ticks(), 3000);
    }

    #[test]
    fn truncation_and_garbage_are_errors_naming_the_offset() {
        let b = sample().encode();
        for cut in [0, 7, 20, 33, b.len() - 1] {
            let e = Clip::decode(&b[..cut]).unwrap_err();
            assert!(e.offset <= cut, "{e}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(Clip::decode(&extra)
            .unwrap_err()
            .reason
            .contains("trailing"));
        let mut bad = b;
        bad[0] = b'X';
        assert!(Clip::decode(&bad)
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Clip::decode(&bytes);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = Clip::decode(&with_magic);
        }
    }
}
