//! The I/O: two packet sockets, and per direction a receiver thread that
//! stamps and shapes each frame and a sender thread that sends it when
//! its departure time comes.

use super::frames::{self, Cut, VNET_HDR_LEN};
use super::shaper::{LinkShape, Reason, Shaper, SplitMix64, Verdict};
use super::stats::{add, Counters, Epoch, LinkStats, Sent, BIN_NS};
use super::sys::{self, RECV_BUFFER};
use crate::backend::local::lab::netns;
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long before a departure the sender stops sleeping and spins: a
/// real-time thread's timer wake-up on the lab's 2-core VM comes 24 µs
/// late typically (35 µs at the 90th percentile, 90 µs at the 99th), so
/// this sends most frames within a few µs of their time. Not more: a
/// spinning `SCHED_FIFO` thread keeps everything else (the VMs) off its
/// CPU, and at 100 Mbit/s 1514-byte frames are only 121 µs apart.
const SPIN_NS: u64 = 30_000;
/// `SCHED_FIFO` priority of the delay line's threads: the lowest, below
/// the probe's (10), so the line never delays the probe's own timing.
/// Real-time because a normal thread on a busy 2-core machine waits
/// 3 ms at the 99th percentile (35 ms at worst) for a CPU after its
/// timer fires, which would show up as jitter and bursts on the link;
/// the threads block (socket, condition variable, sleep) whenever they
/// have nothing to do, and the kernel's real-time throttling (95 %)
/// stays the backstop.
const RT_PRIORITY: i32 = 1;
/// The longest a thread sleeps or waits before it looks at the stop flag.
const CHECK_STOP: Duration = Duration::from_millis(50);
/// Messages read without blocking before the receiver looks at the stop
/// flag and the drop counter again.
const RX_BATCH: usize = 64;
/// Frames sent per `sendmmsg(2)` at most.
const TX_BATCH: usize = 64;
/// Bytes the delay line holds per direction at most (frames waiting for
/// their departure): 20 ms of 10 Gbit/s plus room. Beyond it frames are
/// dropped as overrun rather than memory growing without bound.
const QUEUE_CAP_BYTES: usize = 64 << 20;
/// How often the receiver reads its socket's drop counter.
const DROPS_EVERY_NS: u64 = 100_000_000;
/// Pause after an unexpected socket error, so a vanished interface does
/// not turn the thread into a busy loop of failures.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// A running delay line between interfaces `a` and `b` of one network
/// namespace. Dropping it stops it (as [`DelayLine::stop`] does).
#[derive(Debug)]
pub struct DelayLine {
    netns: String,
    shape: LinkShape,
    seed: u64,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Cleared by any thread that could not get real-time priority.
    realtime: AtomicBool,
    epoch: Epoch,
    dirs: [Direction; 2],
}

