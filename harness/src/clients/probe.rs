//! A client probe on another machine (a tester's laptop), driven over
//! `client-probe serve`'s HTTP control API (`client_probe::serve`).
//!
//! The harness connects ([`RemoteProbe::connect`]), measures the remote
//! clock's offset from its own ([`RemoteProbe::clock_offset`]), starts the
//! probe ([`RemoteProbe::start`]), reads live figures while the migration
//! runs ([`RemoteProbe::live`]), then stops it and fetches the whole record
//! ([`RemoteProbe::stop_and_collect`]), which measures the offset a second
//! time so the drift over the run is known.
//!
//! # Clocks
//!
//! The remote probe stamps everything with ITS CLOCK_REALTIME. The harness
//! records on its own. [`RemoteProbe::clock_offset`] does NTP-style
//! exchanges against `GET /v1/time` ([`wire::clocksync`]): the result,
//! `offset_ns`, is the remote clock minus ours, and the true offset lies
//! within `offset_ns ± uncertainty_ns` (half the smallest delay seen),
//! whatever the asymmetry of the path. [`RemoteProbe::stop_and_collect`]
//! converts every client-clock time of the record to our clock by
//! SUBTRACTING the offset measured before the run ([`to_our_clock`]; add
//! it back with [`to_remote_clock`] to get the raw record), and keeps both
//! measurements in a [`ClockAlignment`], the content of `probe/clock.json`
//! ([`CLOCK_FILE`]). The reflector's timestamps (`guest_rx_ns`,
//! `guest_tx_ns`) are on the guest's clock and are left alone.
//!
//! # Reaching the API
//!
//! Each request opens its own TCP connection (the clock exchanges of one
//! measurement share one), from the harness's own network, or, with
//! [`RemoteProbe::connect_at`], from the client's site the backend names,
//! the way [`crate::backend::agent`] reaches the guest agent. Every request has a
//! timeout ([`Timeouts`]), so a remote that vanished is an error, never a
//! hang.
//!
//! [`ServeProcess`] runs a real `client-probe serve` at a site (the lab's
//! client), for tests and for a remote-style probe inside the lab.

use std::fmt;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use client_probe::serve::{
    CheckpointReply, ErrorReply, HealthReply, StartReply, StartRequest, TimeReply,
};
use client_probe::LiveStats;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use measure::probe::record::ProbeRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wire::clocksync::{estimate_offset, TimeSample};

use crate::backend::Site;
use crate::clock::now_ns;

/// Time exchanges per offset measurement, unless told otherwise.
pub const DEFAULT_EXCHANGES: usize = 16;
/// How long [`RemoteProbe::connect`] keeps trying `GET /v1/health`.
pub const HEALTH_WAIT: Duration = Duration::from_secs(5);
/// Where a bundle keeps the [`ClockAlignment`] of a remote probe.
pub const CLOCK_FILE: &str = "probe/clock.json";
/// The pause between two time exchanges, so they sample different moments
/// of the path (a Wi-Fi link's power saving, a queue) rather than one.
const EXCHANGE_SPACING: Duration = Duration::from_millis(5);
/// The largest answer read, except the record.
const MAX_SMALL_ANSWER: usize = 1 << 20;
/// The largest record read (an hour at 1000/s is about 0.7 GiB of JSON).
const MAX_RECORD_ANSWER: usize = 2 << 30;

/// How long each kind of request may take, connection included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP connection. Default 3 s.
    pub connect: Duration,
    /// Any request but `stop` and `checkpoint`, and each time exchange.
    /// Default 5 s.
    pub request: Duration,
    /// `POST /v1/probe/stop`: the remote waits 200 ms for late replies,
    /// then sends the whole record (tens of MB for a long run over a slow
    /// link); also `POST /v1/probe/checkpoint`, which sends a
    /// repetition's share of it. Default 120 s.
    pub stop: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(5),
            stop: Duration::from_secs(120),
        }
    }
}

/// One offset measurement, as kept in `probe/clock.json` (see
/// [`ClockAlignment`]). Every time is ns since the Unix epoch
/// (CLOCK_REALTIME); `offset_ns` is the remote clock minus ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffsetRecord {
    /// The remote probe's base URL.
    pub remote: String,
    /// Remote clock minus ours, ns, from the exchange with the smallest
    /// delay: subtract it from a remote time to get ours.
    pub offset_ns: i64,
    /// The true offset lies within `offset_ns ± uncertainty_ns`: half the
    /// best exchange's delay, rounded up.
    pub uncertainty_ns: i64,
    /// The best exchange's delay, `(t3 - t0) - (t2 - t1)`, ns.
    pub delay_ns: i64,
    /// The best exchange's round trip as we saw it, `t3 - t0`, ns.
    pub rtt_ns: i64,
    /// Plausible exchanges the best was chosen from.
    pub exchanges_used: usize,
    /// Every exchange made, plausible or not, in order: `t0_ns` and
    /// `t3_ns` on our clock, `t1_ns` and `t2_ns` on the remote's.
    pub exchanges: Vec<TimeSample>,
    /// Our clock at the middle of the best exchange, `t0 + (t3 - t0) / 2`:
    /// the moment the offset describes.
    pub measured_at_ns: i64,
}

