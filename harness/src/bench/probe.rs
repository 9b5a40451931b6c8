//! `harness bench probe`: the highest probe rate the lab sustains with no
//! loss, and what it costs, side by side with `ping` and `irtt` on the
//! same path in the same run.
//!
//! One lab, one guest; from the client namespace to the guest, one tool
//! after another, at each rate asked for:
//!
//! - **probe**: this project's [`client_probe::Prober`] against the guest
//!   agent's UDP reflector (64-byte datagrams);
//! - **ping**: iputils `ping -i <1/rate>` (64-byte ICMP echo; answered by
//!   the guest's kernel, not by a user-space program). iputils keeps the
//!   interval in whole milliseconds: `-i 0.0005` silently becomes `-i 0`,
//!   one echo in flight, the next sent when the reply comes. So rates
//!   whose interval is not a whole number of ms run as `-i 0` and are
//!   marked *unpaced*: they show how fast ping-pong goes, never count as
//!   sustaining the rate asked;
//! - **irtt**: Debian's `irtt client -i <1/rate>` (64-byte packets)
//!   against an `irtt server -i 0` the guest agent starts from the image
//!   (the harness copies `/usr/bin/irtt` and its libraries into it).
//!
//! Each measurement gives the replies per second achieved, the loss, the
//! round-trip time and the client's CPU time; a rate is *sustained* when
//! nothing was lost and the tool really sent at least 95 % of the rate
//! (and, for the probe, its sender was never late). Figures only: no
//! pass or fail. The parsers and the table are pure functions, tested
//! here; the rest is a thin shell around the lab.

use crate::backend::{Backend, Site};
use crate::bundle::manifest::HostFacts;
use crate::bundle::Bundle;
use crate::clock::{compact_stamp, now_ns, rfc3339};
use crate::live::Live;
use crate::run::RunControl;
use crate::scenario::{Acceleration, Scenario};
use anyhow::{bail, Context, Result};
use client_probe::{ProbeConfig, ProbeOptions, Prober};
use measure::tools::irtt::parse_irtt;
use measure::tools::ping::parse_ping;
// `resource` is a nix feature client-probe enables; features are unified
// across the build, so it is there whenever the harness is built.
use nix::sys::resource::{getrusage, UsageWho};
use serde::Serialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Where Debian's `irtt` package puts the program.
pub const IRTT: &str = "/usr/bin/irtt";
/// The UDP port the irtt server listens on in the guest (irtt's default).
pub const IRTT_PORT: u16 = 2112;
/// Size of each probe, echo request and irtt packet, bytes (UDP payload
/// for the probe and irtt, ICMP message for ping).
pub const PACKET_BYTES: usize = 64;
/// A rate counts as sustained only if the tool sent at least this share
/// of the packets the rate asks for.
pub const MIN_SEND_SHARE: f64 = 0.95;
/// Default rates, per second.
pub const DEFAULT_RATES: &[u32] = &[1000, 2000, 5000, 10000, 15000, 20000];

/// What `harness bench probe` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Rates to try, per second.
    pub rates: Vec<u32>,
    /// Seconds of sending at each rate, per tool.
    pub seconds: f64,
    /// Acceleration of the guest.
    pub accel: Acceleration,
    /// Folder in which the bundle folder is created.
    pub out_dir: PathBuf,
    /// The guest agent binary, if not the default.
    pub agent: Option<PathBuf>,
    /// Guest kernel, if not `auto`.
    pub kernel: Option<String>,
}

/// One tool at one rate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolRun {
    /// `probe`, `ping` or `irtt`.
    pub tool: String,
    /// Packets per second asked for.
    pub rate_hz: u32,
    /// The tool's interval argument as given (`-i`).
    pub interval_arg: String,
    /// Whether the tool paced its sends at the rate (`false`: ping with
    /// `-i 0`, sending as fast as replies come).
    pub paced: bool,
    /// Packets sent.
    pub sent: u64,
    /// Distinct replies received.
    pub received: u64,
    /// Packets without a reply.
    pub lost: u64,
    /// `lost / sent`, percent.
    pub loss_pct: f64,
    /// Seconds from the first send to the end of the sending (for ping,
    /// the run time it reports).
    pub send_span_s: f64,
    /// `sent / send_span_s`: the rate really sent.
    pub achieved_send_hz: f64,
    /// `received / send_span_s`: round trips per second completed.
    pub achieved_reply_hz: f64,
    /// Median round-trip time, ms (`None` where the tool does not give it:
    /// ping reports only min/avg/max).
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile round-trip time, ms, where known.
    pub rtt_p99_ms: Option<f64>,
    /// Mean round-trip time, ms.
    pub rtt_mean_ms: Option<f64>,
    /// CPU time (user + system) the client used, s: for the probe the
    /// whole harness process over the run (sender, receiver, idle
    /// runtime), for ping and irtt the child process.
    pub cpu_s: f64,
    /// `cpu_s / send_span_s`, percent of one core.
    pub cpu_pct: f64,
    /// The probe's sender thread alone, s (ping and irtt: `None`).
    pub sender_cpu_s: Option<f64>,
    /// Probes sent more than one interval late (the probe only).
    pub sender_late: Option<u64>,
    /// No loss, at least [`MIN_SEND_SHARE`] of the rate sent, paced, no
    /// error: the rate went through without loss.
    pub loss_free: bool,
    /// [`ToolRun::loss_free`] and, for the probe, a sender never late.
    pub sustained: bool,
    /// What failed, if the tool could not be run at this rate.
    pub error: Option<String>,
}

