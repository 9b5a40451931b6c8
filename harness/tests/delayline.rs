//! The delay line on real traffic: three namespaces of its own,
//! `A --veth-- W --veth-- B`, the line in W between its two veths, and
//! ping and TCP between A and B. Nothing leaves these namespaces (no
//! default routes; 198.19.200.0/24 only).
//!
//! Run it under the lab lock, never beside the VM tests:
//! `flock /tmp/lmig-lab.lock cargo test -p harness --test delayline`.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a panic with its message is the failure report"
)]

use harness::backend::local::lab::delayline::{DelayLine, DirectionStats, LinkShape, LinkStats};
use harness::backend::local::lab::netns::{self, in_netns, ip, ip_in};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests measure time and throughput on two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PREFIX: &str = "lmig-dltest-";
const ADDR_A: &str = "198.19.200.1";
const ADDR_B: &str = "198.19.200.2";
const MAC_A: &str = "02:64:6c:00:00:01";
const MAC_B: &str = "02:64:6c:00:00:02";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the delay-line test makes namespaces: run it as root"
    );
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The three namespaces; dropping it deletes them (and with them the veths).
struct Topo {
    a: String,
    w: String,
    b: String,
    created: Vec<String>,
}

impl Topo {
    fn new(tag: &str, mtu: u32) -> Topo {
        sweep_stale();
        let base = format!("{PREFIX}{}-{tag}", std::process::id());
        let mut t = Topo {
            a: format!("{base}-a"),
            w: format!("{base}-w"),
            b: format!("{base}-b"),
            created: Vec::new(),
        };
        for ns in [t.a.clone(), t.w.clone(), t.b.clone()] {
            ip(&["netns", "add", &ns]).unwrap();
            t.created.push(ns.clone());
            ip_in(&ns, &["link", "set", "lo", "up"]).unwrap();
        }
        let mtu = mtu.to_string();
        for (host, wend, addr, mac) in [(&t.a, "wa", ADDR_A, MAC_A), (&t.b, "wb", ADDR_B, MAC_B)] {
            let veth = [
                "link", "add", "eth0", "address", mac, "mtu", &mtu, "type", "veth", "peer", "name",
                wend, "mtu", &mtu, "netns", &t.w,
            ];
            ip_in(host, &veth).unwrap();
            ip_in(host, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"]).unwrap();
            ip_in(host, &["link", "set", "eth0", "up"]).unwrap();
            ip_in(&t.w, &["link", "set", wend, "up"]).unwrap();
        }
        t
    }

    fn line(&self, shape: LinkShape) -> DelayLine {
        DelayLine::start(&self.w, "wa", "wb", shape, 1).unwrap()
    }

    /// Fixed neighbour entries, so no ARP exchange (which loss would
    /// delay by a second) stands between a test and its pings.
    fn pin_neighbours(&self) {
        ip_in(
            &self.a,
            &[
                "neigh",
                "replace",
                ADDR_B,
                "lladdr",
                MAC_B,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
        .unwrap();
        ip_in(
            &self.b,
            &[
                "neigh",
                "replace",
                ADDR_A,
                "lladdr",
                MAC_A,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )
        .unwrap();
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("warning: cannot delete {ns}: {e:#}");
            }
        }
    }
}

/// Deletes namespaces earlier runs of this test left behind (killed ones):
/// those whose PID, part of the name, no longer runs.
fn sweep_stale() {
    for ns in netns::list() {
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// What one ping run gave: each reply's RTT (ms), and the counts.
struct Pings {
    rtts: Vec<f64>,
    sent: u64,
    received: u64,
}

fn ping(ns: &str, dst: &str, count: u32, interval: &str) -> Pings {
    let deadline = (count as f64 * interval.parse::<f64>().unwrap() + 5.0)
        .ceil()
        .to_string();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            interval,
        ])
        .args(["-W", "1", "-w", &deadline, dst])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rtts = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    let summary =
        measure::tools::ping::parse_ping(&text).unwrap_or_else(|e| panic!("{e:?}: {text}"));
    Pings {
        rtts,
        sent: summary.transmitted,
        received: summary.received,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// CPU time (s) the delay line's threads have used so far: the threads
/// of this process named `dlrx-*`/`dltx-*`.
fn line_cpu_s() -> f64 {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|s| s.contains("(dlrx-") || s.contains("(dltx-"))
        .filter_map(|s| {
            let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

/// Live threads of this process that belong to a delay line (a thread
/// that has exited but is not yet reaped, state Z or X, does not count).
fn line_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|s| s.contains("(dlrx-") || s.contains("(dltx-"))
        .filter(|s| {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        })
        .count()
}

/// The delay-line thread count once it settles at `want`, or what it
/// still is after a second. A joined thread can linger in /proc/self/task
/// for a moment after join() returns (the kernel reaps it after waking the
/// joiner); a leaked thread lingers for good.
fn line_threads_settled(want: usize) -> usize {
    let t = Instant::now();
    loop {
        let n = line_threads();
        if n == want || t.elapsed() > Duration::from_secs(1) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One direction's counters, for a test's printed line.
fn direction_line(name: &str, d: &DirectionStats) -> String {
    format!(
        "{name} frames {} ({:.0} Mbit/s peak bin), dropped by queue {} kernel {} overrun {} error {}, \
         GSO split {} whole {}, late mean {} ns max {} ns, {} over 1 ms",
        d.frames,
        d.peak_bin_bytes() as f64 * 8.0 / 0.1 / 1e6,
        d.dropped_queue,
        d.dropped_kernel,
        d.dropped_overrun,
        d.dropped_error,
        d.gso_split,
        d.gso_whole,
        d.late_mean_ns,
        d.late_max_ns,
        d.late_over_1ms
    )
}

/// A TCP bulk transfer A -> B for `secs`: the receiver's goodput in Mbit/s
/// after the first half second (slow start), and the delay line's CPU
/// share of one core meanwhile.
fn bulk(topo: &Topo, secs: f64) -> (f64, f64) {
    let to: SocketAddr = format!("{ADDR_B}:5001").parse().unwrap();
    let listener = in_netns(&topo.b, move || TcpListener::bind(to)).unwrap();
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut samples = vec![(Instant::now(), 0u64)];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
            samples.push((Instant::now(), total));
        }
        samples
    });
    let mut sender = in_netns(&topo.a, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .unwrap();
    sender
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let chunk = vec![0x5au8; 1 << 16];
    let start = Instant::now();
    let cpu0 = line_cpu_s();
    while start.elapsed().as_secs_f64() < secs {
        sender.write_all(&chunk).unwrap();
    }
    let cpu = (line_cpu_s() - cpu0) / start.elapsed().as_secs_f64();
    drop(sender);
    let samples = receiver.join().unwrap();
    let t0 = samples[0].0 + Duration::from_millis(500);
    let from = samples.iter().find(|(t, _)| *t >= t0).unwrap();
    let to = samples.last().unwrap();
    let mbit = (to.1 - from.1) as f64 * 8.0 / (to.0 - from.0).as_secs_f64() / 1e6;
    (mbit, cpu)
}

fn stop_promptly(line: DelayLine) -> LinkStats {
    let t = Instant::now();
    let stats = line.stop();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(150), "stop took {took:?}");
    assert_eq!(
        line_threads_settled(0),
        0,
        "a delay-line thread outlived stop()"
    );
    stats
}

/// Runs `attempt` up to three times and returns the first result whose
/// fidelity check passes. The hard guarantees (never below the delay,
/// never above the rate) are asserted inside each attempt; how *close* the
/// line comes to the ideal depends on the host giving its threads a core,
/// and a shared CI machine sometimes does not for seconds at a time (CI
/// saw the SCHED_FIFO threads run 9 ms late on average once). A broken
/// line fails all three.
fn within_three_tries<T>(what: &str, mut attempt: impl FnMut() -> (T, Result<(), String>)) -> T {
    let mut misses = Vec::new();
    for _ in 0..3 {
        let (value, check) = attempt();
        match check {
            Ok(()) => return value,
            Err(miss) => {
                println!("{what}: missed ({miss}), trying again");
                misses.push(miss);
            }
        }
    }
    panic!("{what}: missed three times: {misses:?}");
}

#[test]
fn delay_shows_in_the_ping_rtt_and_an_unshaped_line_adds_almost_nothing() {
    let _g = serial();
    let topo = Topo::new("ping", 1500);
    within_three_tries("unshaped RTT", || {
        // Unshaped; the first ping also resolves ARP through the line.
        let line = topo.line(LinkShape::default());
        let p = ping(&topo.a, ADDR_B, 30, "0.02");
        let stats = stop_promptly(line);
        assert_eq!(p.received, p.sent, "unshaped pings lost");
        assert!(
            stats.a_to_b.frames >= 30 && stats.b_to_a.frames >= 30,
            "{stats:?}"
        );
        assert!(
            stats.realtime,
            "the line's threads did not get SCHED_FIFO as root"
        );
        let bare = median(&p.rtts[1..]);
        println!("unshaped RTT: median {bare:.3} ms, all {:?}", p.rtts);
        // 0.2-0.4 ms here on a quiet host; CI's host, busy after the
        // Debian guest's test, held it at 1.0-1.1 ms for three tries (the
        // line's threads woke 1.1-1.3 ms late). A line that polled or
        // batched would add whole milliseconds on every frame.
        let check = (bare < 3.0).then_some(()).ok_or(format!(
            "median {bare} ms, late mean {} ns",
            stats.a_to_b.late_mean_ns
        ));
        ((), check)
    });

    within_three_tries("20 ms each way", || {
        let line = topo.line(LinkShape {
            delay_ms: 20.0,
            ..Default::default()
        });
        let p = ping(&topo.a, ADDR_B, 30, "0.05");
        let stats = stop_promptly(line);
        assert_eq!(p.received, p.sent, "delayed pings lost");
        let rtts = &p.rtts[1..];
        let (mid, lo, hi) = (
            median(rtts),
            rtts.iter().copied().fold(f64::MAX, f64::min),
            rtts.iter().copied().fold(0.0, f64::max),
        );
        println!("20 ms each way: RTT min {lo:.3} median {mid:.3} max {hi:.3} ms");
        assert!(lo >= 40.0, "an RTT below twice the delay: {lo}");
        let check = ((40.0..43.0).contains(&mid) && hi < 50.0)
            .then_some(())
            .ok_or(format!(
                "median {mid} ms, max {hi} ms, late mean {} ns",
                stats.a_to_b.late_mean_ns
            ));
        ((), check)
    });
}

#[test]
fn a_rate_limit_holds_tcp_near_the_rate_and_no_bin_exceeds_it() {
    let _g = serial();
    let topo = Topo::new("rate", 1500);
    within_three_tries("100 Mbit/s", || {
        let line = topo.line(LinkShape {
            rate_mbit: Some(100.0),
            ..Default::default()
        });
        let (mbit, cpu) = bulk(&topo, 4.0);
        let stats = stop_promptly(line);
        let d = &stats.a_to_b;
        println!(
            "100 Mbit/s: TCP goodput {mbit:.1} Mbit/s, delay line CPU {:.0} % of a core; {}",
            cpu * 100.0,
            direction_line("a->b", d)
        );
        assert!(mbit <= 100.0, "{mbit} Mbit/s through a 100 Mbit/s line");
        let per_bin = 100e6 / 8.0 * stats.bin_ns as f64 / 1e9;
        for (i, bin) in d.bins.iter().enumerate() {
            assert!(
                bin.bytes as f64 <= per_bin + 1514.0,
                "bin {i} carried {} bytes, the rate allows {per_bin}",
                bin.bytes
            );
        }
        assert_eq!(d.dropped_error + d.dropped_overrun, 0, "{d:?}");
        let full = d
            .bins
            .iter()
            .filter(|b| b.bytes as f64 > 0.9 * per_bin)
            .count();
        // The ceiling is 95.6 Mbit/s (headers); on this 2-core machine the
        // line's own threads share the cores with both TCP ends and give
        // 88-96 Mbit/s, so "near" is 85 % of the rate here.
        let check = (mbit >= 85.0 && full >= 25).then_some(()).ok_or(format!(
            "{mbit:.1} Mbit/s, {full} bins over 90 % of the rate, late mean {} ns",
            d.late_mean_ns
        ));
        ((), check)
    });
}

#[test]
fn loss_drops_pings_at_the_rate_it_was_given_in_each_direction() {
    let _g = serial();
    let topo = Topo::new("loss", 1500);
    topo.pin_neighbours();
    let line = topo.line(LinkShape {
        loss_pct: 10.0,
        ..Default::default()
    });
    let p = ping(&topo.a, ADDR_B, 2000, "0.002");
    let stats = stop_promptly(line);
    let lost = 1.0 - p.received as f64 / p.sent as f64;
    let share = |d: &DirectionStats| d.dropped_loss as f64 / (d.frames + d.dropped_loss) as f64;
    let (ab, ba) = (share(&stats.a_to_b), share(&stats.b_to_a));
    println!(
        "10 % loss each way: {:.1} % of {} pings lost (expected 19 %: request or reply); frames lost a->b {:.1} % b->a {:.1} %",
        lost * 100.0,
        p.sent,
        ab * 100.0,
        ba * 100.0
    );
    // Each ping needs its request and its reply: 1 - 0.9^2 = 19 % lost.
    assert!((0.13..0.25).contains(&lost), "{lost}");
    assert!(
        (0.07..0.13).contains(&ab) && (0.07..0.13).contains(&ba),
        "{ab} {ba}"
    );
}

#[test]
fn unlimited_throughput_is_well_above_the_low_bar() {
    let _g = serial();
    for mtu in [9000, 1500] {
        let topo = Topo::new(&format!("max{mtu}"), mtu);
        let line = topo.line(LinkShape::default());
        let (mbit, cpu) = bulk(&topo, 3.0);
        let stats = stop_promptly(line);
        let d = &stats.a_to_b;
        println!(
            "unlimited, MTU {mtu}: TCP goodput {mbit:.0} Mbit/s, delay line CPU {:.0} % of a core; {}",
            cpu * 100.0,
            direction_line("a->b", d)
        );
        assert!(mbit > 200.0, "MTU {mtu}: {mbit} Mbit/s");
        assert_eq!(d.dropped_error, 0, "{:?}", d.first_error);
    }
}

#[test]
fn vlan_tagged_frames_cross_with_their_tag() {
    let _g = serial();
    let topo = Topo::new("vlan", 1500);
    for (ns, addr) in [(&topo.a, "198.19.201.1/24"), (&topo.b, "198.19.201.2/24")] {
        let vlan = [
            "link", "add", "link", "eth0", "name", "eth0.7", "type", "vlan", "id", "7",
        ];
        if let Err(e) = ip_in(ns, &vlan) {
            // Some kernels (the lab VM's) are built without 802.1Q.
            assert!(format!("{e:#}").contains("Unknown device type"), "{e:#}");
            println!("skipped: this kernel has no VLAN devices ({e:#})");
            return;
        }
        ip_in(ns, &["addr", "add", addr, "dev", "eth0.7"]).unwrap();
        ip_in(ns, &["link", "set", "eth0.7", "up"]).unwrap();
    }
    let line = topo.line(LinkShape::default());
    let p = ping(&topo.a, "198.19.201.2", 5, "0.05");
    drop(line);
    assert_eq!(
        line_threads_settled(0),
        0,
        "a delay-line thread outlived its drop"
    );
    assert_eq!((p.sent, p.received), (5, 5));
}

#[test]
fn errors_name_what_is_missing_and_a_dropped_line_leaves_no_thread() {
    let _g = serial();
    let topo = Topo::new("err", 1500);
    let e = DelayLine::start(&topo.w, "wa", "nosuch", LinkShape::default(), 0).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains(&topo.w) && text.contains("nosuch"), "{text}");
    let e = DelayLine::start("lmig-dltest-none", "wa", "wb", LinkShape::default(), 0).unwrap_err();
    assert!(format!("{e:#}").contains("lmig-dltest-none"), "{e:#}");
    let bad = LinkShape {
        loss_pct: 120.0,
        ..Default::default()
    };
    let e = DelayLine::start(&topo.w, "wa", "wb", bad, 0).unwrap_err();
    assert!(format!("{e:#}").contains("loss_pct"), "{e:#}");
    assert_eq!(line_threads(), 0);
    // Dropping a running line ends its threads as stop() does.
    let line = topo.line(LinkShape::default());
    // A thread takes its name once it runs: give them a moment.
    assert_eq!(line_threads_settled(4), 4);
    let t = Instant::now();
    drop(line);
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        line_threads_settled(0),
        0,
        "a delay-line thread outlived its drop"
    );
}
