//! The `http` workload: serves an uploaded file as a progressive video
//! download, paced at the media's own byte rate, as a video site would.
//!
//! - **Listener**: `0.0.0.0:port`, HTTP/1.1 with hyper (the same server set-up
//!   as the control API), on the workload's own thread with its own
//!   one-thread tokio runtime; several clients may be served at once. No
//!   token: it stands for a public video site.
//! - **`GET /{file}`**: 200 with the file's bytes repeated `loops` times
//!   (`Content-Length` = file length × `loops`), `Content-Type` from the
//!   name (`.ts` `video/mp2t`, `.mp4`/`.m4s` `video/mp4`, else
//!   `application/octet-stream`), `Accept-Ranges: bytes`. Other paths 404,
//!   other methods 405.
//! - **Resume**: `Range: bytes=N-` (also `bytes=N-M` and `bytes=-N`, a
//!   single range only) answers 206 with `Content-Range: bytes N-M/total`,
//!   so a client that lost its connection can go on where it was; a range
//!   that starts past the end answers 416; a malformed or multi-range header
//!   is ignored (200, the whole stream).
//! - **Pacing**: per response, on an absolute schedule: byte `k` of the
//!   response is due at its start + `k / rate_bytes_s`; the body goes out
//!   in chunks of [`chunk_size`] (at most 16 KiB, about 20 ms of media at
//!   lower rates), each sent when its first byte is due. A reader slower
//!   than the rate is not caught up beyond what TCP buffers; one that stalls
//!   gets a burst afterwards.
//! - **Report**: `bytes_sent` (body bytes handed to hyper, all clients),
//!   `connections` (TCP connections accepted), `per_second_mib_s` (body
//!   MiB in each whole second since start) and `achieved_mib_s`.

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT_RANGES, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use wire::clock::realtime_ns;
use wire::control::{WorkloadReport, WorkloadSpec};

use super::shared::{count_second, panic_text, rates, uploaded, WorkloadError};

/// Largest body chunk, bytes.
pub const MAX_CHUNK: usize = 16 * 1024;
/// Smallest body chunk, bytes.
pub const MIN_CHUNK: usize = 1024;

/// The body chunk for a rate: about 20 ms of media, within
/// [`MIN_CHUNK`]..=[`MAX_CHUNK`].
pub fn chunk_size(rate_bytes_s: u64) -> usize {
    usize::try_from(rate_bytes_s / 50)
        .unwrap_or(MAX_CHUNK)
        .clamp(MIN_CHUNK, MAX_CHUNK)
}

/// What an `http` workload needs, checked.
#[derive(Debug, Clone)]
pub struct HttpParams {
    /// The file's name (the path served is `/{file}`).
    pub file: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// TCP port.
    pub port: u16,
    /// Pacing, bytes per second.
    pub rate_bytes_s: u64,
    /// Times the file is repeated.
    pub loops: u32,
}

impl HttpParams {
    /// Checks an `http` spec against the uploaded file `file` (`None`: not
    /// uploaded), naming the field at fault.
    pub fn new(spec: &WorkloadSpec, file: Option<&Bytes>) -> Result<Self, WorkloadError> {
        let WorkloadSpec::Http {
            file: name,
            port,
            rate_bytes_s,
            loops,
        } = spec
        else {
            return Err(WorkloadError::Invalid("not an http workload".into()));
        };
        let bytes = uploaded(file, "file", name)?;
        if bytes.is_empty() {
            return Err(WorkloadError::Invalid(format!("file {name:?} is empty")));
        }
        if *port == 0 {
            return Err(WorkloadError::Invalid("port must not be 0".into()));
        }
        if *rate_bytes_s == 0 {
            return Err(WorkloadError::Invalid(
                "rate_bytes_s must be at least 1".into(),
            ));
        }
        if *loops == 0 {
            return Err(WorkloadError::Invalid("loops must be at least 1".into()));
        }
        Ok(Self {
            file: name.clone(),
            bytes: bytes.clone(),
            port: *port,
            rate_bytes_s: *rate_bytes_s,
            loops: *loops,
        })
    }

    fn total(&self) -> u64 {
        self.bytes.len() as u64 * u64::from(self.loops)
    }
}

