//! An asynchronous QMP client.
//!
//! One task reads the monitor socket: replies go to whoever waits on their
//! `id`, events are appended to a log with QEMU's own timestamp and the
//! host time they were read. A closed socket (QEMU died) fails every
//! pending and later command at once, with an error that says so.

use crate::clock::now_ns;
use measure::migration::qmp::{event_timestamp_ns, QmpEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, Notify};

/// Why a QMP exchange failed.
#[derive(Debug, Error)]
pub enum QmpError {
    /// Could not connect or talk to the socket.
    #[error("QMP {path}: {what}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// QEMU closed the monitor (it exited or crashed).
    #[error("QMP {path}: QEMU closed the monitor (the process has exited)")]
    Closed {
        /// The socket.
        path: String,
    },
    /// QEMU answered with an error.
    #[error("QMP {cmd} failed: {class}: {desc}")]
    Command {
        /// The command.
        cmd: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// No answer in time.
    #[error("QMP {cmd}: no answer within {secs:.1} s")]
    Timeout {
        /// The command.
        cmd: String,
        /// The deadline.
        secs: f64,
    },
    /// Not a QMP greeting.
    #[error("QMP {path}: unexpected greeting {greeting}")]
    Greeting {
        /// The socket.
        path: String,
        /// What came instead.
        greeting: String,
    },
}

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, QmpError>>>>,
    events: Mutex<Vec<QmpEvent>>,
    notify: Notify,
    closed: AtomicBool,
}

/// A connected QMP monitor.
pub struct Qmp {
    path: PathBuf,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How long a command may take before we give up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

impl Qmp {
    /// Connects to `path`, retrying until `deadline` (QEMU creates the
    /// socket a moment after it starts), and negotiates capabilities.
    pub async fn connect(path: &Path, deadline: Duration) -> Result<Qmp, QmpError> {
        let start = tokio::time::Instant::now();
        let p = path.display().to_string();
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if start.elapsed() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => {
                    return Err(QmpError::Io {
                        path: p,
                        what: "connect",
                        source,
                    })
                }
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = tokio::time::timeout(deadline, lines.next_line())
            .await
            .map_err(|_| QmpError::Timeout {
                cmd: "greeting".into(),
                secs: deadline.as_secs_f64(),
            })?
            .map_err(|source| QmpError::Io {
                path: p.clone(),
                what: "read greeting",
                source,
            })?
            .ok_or_else(|| QmpError::Closed { path: p.clone() })?;
        if !greeting.contains("\"QMP\"") {
            return Err(QmpError::Greeting { path: p, greeting });
        }
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(read_loop(lines, shared.clone()));
        let qmp = Qmp {
            path: path.to_path_buf(),
            writer: tokio::sync::Mutex::new(write),
            shared,
            next_id: AtomicU64::new(1),
            reader,
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Whether QEMU has closed the monitor.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Runs a command and returns its `return` value.
    pub async fn execute(&self, cmd: &str, args: Option<Value>) -> Result<Value, QmpError> {
        self.execute_timeout(cmd, args, COMMAND_TIMEOUT).await
    }

    /// [`Qmp::execute`] with its own deadline.
    pub async fn execute_timeout(
        &self,
        cmd: &str,
        args: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let closed = || QmpError::Closed {
            path: self.path.display().to_string(),
        };
        if self.is_closed() {
            return Err(closed());
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "execute": cmd, "id": id });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(id, tx);
        let mut line = msg.to_string();
        line.push('\n');
        {
            let mut w = self.writer.lock().await;
            if let Err(source) = w.write_all(line.as_bytes()).await {
                lock(&self.shared.pending).remove(&id);
                return Err(if source.kind() == std::io::ErrorKind::BrokenPipe {
                    closed()
                } else {
                    QmpError::Io {
                        path: self.path.display().to_string(),
                        what: "write",
                        source,
                    }
                });
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r.map_err(|e| match e {
                QmpError::Command { class, desc, .. } => QmpError::Command {
                    cmd: cmd.into(),
                    class,
                    desc,
                },
                other => other,
            }),
            Ok(Err(_)) => Err(closed()),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                Err(QmpError::Timeout {
                    cmd: cmd.into(),
                    secs: timeout.as_secs_f64(),
                })
            }
        }
    }

    /// Number of events recorded so far (an index for [`Qmp::events_since`]).
    pub fn event_count(&self) -> usize {
        lock(&self.shared.events).len()
    }

    /// Events recorded from index `from` on.
    pub fn events_since(&self, from: usize) -> Vec<QmpEvent> {
        lock(&self.shared.events)
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Waits for event `name` at or after index `from`.
    pub async fn wait_event(&self, name: &str, from: usize, timeout: Duration) -> Option<QmpEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            if let Some(e) = self
                .events_since(from)
                .into_iter()
                .find(|e| e.event == name)
            {
                return Some(e);
            }
            if self.is_closed() {
                return None;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_loop(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    shared: Arc<Shared>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let host_rx_ns = now_ns();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(name) = v.get("event").and_then(Value::as_str) {
            lock(&shared.events).push(QmpEvent {
                event: name.to_string(),
                data: v.get("data").cloned().unwrap_or(Value::Null),
                qemu_ts_ns: event_timestamp_ns(&v),
                host_rx_ns,
            });
            shared.notify.notify_waiters();
            continue;
        }
        let Some(id) = v.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let Some(tx) = lock(&shared.pending).remove(&id) else {
            continue;
        };
        let result = if let Some(r) = v.get("return") {
            Ok(r.clone())
        } else {
            let err = v.get("error").cloned().unwrap_or(Value::Null);
            Err(QmpError::Command {
                cmd: String::new(),
                class: err
                    .get("class")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .into(),
                desc: err
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .into(),
            })
        };
        let _ = tx.send(result);
    }
    shared.closed.store(true, Ordering::SeqCst);
    lock(&shared.pending).clear();
    shared.notify.notify_waiters();
}
