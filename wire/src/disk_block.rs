//! The stamp format of one block written by the guest agent's `disk`
//! workload, shared with the harness so that the host can check a disk
//! image after a migration without trusting the guest's own check.
//!
//! A block of `n` bytes (the agent uses multiples of [`SECTOR_SIZE`]) is:
//!
//! | bytes | content |
//! |---|---|
//! | 0..8 | [`MAGIC`], `b"LMIGDISK"` |
//! | 8..16 | the block's index within the workload's region, `u64` little-endian |
//! | 16..24 | its version, `u64` little-endian: 0 for the pre-fill, +1 per rewrite |
//! | 24..n | a splitmix64 stream seeded from (index, version), each output `u64` little-endian, the last one cut short if `n − 24` is not a multiple of 8 |
//!
//! Because every byte after the header depends on both index and version,
//! a torn write (sectors of two versions), a stale block (an older version
//! than expected), a misplaced one (another index) or a lost one (the
//! pre-fill or zeros) does not match.
//!
//! [`versions_digest`] condenses the expected (index, version) table into
//! 64 bits, so the agent can report it and the host can compare it with
//! the digest of the stamps it reads from the image.
//!
//! Pure: no I/O.

/// The first 8 bytes of every stamped block.
pub const MAGIC: [u8; 8] = *b"LMIGDISK";
/// Bytes of the stamp (magic, index, version) at the start of a block.
pub const HEADER_LEN: usize = 24;
/// Blocks are whole multiples of this many bytes (the smallest logical
/// block size of a disk).
pub const SECTOR_SIZE: usize = 512;

/// The increment of splitmix64's state (the golden ratio, 2^64 / φ).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output function. A bijection on `u64`, which is what makes
/// [`versions_digest`] change whenever one version changes.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One splitmix64 step from `z`: add the increment, then mix.
fn splitmix64(z: u64) -> u64 {
    mix(z.wrapping_add(GOLDEN))
}

/// The initial state of a block's stream. The magic keeps it apart from
/// other splitmix64 uses; rotating the version keeps (i, v) and (v, i)
/// apart.
fn stream_seed(index: u64, version: u64) -> u64 {
    splitmix64(splitmix64(index ^ u64::from_le_bytes(MAGIC)) ^ version.rotate_left(32))
}

/// The stream of a block's body: the splitmix64 sequence from its seed.
struct Stream(u64);

impl Stream {
    fn new(index: u64, version: u64) -> Self {
        Self(stream_seed(index, version))
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0).to_le_bytes()
    }
}

/// The 24-byte stamp of block `index` at `version`.
fn header(index: u64, version: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..16].copy_from_slice(&index.to_le_bytes());
    h[16..].copy_from_slice(&version.to_le_bytes());
    h
}

/// Writes into `buf` the content of block `index` at `version`: the
/// whole of `buf` (any length; one shorter than [`HEADER_LEN`] gets the
/// start of the stamp only, and never [`matches()`]).
pub fn fill(buf: &mut [u8], index: u64, version: u64) {
    let h = header(index, version);
    let cut = buf.len().min(HEADER_LEN);
    buf[..cut].copy_from_slice(&h[..cut]);
    if buf.len() <= HEADER_LEN {
        return;
    }
    let mut stream = Stream::new(index, version);
    for chunk in buf[HEADER_LEN..].chunks_mut(8) {
        let w = stream.next_word();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// The (index, version) stamped at the start of `buf`, if it begins with
/// [`MAGIC`] (whether the rest of the block is right is [`matches()`]'s
/// question).
pub fn read_stamp(buf: &[u8]) -> Option<(u64, u64)> {
    let head = buf.get(..HEADER_LEN)?;
    if head[..8] != MAGIC {
        return None;
    }
    let word = |r: std::ops::Range<usize>| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&head[r]);
        u64::from_le_bytes(w)
    };
    Some((word(8..16), word(16..24)))
}

/// Whether `buf` is exactly what [`fill`] writes for block `index` at
/// `version` (every byte of it). A buffer shorter than [`HEADER_LEN`]
/// never matches.
pub fn matches(buf: &[u8], index: u64, version: u64) -> bool {
    if buf.len() < HEADER_LEN || buf[..HEADER_LEN] != header(index, version) {
        return false;
    }
    let mut stream = Stream::new(index, version);
    // Fold the differences instead of returning at the first: a clean
    // block (the usual case) is read in full anyway, and this loop
    // vectorises better.
    let mut diff = 0u8;
    for chunk in buf[HEADER_LEN..].chunks(8) {
        let w = stream.next_word();
        for (a, b) in chunk.iter().zip(&w) {
            diff |= a ^ b;
        }
    }
    diff == 0
}

