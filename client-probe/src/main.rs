//! `client-probe`: probe a guest agent's reflector by hand and write what
//! was seen. A thin shell over the `client_probe` library.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use client_probe::{write_rtt_hdr_log, ProbeConfig, Prober};
use measure::probe::csv::{write_gaps_jsonl, write_replies_csv};
use measure::probe::gaps::{analyze, GapSummary};
use measure::probe::record::ProbeRecord;

mod bench;

/// Sends UDP probes through a guest agent's reflector and measures the gaps
/// a user of the VM sees.
#[derive(Debug, Parser)]
#[command(name = "client-probe", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Probe until the duration is over or Ctrl-C, then write gaps.jsonl,
    /// summary.json, replies.csv, record.json and rtt.hlog.
    Run(RunArgs),
    /// Serve the HTTP control API, so a harness can drive probes from
    /// another machine (see client-probe/README.md).
    Serve(ServeArgs),
    /// Measure the prober's own precision and cost at several rates against
    /// a loopback reflector in this process (figures, no pass or fail).
    Bench(bench::BenchArgs),
}

/// The environment variable that may carry `serve`'s token (a secret is
/// never taken from the command line, where every local user can read it).
const TOKEN_ENV: &str = "LMIG_PROBE_TOKEN";

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on, IP:PORT.
    #[arg(long)]
    listen: SocketAddr,
    /// A file holding the bearer token every request must carry
    /// (surrounding whitespace ignored); without it, the token is read
    /// from the environment variable LMIG_PROBE_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The reflector, IP:PORT.
    #[arg(long)]
    target: SocketAddr,
    /// Probes per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Probe datagram size, bytes (at least the 56-byte header).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long to probe, e.g. 10s, 500ms, 2m, 1h (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Reply gaps longer than this are listed, ms.
    #[arg(long, default_value_t = 5.0, value_parser = parse_threshold)]
    threshold_ms: f64,
    /// Folder to write the results into (created if missing).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => run(args),
        Cmd::Serve(args) => serve(args),
        Cmd::Bench(args) => bench::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-probe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let cfg = ProbeConfig {
        target: args.target,
        rate_hz: args.rate,
        payload_len: args.size,
    };
    cfg.validate()?;
    let interval_ms = 1000.0 / f64::from(args.rate);
    if args.threshold_ms <= interval_ms {
        eprintln!(
            "warning: --threshold-ms {} is not above the probe interval ({interval_ms} ms): almost every reply will be listed as a gap",
            args.threshold_ms
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C: give up at once
        }
    })
    .context("cannot install the Ctrl-C handler")?;

    let bind = if args.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket =
        UdpSocket::bind(bind).with_context(|| format!("cannot bind a UDP socket to {bind}"))?;
    let prober = Prober::start(socket, cfg).context("cannot start the prober")?;
    eprintln!(
        "probing {} at {}/s, {} bytes, session {:016x}, {}",
        args.target,
        args.rate,
        args.size,
        prober.session(),
        match args.duration {
            Some(d) => format!("for {d:?}"),
            None => "until Ctrl-C".into(),
        }
    );

    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_line = Instant::now();
    while !interrupted.load(Ordering::SeqCst) && args.duration.is_none_or(|d| started.elapsed() < d)
    {
        std::thread::sleep(Duration::from_millis(250));
        let line = prober.live().line();
        if tty {
            eprint!("\r{line}   ");
        } else if last_line.elapsed() >= Duration::from_secs(1) {
            eprintln!("{line}");
            last_line = Instant::now();
        }
    }
    if tty {
        eprintln!();
    }

    let rec = prober.stop().context("the prober failed")?;
    let summary = analyze(&rec, None, (args.threshold_ms * 1e6) as i64);
    write_results(&args.out, &rec, &summary)?;
    print!("{}", human_summary(&rec, &summary, args.threshold_ms));
    println!(
        "wrote summary.json, gaps.jsonl, replies.csv, record.json, rtt.hlog to {}",
        args.out.display()
    );
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let token = match (args.token_file, std::env::var(TOKEN_ENV)) {
        (Some(f), _) => std::fs::read_to_string(&f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .trim()
            .to_owned(),
        (None, Ok(t)) => t.trim().to_owned(),
        (None, Err(_)) => bail!("give --token-file FILE, or the token in {TOKEN_ENV}"),
    };
    if token.is_empty() {
        bail!("the token is empty");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "client-probe: control API on http://{} (Ctrl-C to stop)",
            listener.local_addr().unwrap_or(args.listen)
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        client_probe::serve::serve(listener, token, shutdown)
            .await
            .context("the control API failed")
    })
}

