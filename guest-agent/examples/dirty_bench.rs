//! Measures the dirty workload on this machine: for each rate, runs it for
//! a few seconds and prints the per-second rates, the worst second's error
//! against the target, and the maximum reached; then times a full
//! verification.
//!
//! `cargo run --release -p guest-agent --example dirty_bench -- [WS_MIB]
//! [SECONDS] [THREADS] [PATTERN] [RATE...]` (rate 0: as fast as possible).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use guest_agent::workload::dirty::{DirtyParams, DirtyWorkload};
use wire::control::DirtyPattern;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ws: u64 = args.first().map_or(64, |a| a.parse().unwrap());
    let secs: u64 = args.get(1).map_or(3, |a| a.parse().unwrap());
    let threads: u32 = args.get(2).map_or(1, |a| a.parse().unwrap());
    let pattern: DirtyPattern = args.get(3).map_or(DirtyPattern::Sequential, |a| {
        serde_json::from_str(&format!("\"{a}\"")).unwrap()
    });
    let rates: Vec<f64> = if args.len() > 4 {
        args[4..].iter().map(|a| a.parse().unwrap()).collect()
    } else {
        vec![0.0, 1.0, 16.0, 128.0, 512.0]
    };
    println!("working set {ws} MiB, {threads} thread(s), {pattern:?}, {secs} s per rate");
    for rate in rates {
        let p = DirtyParams::new(ws, rate, pattern, 0.1, 0.9, threads).unwrap();
        let t = Instant::now();
        let mut w = DirtyWorkload::start("bench", p).unwrap();
        let pretouch = t.elapsed();
        let v = w.verifier();
        std::thread::sleep(Duration::from_millis(secs * 1000 + 100));
        let t = Instant::now();
        let check = v.verify().unwrap();
        let verify = t.elapsed();
        let t = Instant::now();
        let r = w.stop("bench");
        let stop = t.elapsed();
        let worst = r
            .per_second_mib_s
            .iter()
            .map(|s| {
                if rate > 0.0 {
                    (s - rate).abs() / rate * 100.0
                } else {
                    0.0
                }
            })
            .fold(0.0, f64::max);
        println!(
            "rate {rate:>7.1}: per second {:?} worst err {worst:.2}% max_reachable {:?} | pretouch {:.0} ms, verify {:.0} ms ({} pages, {} bad), stop+verify {:.0} ms, final bad {}",
            r.per_second_mib_s.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(),
            r.max_reachable_mib_s.map(|x| (x * 10.0).round() / 10.0),
            pretouch.as_secs_f64() * 1e3,
            verify.as_secs_f64() * 1e3,
            check.checked_pages,
            check.corrupted_pages,
            stop.as_secs_f64() * 1e3,
            r.integrity.map_or(u64::MAX, |i| i.corrupted_pages),
        );
    }
}