/// The range a `Range` header asks for in a stream of `total` bytes:
/// `Ok(Some((first, end)))` (end exclusive) for one satisfiable range,
/// `Ok(None)` when the header is malformed or not a single byte range (the
/// whole stream is sent), `Err(())` when the range starts at or past the end
/// (416).
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: &str, total: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || total == 0 {
            return Err(());
        }
        return Ok(Some((total.saturating_sub(n), total)));
    }
    let Ok(first) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        total
    } else {
        match b.parse::<u64>() {
            Ok(last) if last >= first => last.saturating_add(1).min(total),
            _ => return Ok(None),
        }
    };
    if first >= total {
        return Err(());
    }
    Ok(Some((first, end)))
}

fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".ts") {
        "video/mp2t"
    } else if lower.ends_with(".mp4") || lower.ends_with(".m4s") {
        "video/mp4"
    } else {
        "application/octet-stream"
    }
}

#[derive(Debug, Default)]
struct Shared {
    bytes: AtomicU64,
    connections: AtomicU64,
    seconds: Mutex<Vec<u64>>,
    failure: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A response body: bytes `pos..end` of the file repeated, paced.
struct PacedBody {
    file: Bytes,
    pos: u64,
    end: u64,
    chunk: usize,
    rate: u64,
    /// When this response started.
    start: tokio::time::Instant,
    /// Body bytes of this response yielded so far.
    sent: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    shared: Arc<Shared>,
    workload_start: Instant,
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let nanos = u128::from(this.sent) * 1_000_000_000 / u128::from(this.rate);
        let due = this.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX / 4));
        if tokio::time::Instant::now() < due {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if sleep.deadline() != due {
                sleep.as_mut().reset(due);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let len = this.file.len() as u64;
        let off = this.pos % len;
        let n = (this.chunk as u64).min(len - off).min(this.end - this.pos);
        // off + n <= len, which is a usize.
        let data = this.file.slice(off as usize..(off + n) as usize);
        this.pos += n;
        this.sent += n;
        this.shared.bytes.fetch_add(n, Ordering::Relaxed);
        count_second(&this.shared.seconds, this.workload_start, Instant::now(), n);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
}

type BoxBody = UnsyncBoxBody<Bytes, Infallible>;

fn plain(status: StatusCode, text: &str) -> Response<BoxBody> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn answer(
    p: &HttpParams,
    shared: &Arc<Shared>,
    workload_start: Instant,
    req: &Request<Incoming>,
) -> Response<BoxBody> {
    if req.uri().path().strip_prefix('/') != Some(p.file.as_str()) {
        return plain(StatusCode::NOT_FOUND, "no such file");
    }
    if req.method() != Method::GET {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET"));
        return r;
    }
    let total = p.total();
    let range = match req.headers().get(RANGE).map(|v| v.to_str()) {
        None | Some(Err(_)) => None,
        Some(Ok(h)) => match parse_range(h, total) {
            Ok(r) => r,
            Err(()) => {
                let mut r = Response::new(Empty::new().boxed_unsync());
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    r.headers_mut().insert(CONTENT_RANGE, v);
                }
                return r;
            }
        },
    };
    let (first, end) = range.unwrap_or((0, total));
    let body = PacedBody {
        file: p.bytes.clone(),
        pos: first,
        end,
        chunk: chunk_size(p.rate_bytes_s),
        rate: p.rate_bytes_s,
        start: tokio::time::Instant::now(),
        sent: 0,
        sleep: None,
        shared: shared.clone(),
        workload_start,
    };
    let mut r = Response::new(body.boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(content_type(&p.file)),
    );
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {first}-{}/{total}", end.saturating_sub(1)))
        {
            r.headers_mut().insert(CONTENT_RANGE, v);
        }
    }
    r
}

/// A running (or stopped) `http` workload.
#[derive(Debug)]
pub struct HttpWorkload {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    local: SocketAddr,
    start: Instant,
    started_realtime_ns: i64,
    ended: Option<Instant>,
}

