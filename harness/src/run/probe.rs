//! The client probe as a run uses it: in-process (a library call whose
//! socket opens at the client's site) or a real `client-probe serve`
//! process started there, driven over its HTTP control API with
//! clock-offset exchanges before and after, exactly as a probe on a tester's
//! laptop would be driven (`docs/remote-probe.md`).
//!
//! In process, a second stream runs beside the reflector's: ICMP echoes to
//! the guest's address, answered by its kernel ([`client_probe::icmp`]), at
//! the same rate and size, so each outage shows when the kernel was back as
//! well as when the service was. It is secondary: when it cannot start, the
//! run goes on without it and says so once. `client-probe serve` has no
//! ICMP stream.

use crate::backend::Site;
use crate::bundle::checkpoint::Deltas;
use crate::clients::probe::{ClockAlignment, ClockOffsetRecord, RemoteProbe, ServeProcess};
use anyhow::{Context, Result};
use client_probe::icmp::MIN_ECHO_DATA_LEN;
use client_probe::{
    IcmpConfig, IcmpProber, IcmpSocket, LiveStats, ProbeConfig, ProbeOptions, Prober,
};
use measure::probe::record::ProbeRecord;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Port of `client-probe serve` at the client's site.
pub const SERVE_PORT: u16 = 7100;
/// Time exchanges per clock-offset measurement.
const EXCHANGES: usize = 16;

/// A running probe.
pub enum ProbeHandle {
    /// In this process.
    Local(Box<Local>),
    /// A `client-probe serve` process.
    Served(Box<Served>),
}

/// The in-process probe: the reflector's stream, and the kernel's beside it
/// when it could start.
pub struct Local {
    udp: Prober,
    icmp: Option<IcmpProber>,
    /// Why there is no ICMP stream, said once when the run starts.
    note: Option<String>,
    /// The first failed ICMP checkpoint: later ICMP segments are not saved
    /// (they would not follow on from the last one saved); the whole
    /// record is still written at the end.
    icmp_checkpoint_error: Mutex<Option<String>>,
}

/// What a stopped probe recorded.
pub struct Finished {
    /// The reflector's stream, on this host's clock.
    pub record: ProbeRecord,
    /// The clock alignment of a served probe (`probe/clock.json`).
    pub clock: Option<ClockAlignment>,
    /// The kernel's stream: `None` when it did not run, `Err` when it
    /// failed.
    pub icmp: Option<Result<ProbeRecord>>,
    /// Warnings about the ICMP stream's checkpoints, for the run's output.
    pub icmp_warning: Option<String>,
}

/// The note of a run whose probe sends no ICMP echoes.
const SERVED_NOTE: &str = "note: the served probe (client-probe serve) sends no ICMP echoes: no kernel outage beside the reflector's (client.icmp_* stay empty)";

/// The scheduling of both in-process streams. Real-time priority keeps the
/// prober from being starved by the QEMUs on the same cores; no spinning,
/// so it leaves those cores to them (sleeping alone keeps send times within
/// ~50 µs).
fn local_options() -> ProbeOptions {
    ProbeOptions {
        spin_margin: Duration::ZERO,
        ..ProbeOptions::default()
    }
}

/// Starts the ICMP stream to `guest` on a raw socket opened at `site`, or
/// says why not.
fn start_icmp(
    site: &Site,
    guest: IpAddr,
    rate_hz: u32,
    payload_len: usize,
) -> std::result::Result<IcmpProber, String> {
    let IpAddr::V4(target) = guest else {
        return Err(format!("the guest's address {guest} is not IPv4"));
    };
    let socket = site.enter(IcmpSocket::open).map_err(|e| {
        format!(
            "cannot open a raw ICMP socket at {}: {e:#}",
            site.describe()
        )
    })?;
    IcmpProber::start_with(
        socket,
        IcmpConfig {
            target,
            rate_hz,
            // The UDP probe's size gives the same packet size on the wire.
            payload_len: payload_len.max(MIN_ECHO_DATA_LEN),
        },
        local_options(),
    )
    .map_err(|e| format!("cannot start the ICMP probe: {e:#}"))
}

/// The served probe and what the run keeps about it.
pub struct Served {
    serve: ServeProcess,
    remote: Arc<RemoteProbe>,
    before: ClockOffsetRecord,
    live: Arc<Mutex<LiveStats>>,
    poller: tokio::task::JoinHandle<()>,
}

/// The `client-probe` binary next to this one (`target/<profile>/`), or
/// `$LMIG_CLIENT_PROBE`.
pub fn find_client_probe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LMIG_CLIENT_PROBE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("client-probe"))
        .find(|p| p.is_file())
        .context("no client-probe binary next to harness (build it: cargo build --release -p client-probe, or set LMIG_CLIENT_PROBE)")
}

impl ProbeHandle {
    /// Starts the probe in-process, its sockets at `site`: UDP to the
    /// reflector at `target`, and ICMP echoes to the guest's address
    /// `guest` at `icmp_rate_hz` and the same size (without them at rate 0
    /// or when they cannot start: [`ProbeHandle::note`] says why).
    pub fn start_local(
        site: &Site,
        target: SocketAddr,
        guest: IpAddr,
        (rate_hz, icmp_rate_hz): (u32, u32),
        payload_len: usize,
    ) -> Result<Self> {
        let socket = site
            .enter(|| std::net::UdpSocket::bind("0.0.0.0:0"))
            .with_context(|| format!("opening the probe socket at {}", site.describe()))?;
        let udp = Prober::start_with(
            socket,
            ProbeConfig {
                target,
                rate_hz,
                payload_len,
            },
            local_options(),
        )
        .context("starting the probe")?;
        let icmp = match icmp_rate_hz {
            0 => Err("`probe.icmp_rate_hz` is 0".to_string()),
            r => start_icmp(site, guest, r, payload_len),
        };
        let (icmp, note) = match icmp {
            Ok(p) => (Some(p), None),
            Err(why) => (
                None,
                Some(format!(
                    "note: no ICMP probe beside the reflector's: {why} (client.icmp_* stay empty)"
                )),
            ),
        };
        Ok(Self::Local(Box::new(Local {
            udp,
            icmp,
            note,
            icmp_checkpoint_error: Mutex::new(None),
        })))
    }