/// An order-dependent 64-bit digest of (index, version) pairs; not
/// cryptographic.
///
/// Definition, with `splitmix64(z) = mix(z + 0x9e3779b97f4a7c15)` and
/// `mix` splitmix64's output function (`z ^= z >> 30; z *=
/// 0xbf58476d1ce4e5b9; z ^= z >> 27; z *= 0x94d049bb133111eb; z ^= z >>
/// 31`, all wrapping):
///
/// ```text
/// h = u64::from_le_bytes(*b"LMIGDISK")
/// for (index, version) in pairs:
///     h = splitmix64(h ^ index)
///     h = splitmix64(h ^ version)
/// digest = splitmix64(h ^ number_of_pairs)
/// ```
///
/// Each step is a bijection of `h`, so two sequences of the same length
/// that differ in exactly one index or one version always have different
/// digests; other differences collide with probability about 2^-64.
/// The agent digests its whole table in index order, `(0, v0), (1, v1),
/// ...`; the host digests the stamps it reads from the image in the same
/// order.
pub fn versions_digest(versions: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    let mut h = u64::from_le_bytes(MAGIC);
    let mut n = 0u64;
    for (index, version) in versions {
        h = splitmix64(h ^ index);
        h = splitmix64(h ^ version);
        n = n.wrapping_add(1);
    }
    splitmix64(h ^ n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(len: usize, index: u64, version: u64) -> Vec<u8> {
        let mut b = vec![0u8; len];
        fill(&mut b, index, version);
        b
    }

    #[test]
    fn layout_is_as_documented() {
        let b = block(512, 7, 3);
        assert_eq!(&b[..8], b"LMIGDISK");
        assert_eq!(&b[8..16], &7u64.to_le_bytes());
        assert_eq!(&b[16..24], &3u64.to_le_bytes());
        assert_eq!(read_stamp(&b), Some((7, 3)));
        // The body is the splitmix64 stream from the seed.
        let mut s = stream_seed(7, 3);
        s = s.wrapping_add(GOLDEN);
        assert_eq!(&b[24..32], &mix(s).to_le_bytes());
        // Same for a block of 4 KiB: its first 512 bytes are the same.
        assert_eq!(&block(4096, 7, 3)[..512], &b[..]);
    }

    #[test]
    fn stale_misplaced_and_lost_blocks_do_not_match() {
        let b = block(4096, 7, 3);
        assert!(matches(&b, 7, 3));
        assert!(!matches(&b, 7, 2), "stale");
        assert!(!matches(&b, 8, 3), "misplaced");
        assert!(!matches(&[0u8; 4096], 7, 3), "lost");
        // A torn write: first sector new, the rest old.
        let mut torn = block(4096, 7, 2);
        torn[..512].copy_from_slice(&b[..512]);
        assert_eq!(read_stamp(&torn), Some((7, 3)));
        assert!(!matches(&torn, 7, 3));
        assert!(!matches(&torn, 7, 2));
        // Body bytes differ between versions nearly everywhere.
        let next = block(4096, 7, 4);
        let same = b[24..]
            .iter()
            .zip(&next[24..])
            .filter(|(a, c)| a == c)
            .count();
        assert!(same < 64, "{same} equal bytes");
    }

    #[test]
    fn short_buffers() {
        let mut b = [0u8; 10];
        fill(&mut b, 1, 2);
        assert_eq!(&b[..8], b"LMIGDISK");
        assert_eq!(read_stamp(&b), None);
        assert!(!matches(&b, 1, 2));
        assert!(!matches(&[], 1, 2));
        let b = block(HEADER_LEN, 1, 2);
        assert!(matches(&b, 1, 2));
        let b = block(HEADER_LEN + 3, 1, 2);
        assert!(matches(&b, 1, 2));
        assert_eq!(read_stamp(b"LMIGDISX________________"), None);
    }

    #[test]
    fn digest_follows_its_definition() {
        let expected = {
            let mut h = u64::from_le_bytes(*b"LMIGDISK");
            for (i, v) in [(0u64, 5u64), (1, 0)] {
                h = splitmix64(h ^ i);
                h = splitmix64(h ^ v);
            }
            splitmix64(h ^ 2)
        };
        assert_eq!(versions_digest([(0, 5), (1, 0)]), expected);
        assert_ne!(
            versions_digest([(0, 5), (1, 0)]),
            versions_digest([(1, 0), (0, 5)])
        );
        assert_ne!(versions_digest([]), versions_digest([(0, 0)]));
        assert_ne!(versions_digest([(0, 0)]), versions_digest([(0, 0), (0, 0)]));
    }

    proptest! {
        #[test]
        fn fill_matches_and_any_flipped_byte_does_not(
            sectors in 1usize..=8,
            index: u64,
            version: u64,
            at: prop::sample::Index,
            bit in 0u8..8,
        ) {
            let mut b = block(sectors * SECTOR_SIZE, index, version);
            prop_assert!(matches(&b, index, version));
            prop_assert_eq!(read_stamp(&b), Some((index, version)));
            let i = at.index(b.len());
            b[i] ^= 1 << bit;
            prop_assert!(!matches(&b, index, version));
        }

        #[test]
        fn other_stamps_do_not_match(index: u64, version: u64, other: u64) {
            let b = block(SECTOR_SIZE, index, version);
            prop_assume!(other != version);
            prop_assert!(!matches(&b, index, other));
            prop_assume!(other != index);
            prop_assert!(!matches(&b, other, version));
        }

        #[test]
        fn digest_changes_with_any_one_version(
            versions in prop::collection::vec(any::<u64>(), 1..64),
            at: prop::sample::Index,
            delta in 1u64..,
        ) {
            let pairs = |v: &[u64]| -> Vec<(u64, u64)> {
                v.iter().enumerate().map(|(i, v)| (i as u64, *v)).collect()
            };
            let mut changed = versions.clone();
            let i = at.index(changed.len());
            changed[i] = changed[i].wrapping_add(delta);
            prop_assert_ne!(
                versions_digest(pairs(&versions)),
                versions_digest(pairs(&changed))
            );
        }
    }
}
