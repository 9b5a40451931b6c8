//! The running prober: a sender thread and a receiver thread on one socket
//! handed in by the caller.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::clock::realtime_ns;
use wire::probe::HEADER_LEN;

use crate::error::ProbeError;
use crate::handover::Handover;
use crate::live::{LiveCounters, LiveStats};
use crate::receiver::{self, ReceiverState};
use crate::sender::{Sender, SenderOutput, Spin};
use measure::probe::record::{ProbeRecord, ReplyRecord};

/// The highest probe rate accepted, per second.
pub const MAX_RATE_HZ: u32 = 100_000;
/// The largest probe datagram accepted (the largest UDP payload over IPv4).
pub const MAX_PAYLOAD_LEN: usize = 65_507;
/// How long the receiver keeps listening for late replies after the sender
/// stopped.
pub const RECEIVE_LINGER: Duration = Duration::from_millis(200);
/// The receive timeout, so the receiver notices a stop request.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// How long [`Prober::checkpoint`] waits for the threads (each serves a
/// hand-over within one read timeout or one sleep, 50 ms, when well).
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probe recorded since the previous [`Prober::checkpoint`] (or
/// since it started): the new send times and replies, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeDelta {
    /// The seq of `send_ns[0]`.
    pub first_seq: u64,
    /// Send times of probes `first_seq..`, ns (client clock).
    pub send_ns: Vec<i64>,
    /// Replies that arrived since the previous checkpoint, in arrival order.
    pub replies: Vec<ReplyRecord>,
}

/// What to probe, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// The reflector's address.
    pub target: SocketAddr,
    /// Probes per second, 1 to [`MAX_RATE_HZ`].
    pub rate_hz: u32,
    /// Size of each probe datagram: at least [`wire::probe::HEADER_LEN`],
    /// at most [`MAX_PAYLOAD_LEN`]; the header is padded with zeros to it.
    pub payload_len: usize,
}

impl ProbeConfig {
    /// Checks the rate and the size.
    pub fn validate(&self) -> Result<(), ProbeError> {
        if self.rate_hz == 0 || self.rate_hz > MAX_RATE_HZ {
            return Err(ProbeError::Config(format!(
                "rate {} per second is outside 1..={MAX_RATE_HZ}",
                self.rate_hz
            )));
        }
        if !(HEADER_LEN..=MAX_PAYLOAD_LEN).contains(&self.payload_len) {
            return Err(ProbeError::Config(format!(
                "probe size {} bytes is outside {HEADER_LEN}..={MAX_PAYLOAD_LEN}",
                self.payload_len
            )));
        }
        Ok(())
    }
}

/// How the probe threads are scheduled: the knobs [`ProbeConfig`] does not
/// carry. [`Prober::start`] uses [`ProbeOptions::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Ask for `SCHED_FIFO` real-time priority for the sender and receiver
    /// threads (needs root or `CAP_SYS_NICE`; refused quietly otherwise, and
    /// recorded in [`ProbeRecord::realtime_priority`]). Default: yes.
    pub realtime_priority: bool,
    /// The `SCHED_FIFO` priority, 1 to 99. Default 10: above every normal
    /// process, below the kernel's own real-time threads (priority 50).
    pub realtime_level: i32,
    /// Spin this long before each deadline instead of sleeping through it,
    /// but never more than a quarter of the interval (so the sender leaves
    /// the CPU at least three quarters of the time at any rate). Default
    /// 200 µs; zero never spins.
    pub spin_margin: Duration,
    /// Spin only when the probe interval is shorter than this, so low rates
    /// stay cheap. Default 2 ms (rates above 500 per second).
    pub spin_below_interval: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            realtime_priority: true,
            realtime_level: 10,
            spin_margin: Duration::from_micros(200),
            spin_below_interval: Duration::from_millis(2),
        }
    }
}

/// A running prober. Dropping it without [`Prober::stop`] stops its threads
/// and discards the record.
#[derive(Debug)]
pub struct Prober {
    cfg: ProbeConfig,
    session: u64,
    live: Arc<LiveCounters>,
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    sender: Option<JoinHandle<(SenderOutput, Result<(), String>)>>,
    receiver: Option<JoinHandle<(ReceiverState, Result<(), String>)>>,
    realtime_asked: bool,
    sends: Arc<Handover<i64>>,
    replies: Arc<Handover<ReplyRecord>>,
    sends_handed: std::sync::atomic::AtomicU64,
}