impl ClockOffsetRecord {
    /// The minimum-delay estimate ([`wire::clocksync::estimate_offset`])
    /// over `exchanges`, kept with them; `None` when none is plausible.
    pub fn from_exchanges(remote: &str, exchanges: Vec<TimeSample>) -> Option<ClockOffsetRecord> {
        let est = estimate_offset(&exchanges)?;
        let best = exchanges
            .iter()
            .filter(|s| s.is_plausible())
            .min_by_key(|s| s.delay_ns())?;
        let measured_at_ns = best.t0_ns.saturating_add(best.rtt_ns() / 2);
        let delay_ns = best.delay_ns();
        Some(ClockOffsetRecord {
            remote: remote.to_owned(),
            offset_ns: est.offset_ns,
            uncertainty_ns: est.uncertainty_ns,
            delay_ns,
            rtt_ns: est.rtt_ns,
            exchanges_used: est.samples,
            exchanges,
            measured_at_ns,
        })
    }
}

/// How a remote probe's record was put on our clock: the content of
/// `probe/clock.json` ([`CLOCK_FILE`]).
///
/// Every client-clock time in the collected record had `applied_offset_ns`
/// subtracted ([`to_our_clock`]); adding it back ([`to_remote_clock`])
/// gives the record exactly as the remote sent it. The drift fields are
/// derived from `before` and `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockAlignment {
    /// The remote probe's base URL.
    pub remote: String,
    /// The offset subtracted from every client-clock time of the record,
    /// ns: `before.offset_ns`.
    pub applied_offset_ns: i64,
    /// The measurement made before the probe started; the one applied.
    pub before: ClockOffsetRecord,
    /// The measurement made after the probe stopped; `None` if it failed
    /// (`after_error` says why).
    pub after: Option<ClockOffsetRecord>,
    /// Why there is no `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_error: Option<String>,
    /// `after.offset_ns - before.offset_ns`: how far the two clocks drifted
    /// apart over the run, ns.
    pub drift_ns: Option<i64>,
    /// `drift_ns` per time between the two measurements, in parts per
    /// million (µs per second).
    pub drift_ppm: Option<f64>,
    /// The largest error of the applied offset at any moment between the
    /// two measurements, if the drift was linear:
    /// `max(before.uncertainty_ns, |drift_ns| + after.uncertainty_ns)`.
    /// Without `after`, only `before.uncertainty_ns` bounds the error, and
    /// only near the moment it was measured.
    pub max_error_ns: Option<i64>,
}

impl ClockAlignment {
    /// Puts the two measurements together and derives the drift.
    pub fn new(before: ClockOffsetRecord, after: Result<ClockOffsetRecord, String>) -> Self {
        let (after, after_error) = match after {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e)),
        };
        let drift_ns = after
            .as_ref()
            .map(|a| a.offset_ns.saturating_sub(before.offset_ns));
        let drift_ppm = after.as_ref().and_then(|a| {
            let span = a.measured_at_ns.saturating_sub(before.measured_at_ns);
            let drift = a.offset_ns.saturating_sub(before.offset_ns);
            (span > 0).then(|| drift as f64 / span as f64 * 1e6)
        });
        let max_error_ns = drift_ns.zip(after.as_ref()).map(|(d, a)| {
            before
                .uncertainty_ns
                .max(d.saturating_abs().saturating_add(a.uncertainty_ns))
        });
        ClockAlignment {
            remote: before.remote.clone(),
            applied_offset_ns: before.offset_ns,
            before,
            after,
            after_error,
            drift_ns,
            drift_ppm,
            max_error_ns,
        }
    }
}

/// What [`RemoteProbe::stop_and_collect`] brings back.
#[derive(Debug, Clone)]
pub struct CollectedProbe {
    /// The probe's record, every client-clock time on OUR clock (see
    /// [`to_our_clock`]).
    pub record: ProbeRecord,
    /// The offsets measured before and after, and the one applied
    /// (`probe/clock.json`).
    pub clock: ClockAlignment,
}

/// Puts a record from a remote probe on our clock: subtracts `offset_ns`
/// (remote minus ours) from every time read on the probe machine's clock:
/// `send_ns`, each reply's `send_ns` and `rx_ns`, each late send's
/// `deadline_ns` and `sent_ns`. The reflector's `guest_rx_ns` and
/// `guest_tx_ns` (the guest's clock) and durations are left alone.
pub fn to_our_clock(rec: &mut ProbeRecord, offset_ns: i64) {
    shift(rec, |t| t.saturating_sub(offset_ns));
}

