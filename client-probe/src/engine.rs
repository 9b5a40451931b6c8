//! The running probe stream, whatever it sends: a sender thread and a
//! receiver thread on one socket handed in by the caller, the hand-over of
//! their records while they run, and the live figures. The UDP prober
//! ([`crate::Prober`]) and the ICMP one ([`crate::IcmpProber`]) are this
//! with a different [`Codec`] and socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::clock::realtime_ns;

use crate::codec::{Codec, Transport};
use crate::error::ProbeError;
use crate::handover::Handover;
use crate::live::{LiveCounters, LiveStats};
use crate::receiver::{self, ReceiverState};
use crate::sender::{Sender, SenderOutput, Spin};
use measure::probe::record::{ProbeRecord, ReplyRecord};

/// How long the receiver keeps listening for late replies after the sender
/// stopped.
pub const RECEIVE_LINGER: Duration = Duration::from_millis(200);
/// The receive timeout, so the receiver notices a stop request.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// How long [`Engine::checkpoint`] waits for the threads (each serves a
/// hand-over within one read timeout or one sleep, 50 ms, when well).
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a probe stream recorded since the previous checkpoint
/// ([`crate::Prober::checkpoint`], [`crate::IcmpProber::checkpoint`]) or
/// since it started: the new send times and replies, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeDelta {
    /// The seq of `send_ns[0]`.
    pub first_seq: u64,
    /// Send times of probes `first_seq..`, ns (client clock).
    pub send_ns: Vec<i64>,
    /// Replies that arrived since the previous checkpoint, in arrival order.
    pub replies: Vec<ReplyRecord>,
}

/// How the probe threads are scheduled: the knobs [`crate::ProbeConfig`]
/// does not carry. [`crate::Prober::start`] uses [`ProbeOptions::default`],
/// and so does [`crate::IcmpProber::start`].
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

/// The names a stream's threads go by: in `ps` and in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Names {
    /// The sender in errors (`the sender thread panicked`).
    pub sender: &'static str,
    /// The receiver in errors.
    pub receiver: &'static str,
    /// The sender thread's name.
    pub sender_thread: &'static str,
    /// The receiver thread's name.
    pub receiver_thread: &'static str,
}

/// What one stream sends, where, and how it is recorded.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Where datagrams are sent.
    pub target: SocketAddr,
    /// The target as the record names it.
    pub target_text: String,
    /// Probes per second (checked by the caller).
    pub rate_hz: u32,
    /// The size the record states ([`ProbeRecord::payload_len`]).
    pub payload_len: usize,
    /// Bytes of each datagram handed to the socket.
    pub datagram_len: usize,
    /// Its threads' names.
    pub names: Names,
}

/// Checks the scheduling options every stream takes.
pub(crate) fn check_options(opts: &ProbeOptions) -> Result<(), ProbeError> {
    if opts.realtime_priority && !(1..=99).contains(&opts.realtime_level) {
        return Err(ProbeError::Config(format!(
            "real-time priority {} is outside 1..=99",
            opts.realtime_level
        )));
    }
    Ok(())
}

/// Eight random bytes from the operating system ([`wire::random`]); no
/// fallback.
pub(crate) fn random_session() -> Result<u64, ProbeError> {
    wire::random::random_u64().map_err(ProbeError::Session)
}

/// Raises the calling probe thread's priority if asked; `Err` says why not.
fn prepare_thread(opts: &ProbeOptions) -> Result<(), String> {
    crate::rt::tight_timer_slack();
    if !opts.realtime_priority {
        return Ok(());
    }
    crate::rt::set_realtime(opts.realtime_level).map_err(|e| e.to_string())
}

/// A probe thread: what it recorded, and whether it had real-time priority
/// (`Err` says why not).
type Thread<T> = JoinHandle<(T, Result<(), String>)>;

/// A running stream. Dropping it without [`Engine::stop`] stops its
/// threads and discards the record.
#[derive(Debug)]
pub(crate) struct Engine<C> {
    plan: Plan,
    session: u64,
    live: Arc<LiveCounters>,
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    sender: Option<Thread<SenderOutput>>,
    receiver: Option<Thread<ReceiverState<C>>>,
    realtime_asked: bool,
    sends: Arc<Handover<i64>>,
    replies: Arc<Handover<ReplyRecord>>,
    sends_handed: AtomicU64,
}

