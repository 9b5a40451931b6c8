//! What a probe run records: raw events only, on the client's clock
//! (CLOCK_REALTIME, ns since the Unix epoch). Every summary is derived from
//! these by [`crate::analyze`].

use serde::{Deserialize, Serialize};

/// One reply datagram from the reflector, as it arrived.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplyRecord {
    /// The probe's sequence number.
    pub seq: u64,
    /// Client send time echoed by the reflector, ns (client clock).
    pub send_ns: i64,
    /// Receive time on the client, ns (client clock).
    pub rx_ns: i64,
    /// Whether `rx_ns` is the kernel's receive timestamp (else user space).
    pub kernel_ts: bool,
    /// Reflector receive time, ns (guest clock: stops while the VM is paused).
    pub guest_rx_ns: i64,
    /// Reflector send time, ns (guest clock).
    pub guest_tx_ns: i64,
    /// Requests of this session the reflector had received, this one included.
    pub reflector_rx_count: u64,
}

/// A probe the sender got out more than one interval after its deadline:
/// the prober itself stalled (scheduling, CPU), not the path or the guest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SenderLate {
    /// The probe's sequence number.
    pub seq: u64,
    /// When it should have been sent, ns (client clock).
    pub deadline_ns: i64,
    /// When it was sent, ns (client clock).
    pub sent_ns: i64,
}

/// Everything one prober run recorded. `Default` is an empty record, for
/// building synthetic ones in analysis tests.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)] // fields added later read as empty from older bundles
pub struct ProbeRecord {
    /// Random session id carried by every probe of the run.
    pub session: u64,
    /// Probes per second asked for.
    pub rate_hz: u32,
    /// Datagram size of each probe, bytes.
    pub payload_len: usize,
    /// The reflector's address, as text.
    pub target: String,
    /// Index = seq: the send time of every probe sent, ns (client clock,
    /// read just before `send_to`).
    pub send_ns: Vec<i64>,
    /// Every valid reply of this session, in arrival order, duplicates included.
    pub replies: Vec<ReplyRecord>,
    /// Probes sent more than one interval after their deadline.
    pub sender_late: Vec<SenderLate>,
    /// Datagrams from the target that are not a valid reply to a probe sent
    /// (undecodable, a request, or a seq never sent).
    pub malformed: u64,
    /// Valid replies carrying another session id (e.g. a previous run).
    pub foreign_session: u64,
    /// `send_to` calls that failed (e.g. ENETUNREACH, ENOBUFS); the probe
    /// still counts as sent, at its recorded time.
    pub send_errors: u64,
    /// Whether both probe threads ran at real-time priority (`SCHED_FIFO`).
    /// Without it a busy machine can stall the prober; such stalls are still
    /// flagged (`sender_late`), but the probe sees less while they last.
    #[serde(default)]
    pub realtime_priority: bool,
    /// Why real-time priority was not had, when it was asked for and refused
    /// (e.g. `Operation not permitted` when not root); `None` otherwise.
    #[serde(default)]
    pub realtime_error: Option<String>,
    /// Whether the sender spun on the clock before each deadline (short
    /// intervals) rather than only sleeping.
    #[serde(default)]
    pub sender_spun: bool,
    /// The largest delay of a send after its deadline, ns (monotonic clock;
    /// after a [`SenderLate`] event, against the re-anchored schedule).
    #[serde(default)]
    pub max_send_delay_ns: i64,
    /// CPU time the sender thread used, ns.
    #[serde(default)]
    pub sender_cpu_ns: i64,
}
