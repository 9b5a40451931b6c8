//! Fuzz target: the stored RTP capture read back
//! (`measure::stream::pcap::read_rtp_pcap`). Never a panic; every arrival's
//! bytes are a part of the file; written back as a nanosecond raw-IPv4
//! pcap (the form the run writes), the arrivals read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use measure::stream::pcap::read_rtp_pcap;
use measure::stream::rtp::RtpArrival;

/// The arrivals as a nanosecond pcap of raw IPv4/UDP datagrams; `None`
/// when a receive time has no place in a pcap record (before 1970 or
/// past 2106) or a datagram is too big.
fn write_pcap(arrivals: &[RtpArrival]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&228u32.to_le_bytes());
    for a in arrivals {
        let sec = u32::try_from(a.rx_ns.div_euclid(1_000_000_000)).ok()?;
        let ns = a.rx_ns.rem_euclid(1_000_000_000) as u32;
        let len = 28 + a.bytes.len();
        let ip_len = u16::try_from(len).ok()?;
        out.extend_from_slice(&sec.to_le_bytes());
        out.extend_from_slice(&ns.to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        out.extend_from_slice(&ip);
        let mut udp = [0u8; 8];
        udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
        out.extend_from_slice(&udp);
        out.extend_from_slice(&a.bytes);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let kernel_ts = data.first().is_some_and(|b| b & 1 == 1);
    let Ok(arrivals) = read_rtp_pcap(data, kernel_ts) else {
        return;
    };
    let total: usize = arrivals.iter().map(|a| a.bytes.len() + 16 + 8).sum();
    assert!(24 + total <= data.len(), "more bytes out than in");
    for a in &arrivals {
        assert_eq!(a.kernel_ts, kernel_ts);
        assert!(a.rx_ns >= 0);
    }
    if let Some(pcap) = write_pcap(&arrivals) {
        let back = read_rtp_pcap(&pcap, kernel_ts).expect("our own pcap reads");
        assert_eq!(back, arrivals);
    }
});