    /// What the run should say once about the probe, when its ICMP stream
    /// does not run (served, or it could not start).
    pub fn note(&self) -> Option<&str> {
        match self {
            Self::Local(l) => l.note.as_deref(),
            Self::Served(_) => Some(SERVED_NOTE),
        }
    }

    /// Starts `client-probe serve` at `site` listening on `listen_ip`,
    /// measures the clock offset, and starts probing.
    pub async fn start_served(
        site: &Site,
        listen_ip: std::net::Ipv4Addr,
        target: SocketAddr,
        rate_hz: u32,
        payload_len: usize,
    ) -> Result<Self> {
        let binary = find_client_probe()?;
        // A token nobody guesses: 8 random bytes, no fallback.
        let token = format!(
            "lmig-{}",
            wire::random::token_hex(8).context("drawing the served probe's token")?
        );
        let listen = SocketAddr::from((listen_ip, SERVE_PORT));
        let serve = ServeProcess::spawn_at(site, &binary, listen, &token)?;
        let remote = Arc::new(
            RemoteProbe::connect_at(site, &serve.base_url(), &token)
                .await
                .context("connecting to the served probe")?,
        );
        let before = remote
            .clock_offset(EXCHANGES)
            .await
            .context("measuring the served probe's clock offset")?;
        remote.start(target, rate_hz, payload_len).await?;
        let live = Arc::new(Mutex::new(LiveStats::default()));
        let (r, l) = (remote.clone(), live.clone());
        // The progress line reads live figures synchronously: poll them.
        let poller = tokio::spawn(async move {
            loop {
                if let Ok(s) = r.live().await {
                    *l.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = s;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Ok(Self::Served(Box::new(Served {
            serve,
            remote,
            before,
            live,
            poller,
        })))
    }

    /// Live figures of the reflector's stream, for the progress line.
    pub fn live(&self) -> LiveStats {
        match self {
            Self::Local(p) => p.udp.live(),
            Self::Served(s) => s
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// What the probe recorded since the previous checkpoint, with its
    /// fields as they stand, on this host's clock, for
    /// [`crate::bundle::checkpoint::save`]: the reflector's stream, and the
    /// kernel's when it runs.
    pub async fn checkpoint(&self) -> Result<(ProbeRecord, Deltas)> {
        match self {
            Self::Local(p) => {
                let probe = p.udp.checkpoint().context("checkpointing the probe")?;
                Ok((
                    p.udp.meta(),
                    Deltas {
                        probe,
                        icmp: p.icmp_checkpoint(),
                    },
                ))
            }
            Self::Served(s) => {
                let (meta, probe) = s
                    .remote
                    .checkpoint(&s.before)
                    .await
                    .context("checkpointing the served probe")?;
                Ok((meta, Deltas { probe, icmp: None }))
            }
        }
    }

    /// Stops the probe and returns its records on this host's clock, with
    /// the clock alignment for a served probe (`probe/clock.json`). The
    /// serve process is ended by its PID whatever happens.
    pub async fn finish(self) -> Result<Finished> {
        match self {
            Self::Local(p) => {
                let Local {
                    udp,
                    icmp,
                    icmp_checkpoint_error,
                    ..
                } = *p;
                // The kernel's stream first: stopping each waits out its
                // receive linger, and the reflector's record is the one a
                // failure must not lose.
                let icmp = icmp.map(|i| i.stop().context("the ICMP probe failed"));
                let record = udp.stop().context("the probe failed")?;
                let icmp_warning = icmp_checkpoint_error
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(Finished {
                    record,
                    clock: None,
                    icmp,
                    icmp_warning,
                })
            }
            Self::Served(s) => {
                s.poller.abort();
                let collected = s.remote.stop_and_collect(&s.before).await;
                let stopped = s.serve.stop();
                let c = collected.context("collecting the served probe's record")?;
                if let Err(e) = stopped {
                    eprintln!("warning: stopping client-probe serve: {e:#}");
                }
                Ok(Finished {
                    record: c.record,
                    clock: Some(c.clock),
                    icmp: None,
                    icmp_warning: None,
                })
            }
        }
    }
}

impl Local {
    /// The ICMP stream's checkpoint, unless it does not run or one failed
    /// before (then the first failure is kept for the end of the run).
    fn icmp_checkpoint(&self) -> Option<(ProbeRecord, client_probe::ProbeDelta)> {
        let icmp = self.icmp.as_ref()?;
        let mut failed = self
            .icmp_checkpoint_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failed.is_some() {
            return None;
        }
        match icmp.checkpoint() {
            Ok(d) => Some((icmp.meta(), d)),
            Err(e) => {
                *failed = Some(format!(
                    "warning: an ICMP probe checkpoint failed ({e}); later ICMP checkpoints were not saved, the whole ICMP record is written at the end"
                ));
                None
            }
        }
    }
}