impl<C: Codec> Engine<C> {
    /// Starts the two threads on `socket` (prepared by the caller: blocking,
    /// with a read timeout and receive timestamps asked for). The
    /// configuration and `opts` are checked by the caller.
    pub fn start<S: Transport>(
        socket: S,
        codec: C,
        plan: Plan,
        opts: ProbeOptions,
    ) -> Result<Engine<C>, ProbeError> {
        let session = codec.session();
        let socket = Arc::new(socket);
        let live = Arc::new(LiveCounters::new(realtime_ns()));
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let sends = Arc::new(Handover::default());
        let replies = Arc::new(Handover::default());

        let receiver = {
            let (socket, live, stop) = (socket.clone(), live.clone(), stop_recv.clone());
            let state = ReceiverState::with_codec(codec.clone());
            let opts = opts.clone();
            let handover = replies.clone();
            std::thread::Builder::new()
                .name(plan.names.receiver_thread.into())
                .spawn(move || {
                    let rt = prepare_thread(&opts);
                    let state =
                        receiver::run(&*socket, state, &live, &stop, RECEIVE_LINGER, &handover);
                    (state, rt)
                })
                .map_err(|e| ProbeError::Spawn(plan.names.receiver, e))?
        };
        let sender = {
            let (socket, live, stop) = (socket, live.clone(), stop_send.clone());
            let (target, datagram_len, rate_hz) = (plan.target, plan.datagram_len, plan.rate_hz);
            let spin = Spin {
                margin: opts.spin_margin,
                below_interval: opts.spin_below_interval,
            };
            let opts = opts.clone();
            let handover = sends.clone();
            std::thread::Builder::new()
                .name(plan.names.sender_thread.into())
                .spawn(move || {
                    let rt = prepare_thread(&opts);
                    let out = Sender {
                        socket: &*socket,
                        target,
                        codec: &codec,
                        datagram_len,
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
                return Err(ProbeError::Spawn(plan.names.sender, e));
            }
        };
        Ok(Engine {
            plan,
            session,
            live,
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
            realtime_asked: opts.realtime_priority,
            sends,
            replies,
            sends_handed: AtomicU64::new(0),
        })
    }

    /// Everything recorded since the previous checkpoint; calls must not
    /// overlap (each hands over once).
    pub fn checkpoint(&self) -> Result<ProbeDelta, ProbeError> {
        let names = self.plan.names;
        let (ns, nr) = (self.sends.ask(), self.replies.ask());
        let send_ns = self
            .sends
            .take(ns, CHECKPOINT_TIMEOUT)
            .ok_or(ProbeError::Checkpoint(names.sender, CHECKPOINT_TIMEOUT))?;
        let replies = self
            .replies
            .take(nr, CHECKPOINT_TIMEOUT)
            .ok_or(ProbeError::Checkpoint(names.receiver, CHECKPOINT_TIMEOUT))?;
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
    /// stand now (the threads' counters read as zero until stopped).
    pub fn meta(&self) -> ProbeRecord {
        ProbeRecord {
            session: self.session,
            rate_hz: self.plan.rate_hz,
            payload_len: self.plan.payload_len,
            target: self.plan.target_text.clone(),
            realtime_priority: self.realtime_asked,
            ..ProbeRecord::default()
        }
    }

    /// The random session id carried by this stream's probes.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Cheap snapshot for a live progress line.
    pub fn live(&self) -> LiveStats {
        self.live.snapshot(realtime_ns())
    }

    /// Stops both threads (the receiver waits [`RECEIVE_LINGER`] for late
    /// replies) and returns everything recorded.
    pub fn stop(mut self) -> Result<ProbeRecord, ProbeError> {
        let names = self.plan.names;
        self.stop_send.store(true, Ordering::Release);
        let sent = self.sender.take().map(JoinHandle::join);
        self.stop_recv.store(true, Ordering::Release);
        let received = self.receiver.take().map(JoinHandle::join);
        let (sent, send_rt) = match sent {
            Some(Ok(s)) => s,
            _ => return Err(ProbeError::ThreadPanicked(names.sender)),
        };
        let (received, recv_rt) = match received {
            Some(Ok(r)) => r,
            _ => return Err(ProbeError::ThreadPanicked(names.receiver)),
        };
        let realtime_error = send_rt.err().or(recv_rt.err());
        Ok(ProbeRecord {
            session: self.session,
            rate_hz: self.plan.rate_hz,
            payload_len: self.plan.payload_len,
            target: self.plan.target_text.clone(),
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

impl<C> Drop for Engine<C> {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Release);
        self.stop_recv.store(true, Ordering::Release);
    }
}