/// Raises the calling probe thread's priority if asked; `Err` says why not.
fn prepare_thread(opts: &ProbeOptions) -> Result<(), String> {
    crate::rt::tight_timer_slack();
    if !opts.realtime_priority {
        return Ok(());
    }
    crate::rt::set_realtime(opts.realtime_level).map_err(|e| e.to_string())
}

impl Prober {
    /// Starts a sender thread and a receiver thread on `socket` (already
    /// bound; possibly created in another network namespace, so no socket is
    /// ever created here). The socket is switched to blocking mode with a
    /// read timeout, and kernel receive timestamps are asked for. The
    /// threads are scheduled as [`ProbeOptions::default`] says.
    pub fn start(socket: UdpSocket, cfg: ProbeConfig) -> Result<Prober, ProbeError> {
        Self::start_with(socket, cfg, ProbeOptions::default())
    }

    /// [`Prober::start`] with scheduling options.
    pub fn start_with(
        socket: UdpSocket,
        cfg: ProbeConfig,
        opts: ProbeOptions,
    ) -> Result<Prober, ProbeError> {
        cfg.validate()?;
        if opts.realtime_priority && !(1..=99).contains(&opts.realtime_level) {
            return Err(ProbeError::Config(format!(
                "real-time priority {} is outside 1..=99",
                opts.realtime_level
            )));
        }
        crate::socket::prepare(&socket, READ_TIMEOUT).map_err(|source| ProbeError::Socket {
            what: "set blocking mode and read timeout",
            source,
        })?;
        let session = random_session()?;
        let socket = Arc::new(socket);
        let live = Arc::new(LiveCounters::new(realtime_ns()));
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let sends = Arc::new(Handover::default());
        let replies = Arc::new(Handover::default());

        let receiver = {
            let (socket, live, stop) = (socket.clone(), live.clone(), stop_recv.clone());
            let state = ReceiverState::new(session, cfg.target);
            let opts = opts.clone();
            let handover = replies.clone();
            std::thread::Builder::new()
                .name("probe-receiver".into())
                .spawn(move || {
                    let rt = prepare_thread(&opts);
                    let state =
                        receiver::run(&socket, state, &live, &stop, RECEIVE_LINGER, &handover);
                    (state, rt)
                })
                .map_err(|e| ProbeError::Spawn("receiver", e))?
        };
        let sender = {
            let (socket, live, stop) = (socket, live.clone(), stop_send.clone());
            let (target, payload_len, rate_hz) = (cfg.target, cfg.payload_len, cfg.rate_hz);
            let spin = Spin {
                margin: opts.spin_margin,
                below_interval: opts.spin_below_interval,
            };
            let opts = opts.clone();
            let handover = sends.clone();
            std::thread::Builder::new()
                .name("probe-sender".into())
                .spawn(move || {
                    let rt = prepare_thread(&opts);
                    let out = Sender {
                        socket: &socket,
                        target,
                        session,
                        payload_len,
                        rate_hz,
                        live: &live,
                        stop: &stop,
                        spin,
                        handover: &handover,
                    }
                    .run();
                    (out, rt)
                })
        };
        let sender = match sender {
            Ok(h) => h,
            Err(e) => {
                stop_recv.store(true, Ordering::Release);
                let _ = receiver.join();
                return Err(ProbeError::Spawn("sender", e));
            }
        };
        Ok(Prober {
            cfg,
            session,
            live,
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
            realtime_asked: opts.realtime_priority,
            sends,
            replies,
            sends_handed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Everything recorded since the previous checkpoint, while the probe
    /// goes on: for saving records as a run goes, so that a run killed
    /// outright keeps what it had measured. [`Prober::stop`] still returns
    /// the whole record. Calls must not overlap (each hands over once).
    pub fn checkpoint(&self) -> Result<ProbeDelta, ProbeError> {
        let (ns, nr) = (self.sends.ask(), self.replies.ask());
        let send_ns = self
            .sends
            .take(ns, CHECKPOINT_TIMEOUT)
            .ok_or(ProbeError::Checkpoint("sender", CHECKPOINT_TIMEOUT))?;
        let replies = self
            .replies
            .take(nr, CHECKPOINT_TIMEOUT)
            .ok_or(ProbeError::Checkpoint("receiver", CHECKPOINT_TIMEOUT))?;
        let first_seq = self
            .sends_handed
            .fetch_add(send_ns.len() as u64, Ordering::AcqRel);
        Ok(ProbeDelta {
            first_seq,
            send_ns,
            replies,
        })
    }

    /// The record's fields other than the send times and replies, as they
    /// stand now: what a checkpoint saves beside its [`ProbeDelta`]s. The
    /// counters kept by the threads (late sends, malformed replies, ...) are
    /// known only once [`Prober::stop`]ped, and read as zero here.
    pub fn meta(&self) -> ProbeRecord {
        ProbeRecord {
            session: self.session,
            rate_hz: self.cfg.rate_hz,
            payload_len: self.cfg.payload_len,
            target: self.cfg.target.to_string(),
            realtime_priority: self.realtime_asked,
            ..ProbeRecord::default()
        }
    }

    /// The random session id carried by this run's probes.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// Cheap snapshot for a live progress line.
    pub fn live(&self) -> LiveStats {
        self.live.snapshot(realtime_ns())
    }

    /// Stops both threads (the receiver waits [`RECEIVE_LINGER`], about
    /// 200 ms, for late replies) and returns everything recorded.
    pub fn stop(mut self) -> Result<ProbeRecord, ProbeError> {
        self.stop_send.store(true, Ordering::Release);
        let sent = self.sender.take().map(JoinHandle::join);
        self.stop_recv.store(true, Ordering::Release);
        let received = self.receiver.take().map(JoinHandle::join);
        let (sent, send_rt) = match sent {
            Some(Ok(s)) => s,
            _ => return Err(ProbeError::ThreadPanicked("sender")),
        };
        let (received, recv_rt) = match received {
            Some(Ok(r)) => r,
            _ => return Err(ProbeError::ThreadPanicked("receiver")),
        };
        let realtime_error = send_rt.err().or(recv_rt.err());
        Ok(ProbeRecord {
            session: self.session,
            rate_hz: self.cfg.rate_hz,
            payload_len: self.cfg.payload_len,
            target: self.cfg.target.to_string(),
            send_ns: sent.send_ns,
            replies: received.replies,
            sender_late: sent.sender_late,
            malformed: received.malformed,
            foreign_session: received.foreign_session,
            send_errors: sent.send_errors,
            realtime_priority: self.realtime_asked && realtime_error.is_none(),
            realtime_error,
            sender_spun: sent.spun,
            max_send_delay_ns: sent.max_delay_ns,
            sender_cpu_ns: sent.cpu_ns,
        })
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Release);
        self.stop_recv.store(true, Ordering::Release);
    }
}

/// Eight random bytes from the operating system ([`wire::random`]); no
/// fallback.
fn random_session() -> Result<u64, ProbeError> {
    wire::random::random_u64().map_err(ProbeError::Session)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rate_hz: u32, payload_len: usize) -> ProbeConfig {
        ProbeConfig {
            target: "127.0.0.1:9".parse().unwrap(),
            rate_hz,
            payload_len,
        }
    }

    #[test]
    fn configuration_limits() {
        assert!(cfg(1000, 64).validate().is_ok());
        assert!(cfg(1, HEADER_LEN).validate().is_ok());
        assert!(cfg(MAX_RATE_HZ, MAX_PAYLOAD_LEN).validate().is_ok());
        assert!(matches!(cfg(0, 64).validate(), Err(ProbeError::Config(_))));
        assert!(matches!(
            cfg(MAX_RATE_HZ + 1, 64).validate(),
            Err(ProbeError::Config(_))
        ));
        assert!(matches!(
            cfg(1000, HEADER_LEN - 1).validate(),
            Err(ProbeError::Config(_))
        ));
        assert!(matches!(
            cfg(1000, MAX_PAYLOAD_LEN + 1).validate(),
            Err(ProbeError::Config(_))
        ));
    }

    #[test]
    fn sessions_differ() {
        assert_ne!(random_session().unwrap(), random_session().unwrap());
    }
}