/// One direction: frames in on `from`, out on `to`.
#[derive(Debug)]
struct Direction {
    from: String,
    to: String,
    counters: Counters,
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Frames waiting for their departure, in departure order (the shaper
/// never reorders, so a FIFO is a timer queue).
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Pending>,
    bytes: usize,
}

#[derive(Debug)]
struct Pending {
    due_ns: u64,
    /// `virtio_net_hdr` and frame, ready to send.
    msg: Vec<u8>,
}

impl Pending {
    fn frame_len(&self) -> usize {
        self.msg.len().saturating_sub(VNET_HDR_LEN)
    }
}

impl DelayLine {
    /// Starts forwarding every frame between interfaces `a` and `b` of
    /// namespace `netns` (under `/run/netns`), each direction shaped by
    /// `shape` with its own [`Shaper`] (`a` to `b` seeded with `seed`,
    /// `b` to `a` with a seed derived from it, so the two directions'
    /// losses are independent).
    ///
    /// Both interfaces must exist and be up; they need no address, and no
    /// other forwarder (a bridge, a second delay line) may join them. The
    /// namespace's own stack sees the frames too, so it should not route
    /// (a new namespace does not).
    pub fn start(netns: &str, a: &str, b: &str, shape: LinkShape, seed: u64) -> Result<DelayLine> {
        let place = format!("delay line in {netns} between {a} and {b}");
        shape.check().with_context(|| place.clone())?;
        let (ia, ib) = (a.to_string(), b.to_string());
        let (sock_a, sock_b) = netns::in_netns(netns, move || Ok((open(&ia)?, open(&ib)?)))
            .with_context(|| format!("{place}: opening its packet sockets"))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            realtime: AtomicBool::new(true),
            epoch: Epoch::now(),
            dirs: [Direction::new(a, b), Direction::new(b, a)],
        });
        let mut line = DelayLine {
            netns: netns.to_string(),
            shape,
            seed,
            shared,
            threads: Vec::new(),
        };
        let (sock_a, sock_b) = (Arc::new(sock_a), Arc::new(sock_b));
        let seeds = [seed, SplitMix64::new(seed).next_u64()];
        let ends = [(sock_a.clone(), sock_b.clone()), (sock_b, sock_a)];
        for (d, (rx, tx)) in ends.into_iter().enumerate() {
            let shaper = Shaper::new(shape, seeds[d]).with_context(|| place.clone())?;
            // On an error here `line` is dropped, which stops the threads
            // already started.
            line.spawn(d, "rx", move |sh| receive(&sh, d, &rx, shaper))
                .with_context(|| place.clone())?;
            line.spawn(d, "tx", move |sh| transmit(&sh, d, &tx))
                .with_context(|| place.clone())?;
        }
        Ok(line)
    }

    fn spawn(
        &mut self,
        d: usize,
        role: &str,
        body: impl FnOnce(Arc<Shared>) + Send + 'static,
    ) -> Result<()> {
        let shared = self.shared.clone();
        // Thread names are cut to 15 bytes: the role first, so it survives.
        let name = format!("dl{role}-{}", self.shared.dirs[d].from);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if sys::set_realtime(RT_PRIORITY).is_err() {
                    shared.realtime.store(false, Ordering::Relaxed);
                }
                body(shared)
            })
            .context("cannot spawn a delay-line thread")?;
        self.threads.push(handle);
        Ok(())
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// What it has forwarded and dropped so far.
    pub fn stats(&self) -> LinkStats {
        let sh = &self.shared;
        let since = sys::monotonic_ns().saturating_sub(sh.epoch.mono_ns);
        let dir = |d: &Direction| d.counters.snapshot(&d.from, &d.to, sh.epoch, since);
        LinkStats {
            netns: self.netns.clone(),
            shape: self.shape,
            seed: self.seed,
            started_mono_ns: sh.epoch.mono_ns,
            started_real_ns: sh.epoch.real_ns,
            bin_ns: BIN_NS,
            realtime: sh.realtime.load(Ordering::Relaxed),
            a_to_b: dir(&sh.dirs[0]),
            b_to_a: dir(&sh.dirs[1]),
        }
    }

    /// Stops forwarding (frames still waiting are dropped), waits for its
    /// threads to end (within about 50 ms), and returns the final counts.
    pub fn stop(mut self) -> LinkStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for d in &self.shared.dirs {
            // Under the lock, so a sender between its check of the flag
            // and its wait cannot miss the wake-up.
            drop(d.lock());
            d.ready.notify_all();
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared.dirs[0]
                    .counters
                    .error(format!("a delay-line thread in {} panicked", self.netns));
            }
        }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A packet socket on `ifname`, its errors naming the interface.
fn open(ifname: &str) -> io::Result<OwnedFd> {
    sys::packet_socket(ifname).map_err(|e| io::Error::new(e.kind(), format!("{ifname}: {e}")))
}

impl Direction {
    fn new(from: &str, to: &str) -> Self {
        Self {
            from: from.to_string(),
            to: to.to_string(),
            counters: Counters::default(),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        }
    }

    /// The queue; a thread that panicked holding it left it consistent
    /// (every change is one push or pop), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, iface: &str, what: &str, e: &io::Error) {
        self.counters.error(format!("{iface}: {what}: {e}"));
    }

    /// Queues shaped frames, dropping what would overfill the queue, and
    /// wakes the sender if it was waiting on an empty queue.
    fn enqueue(&self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let mut q = self.lock();
        let was_empty = q.frames.is_empty();
        for p in batch.drain(..) {
            if q.bytes + p.msg.len() > QUEUE_CAP_BYTES {
                add(&self.counters.dropped_overrun, 1);
                continue;
            }
            q.bytes += p.msg.len();
            q.frames.push_back(p);
        }
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// The first frame's departure time, waiting while there is none;
    /// `None` once the line is stopping.
    fn next_due(&self, stop: &AtomicBool) -> Option<u64> {
        let mut q = self.lock();
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(p) = q.frames.front() {
                return Some(p.due_ns);
            }
            q = self
                .ready
                .wait_timeout(q, CHECK_STOP)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Moves the frames due by `now_ns` (up to a batch) into `out`.
    fn take_due(&self, now_ns: u64, out: &mut Vec<Pending>) {
        let mut q = self.lock();
        while out.len() < TX_BATCH && q.frames.front().is_some_and(|p| p.due_ns <= now_ns) {
            if let Some(p) = q.frames.pop_front() {
                q.bytes -= p.msg.len();
                out.push(p);
            }
        }
    }
}

/// The receiver of direction `d`: reads frames from `sock`, stamps them,
/// cuts super-packets into frames, asks the shaper, and queues what passes.
fn receive(sh: &Shared, d: usize, sock: &OwnedFd, mut shaper: Shaper) {
    let dir = &sh.dirs[d];
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut cut = Vec::new();
    let mut batch = Vec::new();
    let mut drops_due = 0;
    while !sh.stop.load(Ordering::SeqCst) {
        for i in 0..RX_BATCH {
            match sys::recv(sock.as_fd(), &mut buf, i == 0) {
                Ok(r) => {
                    let now = sys::monotonic_ns();
                    if let Some(msg) = take_message(dir, &buf, r) {
                        shape_message(dir, &mut shaper, &msg, now, &mut cut, &mut batch);
                    }
                    // At once, not after the batch: a frame due now must
                    // not wait for the next 63 to be read.
                    dir.enqueue(&mut batch);
                }
                Err(e) if is_transient(&e) => break,
                Err(e) => {
                    dir.error(&dir.from, "receive", &e);
                    std::thread::sleep(ERROR_BACKOFF);
                    break;
                }
            }
        }
        let now = sys::monotonic_ns();
        if now >= drops_due {
            count_kernel_drops(dir, sock);
            drops_due = now + DROPS_EVERY_NS;
        }
    }
    count_kernel_drops(dir, sock);
}

/// The message in `buf`, with its VLAN tag put back; `None` (counted) if
/// it did not fit.
fn take_message<'a>(
    dir: &Direction,
    buf: &'a [u8],
    r: sys::Received,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    if r.truncated || r.len < VNET_HDR_LEN {
        add(&dir.counters.dropped_error, 1);
        let e = io::Error::other(format!("a frame of more than {} bytes was cut", buf.len()));
        dir.error(&dir.from, "receive", &e);
        return None;
    }
    let msg = &buf[..r.len];
    Some(match r.vlan {
        None => std::borrow::Cow::Borrowed(msg),
        Some((tpid, tci)) => {
            let mut m = msg.to_vec();
            frames::insert_vlan(&mut m, tpid, tci);
            std::borrow::Cow::Owned(m)
        }
    })
}