impl HttpWorkload {
    /// Binds `0.0.0.0:port` and starts serving on the workload's thread.
    /// Fails with [`WorkloadError::Bind`] when the port cannot be bound.
    pub fn start(name: &str, params: HttpParams) -> Result<Self, WorkloadError> {
        let addr = SocketAddr::from(([0, 0, 0, 0], params.port));
        let listener = std::net::TcpListener::bind(addr).map_err(|e| WorkloadError::Bind {
            addr,
            why: e.to_string(),
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        listener
            .set_nonblocking(true)
            .map_err(|e| WorkloadError::Thread(format!("cannot set up the listener: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| WorkloadError::Thread(format!("cannot start a runtime: {e}")))?;
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let start = Instant::now();
        let started_realtime_ns = realtime_ns();
        let thread = std::thread::Builder::new()
            .name(format!("http-{name}"))
            .spawn({
                let shared = shared.clone();
                move || {
                    let result =
                        runtime.block_on(serve(listener, params, shared.clone(), start, stop_rx));
                    if let Err(e) = result {
                        *lock(&shared.failure) = Some(e);
                    }
                    // Dropping the runtime ends every connection task.
                    drop(runtime);
                }
            })
            .map_err(|e| WorkloadError::Thread(e.to_string()))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            stop: Some(stop_tx),
            local,
            start,
            started_realtime_ns,
            ended: None,
        })
    }

    /// The address the workload listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the server thread still runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Closes the listener and every connection, waits for the thread, and
    /// returns the final report. Calling it again returns the same report.
    /// Blocks.
    pub fn stop(&mut self, name: &str) -> WorkloadReport {
        if let Some(t) = self.thread.take() {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            self.ended = Some(Instant::now());
            if let Err(p) = t.join() {
                lock(&self.shared.failure).get_or_insert(panic_text(&p));
            }
        }
        self.report(name)
    }

    /// What the workload has done so far.
    pub fn report(&self, name: &str) -> WorkloadReport {
        let end = self.ended.unwrap_or_else(Instant::now);
        let elapsed = end.saturating_duration_since(self.start);
        let failure = lock(&self.shared.failure).clone();
        let (state, error) = match (failure, &self.thread) {
            (Some(f), _) => ("failed", Some(f)),
            (None, None) => ("stopped", None),
            (None, Some(t)) if !t.is_finished() => ("running", None),
            (None, Some(_)) => ("failed", Some("the server thread ended".to_string())),
        };
        let bytes = self.shared.bytes.load(Ordering::Relaxed);
        let (per_second_mib_s, achieved_mib_s) = rates(&lock(&self.shared.seconds), elapsed, bytes);
        WorkloadReport {
            name: name.to_string(),
            state: state.into(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            achieved_mib_s,
            per_second_mib_s,
            error,
            started_realtime_ns: self.started_realtime_ns,
            bytes_sent: Some(bytes),
            connections: Some(self.shared.connections.load(Ordering::Relaxed)),
            ..WorkloadReport::default()
        }
    }
}

impl Drop for HttpWorkload {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    params: HttpParams,
    shared: Arc<Shared>,
    start: Instant,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot use the listener: {e}"))?;
    let params = Arc::new(params);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return Ok(()),
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _peer)) => s,
            Err(e) => {
                crate::say!("http stream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (params, shared) = (params.clone(), shared.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let r = answer(&params, &shared, start, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            // Errors are the client's doing (gone mid-body): nothing to do.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-", 100), Ok(Some((10, 100))));
        assert_eq!(parse_range("bytes=0-", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=10-19", 100), Ok(Some((10, 20))));
        assert_eq!(parse_range("bytes=10-1000", 100), Ok(Some((10, 100))));
        assert_eq!(parse_range("bytes=-30", 100), Ok(Some((70, 100))));
        assert_eq!(parse_range("bytes=-300", 100), Ok(Some((0, 100))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=1-2,5-6", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-", 100), Ok(None));
        assert_eq!(parse_range("bytes=5-2", 100), Ok(None));
        assert_eq!(parse_range("items=1-", 100), Ok(None));
        assert_eq!(parse_range("bytes=", 100), Ok(None));
    }

    #[test]
    fn chunks_and_types() {
        assert_eq!(chunk_size(1), MIN_CHUNK);
        assert_eq!(chunk_size(100_000), 2000);
        assert_eq!(chunk_size(u64::MAX), MAX_CHUNK);
        assert_eq!(content_type("clip.ts"), "video/mp2t");
        assert_eq!(content_type("a.MP4"), "video/mp4");
        assert_eq!(content_type("a.bin"), "application/octet-stream");
    }
}
