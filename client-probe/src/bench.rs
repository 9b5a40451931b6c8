//! `client-probe bench`: how precisely the prober keeps its schedule on
//! this machine, and what it costs, at a range of rates. The prober runs
//! against a reflector thread in this process on 127.0.0.1: figures only,
//! no pass or fail.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use client_probe::{ProbeConfig, ProbeOptions, Prober};
use measure::probe::gaps::analyze;
use measure::probe::record::ProbeRecord;
use nix::sys::resource::{getrusage, UsageWho};
use wire::probe::{Kind, ProbePacket};

/// What to measure.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Probe rates to try, per second, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,5000,10000,20000,50000"
    )]
    rates: Vec<u32>,
    /// Seconds of probing at each rate.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Probe datagram size, bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Do not ask for real-time priority.
    #[arg(long)]
    no_realtime: bool,
    /// Also run each rate with sleeping only (no spinning), for comparison.
    #[arg(long)]
    compare_sleep: bool,
}

/// A reflector thread on 127.0.0.1 that answers every request.
struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reflector {
    fn start() -> Result<Self> {
        let sock = UdpSocket::bind("127.0.0.1:0").context("cannot bind the bench reflector")?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-reflector".into())
            .spawn(move || {
                let mut count = 0u64;
                let mut buf = [0u8; 65_536];
                while !flag.load(Ordering::Relaxed) {
                    let Ok((len, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(mut p) = ProbePacket::decode(&buf[..len]) else {
                        continue;
                    };
                    if p.kind != Kind::Request {
                        continue;
                    }
                    count += 1;
                    p.kind = Kind::Reply;
                    p.reflector_rx_count = count;
                    p.encode(&mut buf);
                    let _ = sock.send_to(&buf[..len], from);
                }
            })
            .context("cannot start the bench reflector")?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cpu_ns() -> i64 {
    let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else {
        return 0;
    };
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000_000 + t.tv_usec() * 1000;
    tv(u.user_time()) + tv(u.system_time())
}

/// One row of the table.
struct Row {
    rate: u32,
    mode: &'static str,
    achieved: f64,
    late: usize,
    max_err_us: f64,
    p99_err_us: f64,
    lost: u64,
    sent: u64,
    cpu_pct: f64,
    sender_cpu_pct: f64,
    realtime: bool,
}

/// Achieved rate over the sends, and the p99 of |interval − nominal| (µs).
fn send_figures(rec: &ProbeRecord) -> (f64, f64) {
    let s = &rec.send_ns;
    let (Some(&first), Some(&last)) = (s.first(), s.last()) else {
        return (0.0, 0.0);
    };
    let achieved = if last > first {
        (s.len() - 1) as f64 / ((last - first) as f64 / 1e9)
    } else {
        0.0
    };
    let nominal = 1e9 / f64::from(rec.rate_hz.max(1));
    let mut err: Vec<f64> = s
        .windows(2)
        .map(|w| ((w[1] - w[0]) as f64 - nominal).abs())
        .collect();
    err.sort_by(f64::total_cmp);
    let p99 = err
        .get(((err.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    (achieved, p99 / 1e3)
}

fn one(refl: &Reflector, rate: u32, args: &BenchArgs, spin: bool) -> Result<Row> {
    let cfg = ProbeConfig {
        target: refl.addr,
        rate_hz: rate,
        payload_len: args.size,
    };
    let mut opts = ProbeOptions {
        realtime_priority: !args.no_realtime,
        ..ProbeOptions::default()
    };
    if !spin {
        opts.spin_margin = Duration::ZERO;
    }
    let sock = UdpSocket::bind("127.0.0.1:0").context("cannot bind the probe socket")?;
    let cpu0 = cpu_ns();
    let t0 = Instant::now();
    let prober = Prober::start_with(sock, cfg, opts).context("cannot start the prober")?;
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let rec = prober.stop().context("the prober failed")?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ns() - cpu0) as f64 / 1e9;
    let s = analyze(&rec, None, 5_000_000);
    let (achieved, p99_err_us) = send_figures(&rec);
    Ok(Row {
        rate,
        mode: if rec.sender_spun { "spin" } else { "sleep" },
        achieved,
        late: rec.sender_late.len(),
        max_err_us: rec.max_send_delay_ns as f64 / 1e3,
        p99_err_us,
        lost: s.lost,
        sent: s.probes_sent,
        cpu_pct: 100.0 * cpu / wall,
        sender_cpu_pct: 100.0 * rec.sender_cpu_ns as f64 / 1e9 / args.seconds,
        realtime: rec.realtime_priority,
    })
}

/// Runs every rate and prints one line per run.
pub fn bench(args: BenchArgs) -> Result<()> {
    let refl = Reflector::start()?;
    println!(
        "client-probe bench: {} s per rate, {} bytes, loopback reflector in this process ({} CPUs)",
        args.seconds,
        args.size,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>7} {:>5} {:>10} {:>6} {:>11} {:>11} {:>8} {:>9} {:>9} {:>8} {:>3}",
        "rate",
        "mode",
        "achieved/s",
        "late",
        "max_err_us",
        "p99_ivl_us",
        "lost",
        "sent",
        "cpu_%",
        "sender_%",
        "rt"
    );
    for &rate in &args.rates {
        let mut modes = vec![true];
        if args.compare_sleep {
            modes.push(false);
        }
        for spin in modes {
            let r = one(&refl, rate, &args, spin)
                .with_context(|| format!("bench at {rate} probes/s"))?;
            println!(
                "{:>7} {:>5} {:>10.1} {:>6} {:>11.1} {:>11.1} {:>8} {:>9} {:>9.1} {:>8.1} {:>3}",
                r.rate,
                r.mode,
                r.achieved,
                r.late,
                r.max_err_us,
                r.p99_err_us,
                r.lost,
                r.sent,
                r.cpu_pct,
                r.sender_cpu_pct,
                if r.realtime { "yes" } else { "no" }
            );
        }
    }
    println!(
        "achieved/s: sends over the run; late: sends over one interval late; max_err_us: largest delay \
         of a send after its deadline; p99_ivl_us: p99 of |send interval - nominal|; cpu_%: the whole \
         process (prober, reflector, this loop) per second of wall time, 100 = one core; sender_%: the \
         sender thread alone; rt: real-time priority obtained"
    );
    Ok(())
}