fn write_results(dir: &Path, rec: &ProbeRecord, summary: &GapSummary) -> Result<()> {
    let create = |name: &str| {
        let p = dir.join(name);
        File::create(&p).with_context(|| format!("cannot create {}", p.display()))
    };
    let mut f = create("summary.json")?;
    serde_json::to_writer_pretty(&mut f, summary).context("cannot write summary.json")?;
    f.write_all(b"\n").context("cannot write summary.json")?;
    write_gaps_jsonl(&summary.gaps, create("gaps.jsonl")?).context("cannot write gaps.jsonl")?;
    write_replies_csv(rec, create("replies.csv")?).context("cannot write replies.csv")?;
    let mut w = std::io::BufWriter::new(create("record.json")?);
    serde_json::to_writer(&mut w, rec).context("cannot write record.json")?;
    w.flush().context("cannot write record.json")?;
    write_rtt_hdr_log(
        rec,
        1_000_000_000,
        std::io::BufWriter::new(create("rtt.hlog")?),
    )
    .context("cannot write rtt.hlog")?;
    Ok(())
}

fn human_summary(rec: &ProbeRecord, s: &GapSummary, threshold_ms: f64) -> String {
    let mut o = String::new();
    o += &format!(
        "probes sent {}, replies {} (duplicates {}, reordered {}), lost {} (client-to-guest {}, guest-to-client {})\n",
        s.probes_sent, s.replies, s.duplicates, s.reordered, s.lost, s.lost_forward, s.lost_return
    );
    match &s.max_gap {
        Some(g) => {
            o += &format!(
                "largest gap {:.1} ms (after seq {}, before seq {}, {} lost in it){}\n",
                g.len_ms,
                g.last_seq_before,
                g.first_seq_after,
                g.lost_in_gap,
                if g.prober_stalled {
                    " [the prober itself stalled]"
                } else {
                    ""
                }
            );
        }
        None => o += "largest gap: none (fewer than two replies)\n",
    }
    o += &format!(
        "largest client-to-guest gap {:.1} ms\n",
        s.max_forward_gap_ms
    );
    o += &format!("gaps over {threshold_ms} ms: {}\n", s.gaps.len());
    let r = &s.rtt_ms;
    o += &format!(
        "rtt ms: min {:.3} mean {:.3} p50 {:.3} p99 {:.3} max {:.3} ({} samples)\n",
        r.min, r.mean, r.p50, r.p99, r.max, r.samples
    );
    o += &format!("jitter (RFC 3550) {:.3} ms\n", s.jitter_ms);
    if let Some(why) = &rec.realtime_error {
        o += &format!(
            "note: the probe ran without real-time priority ({why}): run as root for it\n"
        );
    }
    if s.sender_late > 0 {
        o += &format!("warning: the prober sent {} probes over an interval late: its own stalls are flagged in the gaps\n", s.sender_late);
    }
    if rec.malformed + rec.foreign_session + rec.send_errors > 0 {
        o += &format!(
            "malformed datagrams {}, replies of other sessions {}, send errors {}\n",
            rec.malformed, rec.foreign_session, rec.send_errors
        );
    }
    if rec.replies.iter().any(|r| !r.kernel_ts) {
        o += "warning: some receive times are user-space clock reads, not kernel timestamps\n";
    }
    o
}

