//! The library's one error type.

use thiserror::Error;

/// Why the prober could not start, stop, or read a stored record.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// The configuration cannot be run as given.
    #[error("invalid probe configuration: {0}")]
    Config(String),
    /// Setting up the socket handed to the prober failed.
    #[error("cannot prepare the probe socket: {what}")]
    Socket {
        /// The step that failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No random session id could be drawn.
    #[error("cannot draw a random session id")]
    Session(#[source] wire::random::RandomError),
    /// A probe thread could not be started.
    #[error("cannot start the {0} thread")]
    Spawn(&'static str, #[source] std::io::Error),
    /// A probe thread panicked; its records are lost.
    #[error("the {0} thread panicked; its records are lost")]
    ThreadPanicked(&'static str),
    /// A probe thread did not hand over its records in time for a
    /// checkpoint (stalled, or ended).
    #[error("the {0} thread did not hand over its records within {1:?}")]
    Checkpoint(&'static str, std::time::Duration),
    /// An HdrHistogram could not be made or written.
    #[error("cannot write the RTT histogram log: {0}")]
    Histogram(String),
    /// The control API server could not run.
    #[error("control API: {what}")]
    Serve {
        /// The step that failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a stored record failed.
    #[error("cannot read the stored record")]
    Io(#[from] std::io::Error),
}