impl ToolRun {
    fn empty(tool: &str, rate_hz: u32) -> Self {
        Self {
            tool: tool.into(),
            rate_hz,
            interval_arg: String::new(),
            paced: true,
            sent: 0,
            received: 0,
            lost: 0,
            loss_pct: 0.0,
            send_span_s: 0.0,
            achieved_send_hz: 0.0,
            achieved_reply_hz: 0.0,
            rtt_p50_ms: None,
            rtt_p99_ms: None,
            rtt_mean_ms: None,
            cpu_s: 0.0,
            cpu_pct: 0.0,
            sender_cpu_s: None,
            sender_late: None,
            loss_free: false,
            sustained: false,
            error: None,
        }
    }

    fn failed(tool: &str, rate_hz: u32, e: &anyhow::Error) -> Self {
        Self {
            error: Some(format!("{e:#}")),
            ..Self::empty(tool, rate_hz)
        }
    }

    /// Fills the derived fields from the counts, span and CPU time.
    fn finish(mut self) -> Self {
        self.lost = self.sent.saturating_sub(self.received);
        self.loss_pct = if self.sent > 0 {
            self.lost as f64 * 100.0 / self.sent as f64
        } else {
            0.0
        };
        if self.send_span_s > 0.0 {
            self.achieved_send_hz = self.sent as f64 / self.send_span_s;
            self.achieved_reply_hz = self.received as f64 / self.send_span_s;
            self.cpu_pct = self.cpu_s * 100.0 / self.send_span_s;
        }
        self.loss_free = self.error.is_none()
            && self.paced
            && self.sent > 0
            && self.lost == 0
            && self.achieved_send_hz >= MIN_SEND_SHARE * f64::from(self.rate_hz);
        self.sustained = self.loss_free && self.sender_late.unwrap_or(0) == 0;
        self
    }
}

/// A tool's best: its highest sustained rate and the CPU it took there.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Best {
    /// The tool.
    pub tool: String,
    /// Highest sustained rate, per second (`None`: none of the rates).
    pub rate_hz: Option<u32>,
    /// CPU there, percent of one core.
    pub cpu_pct: Option<f64>,
    /// Replies per second achieved there.
    pub achieved_reply_hz: Option<f64>,
    /// Highest rate with no loss, late sends allowed (differs from
    /// `rate_hz` for the probe only).
    pub loss_free_rate_hz: Option<u32>,
    /// The most replies per second an unpaced run (ping `-i 0`) got
    /// with no loss, and its CPU %.
    pub unpaced_reply_hz: Option<f64>,
    /// CPU of that unpaced run, percent of one core.
    pub unpaced_cpu_pct: Option<f64>,
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `bench-probe/1`.
    pub schema: String,
    /// The command line.
    pub command: Vec<String>,
    /// When it started and ended (UTC).
    pub started: String,
    /// When it ended (UTC).
    pub ended: String,
    /// The lab's run id.
    pub lab_id: String,
    /// The host.
    pub host: HostFacts,
    /// `kvm` or `tcg` (`None` if the guest never came up).
    pub acceleration: Option<String>,
    /// Why that acceleration.
    pub acceleration_note: String,
    /// The guest's address (the target of every tool).
    pub guest_addr: String,
    /// Seconds of sending per tool and rate.
    pub seconds: f64,
    /// Rates tried.
    pub rates: Vec<u32>,
    /// Bytes per packet.
    pub packet_bytes: usize,
    /// Versions of the tools compared.
    pub tool_versions: std::collections::BTreeMap<String, String>,
    /// Every measurement: probe, then ping, then irtt, rates ascending.
    pub runs: Vec<ToolRun>,
    /// Each tool's best.
    pub best: Vec<Best>,
    /// Things a reader should know (a tool missing, a rate skipped).
    pub notes: Vec<String>,
    /// What stopped the benchmark early, if anything.
    pub error: Option<String>,
}

