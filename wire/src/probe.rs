//! The UDP probe packet.
//!
//! Layout (all integers big-endian), [`HEADER_LEN`] bytes, then optional
//! padding up to the size the prober chose:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4 | magic `LMPR` |
//! | 4  | 1 | version ([`VERSION`]) |
//! | 5  | 1 | kind: 1 request, 2 reply |
//! | 6  | 2 | reserved, zero |
//! | 8  | 8 | session id (random per prober run) |
//! | 16 | 8 | sequence number (64-bit: never wraps, so loss accounting survives any outage) |
//! | 24 | 8 | client send time, ns since the Unix epoch (client's CLOCK_REALTIME) |
//! | 32 | 8 | reflector receive time, ns (guest's CLOCK_REALTIME; untrusted, stops while the VM is paused) |
//! | 40 | 8 | reflector send time, ns (guest clock) |
//! | 48 | 8 | reflector receive count: requests of this session the reflector has received, this one included |
//!
//! The receive count lets the client tell the two directions apart: if the
//! replies to probes `i` and `j` carry counts that differ by one, nothing
//! sent between them reached the guest, so the client-to-guest outage was
//! `send(j) - send(i)` on the client's own clock.

use thiserror::Error;

/// The four bytes every probe packet starts with.
pub const MAGIC: [u8; 4] = *b"LMPR";
/// The version of this layout.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header; a packet may be longer (padding).
pub const HEADER_LEN: usize = 56;

/// Whether a packet goes to the reflector or comes back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client to reflector.
    Request,
    /// Reflector to client.
    Reply,
}

/// One probe packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePacket {
    /// Request or reply.
    pub kind: Kind,
    /// Random id of the prober run, so replies to an old run are recognised.
    pub session: u64,
    /// Sequence number, starting at 0 for each session.
    pub seq: u64,
    /// Client send time, ns since the Unix epoch.
    pub client_send_ns: i64,
    /// Reflector receive time (guest clock), 0 in a request.
    pub reflector_rx_ns: i64,
    /// Reflector send time (guest clock), 0 in a request.
    pub reflector_tx_ns: i64,
    /// Requests of this session the reflector had received, 0 in a request.
    pub reflector_rx_count: u64,
}

/// Why a datagram is not a probe packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Shorter than the header.
    #[error("probe packet truncated: {len} bytes, the header alone is {HEADER_LEN}")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Does not start with [`MAGIC`]: a foreign packet.
    #[error("not a probe packet (bad magic)")]
    BadMagic,
    /// A layout version this build does not know.
    #[error("probe packet version {0} is not supported (this build speaks {VERSION})")]
    BadVersion(u8),
    /// Neither request nor reply.
    #[error("probe packet kind {0} is unknown")]
    BadKind(u8),
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl ProbePacket {
    /// A request as the client sends it.
    pub fn request(session: u64, seq: u64, client_send_ns: i64) -> Self {
        Self {
            kind: Kind::Request,
            session,
            seq,
            client_send_ns,
            reflector_rx_ns: 0,
            reflector_tx_ns: 0,
            reflector_rx_count: 0,
        }
    }

    /// Writes the header into the start of `buf` and returns [`HEADER_LEN`].
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`]: a programming error, never
    /// input-dependent.
    pub fn encode(&self, buf: &mut [u8]) -> usize {
        let b = &mut buf[..HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = match self.kind {
            Kind::Request => 1,
            Kind::Reply => 2,
        };
        b[6..8].fill(0);
        b[8..16].copy_from_slice(&self.session.to_be_bytes());
        b[16..24].copy_from_slice(&self.seq.to_be_bytes());
        b[24..32].copy_from_slice(&self.client_send_ns.to_be_bytes());
        b[32..40].copy_from_slice(&self.reflector_rx_ns.to_be_bytes());
        b[40..48].copy_from_slice(&self.reflector_tx_ns.to_be_bytes());
        b[48..56].copy_from_slice(&self.reflector_rx_count.to_be_bytes());
        HEADER_LEN
    }

    /// Parses the header of a datagram; padding after it is ignored.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() < 4 || buf[0..4] != MAGIC {
            return if buf.len() < HEADER_LEN && MAGIC.starts_with(buf) {
                Err(DecodeError::Truncated { len: buf.len() })
            } else if buf.len() >= 4 {
                Err(DecodeError::BadMagic)
            } else {
                Err(DecodeError::Truncated { len: buf.len() })
            };
        }
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated { len: buf.len() });
        }
        if buf[4] != VERSION {
            return Err(DecodeError::BadVersion(buf[4]));
        }
        let kind = match buf[5] {
            1 => Kind::Request,
            2 => Kind::Reply,
            k => return Err(DecodeError::BadKind(k)),
        };
        Ok(Self {
            kind,
            session: be_u64(buf, 8),
            seq: be_u64(buf, 16),
            client_send_ns: be_u64(buf, 24) as i64,
            reflector_rx_ns: be_u64(buf, 32) as i64,
            reflector_tx_ns: be_u64(buf, 40) as i64,
            reflector_rx_count: be_u64(buf, 48),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let p = ProbePacket {
            kind: Kind::Reply,
            session: 0xdead_beef_0123_4567,
            seq: u64::MAX - 3,
            client_send_ns: 1_700_000_000_123_456_789,
            reflector_rx_ns: -5,
            reflector_tx_ns: 42,
            reflector_rx_count: 99,
        };
        let mut buf = [0u8; 200];
        assert_eq!(p.encode(&mut buf), HEADER_LEN);
        assert_eq!(ProbePacket::decode(&buf).unwrap(), p);
        assert_eq!(ProbePacket::decode(&buf[..HEADER_LEN]).unwrap(), p);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert_eq!(
            ProbePacket::decode(&[]),
            Err(DecodeError::Truncated { len: 0 })
        );
        assert_eq!(
            ProbePacket::decode(b"LM"),
            Err(DecodeError::Truncated { len: 2 })
        );
        assert_eq!(
            ProbePacket::decode(b"GET / HTTP/1.1\r\n"),
            Err(DecodeError::BadMagic)
        );
        let mut buf = [0u8; HEADER_LEN];
        ProbePacket::request(1, 2, 3).encode(&mut buf);
        assert_eq!(
            ProbePacket::decode(&buf[..HEADER_LEN - 1]),
            Err(DecodeError::Truncated {
                len: HEADER_LEN - 1
            })
        );
        buf[4] = 9;
        assert_eq!(ProbePacket::decode(&buf), Err(DecodeError::BadVersion(9)));
        buf[4] = VERSION;
        buf[5] = 7;
        assert_eq!(ProbePacket::decode(&buf), Err(DecodeError::BadKind(7)));
    }

    #[test]
    fn every_prefix_of_every_byte_pattern_decodes_without_panic() {
        // A cheap exhaustive-ish sweep standing in for a fuzzer: every
        // length up to the header, with each byte value in each position.
        let mut base = [0u8; HEADER_LEN + 4];
        ProbePacket::request(7, 8, 9).encode(&mut base);
        for len in 0..base.len() {
            for pos in 0..len {
                for v in [0u8, 1, 2, 0x4c, 0xff] {
                    let mut b = base;
                    b[pos] = v;
                    let _ = ProbePacket::decode(&b[..len]);
                }
            }
        }
    }
}