/// Undoes [`to_our_clock`]: adds `offset_ns` back to the same fields.
pub fn to_remote_clock(rec: &mut ProbeRecord, offset_ns: i64) {
    shift(rec, |t| t.saturating_add(offset_ns));
}

fn shift(rec: &mut ProbeRecord, f: impl Fn(i64) -> i64) {
    for t in &mut rec.send_ns {
        *t = f(*t);
    }
    for r in &mut rec.replies {
        r.send_ns = f(r.send_ns);
        r.rx_ns = f(r.rx_ns);
    }
    for l in &mut rec.sender_late {
        l.deadline_ns = f(l.deadline_ns);
        l.sent_ns = f(l.sent_ns);
    }
}

/// Splits a base URL (`http://HOST:PORT`, a trailing `/` allowed, or just
/// `HOST:PORT`) into its normal form `http://HOST:PORT` and the authority
/// `HOST:PORT`.
pub fn parse_base(base: &str) -> Result<(String, String)> {
    let b = base.trim();
    let rest = if let Some(r) = b.strip_prefix("http://") {
        r
    } else if b.contains("://") {
        bail!("{base:?}: only http:// is supported (the API is plain HTTP with a bearer token)");
    } else {
        b
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        bail!("{base:?} names no host");
    }
    if authority.contains('/') || authority.contains('?') || authority.contains('@') {
        bail!("{base:?}: give only http://HOST:PORT, without a path or user");
    }
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
        && !authority.ends_with(']');
    if !port_ok {
        bail!(
            "{base:?} names no port: give http://HOST:PORT (the --listen of `client-probe serve`)"
        );
    }
    Ok((format!("http://{authority}"), authority.to_owned()))
}

/// A request that failed: on the way (no connection, no answer in time:
/// worth another try while connecting), or for good (a refusal, a wrong
/// answer, a request that cannot be made).
enum Failure {
    Retryable(anyhow::Error),
    Final(anyhow::Error),
}

impl Failure {
    fn into_inner(self) -> anyhow::Error {
        match self {
            Failure::Retryable(e) | Failure::Final(e) => e,
        }
    }
}

/// One open HTTP/1.1 connection; its driver task ends with it.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client-probe reached over its control API (`client-probe serve`).
pub struct RemoteProbe {
    base: String,
    authority: String,
    addr: SocketAddr,
    token: String,
    site: Site,
    timeouts: Timeouts,
    health: HealthReply,
}

impl fmt::Debug for RemoteProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProbe")
            .field("base", &self.base)
            .field("addr", &self.addr)
            .field("site", &self.site)
            .field("timeouts", &self.timeouts)
            .field("health", &self.health)
            .finish_non_exhaustive() // the token is not shown
    }
}

impl RemoteProbe {
    /// Connects to `base` (e.g. `"http://198.18.0.2:7100"`) with `token`,
    /// from this process's own network, and checks that it answers
    /// `GET /v1/health` and accepts the token. Connection failures are
    /// tried again for up to [`HEALTH_WAIT`] (the remote may just be
    /// starting); a refused token or a wrong answer fails at once.
    pub async fn connect(base: &str, token: &str) -> Result<RemoteProbe> {
        Self::connect_at(&Site::here(), base, token).await
    }