/// The order tools run and print in.
pub const TOOLS: [&str; 3] = ["probe", "ping", "irtt"];

/// Each tool's highest sustained rate.
pub fn best_of(runs: &[ToolRun]) -> Vec<Best> {
    TOOLS
        .iter()
        .map(|tool| {
            let mine = || runs.iter().filter(|r| r.tool == *tool);
            let top = mine().filter(|r| r.sustained).max_by_key(|r| r.rate_hz);
            let unpaced = mine()
                .filter(|r| !r.paced && r.error.is_none() && r.sent > 0 && r.lost == 0)
                .max_by(|a, b| a.achieved_reply_hz.total_cmp(&b.achieved_reply_hz));
            Best {
                tool: (*tool).into(),
                rate_hz: top.map(|r| r.rate_hz),
                cpu_pct: top.map(|r| r.cpu_pct),
                achieved_reply_hz: top.map(|r| r.achieved_reply_hz),
                loss_free_rate_hz: mine().filter(|r| r.loss_free).map(|r| r.rate_hz).max(),
                unpaced_reply_hz: unpaced.map(|r| r.achieved_reply_hz),
                unpaced_cpu_pct: unpaced.map(|r| r.cpu_pct),
            }
        })
        .collect()
}

/// The table printed at the end: one row per rate, four columns per tool
/// (replies per second achieved, loss %, median RTT ms, CPU % of one
/// core), then each tool's best.
pub fn to_table(report: &BenchReport) -> String {
    let mut out = String::new();
    let cell = |r: Option<&ToolRun>| -> String {
        match r {
            None => format!("{:>31}", "-"),
            Some(r) if r.error.is_some() => format!("{:>31}", "failed"),
            Some(r) => {
                let rtt = match (r.rtt_p50_ms, r.rtt_mean_ms) {
                    (Some(p), _) => format!("{p:.3}"),
                    (None, Some(m)) => format!("{m:.3}*"),
                    (None, None) => "-".into(),
                };
                format!(
                    "{:>8.0} {:>6.2} {:>7} {:>6.1}{}",
                    r.achieved_reply_hz,
                    r.loss_pct,
                    rtt,
                    r.cpu_pct,
                    if !r.paced {
                        '~'
                    } else if r.sustained {
                        ' '
                    } else if r.loss_free {
                        'L'
                    } else {
                        '!'
                    }
                )
            }
        }
    };
    out.push_str(&format!("{:>7} ", ""));
    for t in TOOLS {
        out.push_str(&format!(" {:-^31}", format!(" {t} ")));
    }
    out.push('\n');
    out.push_str(&format!("{:>7} ", "rate/s"));
    for _ in TOOLS {
        out.push_str(&format!(
            " {:>8} {:>6} {:>7} {:>6} ",
            "got/s", "loss%", "rtt_ms", "cpu%"
        ));
    }
    out.push('\n');
    for rate in &report.rates {
        out.push_str(&format!("{rate:>7} "));
        for t in TOOLS {
            let r = report
                .runs
                .iter()
                .find(|r| r.tool == t && r.rate_hz == *rate);
            out.push(' ');
            out.push_str(&cell(r));
        }
        out.push('\n');
    }
    out.push_str(
        "got/s: replies per second achieved; rtt_ms: median round trip (* ping: mean, it gives no median);\n\
         cpu%: client CPU time / sending time, percent of one core;\n\
         !: not sustained (loss, or under 95% of the rate sent); L: no loss but the probe's sender was late;\n\
         ~: ping unpaced (-i 0: iputils rounds -i to whole ms), not a run at that rate\n",
    );
    for b in &report.best {
        let mut line = match (b.rate_hz, b.cpu_pct) {
            (Some(r), Some(c)) => format!(
                "{:<5} highest rate with no loss: {r}/s, CPU {c:.1}% of one core",
                b.tool
            ),
            _ => format!(
                "{:<5} highest rate with no loss: none of the rates tried",
                b.tool
            ),
        };
        if let (Some(l), true) = (b.loss_free_rate_hz, b.loss_free_rate_hz != b.rate_hz) {
            let cpu = report
                .runs
                .iter()
                .find(|r| r.tool == b.tool && r.rate_hz == l)
                .map_or(0.0, |r| r.cpu_pct);
            line.push_str(&format!(
                "; with no loss but late sends: {l}/s, CPU {cpu:.1}%"
            ));
        }
        if let (Some(u), Some(c)) = (b.unpaced_reply_hz, b.unpaced_cpu_pct) {
            line.push_str(&format!(
                "; unpaced (-i 0, one echo in flight): {u:.0}/s with no loss, CPU {c:.1}%"
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// An interval in ns for irtt's `-i` (Go durations take `ns`).
fn irtt_interval(rate_hz: u32) -> String {
    format!("{}ns", 1_000_000_000u64 / u64::from(rate_hz.max(1)))
}

/// ping's `-i` for a rate, and whether ping can pace it: iputils keeps
/// the interval in whole ms, so a rate whose interval is not a whole
/// number of ms runs as `-i 0` (unpaced: the next echo when the reply
/// comes).
fn ping_interval(rate_hz: u32) -> (String, bool) {
    let rate = rate_hz.max(1);
    if rate <= 1000 && 1000 % rate == 0 {
        (format!("{:.3}", 1.0 / f64::from(rate)), true)
    } else {
        ("0".into(), false)
    }
}

/// User + system CPU time of `who`, s.
fn cpu_seconds(who: UsageWho) -> f64 {
    getrusage(who).map_or(0.0, |u| {
        let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        tv(u.user_time()) + tv(u.system_time())
    })
}

/// First line of `cmd args`' output (stdout, else stderr), for versions.
pub(crate) fn version_of(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("cannot run {cmd}: {e}"))
}

/// Output and CPU time of a child run to the end (killed after `timeout`).
struct ChildRun {
    stdout: String,
    stderr: String,
    success: bool,
    cpu_s: f64,
    timed_out: bool,
}

/// Runs `ARGS...` at `site` (in the lab, `ip netns exec` execs the program
/// in place, so the child is the tool itself) and measures its CPU time as
/// the change of this process's `RUSAGE_CHILDREN` (nothing else is waited
/// for meanwhile).
fn run_at(site: &Site, args: &[String], timeout: Duration) -> Result<ChildRun> {
    let before = cpu_seconds(UsageWho::RUSAGE_CHILDREN);
    let (program, rest) = args.split_first().context("no program to run")?;
    let mut child = site
        .command(program)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}` at {}", args.join(" "), site.describe()))?;
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for the tool")? {
            break st;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().context("waiting for the killed tool")?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu_s = cpu_seconds(UsageWho::RUSAGE_CHILDREN) - before;
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut s = String::new();
        if let Some(r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    };
    let stdout = read(child.stdout.as_mut().map(|s| s as &mut dyn std::io::Read));
    let stderr = read(child.stderr.as_mut().map(|s| s as &mut dyn std::io::Read));
    Ok(ChildRun {
        stdout,
        stderr,
        success: status.success(),
        cpu_s,
        timed_out,
    })
}

/// Our probe at `rate_hz` for `seconds`.
async fn run_probe<B: Backend>(local: &B, rate_hz: u32, seconds: f64) -> Result<ToolRun> {
    let ep = local.endpoints();
    let socket = ep
        .client
        .enter(|| std::net::UdpSocket::bind("0.0.0.0:0"))
        .with_context(|| format!("opening the probe socket at {}", ep.client.describe()))?;
    let cpu0 = cpu_seconds(UsageWho::RUSAGE_SELF);
    let prober = Prober::start_with(
        socket,
        ProbeConfig {
            target: ep.reflector,
            rate_hz,
            payload_len: PACKET_BYTES,
        },
        // As `harness run` uses it: real-time priority, sleeping only.
        ProbeOptions {
            spin_margin: Duration::ZERO,
            ..ProbeOptions::default()
        },
    )
    .context("starting the probe")?;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let rec = tokio::task::spawn_blocking(move || prober.stop())
        .await
        .context("the probe's stop task failed")?
        .context("stopping the probe")?;
    let cpu_s = cpu_seconds(UsageWho::RUSAGE_SELF) - cpu0;
    let s = measure::probe::gaps::analyze(&rec, None, 5_000_000);
    let span_ns = match (rec.send_ns.first(), rec.send_ns.last()) {
        (Some(f), Some(l)) => l - f + 1_000_000_000 / i64::from(rate_hz.max(1)),
        _ => 0,
    };
    let rtt = (s.rtt_ms.samples > 0).then_some(&s.rtt_ms);
    Ok(ToolRun {
        sent: s.probes_sent,
        received: s.replies.saturating_sub(s.duplicates),
        send_span_s: span_ns as f64 / 1e9,
        rtt_p50_ms: rtt.map(|r| r.p50),
        rtt_p99_ms: rtt.map(|r| r.p99),
        rtt_mean_ms: rtt.map(|r| r.mean),
        cpu_s,
        sender_cpu_s: Some(rec.sender_cpu_ns as f64 / 1e9),
        sender_late: Some(s.sender_late),
        interval_arg: format!("{rate_hz}/s"),
        ..ToolRun::empty("probe", rate_hz)
    }
    .finish())
}

/// `ping -i 1/rate` for `seconds` worth of echo requests.
async fn run_ping(site: &Site, guest: IpAddr, rate_hz: u32, seconds: f64) -> Result<ToolRun> {
    let count = ((f64::from(rate_hz) * seconds).round() as u64).max(1);
    let (interval, paced) = ping_interval(rate_hz);
    let args: Vec<String> = [
        "ping",
        "-q",
        "-n",
        "-i",
        &interval,
        "-c",
        &count.to_string(),
        "-W",
        "1",
        "-s",
        &(PACKET_BYTES - 8).to_string(),
        &guest.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let site = site.clone();
    let timeout = Duration::from_secs_f64(seconds * 4.0 + 10.0);
    let out = tokio::task::spawn_blocking(move || run_at(&site, &args, timeout))
        .await
        .context("the ping task failed")??;
    if out.timed_out {
        bail!("ping did not finish within {:.0} s", timeout.as_secs_f64());
    }
    let p = parse_ping(&out.stdout).with_context(|| {
        format!(
            "reading ping's summary (it said: {} {})",
            out.stdout.trim(),
            out.stderr.trim()
        )
    })?;
    Ok(ToolRun {
        sent: p.transmitted,
        received: p.received,
        send_span_s: p.time_ms / 1e3,
        rtt_mean_ms: p.rtt_avg_ms,
        cpu_s: out.cpu_s,
        interval_arg: interval,
        paced,
        ..ToolRun::empty("ping", rate_hz)
    }
    .finish())
}

/// `irtt client -i 1/rate -d seconds` against the guest's irtt server.
async fn run_irtt(
    site: &Site,
    guest: IpAddr,
    rate_hz: u32,
    seconds: f64,
    scratch: &Path,
) -> Result<ToolRun> {
    let json_path = scratch.join(format!("irtt-{rate_hz}.json"));
    let _ = std::fs::remove_file(&json_path);
    let args: Vec<String> = vec![
        IRTT.into(),
        "client".into(),
        "-i".into(),
        irtt_interval(rate_hz),
        "-d".into(),
        format!("{}ms", (seconds * 1000.0).round() as u64),
        "-l".into(),
        PACKET_BYTES.to_string(),
        "-Q".into(),
        "-o".into(),
        json_path.display().to_string(),
        format!("{guest}:{IRTT_PORT}"),
    ];
    let site = site.clone();
    let timeout = Duration::from_secs_f64(seconds * 4.0 + 20.0);
    let out = tokio::task::spawn_blocking(move || run_at(&site, &args, timeout))
        .await
        .context("the irtt task failed")??;
    if out.timed_out {
        bail!("irtt did not finish within {:.0} s", timeout.as_secs_f64());
    }
    if !out.success {
        bail!("irtt client failed: {}", out.stderr.trim());
    }
    let text = std::fs::read(&json_path)
        .with_context(|| format!("irtt wrote no {}", json_path.display()))?;
    let _ = std::fs::remove_file(&json_path);
    let v: serde_json::Value =
        serde_json::from_slice(&text).context("irtt's JSON output does not parse")?;
    let s = parse_irtt(&v, 1.0 / f64::from(rate_hz.max(1)))?;
    Ok(ToolRun {
        sent: s.sent,
        received: s.received,
        send_span_s: s.send_span_s,
        rtt_p50_ms: s.rtt_p50_ms,
        rtt_p99_ms: s.rtt_p99_ms,
        rtt_mean_ms: s.rtt_mean_ms,
        cpu_s: out.cpu_s,
        interval_arg: irtt_interval(rate_hz),
        ..ToolRun::empty("irtt", rate_hz)
    }
    .finish())
}

fn progress(live: &Live, r: &ToolRun) {
    match &r.error {
        Some(e) => live.println(&format!("{:<5} {:>6}/s: failed: {e}", r.tool, r.rate_hz)),
        None => live.println(&format!(
            "{:<5} {:>6}/s: sent {:>6}, replies {:>6} ({:.0}/s), loss {:.2}%, rtt p50 {}, cpu {:.1}%{}{}",
            r.tool,
            r.rate_hz,
            r.sent,
            r.received,
            r.achieved_reply_hz,
            r.loss_pct,
            r.rtt_p50_ms
                .or(r.rtt_mean_ms)
                .map_or("-".into(), |v| format!("{v:.3} ms")),
            r.cpu_pct,
            r.sender_late
                .filter(|n| *n > 0)
                .map_or(String::new(), |n| format!(", sender late {n}x")),
            if !r.paced {
                "  (unpaced: -i 0)"
            } else if r.sustained {
                ""
            } else {
                "  (not sustained)"
            }
        )),
    }
}

/// Everything the body measured, kept outside it so an error loses none.
#[derive(Default)]
struct Gathered {
    runs: Vec<ToolRun>,
    notes: Vec<String>,
    booted: bool,
    /// `kvm`/`tcg` and why, once booted.
    acceleration: Option<(String, String)>,
}

/// The line a benchmark prints once its guest answers.
pub(crate) fn booted_line(p: &crate::backend::Prepared, since: Instant) -> String {
    format!(
        "guest up under {} in {:.1} s: agent {} on kernel {} ({})",
        p.acceleration,
        since.elapsed().as_secs_f64(),
        p.health.agent_version,
        p.health.kernel,
        p.acceleration_note
    )
}

async fn bench_body<B: Backend>(
    opts: &BenchOptions,
    scenario: &Scenario,
    local: &mut B,
    with_irtt: bool,
    g: &mut Gathered,
    ctl: &RunControl,
    live: &Live,
) -> Result<()> {
    let t_boot = Instant::now();
    live.println("booting the guest...");
    let prepared = crate::run::unless_cancelled(
        local.prepare(scenario, live),
        &ctl.cancel,
        "the guest booted",
    )
    .await?;
    g.booted = true;
    live.println(&booted_line(&prepared, t_boot));
    g.acceleration = Some((prepared.acceleration, prepared.acceleration_note));
    let ep = local.endpoints();
    let (site, guest) = (ep.client.clone(), ep.guest);
    // Lets the guest drain what a saturating run left queued.
    let pause = Duration::from_secs(1);
    let cancelled = || ctl.cancel.load(Ordering::SeqCst);

    for &rate in &opts.rates {
        if cancelled() {
            return Ok(());
        }
        let r = run_probe(local, rate, opts.seconds)
            .await
            .unwrap_or_else(|e| ToolRun::failed("probe", rate, &e));
        progress(live, &r);
        g.runs.push(r);
        tokio::time::sleep(pause).await;
    }
    for &rate in &opts.rates {
        if cancelled() {
            return Ok(());
        }
        let r = run_ping(&site, guest, rate, opts.seconds)
            .await
            .unwrap_or_else(|e| ToolRun::failed("ping", rate, &e));
        progress(live, &r);
        g.runs.push(r);
        tokio::time::sleep(pause).await;
    }
    if !with_irtt {
        return Ok(());
    }
    let argv: Vec<String> = [IRTT, "server", "-i", "0", "-b"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!(":{IRTT_PORT}")])
        .collect();
    let started = ep
        .agent
        .start_workload("irtt", &wire::control::WorkloadSpec::Command { argv })
        .await
        .context("starting irtt's server in the guest")?;
    if started.state != "running" {
        bail!(
            "irtt's server in the guest is {}: {}",
            started.state,
            started.error.unwrap_or_default()
        );
    }
    // Let it bind (Go start-up under TCG takes a moment).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let scratch = local.scratch_dir();
    let mut result = Ok(());
    for &rate in &opts.rates {
        if cancelled() {
            break;
        }
        let r = run_irtt(&site, guest, rate, opts.seconds, &scratch)
            .await
            .unwrap_or_else(|e| ToolRun::failed("irtt", rate, &e));
        progress(live, &r);
        g.runs.push(r);
        tokio::time::sleep(pause).await;
    }
    match ep.agent.stop_workload("irtt").await {
        Ok(r) if r.state == "failed" => g.notes.push(format!(
            "irtt's server in the guest ended on its own: {}",
            r.error.unwrap_or_default()
        )),
        Ok(_) => {}
        Err(e) => result = Err(e.context("stopping irtt's server in the guest")),
    }
    result
}

/// A benchmark's lab: booted by the caller, with its bundle and notes.
pub(crate) struct BenchLab<B> {
    /// The backend and its VM (not booted yet).
    pub local: B,
    /// The bundle folder.
    pub bundle: Bundle,
    /// Notes for the report (missing tools, interruptions).
    pub notes: Vec<String>,
    /// Whether the compared tool is on this machine (and in the guest image).
    pub with_tool: bool,
    /// When the benchmark started, ns.
    pub started_ns: i64,
}

/// Builds a benchmark's lab and bundle for `scenario`, with the host tool
/// `tool` (an absolute path) shipped into the guest image when it exists,
/// or a note saying how to install it (Debian package `apt_package`). The lab is removed
/// again if the bundle or the image cannot be made.
pub(crate) async fn prepare_bench_lab(
    scenario: &mut Scenario,
    kernel: Option<&String>,
    agent: Option<&Path>,
    out_dir: &Path,
    (tool, apt_package): (&str, &str),
    ctl: &RunControl,
    live: &Live,
) -> Result<BenchLab<impl Backend>> {
    if let Some(k) = kernel {
        scenario.vm.kernel = k.clone();
    }
    let mut notes = Vec::new();
    let with_tool = Path::new(tool).is_file();
    if !with_tool {
        let note = format!(
            "{tool} is not on this machine, so {apt_package} was not compared: apt-get install {apt_package}"
        );
        live.println(&format!("note: {note}"));
        notes.push(note);
    }
    let started_ns = now_ns();
    let extras: Vec<PathBuf> = if with_tool {
        vec![PathBuf::from(tool)]
    } else {
        Vec::new()
    };
    let mut local = crate::backend::open(scenario, agent, extras)?;
    for line in local.notices() {
        live.println(&line);
    }
    ctl.set_run_id(local.run_id());
    let bundle = match Bundle::create(
        out_dir,
        &scenario.name,
        &compact_stamp(started_ns),
        local.run_id(),
    ) {
        Ok(b) => b,
        Err(e) => {
            let _ = local.teardown().await;
            return Err(e);
        }
    };
    live.println(&format!("bundle: {}", bundle.dir.display()));
    Ok(BenchLab {
        local,
        bundle,
        notes,
        with_tool,
        started_ns,
    })
}

/// After a benchmark, whatever happened: copies the logs, notes an
/// interruption and removes the lab (its result is returned for the caller
/// to report after writing what it has).
pub(crate) async fn finish_bench_lab<B: Backend>(
    local: &mut B,
    bundle: &Bundle,
    notes: &mut Vec<String>,
    ctl: &RunControl,
    live: &Live,
) -> Result<()> {
    if let Err(e) = local.collect(bundle) {
        live.println(&format!("warning: cannot copy the backend's logs: {e:#}"));
    }
    let shutdown = local.teardown().await;
    if ctl.cancel.load(Ordering::SeqCst) {
        notes.push("interrupted by the user: some runs are missing".into());
    }
    shutdown
}

/// Runs the benchmark, prints nothing but progress (on stderr), writes
/// `bench.json` into a new bundle and returns the report and the bundle
/// folder. The lab is removed on every path.
pub async fn bench_probe(opts: &BenchOptions, ctl: &RunControl) -> Result<(BenchReport, PathBuf)> {
    if opts.rates.is_empty() {
        bail!("no rates to try");
    }
    if let Some(r) = opts
        .rates
        .iter()
        .find(|r| **r == 0 || **r > client_probe::MAX_RATE_HZ)
    {
        bail!("rate {r}/s is outside 1..={}", client_probe::MAX_RATE_HZ);
    }
    if !(opts.seconds.is_finite() && opts.seconds >= 0.1) {
        bail!("--seconds must be at least 0.1, not {}", opts.seconds);
    }
    let live = Live::new();
    let mut scenario = Scenario {
        name: "bench-probe".into(),
        description: "probe, ping and irtt at rising rates, client to guest".into(),
        acceleration: opts.accel,
        ..Scenario::default()
    };
    let BenchLab {
        mut local,
        bundle,
        notes,
        with_tool: with_irtt,
        started_ns,
    } = prepare_bench_lab(
        &mut scenario,
        opts.kernel.as_ref(),
        opts.agent.as_deref(),
        &opts.out_dir,
        (IRTT, "irtt"),
        ctl,
        &live,
    )
    .await?;
    let mut g = Gathered {
        notes,
        ..Gathered::default()
    };
    let body = bench_body(opts, &scenario, &mut local, with_irtt, &mut g, ctl, &live).await;

    // Whatever happened: record, then remove the lab.
    let shutdown = finish_bench_lab(&mut local, &bundle, &mut g.notes, ctl, &live).await;
    let mut tool_versions = std::collections::BTreeMap::new();
    tool_versions.insert(
        "probe".into(),
        format!("client-probe (harness {})", env!("CARGO_PKG_VERSION")),
    );
    tool_versions.insert("ping".into(), version_of("ping", &["-V"]));
    if with_irtt {
        tool_versions.insert("irtt".into(), version_of(IRTT, &["version"]));
    }
    let report = BenchReport {
        schema: "bench-probe/1".into(),
        command: std::env::args().collect(),
        started: rfc3339(started_ns),
        ended: rfc3339(now_ns()),
        lab_id: local.run_id().to_string(),
        host: HostFacts::read(local.hypervisor_version()),
        acceleration: g.acceleration.clone().filter(|_| g.booted).map(|a| a.0),
        acceleration_note: g.acceleration.clone().map(|a| a.1).unwrap_or_default(),
        guest_addr: local.endpoints().guest.to_string(),
        seconds: opts.seconds,
        rates: opts.rates.clone(),
        packet_bytes: PACKET_BYTES,
        tool_versions,
        best: best_of(&g.runs),
        runs: g.runs,
        notes: g.notes,
        error: body.as_ref().err().map(|e| format!("{e:#}")),
    };
    bundle.write_json("bench.json", &report)?;
    bundle.write("bench.txt", to_table(&report).as_bytes())?;
    shutdown.context("removing the lab")?;
    if let Err(e) = body {
        if report.runs.is_empty() {
            return Err(e.context(format!(
                "the benchmark failed; what it recorded is in {}",
                bundle.dir.display()
            )));
        }
    }
    Ok((report, bundle.dir.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tool: &str, rate: u32, sent: u64, received: u64, span: f64) -> ToolRun {
        ToolRun {
            sent,
            received,
            send_span_s: span,
            cpu_s: 0.3,
            ..ToolRun::empty(tool, rate)
        }
        .finish()
    }

    #[test]
    fn sustained_means_no_loss_and_the_rate_really_sent() {
        let ok = run("ping", 1000, 3000, 3000, 3.0);
        assert!(ok.sustained);
        assert!((ok.cpu_pct - 10.0).abs() < 1e-9);
        assert!((ok.achieved_reply_hz - 1000.0).abs() < 1e-9);
        assert!(!run("ping", 1000, 3000, 2999, 3.0).sustained, "a loss");
        assert!(!run("irtt", 1000, 2000, 2000, 3.0).sustained, "too slow");
        let mut late = run("probe", 1000, 3000, 3000, 3.0);
        late.sender_late = Some(1);
        let late = late.finish();
        assert!(!late.sustained && late.loss_free);
        let mut unpaced = run("ping", 5000, 15000, 15000, 2.0);
        unpaced.paced = false;
        let unpaced = unpaced.finish();
        assert!(!unpaced.sustained && !unpaced.loss_free);
        assert_eq!(best_of(&[unpaced])[1].unpaced_reply_hz, Some(7500.0));
        let best = best_of(&[
            run("probe", 1000, 3000, 3000, 3.0),
            run("probe", 5000, 15000, 15000, 3.0),
            run("probe", 10000, 30000, 29000, 3.0),
            run("ping", 1000, 3000, 2000, 3.0),
        ]);
        assert_eq!(best[0].rate_hz, Some(5000));
        assert_eq!(best[1].rate_hz, None);
        assert_eq!(best[2].tool, "irtt");
    }

    #[test]
    fn table_has_a_row_per_rate_and_a_line_per_tool() {
        let runs = vec![
            run("probe", 1000, 3000, 3000, 3.0),
            run("ping", 1000, 3000, 3000, 3.0),
            ToolRun::failed("irtt", 1000, &anyhow::anyhow!("x")),
        ];
        let report = BenchReport {
            schema: "bench-probe/1".into(),
            command: vec![],
            started: String::new(),
            ended: String::new(),
            lab_id: "t".into(),
            host: HostFacts::default(),
            acceleration: Some("tcg".into()),
            acceleration_note: String::new(),
            guest_addr: "198.18.0.10".into(),
            seconds: 3.0,
            rates: vec![1000, 2000],
            packet_bytes: 64,
            tool_versions: Default::default(),
            best: best_of(&runs),
            runs,
            notes: vec!["n".into()],
            error: None,
        };
        let t = to_table(&report);
        assert!(t.contains("probe highest rate with no loss: 1000/s"), "{t}");
        assert!(t.contains("irtt  highest rate with no loss: none"), "{t}");
        assert!(t.contains("failed"), "{t}");
        assert!(t.lines().any(|l| l.trim_start().starts_with("2000")), "{t}");
        assert!(t.contains("note: n"), "{t}");
    }

    #[test]
    fn intervals_are_written_for_each_tool() {
        assert_eq!(irtt_interval(20000), "50000ns");
        assert_eq!(ping_interval(20000), ("0".into(), false));
        assert_eq!(ping_interval(1500), ("0".into(), false));
        assert_eq!(ping_interval(1000), ("0.001".into(), true));
        assert_eq!(ping_interval(500), ("0.002".into(), true));
        assert_eq!(ping_interval(300), ("0".into(), false));
    }
}
