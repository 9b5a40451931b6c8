//! What the client recorded of the video streams, as stored in a bundle:
//! the RTP receiver's and the HTTP downloader's metadata and the
//! download's reads and connection breaks.

use serde::{Deserialize, Serialize};

/// A connection that broke, as defined in the module
/// documentation of `client_probe::http_stream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    /// When the client noticed the break, ns (CLOCK_REALTIME).
    pub broke_ns: i64,
    /// What happened ("EOF after N of M body bytes", the OS error...).
    pub error: String,
    /// When the resumed download got its first body byte, ns; `None` if it
    /// had not by the time the download was stopped.
    pub reconnected_ns: Option<i64>,
}

/// What the HTTP downloader (`client_probe::HttpStream`) recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpCapture {
    /// `(rx_ns, bytes)` per read that returned body bytes, in time order.
    pub samples: Vec<(i64, u64)>,
    /// Every break of the connection, in time order.
    pub events: Vec<ConnectionEvent>,
    /// Body bytes received in all (the sum of `samples`).
    pub bytes: u64,
    /// The first response's status (200 expected), if one came.
    pub status: Option<u16>,
    /// Connections whose response (200 or 206) was accepted.
    pub connections: u32,
    /// The whole body was received (`Content-Length` reached, or EOF on a
    /// response without one).
    pub complete: bool,
    /// Attempts that failed before a response was accepted (connect
    /// errors, bad responses).
    pub failed_attempts: u64,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

impl HttpCapture {
    /// The TCP connection lasted the whole download: no break.
    pub fn connection_survived(&self) -> bool {
        self.events.is_empty()
    }
}

/// `stream/rtp.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RtpMeta {
    /// Where the client received, in the client namespace.
    pub local_addr: String,
    /// The SSRC the guest sent with.
    pub ssrc: u32,
    /// Datagrams received.
    pub datagrams: u64,
    /// Of those, received without a kernel timestamp.
    pub without_kernel_ts: u64,
    /// Datagrams cut to the capture size.
    pub truncated: u64,
    /// Receive errors.
    pub read_errors: u64,
    /// The receiver model's playout delay, ms.
    pub playout_delay_ms: f64,
    /// Gap threshold, ms.
    pub gap_threshold_ms: f64,
    /// The guest agent's final report of the workload, if it answered.
    pub sender: Option<wire::control::WorkloadReport>,
}

/// `stream/http.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HttpMeta {
    /// The URL downloaded.
    pub url: String,
    /// Media bytes per second (the MPEG-TS file's size over its duration).
    pub byte_rate: f64,
    /// Player start threshold, s of media.
    pub start_s: f64,
    /// Player resume threshold, s of media.
    pub resume_s: f64,
    /// What the downloader recorded, without its samples (in http.csv).
    pub capture: Option<HttpCapture>,
    /// The guest agent's final report of the workload, if it answered.
    pub sender: Option<wire::control::WorkloadReport>,
}
