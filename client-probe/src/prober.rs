//! The reflector's probe: UDP datagrams ([`wire::probe`]) answered by the
//! guest agent in user space, sent and received by the shared
//! [`crate::engine`] on a socket handed in by the caller.

use std::net::{SocketAddr, UdpSocket};

use serde::{Deserialize, Serialize};
use wire::probe::HEADER_LEN;

use crate::codec::UdpCodec;
use crate::engine::{check_options, random_session, Engine, Names, Plan, READ_TIMEOUT};
pub use crate::engine::{ProbeDelta, ProbeOptions, RECEIVE_LINGER};
use crate::error::ProbeError;
use crate::live::LiveStats;
use measure::probe::record::ProbeRecord;

/// The highest probe rate accepted, per second.
pub const MAX_RATE_HZ: u32 = 100_000;
/// The largest probe datagram accepted (the largest UDP payload over IPv4).
pub const MAX_PAYLOAD_LEN: usize = 65_507;

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

/// A running prober. Dropping it without [`Prober::stop`] stops its threads
/// and discards the record.
#[derive(Debug)]
pub struct Prober {
    cfg: ProbeConfig,
    engine: Engine<UdpCodec>,
}

/// The UDP stream's threads.
const NAMES: Names = Names {
    sender: "sender",
    receiver: "receiver",
    sender_thread: "probe-sender",
    receiver_thread: "probe-receiver",
};

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
        check_options(&opts)?;
        crate::socket::prepare(&socket, READ_TIMEOUT).map_err(|source| ProbeError::Socket {
            what: "set blocking mode and read timeout",
            source,
        })?;
        let session = random_session()?;
        let plan = Plan {
            target: cfg.target,
            target_text: cfg.target.to_string(),
            rate_hz: cfg.rate_hz,
            payload_len: cfg.payload_len,
            datagram_len: cfg.payload_len.max(HEADER_LEN),
            names: NAMES,
        };
        let engine = Engine::start(socket, UdpCodec::new(session, cfg.target), plan, opts)?;
        Ok(Prober { cfg, engine })
    }

    /// Everything recorded since the previous checkpoint, while the probe
    /// goes on: for saving records as a run goes, so that a run killed
    /// outright keeps what it had measured. [`Prober::stop`] still returns
    /// the whole record. Calls must not overlap (each hands over once).
    pub fn checkpoint(&self) -> Result<ProbeDelta, ProbeError> {
        self.engine.checkpoint()
    }

    /// The record's fields other than the send times and replies, as they
    /// stand now: what a checkpoint saves beside its [`ProbeDelta`]s. The
    /// counters kept by the threads (late sends, malformed replies, ...) are
    /// known only once [`Prober::stop`]ped, and read as zero here.
    pub fn meta(&self) -> ProbeRecord {
        self.engine.meta()
    }

    /// The random session id carried by this run's probes.
    pub fn session(&self) -> u64 {
        self.engine.session()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// Cheap snapshot for a live progress line.
    pub fn live(&self) -> LiveStats {
        self.engine.live()
    }

    /// Stops both threads (the receiver waits [`RECEIVE_LINGER`], about
    /// 200 ms, for late replies) and returns everything recorded.
    pub fn stop(self) -> Result<ProbeRecord, ProbeError> {
        self.engine.stop()
    }
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