/// `10s`, `500ms`, `2m`, `1h`, `1.5s`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a duration like 10s or 500ms"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => bail!("unknown unit `{u}` in `{s}`: use ms, s, m or h"),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        bail!("duration `{s}` must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_threshold(s: &str) -> Result<f64> {
    let v: f64 = s
        .trim()
        .parse()
        .with_context(|| format!("`{s}` is not a number of ms"))?;
    if !(v.is_finite() && v >= 0.0) {
        bail!("threshold `{s}` must be a non-negative number of ms");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_arguments_and_defaults() {
        let cli =
            Cli::try_parse_from(["client-probe", "run", "--target", "198.18.0.2:7000"]).unwrap();
        let Cmd::Run(a) = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(
            (a.rate, a.size, a.duration, a.threshold_ms),
            (1000, 64, None, 5.0)
        );
        assert_eq!(a.out, PathBuf::from("."));
        let cli = Cli::try_parse_from([
            "client-probe",
            "run",
            "--target",
            "[::1]:9",
            "--rate",
            "200",
            "--size",
            "1200",
            "--duration",
            "1.5s",
            "--threshold-ms",
            "2.5",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(
            (a.rate, a.size, a.duration, a.threshold_ms),
            (200, 1200, Some(Duration::from_millis(1500)), 2.5)
        );
        assert!(Cli::try_parse_from(["client-probe", "run", "--target", "nohost"]).is_err());
        assert!(Cli::try_parse_from([
            "client-probe",
            "run",
            "--target",
            "1.2.3.4:5",
            "--threshold-ms",
            "-1"
        ])
        .is_err());
    }

    #[test]
    fn serve_takes_no_token_on_the_command_line() {
        let cli = Cli::try_parse_from([
            "client-probe",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            "/f",
        ])
        .unwrap();
        let Cmd::Serve(a) = cli.cmd else {
            panic!("not serve")
        };
        assert_eq!(a.token_file.as_deref(), Some(std::path::Path::new("/f")));
        assert!(Cli::try_parse_from(["client-probe", "serve"]).is_err());
        assert!(Cli::try_parse_from([
            "client-probe",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
        ])
        .is_err());
        let cli = Cli::try_parse_from(["client-probe", "bench", "--rates", "100,2000"]).unwrap();
        assert!(matches!(cli.cmd, Cmd::Bench(_)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0.25s").unwrap(), Duration::from_millis(250));
        for bad in ["", "s", "0s", "-1s", "10 parsecs", "1.2.3s", "ms10"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summary_text_names_the_essentials() {
        let rec = ProbeRecord {
            session: 1,
            rate_hz: 1000,
            payload_len: 64,
            target: "127.0.0.1:9".into(),
            send_ns: (0..4).map(|i| i * 1_000_000).collect(),
            replies: [0u64, 3]
                .iter()
                .map(|&seq| measure::probe::record::ReplyRecord {
                    seq,
                    send_ns: seq as i64 * 1_000_000,
                    rx_ns: seq as i64 * 1_000_000 + 100_000,
                    kernel_ts: false,
                    guest_rx_ns: 0,
                    guest_tx_ns: 0,
                    reflector_rx_count: seq + 1,
                })
                .collect(),
            sender_late: vec![],
            malformed: 2,
            foreign_session: 0,
            send_errors: 0,
            realtime_priority: false,
            realtime_error: None,
            sender_spun: false,
            max_send_delay_ns: 0,
            sender_cpu_ns: 0,
        };
        let s = analyze(&rec, None, 1_000_000);
        let text = human_summary(&rec, &s, 1.0);
        assert_eq!(
            text,
            "probes sent 4, replies 2 (duplicates 0, reordered 0), lost 2 (client-to-guest 0, guest-to-client 2)\n\
             largest gap 3.0 ms (after seq 0, before seq 3, 2 lost in it)\n\
             largest client-to-guest gap 0.0 ms\n\
             gaps over 1 ms: 1\n\
             rtt ms: min 0.100 mean 0.100 p50 0.100 p99 0.100 max 0.100 (2 samples)\n\
             jitter (RFC 3550) 0.000 ms\n\
             malformed datagrams 2, replies of other sessions 0, send errors 0\n\
             warning: some receive times are user-space clock reads, not kernel timestamps\n"
        );
    }
}