    /// [`RemoteProbe::connect`], with every connection opened at `site`
    /// (the lab's client namespace), as the harness reaches the guest
    /// agent.
    pub async fn connect_at(site: &Site, base: &str, token: &str) -> Result<RemoteProbe> {
        let site = site.clone();
        let (base, authority) = parse_base(base)?;
        if token.is_empty() {
            bail!("no token for the remote probe at {base}: give the one `client-probe serve` was started with");
        }
        let addr = resolve(&authority)
            .await
            .with_context(|| format!("the remote probe at {base}"))?;
        let mut probe = RemoteProbe {
            base,
            authority,
            addr,
            token: token.to_owned(),
            site,
            timeouts: Timeouts::default(),
            health: HealthReply {
                version: String::new(),
                probe_running: false,
            },
        };
        let start = Instant::now();
        let last = loop {
            let left = HEALTH_WAIT.saturating_sub(start.elapsed());
            let wait = left.min(probe.timeouts.request);
            match probe
                .call::<HealthReply>(Method::GET, "/v1/health", None, wait, MAX_SMALL_ANSWER)
                .await
            {
                Ok(h) => {
                    probe.health = h;
                    return Ok(probe);
                }
                Err(Failure::Final(e)) => {
                    return Err(e.context(format!(
                        "GET /v1/health on the remote probe at {}",
                        probe.base
                    )))
                }
                Err(Failure::Retryable(e)) => {
                    if start.elapsed() + Duration::from_millis(100) >= HEALTH_WAIT {
                        break e;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Err(last.context(format!(
            "the remote probe at {} did not answer GET /v1/health within {} s",
            probe.base,
            HEALTH_WAIT.as_secs()
        )))
    }

    /// The same probe with other request timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The base URL, normalised (`http://HOST:PORT`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What `GET /v1/health` answered when connecting: the remote's
    /// client-probe version (for the manifest) and whether a probe was
    /// already running there.
    pub fn health(&self) -> &HealthReply {
        &self.health
    }

    /// `exchanges` time exchanges ([`DEFAULT_EXCHANGES`] is a good number)
    /// against `GET /v1/time` on one connection, 5 ms apart: the remote
    /// clock minus ours, with its uncertainty (half the smallest delay),
    /// and every raw exchange.
    pub async fn clock_offset(&self, exchanges: usize) -> Result<ClockOffsetRecord> {
        self.clock_offset_inner(exchanges)
            .await
            .with_context(|| format!("GET /v1/time on the remote probe at {}", self.base))
    }

    async fn clock_offset_inner(&self, exchanges: usize) -> Result<ClockOffsetRecord> {
        if exchanges == 0 {
            bail!("asked for 0 time exchanges: at least one is needed");
        }
        let mut conn = self.open().await?;
        let mut samples = Vec::with_capacity(exchanges);
        for i in 0..exchanges {
            if i > 0 {
                tokio::time::sleep(EXCHANGE_SPACING).await;
            }
            let sample = tokio::time::timeout(self.timeouts.request, async {
                conn.send
                    .ready()
                    .await
                    .context("the connection closed between two exchanges")?;
                let req = self.request(&Method::GET, "/v1/time", None)?;
                let t0 = now_ns();
                let (status, body) = send(&mut conn, req, MAX_SMALL_ANSWER).await?;
                let t3 = now_ns();
                let reply: TimeReply =
                    interpret(status, &body, "/v1/time").map_err(Failure::into_inner)?;
                Ok::<_, anyhow::Error>(TimeSample {
                    t0_ns: t0,
                    t1_ns: reply.t_ns,
                    t2_ns: reply.t2_ns,
                    t3_ns: t3,
                })
            })
            .await
            .map_err(|_| {
                anyhow!(
                    "exchange {} of {exchanges}: no answer within {:.1} s",
                    i + 1,
                    self.timeouts.request.as_secs_f64()
                )
            })?
            .with_context(|| format!("exchange {} of {exchanges}", i + 1))?;
            samples.push(sample);
        }
        ClockOffsetRecord::from_exchanges(&self.base, samples).ok_or_else(|| {
            anyhow!(
                "none of the {exchanges} exchanges was possible (a clock stepped during them?): try again"
            )
        })
    }

    /// Starts probing `target` (the reflector, as the REMOTE machine reaches
    /// it) at `rate_hz` probes per second of `payload_len` bytes. Returns
    /// the session id, the probe socket's address and the start time (the
    /// remote's clock). Fails if a probe already runs there.
    pub async fn start(
        &self,
        target: SocketAddr,
        rate_hz: u32,
        payload_len: usize,
    ) -> Result<StartReply> {
        let body = serde_json::to_vec(&StartRequest {
            target,
            rate_hz,
            payload_len,
        })
        .context("encoding the start request")?;
        self.checked(
            Method::POST,
            "/v1/probe/start",
            Some(body),
            self.timeouts.request,
            MAX_SMALL_ANSWER,
        )
        .await
    }

    /// Live figures of the running probe for the progress line: probes
    /// sent, replies, the current gap and the largest so far (ms, measured
    /// on the remote). Fails when no probe runs.
    pub async fn live(&self) -> Result<LiveStats> {
        self.checked(
            Method::GET,
            "/v1/probe/status",
            None,
            self.timeouts.request,
            MAX_SMALL_ANSWER,
        )
        .await
    }

    /// What the probe recorded since the previous checkpoint, with its
    /// fields as they stand, every time converted to OUR clock with
    /// `offset`, as [`RemoteProbe::stop_and_collect`] converts the whole
    /// record.
    pub async fn checkpoint(
        &self,
        offset: &ClockOffsetRecord,
    ) -> Result<(ProbeRecord, client_probe::ProbeDelta)> {
        let reply: CheckpointReply = self
            .checked(
                Method::POST,
                "/v1/probe/checkpoint",
                None,
                self.timeouts.stop,
                MAX_RECORD_ANSWER,
            )
            .await?;
        let mut part = ProbeRecord {
            send_ns: reply.delta.send_ns,
            replies: reply.delta.replies,
            ..ProbeRecord::default()
        };
        to_our_clock(&mut part, offset.offset_ns);
        Ok((
            reply.meta,
            client_probe::ProbeDelta {
                first_seq: reply.delta.first_seq,
                send_ns: part.send_ns,
                replies: part.replies,
            },
        ))
    }

    /// Stops the probe, fetches its whole [`ProbeRecord`], converts every
    /// client-clock time in it to OUR clock by subtracting `offset.offset_ns`
    /// (see [`to_our_clock`]; the offset is kept in the returned
    /// [`ClockAlignment`] so the conversion can be undone), then measures
    /// the offset again (as many exchanges as `offset` has) for the drift.
    /// That second measurement failing does not lose the record: it is
    /// noted in [`ClockAlignment::after_error`].
    pub async fn stop_and_collect(&self, offset: &ClockOffsetRecord) -> Result<CollectedProbe> {
        let mut record: ProbeRecord = self
            .checked(
                Method::POST,
                "/v1/probe/stop",
                None,
                self.timeouts.stop,
                MAX_RECORD_ANSWER,
            )
            .await?;
        to_our_clock(&mut record, offset.offset_ns);
        let after = self
            .clock_offset(offset.exchanges.len().max(1))
            .await
            .map_err(|e| format!("{e:#}"));
        Ok(CollectedProbe {
            record,
            clock: ClockAlignment::new(offset.clone(), after),
        })
    }

    /// One request on its own connection, its answer parsed; errors name
    /// the endpoint and the remote.
    async fn checked<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<T> {
        self.call(method.clone(), path, body, timeout, limit)
            .await
            .map_err(|f| {
                f.into_inner().context(format!(
                    "{method} {path} on the remote probe at {}",
                    self.base
                ))
            })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<T, Failure> {
        let fut = async {
            let req = self.request(&method, path, body).map_err(Failure::Final)?;
            let mut conn = self.open().await.map_err(Failure::Retryable)?;
            let (status, bytes) = send(&mut conn, req, limit)
                .await
                .map_err(Failure::Retryable)?;
            interpret(status, &bytes, path)
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Retryable(anyhow!(
                "no answer within {:.1} s",
                timeout.as_secs_f64()
            ))),
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request (is the token plain text?)")
    }

    /// Opens a connection (at the probe's site) and does
    /// the HTTP/1.1 handshake.
    async fn open(&self) -> Result<Conn> {
        let t = self.timeouts.connect;
        let addr = self.addr;
        let site = self.site.clone();
        let std = tokio::task::spawn_blocking(move || {
            site.enter(move || {
                let s = std::net::TcpStream::connect_timeout(&addr, t)?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                Ok(s)
            })
        })
        .await
        .map_err(|e| anyhow!("the connect task failed: {e}"))?
        .with_context(|| format!("cannot connect to {addr} (within {:.1} s)", t.as_secs_f64()))?;
        let stream = tokio::net::TcpStream::from_std(std)
            .with_context(|| format!("cannot use the connection to {addr}"))?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send, task })
    }
}

/// Resolves `HOST:PORT` (an IP literal needs no lookup).
async fn resolve(authority: &str) -> Result<SocketAddr> {
    if let Ok(a) = authority.parse::<SocketAddr>() {
        return Ok(a);
    }
    let name = authority.to_owned();
    tokio::task::spawn_blocking(move || {
        name.to_socket_addrs()
            .with_context(|| format!("cannot resolve {name}"))?
            .next()
            .ok_or_else(|| anyhow!("{name} resolves to no address"))
    })
    .await
    .map_err(|e| anyhow!("the lookup task failed: {e}"))?
}

/// Sends `req` on `conn` and reads the whole answer (at most `limit` bytes).
async fn send(
    conn: &mut Conn,
    req: Request<Full<Bytes>>,
    limit: usize,
) -> Result<(StatusCode, Bytes)> {
    let resp = conn
        .send
        .send_request(req)
        .await
        .context("the request failed (connection closed or reset)")?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| anyhow!("cannot read the answer: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

/// The first 200 characters of an answer, for error messages.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// Turns an answer into `T`, or into an error saying what was wrong with it.
fn interpret<T: DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
    path: &str,
) -> Result<T, Failure> {
    if status == StatusCode::UNAUTHORIZED {
        return Err(Failure::Final(anyhow!(
            "the token was refused (401 Unauthorized): give the token `client-probe serve` was started with"
        )));
    }
    if !status.is_success() {
        let why = serde_json::from_slice::<ErrorReply>(bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| snippet(bytes));
        let hint = if status == StatusCode::NOT_FOUND && path == "/v1/health" {
            " (an older client-probe without /v1/health? run the same version as the harness)"
        } else {
            ""
        };
        return Err(Failure::Final(anyhow!("answered {status}: {why}{hint}")));
    }
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let name = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("answer");
        Failure::Final(anyhow!(
            "the answer to {path} is not a valid {name}: {e}; it begins: {:?}",
            snippet(bytes)
        ))
    })
}

/// How much of a subprocess's stderr is kept.
const STDERR_KEEP: usize = 64 * 1024;
/// How long a [`ServeProcess`] has to listen after it started.
const SERVE_READY_WAIT: Duration = Duration::from_secs(5);
/// What `client-probe serve` prints on stderr once it listens.
const READY_LINE: &str = "control API on http://";
/// How long a [`ServeProcess`] has to end after SIGTERM before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(2);

/// A `client-probe serve` the harness started at a site as a real
/// subprocess: `<client-probe> serve --listen ADDR` with the token in
/// `LMIG_PROBE_TOKEN` (the site starts the program in place, so the PID is
/// client-probe's). It runs in its own process group (a Ctrl-C at
/// the terminal reaches the harness only, which ends it in order), and is
/// ended by its PID when dropped: SIGTERM, then SIGKILL if it has not
/// ended within 2 s, and reaped. Its stderr is kept (the last 64 KiB).
///
/// The token is on its command line, which every local user can read:
/// meant for lab tokens.
pub struct ServeProcess {
    child: Child,
    listen: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for ServeProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeProcess")
            .field("pid", &self.child.id())
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl ServeProcess {
    /// Starts `binary serve --listen LISTEN --token TOKEN` at `site` and
    /// returns once it says it listens (within 5 s), or fails with what it
    /// printed (and is ended).
    pub fn spawn_at(
        site: &Site,
        binary: &Path,
        listen: SocketAddr,
        token: &str,
    ) -> Result<ServeProcess> {
        use std::os::unix::process::CommandExt;
        if !binary.is_file() {
            bail!(
                "no client-probe binary at {} (build it: cargo build -p client-probe)",
                binary.display()
            );
        }
        let mut child = site
            .command(binary)
            .args(["serve", "--listen", &listen.to_string()])
            // In the environment, not on the command line that every local
            // user can read.
            .env("LMIG_PROBE_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run `{} serve` at {}",
                    binary.display(),
                    site.describe()
                )
            })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let drain = child.stderr.take().and_then(|mut pipe| {
            let keep = stderr.clone();
            std::thread::Builder::new()
                .name("serve-stderr".into())
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                        k.extend_from_slice(&buf[..n]);
                        let excess = k.len().saturating_sub(STDERR_KEEP);
                        k.drain(..excess);
                    }
                })
                .ok()
        });
        let mut me = ServeProcess {
            child,
            listen,
            stderr,
            drain,
        };
        me.wait_listening(&site.describe())?; // on failure, dropping `me` ends it
        Ok(me)
    }

    /// Waits for the line `client-probe serve` prints once its listener is
    /// bound (`client-probe: control API on http://...`), or its exit.
    /// (Connecting to the address would not do: another process may
    /// already listen there, and this one then fails to bind.)
    fn wait_listening(&mut self, place: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.stderr().contains(READY_LINE) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .try_wait()
                .context("waiting for client-probe serve")?
            {
                // Let the drain thread take the last words.
                if let Some(d) = self.drain.take() {
                    let _ = d.join();
                }
                bail!(
                    "client-probe serve in {place} exited ({status}) before listening on {}: {}",
                    self.listen,
                    self.stderr().trim()
                );
            }
            if start.elapsed() >= SERVE_READY_WAIT {
                bail!(
                    "client-probe serve in {place} (PID {}) does not listen on {} after {} s: {}",
                    self.pid(),
                    self.listen,
                    SERVE_READY_WAIT.as_secs(),
                    self.stderr().trim()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's PID (client-probe's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// `http://LISTEN`, for [`RemoteProbe::connect_at`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// What it has written to stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        let k = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&k).into_owned()
    }

    /// Its exit status if it has ended (and is now reaped), else `None`.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for client-probe serve (PID {})", self.pid()))
    }

    /// Ends it now (as dropping does) and returns how it ended.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<ExitStatus> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let status = match self.child.try_wait()? {
            Some(s) => s,
            None => {
                // Not reaped yet, so the PID is still ours.
                let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
                let _ = kill(pid, Signal::SIGTERM);
                // A stopped process (SIGSTOP) acts on SIGTERM only once
                // continued.
                let _ = kill(pid, Signal::SIGCONT);
                let start = Instant::now();
                loop {
                    if let Some(s) = self.child.try_wait()? {
                        break s;
                    }
                    if start.elapsed() >= TERM_WAIT {
                        let _ = self.child.kill(); // SIGKILL, by PID
                        break self.child.wait()?;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        Ok(status)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!(
                "warning: could not end client-probe serve (PID {}): {e:#}",
                self.child.id()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use measure::probe::record::{ReplyRecord, SenderLate};

    const T: i64 = 1_700_000_000_000_000_000;

    fn record() -> ProbeRecord {
        ProbeRecord {
            session: 7,
            rate_hz: 1000,
            payload_len: 64,
            target: "198.18.0.10:7001".into(),
            send_ns: vec![T, T + 1_000_000, T + 2_000_000],
            replies: vec![ReplyRecord {
                seq: 0,
                send_ns: T,
                rx_ns: T + 300_000,
                kernel_ts: true,
                guest_rx_ns: 5_000,
                guest_tx_ns: 6_000,
                reflector_rx_count: 1,
            }],
            sender_late: vec![SenderLate {
                seq: 2,
                deadline_ns: T + 2_000_000 - 3_000_000,
                sent_ns: T + 2_000_000,
            }],
            max_send_delay_ns: 3_000_000,
            sender_cpu_ns: 42,
            ..ProbeRecord::default()
        }
    }

    #[test]
    fn conversion_subtracts_the_offset_from_client_times_only_and_undoes() {
        let raw = record();
        let mut rec = raw.clone();
        let offset = 2_500_000_000; // the remote is 2.5 s ahead
        to_our_clock(&mut rec, offset);
        assert_eq!(
            rec.send_ns,
            vec![T - offset, T + 1_000_000 - offset, T + 2_000_000 - offset]
        );
        let r = &rec.replies[0];
        assert_eq!((r.send_ns, r.rx_ns), (T - offset, T + 300_000 - offset));
        // The guest's clock and durations are not the probe machine's.
        assert_eq!((r.guest_rx_ns, r.guest_tx_ns), (5_000, 6_000));
        assert_eq!(rec.max_send_delay_ns, 3_000_000);
        assert_eq!(rec.sender_cpu_ns, 42);
        let l = &rec.sender_late[0];
        assert_eq!(
            (l.deadline_ns, l.sent_ns),
            (T - 1_000_000 - offset, T + 2_000_000 - offset)
        );
        to_remote_clock(&mut rec, offset);
        assert_eq!(rec, raw);
        // A remote behind us: times move forward.
        let mut rec = raw.clone();
        to_our_clock(&mut rec, -10);
        assert_eq!(rec.send_ns[0], T + 10);
    }

    fn sample(t0: i64, offset: i64, up: i64, down: i64) -> TimeSample {
        TimeSample {
            t0_ns: t0,
            t1_ns: t0 + up + offset,
            t2_ns: t0 + up + offset + 1_000,
            t3_ns: t0 + up + 1_000 + down,
        }
    }

    #[test]
    fn offset_records_keep_the_best_exchange_and_every_raw_one() {
        let off = 3_000_000;
        let samples = vec![
            sample(T, off, 900_000, 100_000),
            sample(T + 10_000_000, off, 60_000, 40_000), // best: delay 100 µs
            TimeSample {
                t0_ns: T,
                t1_ns: T,
                t2_ns: T,
                t3_ns: T - 1,
            }, // impossible
        ];
        let r =
            ClockOffsetRecord::from_exchanges("http://198.18.0.2:7100", samples.clone()).unwrap();
        assert_eq!(r.offset_ns, off + 10_000);
        assert_eq!(r.delay_ns, 100_000);
        assert_eq!(r.uncertainty_ns, 50_000);
        assert_eq!(r.rtt_ns, 101_000);
        assert_eq!(r.exchanges_used, 2);
        assert_eq!(r.exchanges, samples);
        assert_eq!(r.measured_at_ns, T + 10_000_000 + 50_500);
        assert!(ClockOffsetRecord::from_exchanges("x", vec![]).is_none());
    }

    fn offset_at(at: i64, offset: i64, unc: i64) -> ClockOffsetRecord {
        ClockOffsetRecord {
            remote: "http://198.18.0.2:7100".into(),
            offset_ns: offset,
            uncertainty_ns: unc,
            delay_ns: 2 * unc,
            rtt_ns: 2 * unc + 1_000,
            exchanges_used: 1,
            exchanges: vec![sample(at - unc, offset, unc, unc)],
            measured_at_ns: at,
        }
    }

    #[test]
    fn alignment_derives_drift_and_round_trips_as_json() {
        let before = offset_at(T, 1_000_000, 40_000);
        let after = offset_at(T + 10_000_000_000, 1_500_000, 30_000); // 0.5 ms in 10 s
        let a = ClockAlignment::new(before.clone(), Ok(after.clone()));
        assert_eq!(a.applied_offset_ns, 1_000_000);
        assert_eq!(a.drift_ns, Some(500_000));
        assert!((a.drift_ppm.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(a.max_error_ns, Some(530_000));
        assert_eq!(a.remote, "http://198.18.0.2:7100");
        let text = serde_json::to_string_pretty(&a).unwrap();
        assert!(!text.contains("after_error"), "{text}");
        for key in [
            "\"offset_ns\"",
            "\"uncertainty_ns\"",
            "\"delay_ns\"",
            "\"exchanges_used\"",
            "\"t0_ns\"",
            "\"t3_ns\"",
            "\"measured_at_ns\"",
            "\"applied_offset_ns\"",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let back: ClockAlignment = serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
        let back: ClockOffsetRecord =
            serde_json::from_str(&serde_json::to_string(&before).unwrap()).unwrap();
        assert_eq!(back, before);

        let failed = ClockAlignment::new(before, Err("no answer".into()));
        assert_eq!(
            (
                failed.after,
                failed.drift_ns,
                failed.drift_ppm,
                failed.max_error_ns
            ),
            (None, None, None, None)
        );
        assert_eq!(failed.after_error.as_deref(), Some("no answer"));
    }

    /// The example of docs/remote-probe.md is what the code computes.
    #[test]
    fn the_documented_example_holds() {
        let ex = |t0, t1, t2, t3| TimeSample {
            t0_ns: t0,
            t1_ns: t1,
            t2_ns: t2,
            t3_ns: t3,
        };
        let remote = "http://192.0.2.7:7100";
        let before = ClockOffsetRecord::from_exchanges(
            remote,
            vec![ex(
                1_764_045_000_100_000_000,
                1_764_045_000_102_350_000,
                1_764_045_000_102_390_000,
                1_764_045_000_100_700_000,
            )],
        )
        .unwrap();
        let after = ClockOffsetRecord::from_exchanges(
            remote,
            vec![ex(
                1_764_045_030_200_000_000,
                1_764_045_030_202_390_000,
                1_764_045_030_202_425_000,
                1_764_045_030_200_655_000,
            )],
        )
        .unwrap();
        let b = (before.offset_ns, before.uncertainty_ns, before.delay_ns);
        assert_eq!(b, (2_020_000, 330_000, 660_000));
        assert_eq!(before.rtt_ns, 700_000);
        assert_eq!(before.measured_at_ns, 1_764_045_000_100_350_000);
        let a = (after.offset_ns, after.uncertainty_ns, after.delay_ns);
        assert_eq!(a, (2_080_000, 310_000, 620_000));
        assert_eq!(after.rtt_ns, 655_000);
        assert_eq!(after.measured_at_ns, 1_764_045_030_200_327_500);
        let c = ClockAlignment::new(before, Ok(after));
        assert_eq!(c.drift_ns, Some(60_000));
        assert_eq!(c.max_error_ns, Some(370_000));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["drift_ppm"], serde_json::json!(1.9933569717784674));
        assert!(json["after_error"].is_null());
    }

    #[test]
    fn base_urls() {
        let ok = |b: &str| parse_base(b).unwrap();
        assert_eq!(
            ok("http://198.18.0.2:7100"),
            ("http://198.18.0.2:7100".into(), "198.18.0.2:7100".into())
        );
        assert_eq!(ok("http://198.18.0.2:7100/").0, "http://198.18.0.2:7100");
        assert_eq!(ok("198.18.0.2:7100").0, "http://198.18.0.2:7100");
        assert_eq!(ok("http://[::1]:7100").1, "[::1]:7100");
        assert_eq!(ok("http://laptop.lan:7100").1, "laptop.lan:7100");
        for bad in [
            "",
            "http://",
            "https://198.18.0.2:7100",
            "http://198.18.0.2",
            "http://198.18.0.2:0",
            "http://198.18.0.2:7100/v1",
            "http://u@198.18.0.2:7100",
            "http://[::1]",
            "http://:7100",
        ] {
            assert!(parse_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_interpreted_with_clear_errors() {
        let e = interpret::<TimeReply>(StatusCode::UNAUTHORIZED, b"{}", "/v1/time")
            .err()
            .unwrap()
            .into_inner();
        assert!(e.to_string().contains("token was refused (401"), "{e}");
        let e = interpret::<TimeReply>(
            StatusCode::CONFLICT,
            br#"{"error":"no probe is running"}"#,
            "/v1/probe/stop",
        )
        .err()
        .unwrap()
        .into_inner();
        assert_eq!(e.to_string(), "answered 409 Conflict: no probe is running");
        let e = interpret::<HealthReply>(StatusCode::NOT_FOUND, b"nope", "/v1/health")
            .err()
            .unwrap()
            .into_inner();
        assert!(e.to_string().contains("older client-probe"), "{e}");
        let e = interpret::<TimeReply>(StatusCode::OK, b"<html>hello</html>", "/v1/time")
            .err()
            .unwrap()
            .into_inner();
        assert!(
            e.to_string()
                .starts_with("the answer to /v1/time is not a valid TimeReply"),
            "{e}"
        );
        assert!(e.to_string().contains("<html>hello</html>"), "{e}");
        let t: TimeReply = interpret(StatusCode::OK, br#"{"t_ns":1,"t2_ns":2}"#, "/v1/time")
            .ok()
            .unwrap();
        assert_eq!((t.t_ns, t.t2_ns), (1, 2));
        assert_eq!(snippet(&[b'a'; 300]).len(), 203);
    }
}
