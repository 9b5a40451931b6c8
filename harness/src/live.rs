//! The live status line on stderr.
//!
//! On a terminal it is rewritten in place several times a second; in a log
//! (CI, a pipe) it prints a line at most once a second so logs stay short.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A status line.
pub struct Live {
    tty: bool,
    last: Mutex<Option<Instant>>,
    /// Put before every line (a fleet member's name).
    prefix: String,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    /// A line on stderr.
    pub fn new() -> Self {
        Self::with_prefix("")
    }

    /// A line on stderr whose every text starts with `prefix` (`[vm1] `:
    /// several VMs migrating at once take turns on it).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last: Mutex::new(None),
            prefix: prefix.to_string(),
        }
    }

    /// Shows `text` as the current status.
    pub fn update(&self, text: &str) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        if last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        *last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{}{text}", self.prefix);
        } else {
            let _ = writeln!(err, "{}{text}", self.prefix);
        }
        let _ = err.flush();
    }

    /// Prints a permanent line (clearing the status line first).
    pub fn println(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{}{text}", self.prefix);
        if let Ok(mut l) = self.last.lock() {
            *l = None;
        }
    }
}
