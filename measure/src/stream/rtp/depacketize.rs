//! Depacketization: one frame's payloads back to its NAL units, FU-A runs
//! joined only across consecutive seqs, as the [RTP module](super)
//! defines.

use super::h264::{parse_h264, H264Payload};

/// The NAL units of one frame, from [`depacketize`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Depacketized {
    /// Every NAL unit recovered whole, header included, in order.
    pub nals: Vec<Vec<u8>>,
    /// No fragment or payload was lost or malformed (see the [module
    /// documentation](super)); the frame may still miss whole packets.
    pub whole: bool,
}

/// Depacketizes one frame's packets, given as `(extended seq, payload)` in
/// increasing seq order, as the [module documentation](super) defines.
/// Never joins fragments across a missing seq; never panics.
pub fn depacketize(packets: &[(i64, &[u8])]) -> Depacketized {
    let mut out = Depacketized {
        nals: Vec::new(),
        whole: true,
    };
    // The open FU-A run: last seq, rebuilt header, bytes so far.
    let mut run: Option<(i64, u8, Vec<u8>)> = None;
    for &(seq, payload) in packets {
        let p = parse_h264(payload);
        if !matches!(p, H264Payload::FuA { start: false, .. }) && run.take().is_some() {
            out.whole = false; // a run cut short
        }
        match p {
            H264Payload::Single(nal) => out.nals.push(nal.to_vec()),
            H264Payload::StapA { nals, truncated } => {
                out.nals.extend(nals.into_iter().map(<[u8]>::to_vec));
                out.whole &= !truncated;
            }
            H264Payload::FuA {
                start: true,
                nal_header,
                fragment,
                ..
            } => {
                let mut nal = Vec::with_capacity(fragment.len() + 1);
                nal.push(nal_header);
                nal.extend_from_slice(fragment);
                run = Some((seq, nal_header, nal));
            }
            H264Payload::FuA {
                start: false,
                end,
                nal_header,
                fragment,
            } => match run.take() {
                Some((last, h, mut nal)) if last.checked_add(1) == Some(seq) && h == nal_header => {
                    nal.extend_from_slice(fragment);
                    if end {
                        out.nals.push(nal);
                    } else {
                        run = Some((seq, h, nal));
                    }
                }
                _ => out.whole = false, // no start before it: dropped
            },
            H264Payload::Malformed => out.whole = false,
        }
    }
    if run.is_some() {
        out.whole = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fu_a, nal};
    use super::*;

    #[test]
    fn fragments_are_never_joined_across_a_loss() {
        let n = nal(5, 50, 9);
        let frags = fu_a(&n, 10);
        assert_eq!(frags.len(), 5);
        let all: Vec<(i64, &[u8])> = frags
            .iter()
            .enumerate()
            .map(|(i, f)| (i as i64, f.as_slice()))
            .collect();
        assert_eq!(
            depacketize(&all),
            Depacketized {
                nals: vec![n.clone()],
                whole: true
            }
        );
        // Middle missing: no NAL at all, not a shorter one.
        let mut holed = all.clone();
        holed.remove(2);
        assert_eq!(
            depacketize(&holed),
            Depacketized {
                nals: vec![],
                whole: false
            }
        );
        // Start or end missing.
        assert!(!depacketize(&all[1..]).whole);
        assert!(depacketize(&all[1..]).nals.is_empty());
        assert!(!depacketize(&all[..4]).whole);
        // Two runs interleaved by seq gaps: the second start begins afresh.
        let other = nal(1, 30, 8);
        let f2 = fu_a(&other, 10);
        let mut mixed: Vec<(i64, &[u8])> = vec![(0, frags[0].as_slice()), (1, frags[1].as_slice())];
        mixed.extend(
            f2.iter()
                .enumerate()
                .map(|(i, f)| (10 + i as i64, f.as_slice())),
        );
        let d = depacketize(&mixed);
        assert_eq!((d.nals, d.whole), (vec![other], false));
    }
}
