//! The announce watcher on a real link: a veth pair inside a network
//! namespace this test creates (and removes, also on failure). Frames are
//! sent with pnet from one end and watched on the other; nothing leaves the
//! namespace. Needs root (namespaces, packet sockets): without it the tests
//! fail saying so rather than pass without testing anything.
#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use client_probe::announce::{
    classify, AnnounceKind, AnnounceWatch, ETHERTYPE_ARP, ETHERTYPE_RARP,
};
use nix::sched::{setns, CloneFlags};
use pnet_datalink::{Channel, Config, MacAddr};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherType, EtherTypes, MutableEthernetPacket};
use std::net::Ipv4Addr;
use wire::clock::realtime_ns;

/// The watched end and the sending end of the veth pair.
const WATCHED: &str = "ann-w";
const SENDER: &str = "ann-s";
/// The guest MAC the frames announce.
const GUEST_MAC: MacAddr = MacAddr(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
/// Lab addresses (198.18.0.0/15 only).
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace holding a veth pair, removed on drop (which takes
/// the veth pair with it), also when the test fails.
struct Lab {
    ns: String,
}

impl Lab {
    fn create(tag: &str) -> Lab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the announce tests need root (network namespaces, packet sockets)"
        );
        let ns = format!("lmig-t-ann-{}{tag}", std::process::id());
        // A namespace of an earlier run with the same pid: remove it first.
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        // The guard exists before anything is created, so whatever the
        // next steps manage to create is removed.
        let lab = Lab { ns };
        ip(&["netns", "add", &lab.ns]);
        ip(&[
            "-n", &lab.ns, "link", "add", WATCHED, "type", "veth", "peer", "name", SENDER,
        ]);
        ip(&["-n", &lab.ns, "link", "set", WATCHED, "up"]);
        ip(&["-n", &lab.ns, "link", "set", SENDER, "up"]);
        lab
    }

    /// Runs `f` on a thread that has entered the namespace; the rest of the
    /// test process stays where it is.
    fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap();
                setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = Command::new("ip").args(["netns", "del", &self.ns]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("could not remove network namespace {}: {out:?}", self.ns);
        }
    }
}

/// An Ethernet frame built with pnet: broadcast, from `src`.
fn ethernet(src: MacAddr, ethertype: EtherType, body: &[u8], len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len.max(14 + body.len())];
    let mut eth = MutableEthernetPacket::new(&mut buf).unwrap();
    eth.set_destination(MacAddr::broadcast());
    eth.set_source(src);
    eth.set_ethertype(ethertype);
    eth.set_payload(body);
    buf
}

/// An ARP/RARP body for Ethernet and IPv4, built with pnet.
fn arp_body(op: ArpOperation, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 28];
    let mut arp = MutableArpPacket::new(&mut buf).unwrap();
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(op);
    arp.set_sender_hw_addr(sha);
    arp.set_sender_proto_addr(spa);
    arp.set_target_hw_addr(tha);
    arp.set_target_proto_addr(tpa);
    buf
}

/// QEMU's self-announce as `announce_self_create` (net/announce.c) builds
/// it: RARP request-reverse, guest MAC as source, sender and target
/// hardware address, protocol addresses 0, zero-padded to 60 bytes.
fn qemu_rarp(mac: MacAddr) -> Vec<u8> {
    let body = arp_body(
        ArpOperation(3),
        mac,
        Ipv4Addr::UNSPECIFIED,
        mac,
        Ipv4Addr::UNSPECIFIED,
    );
    ethernet(mac, EtherTypes::Rarp, &body, 60)
}

/// Sends `frames` from `ifname` (in the calling thread's namespace).
fn send_all(ifname: &str, frames: &[Vec<u8>]) {
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == ifname)
        .unwrap();
    let config = Config {
        promiscuous: false,
        ..Config::default()
    };
    let Channel::Ethernet(mut tx, _rx) = pnet_datalink::channel(&iface, config).unwrap() else {
        panic!("no Ethernet channel on {ifname}");
    };
    for f in frames {
        tx.send_to(f, None).unwrap().unwrap();
    }
}

#[test]
fn qemu_rarp_matches_qemu_byte_layout() {
    let f = qemu_rarp(GUEST_MAC);
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut want = vec![0xff; 6];
    want.extend_from_slice(&mac);
    want.extend_from_slice(&ETHERTYPE_RARP.to_be_bytes());
    want.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03]);
    want.extend_from_slice(&mac);
    want.extend_from_slice(&[0; 4]);
    want.extend_from_slice(&mac);
    want.extend_from_slice(&[0; 4]);
    want.resize(60, 0);
    assert_eq!(f, want);
    assert_eq!(
        classify(&f).unwrap(),
        Some((AnnounceKind::Rarp, "52:54:00:12:34:56".to_owned(), None))
    );
}

