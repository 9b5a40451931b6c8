//! The HTTP progressive download: the I/O shell around the player model
//! [`crate::playout`](mod@crate::playout). A background thread downloads
//! one URL the way a video player does, over a TCP connection the caller
//! opens (the harness opens it inside the client's network namespace), and
//! records when each piece of the body arrived; when the connection breaks
//! it records a [`ConnectionEvent`] and resumes where it stopped with a
//! `Range` request.
//!
//! The HTTP/1.1 client is written by hand (one `GET`, a status line and
//! headers, a body of `Content-Length` bytes or up to EOF; no chunked
//! encoding, no redirects): simple and dependency-free.
//!
//! # Times
//! Every time is CLOCK_REALTIME ns read in user space right after the
//! `read` (or the event) returned: not a kernel timestamp, so it includes
//! the thread's scheduling delay (typically well under a millisecond).
//!
//! # Records
//! - A **sample** `(rx_ns, bytes)` per `read` that returned body bytes
//!   (body bytes that came in the same read as the response head count in
//!   one sample at that read's time).
//! - A **break**: the connection ended before the body did (EOF before
//!   `Content-Length` bytes, a reset, any read error other than the read
//!   timeout) while body bytes were flowing on it. Its `broke_ns` is when
//!   the client noticed; a connection that merely goes quiet (the peer
//!   paused, packets lost) is no break while TCP keeps it open.
//! - After a break the thread waits [`RECONNECT_BACKOFF`], opens a new
//!   connection, and asks for `Range: bytes=<received>-`, expecting 206
//!   with a `Content-Range` starting there (a 200 is accepted too: its
//!   first `<received>` bytes are skipped, not counted). It retries every
//!   [`RECONNECT_BACKOFF`] until it succeeds or is stopped; the break's
//!   `reconnected_ns` is the time of the first body byte on the new
//!   connection. Failures before that are counted in
//!   [`HttpCapture::failed_attempts`], not as new breaks.
//! - The first connection is tried the same way; failures before its
//!   first response count in `failed_attempts` too.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use wire::clock::realtime_ns;

pub use measure::stream::record::{ConnectionEvent, HttpCapture};

/// Wait between a break (or a failed attempt) and the next attempt.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Read timeout: how often the thread checks for stop while waiting.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// Largest response head accepted, bytes.
const MAX_HEAD: usize = 64 * 1024;

/// A running download on a background thread. [`HttpStream::stop`]
/// returns what it recorded; dropping it stops the thread too.
#[derive(Debug)]
pub struct HttpStream {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<HttpCapture>>,
}

