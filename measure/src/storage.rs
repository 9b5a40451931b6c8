//! The host's check of a disk the guest agent writes stamped blocks to
//! ([`wire::disk_block`]): pure, on the bytes the host read from the image.
//!
//! What must be equal when: while the agent holds its writes (each one
//! acknowledged and flushed), the image the VM now runs on must carry, in
//! every block of the region, the stamp of the last write the agent saw
//! acknowledged. The agent's table of those versions is summed up in its
//! digest; the host computes the same digest from the image's own stamps.
//! Equal digests and no bad block mean no acknowledged write was lost or
//! left stale by the migrations so far, whatever the agent's own reads say.

use crate::migration::record::HostDiskCheck;
use wire::disk_block::{matches, read_stamp, versions_digest};

/// At most this many bad blocks are named.
const FIRST_BAD: usize = 16;

/// Checks `data` (the region as read from the image, `block_size` bytes a
/// block) against the agent's digest.
pub fn host_check(data: &[u8], block_size: usize, agent_digest: Option<u64>) -> HostDiskCheck {
    let mut versions = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0u64;
    for (i, block) in data.chunks(block_size.max(1)).enumerate() {
        let i = i as u64;
        let good = block.len() == block_size
            && read_stamp(block)
                .is_some_and(|(index, version)| index == i && matches(block, i, version));
        let version = if good {
            read_stamp(block).map_or(u64::MAX, |(_, v)| v)
        } else {
            bad_count += 1;
            if bad.len() < FIRST_BAD {
                bad.push(i);
            }
            u64::MAX
        };
        versions.push((i, version));
    }
    let image_digest = versions_digest(versions.iter().copied());
    HostDiskCheck {
        blocks_checked: versions.len() as u64,
        bad_blocks: bad_count,
        first_bad: bad,
        image_digest,
        agent_digest,
        agrees: bad_count == 0 && agent_digest == Some(image_digest),
        ..HostDiskCheck::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::disk_block::fill;

    fn region(versions: &[u64], bs: usize) -> Vec<u8> {
        let mut data = vec![0u8; versions.len() * bs];
        for (i, v) in versions.iter().enumerate() {
            fill(&mut data[i * bs..(i + 1) * bs], i as u64, *v);
        }
        data
    }

    #[test]
    fn the_image_agrees_only_with_the_table_it_carries() {
        let bs = 4096;
        let v = [0, 3, 1, 7];
        let data = region(&v, bs);
        let digest = versions_digest(v.iter().enumerate().map(|(i, v)| (i as u64, *v)));
        let ok = host_check(&data, bs, Some(digest));
        assert!(
            ok.agrees && ok.bad_blocks == 0 && ok.blocks_checked == 4,
            "{ok:?}"
        );
        // A stale block: the image has version 6 where the agent wrote 7.
        let stale = region(&[0, 3, 1, 6], bs);
        let c = host_check(&stale, bs, Some(digest));
        assert!(!c.agrees && c.bad_blocks == 0, "{c:?}");
        // A torn block: its stamp is there but not its content.
        let mut torn = data.clone();
        torn[bs + 100] ^= 0xff;
        let c = host_check(&torn, bs, Some(digest));
        assert_eq!(
            (c.bad_blocks, c.first_bad.clone(), c.agrees),
            (1, vec![1], false)
        );
        // Zeros (never written) and a block at the wrong place are bad too.
        let mut moved = data.clone();
        moved.copy_within(0..bs, 2 * bs);
        assert_eq!(host_check(&moved, bs, Some(digest)).first_bad, vec![2]);
        assert_eq!(host_check(&vec![0; 2 * bs], bs, None).bad_blocks, 2);
    }
}
