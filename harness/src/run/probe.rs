//! The client probe as a run uses it: in-process (a library call whose
//! socket opens at the client's site) or a real `client-probe serve`
//! process started there, driven over its HTTP control API with
//! clock-offset exchanges before and after, exactly as a probe on a tester's
//! laptop would be driven (`docs/remote-probe.md`).

use crate::backend::Site;
use crate::clients::probe::{ClockAlignment, ClockOffsetRecord, RemoteProbe, ServeProcess};
use anyhow::{Context, Result};
use client_probe::{LiveStats, ProbeConfig, ProbeOptions, Prober};
use measure::probe::record::ProbeRecord;
use std::net::SocketAddr;
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
    Local(Prober),
    /// A `client-probe serve` process.
    Served(Box<Served>),
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
    /// Starts the probe in-process, its socket at `site`.
    pub fn start_local(
        site: &Site,
        target: SocketAddr,
        rate_hz: u32,
        payload_len: usize,
    ) -> Result<Self> {
        let socket = site
            .enter(|| std::net::UdpSocket::bind("0.0.0.0:0"))
            .with_context(|| format!("opening the probe socket at {}", site.describe()))?;
        let prober = Prober::start_with(
            socket,
            ProbeConfig {
                target,
                rate_hz,
                payload_len,
            },
            // Real-time priority keeps the prober from being starved by the
            // QEMUs on the same cores; no spinning, so it leaves those cores
            // to them (sleeping alone keeps send times within ~50 µs).
            ProbeOptions {
                spin_margin: Duration::ZERO,
                ..ProbeOptions::default()
            },
        )
        .context("starting the probe")?;
        Ok(Self::Local(prober))
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

    /// Live figures for the progress line.
    pub fn live(&self) -> LiveStats {
        match self {
            Self::Local(p) => p.live(),
            Self::Served(s) => s
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// What the probe recorded since the previous checkpoint, with its
    /// fields as they stand, on this host's clock, for
    /// [`crate::bundle::checkpoint::save`].
    pub async fn checkpoint(&self) -> Result<(ProbeRecord, client_probe::ProbeDelta)> {
        match self {
            Self::Local(p) => Ok((p.meta(), p.checkpoint().context("checkpointing the probe")?)),
            Self::Served(s) => s
                .remote
                .checkpoint(&s.before)
                .await
                .context("checkpointing the served probe"),
        }
    }

    /// Stops the probe and returns its record on this host's clock, with
    /// the clock alignment for a served probe (`probe/clock.json`). The
    /// serve process is ended by its PID whatever happens.
    pub async fn finish(self) -> Result<(ProbeRecord, Option<ClockAlignment>)> {
        match self {
            Self::Local(p) => Ok((p.stop().context("the probe failed")?, None)),
            Self::Served(s) => {
                s.poller.abort();
                let collected = s.remote.stop_and_collect(&s.before).await;
                let stopped = s.serve.stop();
                let c = collected.context("collecting the served probe's record")?;
                if let Err(e) = stopped {
                    eprintln!("warning: stopping client-probe serve: {e:#}");
                }
                Ok((c.record, Some(c.clock)))
            }
        }
    }
}