#[test]
fn sees_announces_on_a_veth_and_ignores_the_rest() {
    let lab = Lab::create("");

    let watch = lab
        .run_inside(|| AnnounceWatch::start(WATCHED))
        .unwrap_or_else(|e| panic!("{e:#}"));

    let client_mac = MacAddr(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc);
    let rarp = qemu_rarp(GUEST_MAC);
    let garp = ethernet(
        GUEST_MAC,
        EtherTypes::Arp,
        &arp_body(
            ArpOperations::Request,
            GUEST_MAC,
            GUEST_IP,
            MacAddr::zero(),
            GUEST_IP,
        ),
        0,
    );
    let ordinary = ethernet(
        client_mac,
        EtherTypes::Arp,
        &arp_body(
            ArpOperations::Request,
            client_mac,
            CLIENT_IP,
            MacAddr::zero(),
            GUEST_IP,
        ),
        0,
    );
    let short_rarp = rarp[..20].to_vec();
    assert_eq!(short_rarp[12..14], ETHERTYPE_RARP.to_be_bytes());
    let truncated_arp = garp[..24].to_vec();
    assert_eq!(truncated_arp[12..14], ETHERTYPE_ARP.to_be_bytes());
    // Another ethertype (IPv4, garbage body): not looked at, not counted.
    let ipv4 = ethernet(client_mac, EtherTypes::Ipv4, &[0xab; 30], 0);

    let before_ns = realtime_ns();
    lab.run_inside(|| {
        send_all(
            SENDER,
            &[ordinary, short_rarp, truncated_arp, ipv4, rarp, garp],
        )
    });
    let after_ns = realtime_ns();

    // Both announces within 2 s, then a little longer for anything else.
    let deadline = Instant::now() + Duration::from_secs(2);
    while watch.frames().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));

    let t = Instant::now();
    let log = watch.stop();
    let stop_took = t.elapsed();
    assert!(
        stop_took < Duration::from_secs(1),
        "stop took {stop_took:?}"
    );

    assert_eq!(log.ifname, WATCHED);
    assert_eq!(log.read_errors, 0, "{:?}", log.first_read_error);
    assert_eq!(log.frames.len(), 2, "{:#?}", log.frames);
    let r = &log.frames[0];
    assert_eq!(r.kind, AnnounceKind::Rarp);
    assert_eq!(r.mac, "52:54:00:12:34:56");
    assert_eq!(r.ip, None);
    let g = &log.frames[1];
    assert_eq!(g.kind, AnnounceKind::GratuitousArp);
    assert_eq!(g.mac, "52:54:00:12:34:56");
    assert_eq!(g.ip.as_deref(), Some("198.18.0.10"));
    for f in &log.frames {
        assert!(f.kernel_ts, "no kernel timestamp: {f:?}");
        assert!(
            (before_ns..=after_ns).contains(&f.rx_ns),
            "rx_ns {} outside the sends [{before_ns}, {after_ns}]",
            f.rx_ns
        );
    }
    assert!(r.rx_ns <= g.rx_ns);
    assert_eq!(log.other, 1, "the ordinary ARP request");
    assert_eq!(log.malformed, 2, "the short RARP and the truncated ARP");

    // Every frame with an announce ethertype is kept for the pcap.
    assert_eq!(log.raw.len(), 5);
    assert_eq!(log.raw_dropped, 0);
    let dir = std::env::temp_dir().join(format!("lmig-t-ann-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("announce.pcap");
    log.write_pcap_file(&pcap).unwrap();
    let bytes = std::fs::read(&pcap).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bytes[..4], 0xa1b2_3c4d_u32.to_le_bytes());
    let frame_bytes: usize = log.raw.iter().map(|f| f.bytes.len()).sum();
    assert_eq!(bytes.len(), 24 + 5 * 16 + frame_bytes);
}

#[test]
fn drop_stops_the_thread_promptly() {
    let lab = Lab::create("-d");
    let watch = lab
        .run_inside(|| AnnounceWatch::start(WATCHED))
        .unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(Duration::from_millis(120));
    let t = Instant::now();
    drop(watch); // joins the capture thread
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
}

#[test]
fn start_fails_naming_an_interface_missing_from_the_namespace() {
    let lab = Lab::create("-m");
    // The sender end exists in the lab namespace, not in this one.
    let err = AnnounceWatch::start(SENDER).unwrap_err();
    assert!(format!("{err:#}").contains(SENDER), "{err:#}");
    let err = lab
        .run_inside(|| AnnounceWatch::start("ann-none"))
        .unwrap_err();
    assert!(format!("{err:#}").contains("ann-none"), "{err:#}");
}