fn shape_message(
    dir: &Direction,
    shaper: &mut Shaper,
    msg: &[u8],
    now: u64,
    cut: &mut Vec<Vec<u8>>,
    batch: &mut Vec<Pending>,
) {
    match frames::wire_frames(msg, cut) {
        Some(Cut::Split(_)) => add(&dir.counters.gso_split, 1),
        Some(Cut::Whole) => add(&dir.counters.gso_whole, 1),
        Some(Cut::Plain) | None => {}
    }
    for m in cut.drain(..) {
        match shaper.offer(now, m.len() - VNET_HDR_LEN) {
            Verdict::Depart(due_ns) => batch.push(Pending { due_ns, msg: m }),
            Verdict::Drop(Reason::Loss) => add(&dir.counters.dropped_loss, 1),
            Verdict::Drop(Reason::QueueFull) => add(&dir.counters.dropped_queue, 1),
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn count_kernel_drops(dir: &Direction, sock: &OwnedFd) {
    match sys::take_drops(sock.as_fd()) {
        Ok(n) => add(&dir.counters.dropped_kernel, n),
        Err(e) => dir.error(&dir.from, "reading drop counter", &e),
    }
}

/// The sender of direction `d`: sleeps until the first frame's departure
/// is near, spins the rest of the way, and sends every frame then due.
fn transmit(sh: &Shared, d: usize, sock: &OwnedFd) {
    let dir = &sh.dirs[d];
    // A normal thread's 50 µs of timer slack would add itself to every
    // sleep (a real-time one has none).
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        dir.error(&dir.to, "setting timer slack", &io::Error::from(e));
    }
    let mut out = Vec::with_capacity(TX_BATCH);
    while let Some(due) = dir.next_due(&sh.stop) {
        let now = sys::monotonic_ns();
        if due > now + SPIN_NS {
            std::thread::sleep(Duration::from_nanos(due - now - SPIN_NS).min(CHECK_STOP));
            continue;
        }
        while sys::monotonic_ns() < due {
            std::hint::spin_loop();
        }
        dir.take_due(sys::monotonic_ns(), &mut out);
        send_all(sh, dir, sock, &mut out);
    }
}

/// Sends `out` (emptying it), counting what went and what failed.
fn send_all(sh: &Shared, dir: &Direction, sock: &OwnedFd, out: &mut Vec<Pending>) {
    let mut at = 0;
    while at < out.len() {
        let msgs: Vec<&[u8]> = out[at..].iter().map(|p| p.msg.as_slice()).collect();
        match sys::send_batch(sock.as_fd(), &msgs) {
            Ok(n) if n > 0 => {
                let now = sys::monotonic_ns();
                let sent = out[at..at + n].iter().map(|p| Sent {
                    len: p.frame_len(),
                    due_ns: p.due_ns,
                    late_ns: now.saturating_sub(p.due_ns),
                });
                dir.counters.sent(sh.epoch.mono_ns, sent);
                at += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => {
                // The first frame of the rest could not go: drop it alone
                // and go on with the others.
                let e = other
                    .err()
                    .unwrap_or_else(|| io::Error::other("sendmmsg sent nothing"));
                dir.error(&dir.to, "send", &e);
                add(&dir.counters.dropped_error, 1);
                at += 1;
            }
        }
    }
    out.clear();
}