impl HttpStream {
    /// Starts downloading `path` with `Host: host_header` over connections
    /// made by `connect` (called on the background thread, once per
    /// attempt; the caller decides where and how, e.g. inside a network
    /// namespace, and with which connect timeout).
    ///
    /// Fails only when the thread cannot be started or the request cannot
    /// be formed (a `host_header` or `path` with a line break).
    pub fn start(
        connect: impl Fn() -> io::Result<TcpStream> + Send + 'static,
        host_header: &str,
        path: &str,
    ) -> anyhow::Result<HttpStream> {
        if [host_header, path]
            .iter()
            .any(|s| s.contains(['\r', '\n']) || s.is_empty())
        {
            anyhow::bail!(
                "HTTP download: empty or multi-line host {host_header:?} or path {path:?}"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let host = host_header.to_owned();
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("http-stream".into())
            .spawn({
                let stop = stop.clone();
                let bytes = bytes.clone();
                move || download(&connect, &host, &path, &stop, &bytes)
            })
            .context("cannot start the HTTP download thread")?;
        Ok(HttpStream {
            stop,
            bytes,
            thread: Some(thread),
        })
    }

    /// Body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Stops the download (within about 50 ms, unless `connect` is
    /// blocking) and returns what it recorded. If the thread panicked its
    /// records are lost: an empty capture says so in `last_error`.
    pub fn stop(mut self) -> HttpCapture {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(c)) => c,
            _ => HttpCapture {
                last_error: Some("the HTTP download thread panicked".into()),
                ..HttpCapture::default()
            },
        }
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How one connection ended.
enum Ended {
    /// The whole body arrived.
    Complete,
    /// Stopped by the caller.
    Stopped,
    /// Failed before any body byte flowed on it: retry, no new break.
    Failed(String),
    /// Broke while body bytes were flowing: a break.
    Broke(String),
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    /// First byte position of a `Content-Range: bytes A-B/N`.
    range_start: Option<u64>,
    chunked: bool,
}

fn download(
    connect: &dyn Fn() -> io::Result<TcpStream>,
    host: &str,
    path: &str,
    stop: &AtomicBool,
    live_bytes: &AtomicU64,
) -> HttpCapture {
    let mut cap = HttpCapture::default();
    while !stop.load(Ordering::Acquire) {
        let ended = match connect() {
            Ok(conn) => one_connection(conn, host, path, stop, &mut cap, live_bytes),
            Err(e) => Ended::Failed(format!("connect: {e}")),
        };
        match ended {
            Ended::Complete => {
                cap.complete = true;
                break;
            }
            Ended::Stopped => break,
            Ended::Failed(e) => {
                cap.failed_attempts += 1;
                cap.last_error = Some(e);
            }
            Ended::Broke(e) => {
                cap.events.push(ConnectionEvent {
                    broke_ns: realtime_ns(),
                    error: e.clone(),
                    reconnected_ns: None,
                });
                cap.last_error = Some(e);
            }
        }
        sleep_unless_stopped(RECONNECT_BACKOFF, stop);
    }
    cap
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Acquire) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

/// Outcome of one blocking read with the stop check.
enum ReadResult {
    Data(usize, i64),
    Eof,
    Stopped,
    Error(io::Error),
}

fn read_some(conn: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> ReadResult {
    loop {
        if stop.load(Ordering::Acquire) {
            return ReadResult::Stopped;
        }
        match conn.read(buf) {
            Ok(0) => return ReadResult::Eof,
            Ok(n) => return ReadResult::Data(n, realtime_ns()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return ReadResult::Error(e),
        }
    }
}

/// One connection's socket, its read buffer and the caller's stop flag.
struct Socket<'a> {
    conn: TcpStream,
    buf: Vec<u8>,
    stop: &'a AtomicBool,
}

impl Socket<'_> {
    /// The next read (its bytes are [`Socket::got`]).
    fn read(&mut self) -> ReadResult {
        read_some(&mut self.conn, &mut self.buf, self.stop)
    }

    /// The `n` bytes the last read returned.
    fn got(&self, n: usize) -> &[u8] {
        self.buf.get(..n).unwrap_or(&[])
    }
}

/// Bytes that came after the head in the read that ended it: their count
/// and that read's time.
type Pending = (usize, i64);

/// One attempt: request the file from where `cap` stopped, read the head,
/// then the body into `cap`.
fn one_connection(
    conn: TcpStream,
    host: &str,
    path: &str,
    stop: &AtomicBool,
    cap: &mut HttpCapture,
    live_bytes: &AtomicU64,
) -> Ended {
    let resume_at = cap.bytes;
    if let Err(e) = set_options(&conn) {
        return Ended::Failed(format!("socket options: {e}"));
    }
    let mut sock = Socket {
        conn,
        buf: vec![0u8; 64 * 1024],
        stop,
    };
    let req = request(host, path, resume_at);
    if let Err(e) = sock.conn.write_all(req.as_bytes()) {
        return Ended::Failed(format!("sending the request: {e}"));
    }
    let (head, pending) = match read_head(&mut sock) {
        Ok(h) => h,
        Err(ended) => return ended,
    };
    if cap.status.is_none() {
        cap.status = Some(head.status);
    }
    let body = match Body::of(&head, resume_at) {
        Ok(b) => b,
        Err(e) => return Ended::Failed(e),
    };
    cap.connections += 1;
    read_body(&mut sock, body, pending, cap, live_bytes)
}

/// Timeouts: reads return every [`READ_TIMEOUT`] to check for stop, and a
/// stuck request write fails instead of blocking.
fn set_options(conn: &TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(READ_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(Duration::from_secs(2))))?;
    // Only sends the request sooner: not worth failing the attempt over.
    let _ = conn.set_nodelay(true);
    Ok(())
}

/// The `GET`, with a `Range` from `resume_at` when resuming.
fn request(host: &str, path: &str, resume_at: u64) -> String {
    let range = if resume_at > 0 {
        format!("Range: bytes={resume_at}-\r\n")
    } else {
        String::new()
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lmig-client-probe\r\nAccept: */*\r\n{range}Connection: close\r\n\r\n"
    )
}

/// Reads up to the end of the response head; `Err` is how the connection
/// ended before it.
fn read_head(sock: &mut Socket<'_>) -> Result<(Head, Pending), Ended> {
    let mut head_buf: Vec<u8> = Vec::new();
    loop {
        match sock.read() {
            ReadResult::Stopped => return Err(Ended::Stopped),
            ReadResult::Eof => {
                return Err(Ended::Failed(
                    "connection closed before the response head".into(),
                ))
            }
            ReadResult::Error(e) => {
                return Err(Ended::Failed(format!("reading the response: {e}")))
            }
            ReadResult::Data(n, t) => {
                head_buf.extend_from_slice(sock.got(n));
                if let Some(end) = find_head_end(&head_buf) {
                    let rest = head_buf.split_off(end);
                    return parse_head(&head_buf)
                        .map(|h| (h, (rest.len(), t)))
                        .map_err(Ended::Failed);
                }
                if head_buf.len() > MAX_HEAD {
                    return Err(Ended::Failed(format!(
                        "response head over {MAX_HEAD} bytes"
                    )));
                }
            }
        }
    }
}

/// Where a response's body lies, in bytes of the whole file.
struct Body {
    /// Bytes still to skip: a 200 answering a range request starts at 0.
    skip: u64,
    /// Where the body ends (`None`: at EOF).
    end: Option<u64>,
}

impl Body {
    /// The body of a response with `head` to a request from `resume_at`;
    /// `Err` when it is not one we can use.
    fn of(head: &Head, resume_at: u64) -> Result<Body, String> {
        if head.chunked {
            return Err("chunked transfer encoding is not supported".into());
        }
        let skip = match head.status {
            200 => resume_at,
            206 if head.range_start == Some(resume_at) => 0,
            206 => {
                return Err(format!(
                    "206 from byte {:?}, asked for {resume_at}",
                    head.range_start
                ))
            }
            s => return Err(format!("HTTP status {s}")),
        };
        let end = head.content_length.map(|n| match head.status {
            206 => resume_at.saturating_add(n),
            _ => n,
        });
        Ok(Body { skip, end })
    }

    /// Of `len` bytes just read, with `have` body bytes counted before
    /// them, how many are new: what we already have is skipped, and
    /// nothing past the announced end counts.
    fn take(&mut self, len: usize, have: u64) -> u64 {
        let drop_n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(len);
        self.skip -= drop_n as u64;
        let n = (len - drop_n) as u64;
        match self.end {
            Some(end) => n.min(end.saturating_sub(have)),
            None => n,
        }
    }

    /// `have` body bytes are the whole body.
    fn done(&self, have: u64) -> bool {
        self.end.is_some_and(|end| have >= end)
    }
}

/// Reads the body to its end, recording every read into `cap`; `pending`
/// is what came with the head.
fn read_body(
    sock: &mut Socket<'_>,
    mut body: Body,
    pending: Pending,
    cap: &mut HttpCapture,
    live_bytes: &AtomicU64,
) -> Ended {
    let (mut len, mut at) = pending;
    let mut got_body = false;
    loop {
        let n = body.take(len, cap.bytes);
        if n > 0 {
            record(cap, !got_body, at, n);
            got_body = true;
            live_bytes.store(cap.bytes, Ordering::Release);
        }
        if body.done(cap.bytes) {
            return Ended::Complete;
        }
        match sock.read() {
            ReadResult::Stopped => return Ended::Stopped,
            ReadResult::Data(k, t) => (len, at) = (k, t),
            ReadResult::Eof => {
                let Some(end) = body.end else {
                    return Ended::Complete;
                };
                let why = format!("EOF after {} of {end} body bytes", cap.bytes);
                return cut_short(got_body, why);
            }
            ReadResult::Error(e) => return cut_short(got_body, format!("reading the body: {e}")),
        }
    }
}

/// `n` body bytes read at `at`; the first on this connection ends the
/// last break (when it has not ended yet).
fn record(cap: &mut HttpCapture, first_on_connection: bool, at: i64, n: u64) {
    if first_on_connection {
        if let Some(ev) = cap.events.last_mut() {
            if ev.reconnected_ns.is_none() {
                ev.reconnected_ns = Some(at);
            }
        }
    }
    cap.samples.push((at, n));
    cap.bytes += n;
}

/// The connection ended before the body: a break once body bytes flowed
/// on it, else a failed attempt.
fn cut_short(got_body: bool, why: String) -> Ended {
    if got_body {
        Ended::Broke(why)
    } else {
        Ended::Failed(why)
    }
}

/// Where the head ends (just past `\r\n\r\n`).
fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Parses a status line and headers (`head` ends with the blank line).
fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut h = Head {
        status,
        content_length: None,
        range_start: None,
        chunked: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line: {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                h.content_length = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad Content-Length: {value:?}"))?,
                );
            }
            "content-range" => {
                // bytes A-B/N (or bytes A-B/*)
                h.range_start = value
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, _)| a.trim().parse().ok());
                if h.range_start.is_none() {
                    return Err(format!("bad Content-Range: {value:?}"));
                }
            }
            "transfer-encoding" => {
                h.chunked = value.to_ascii_lowercase().contains("chunked");
            }
            _ => {}
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_headers() {
        let h = parse_head(
            b"HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\nContent-Range: bytes 5-14/100\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            h,
            Head {
                status: 206,
                content_length: Some(10),
                range_start: Some(5),
                chunked: false
            }
        );
        let h = parse_head(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(h.chunked && h.content_length.is_none());
        for bad in [
            &b"SSH-2.0\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 206 OK\r\nContent-Range: items 1-2\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{bad:?}");
        }
        assert_eq!(find_head_end(b"HTTP/1.1 200\r\n\r\nbody"), Some(16));
        assert_eq!(find_head_end(b"HTTP/1.1 200\r\n"), None);
    }

    #[test]
    fn the_request_resumes_with_a_range() {
        assert_eq!(
            request("h:80", "/a.ts", 0),
            "GET /a.ts HTTP/1.1\r\nHost: h:80\r\nUser-Agent: lmig-client-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert!(request("h", "/a.ts", 7).contains("Accept: */*\r\nRange: bytes=7-\r\nConnection"));
    }

    #[test]
    fn the_body_skips_what_we_have_and_stops_at_its_end() {
        let head = |status, content_length, range_start| Head {
            status,
            content_length,
            range_start,
            chunked: false,
        };
        // A 200 to a request from byte 10: its first 10 bytes are skipped,
        // across reads, and nothing past its length counts.
        let mut b = Body::of(&head(200, Some(30), None), 10).unwrap();
        assert_eq!((b.skip, b.end), (10, Some(30)));
        assert_eq!(b.take(4, 10), 0);
        assert_eq!(b.take(8, 10), 2);
        assert_eq!(b.take(100, 12), 18);
        assert!(b.done(30) && !b.done(29));
        // A 206 from where we stopped: its length counts from there.
        let b = Body::of(&head(206, Some(5), Some(10)), 10).unwrap();
        assert_eq!((b.skip, b.end), (0, Some(15)));
        // Without a length the body runs to EOF.
        let mut b = Body::of(&head(200, None, None), 0).unwrap();
        assert_eq!((b.take(9, 1 << 40), b.done(u64::MAX)), (9, false));
        assert!(Body::of(&head(206, Some(5), Some(3)), 10).is_err());
        assert!(Body::of(&head(404, Some(5), None), 0).is_err());
        let chunked = Head {
            chunked: true,
            ..head(200, None, None)
        };
        assert!(Body::of(&chunked, 0).is_err());
    }

    #[test]
    fn rejects_header_injection() {
        assert!(HttpStream::start(|| Err(io::Error::other("no")), "h\r\nX: y", "/").is_err());
    }

    #[test]
    fn failing_connects_are_counted_and_stop_is_prompt() {
        let s = HttpStream::start(|| Err(io::Error::other("refused")), "h", "/x").unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let t = std::time::Instant::now();
        let c = s.stop();
        assert!(t.elapsed() < Duration::from_millis(300));
        assert!(c.failed_attempts >= 2, "{c:?}");
        assert!(c.events.is_empty() && c.samples.is_empty() && c.status.is_none());
        assert_eq!(c.last_error.as_deref(), Some("connect: refused"));
    }
}
