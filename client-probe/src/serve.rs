//! The control API (`client-probe serve`): HTTP/1.1 with a bearer token, so
//! a harness can start, watch and stop a probe on another machine (a real
//! laptop), and align that machine's clock with its own.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v1/probe/start` | [`StartRequest`] | 200 [`StartReply`]; 409 if a probe runs; 400 on a bad body or configuration |
//! | `GET /v1/probe/status` | | 200 [`LiveStats`](crate::LiveStats); 409 if no probe runs |
//! | `POST /v1/probe/checkpoint` | | 200 [`CheckpointReply`]: what was recorded since the previous checkpoint; 409 if no probe runs |
//! | `POST /v1/probe/stop` | | 200 the full [`ProbeRecord`]; 409 if no probe runs |
//! | `GET /v1/time` | | 200 [`TimeReply`] |
//! | `GET /v1/health` | | 200 [`HealthReply`] |
//!
//! Every request needs `Authorization: Bearer <token>` (compared in
//! constant time); without it the answer is 401. Errors are
//! `{"error": "..."}` ([`ErrorReply`]). One probe runs at a time, on a fresh
//! UDP socket bound to the unspecified address of the target's family,
//! port 0, with [`ProbeOptions::default`].
//!
//! `GET /v1/time` is one half of an NTP-style exchange: the controller reads
//! its clock before sending (`t0`) and on receiving the answer (`t3`), and
//! [`wire::clocksync::estimate_offset`] turns several exchanges into the
//! offset of this machine's CLOCK_REALTIME (the clock of every time in the
//! probe's record) from the controller's.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use wire::clock::realtime_ns;

use crate::error::ProbeError;
use crate::prober::{ProbeConfig, ProbeDelta, ProbeOptions, Prober};
use measure::probe::record::ProbeRecord;

/// The largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// `POST /v1/probe/start`: what to probe. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The reflector, `IP:PORT`.
    pub target: SocketAddr,
    /// Probes per second (default 1000).
    #[serde(default = "default_rate")]
    pub rate_hz: u32,
    /// Probe datagram size, bytes (default 64).
    #[serde(default = "default_payload")]
    pub payload_len: usize,
}

fn default_rate() -> u32 {
    1000
}

fn default_payload() -> usize {
    64
}

/// The answer to a successful start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartReply {
    /// The run's session id (as in [`ProbeRecord::session`]).
    pub session: u64,
    /// The probe socket's local address.
    pub local_addr: String,
    /// When the prober started, ns (this machine's CLOCK_REALTIME).
    pub started_ns: i64,
}

/// `GET /v1/time`: this machine's CLOCK_REALTIME, ns since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReply {
    /// Read as soon as the request was handed to the handler (`t1`).
    pub t_ns: i64,
    /// Read just before the answer was written (`t2`).
    pub t2_ns: i64,
}

/// `GET /v1/health`: the API answers and accepts the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReply {
    /// This client-probe's version (its crate version).
    pub version: String,
    /// Whether a probe is running now (e.g. one a previous controller
    /// never stopped).
    pub probe_running: bool,
}

/// `POST /v1/probe/checkpoint`: the probe's fields as they stand and what
/// it recorded since the previous checkpoint (each record is handed over
/// once), so a controller can save the record as it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointReply {
    /// The record's fields other than send times and replies
    /// ([`Prober::meta`]).
    pub meta: ProbeRecord,
    /// The new send times and replies ([`Prober::checkpoint`]).
    pub delta: ProbeDelta,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, for a person.
    pub error: String,
}

struct Shared {
    token: Vec<u8>,
    prober: Mutex<Option<Prober>>,
}

impl Shared {
    fn prober(&self) -> MutexGuard<'_, Option<Prober>> {
        // A panic while holding the lock leaves an Option that is still
        // valid: carry on with it.
        self.prober.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the control API on `listener` until `shutdown` completes; a probe
/// still running then is stopped and its record discarded. `token` must
/// not be empty.
pub async fn serve(
    listener: tokio::net::TcpListener,
    token: String,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProbeError> {
    if token.is_empty() {
        return Err(ProbeError::Config("the control API token is empty".into()));
    }
    let shared = Arc::new(Shared {
        token: token.into_bytes(),
        prober: Mutex::new(None),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A connection that failed before we took it (e.g. reset)
                // or a passing shortage of descriptors: keep serving.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
    let running = shared.prober().take();
    if let Some(p) = running {
        let _ = tokio::task::spawn_blocking(move || p.stop()).await;
    }
    Ok(())
}

/// Compares in time that depends only on the lengths, never on where the
/// first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

fn authorized(token: &[u8], value: Option<&HeaderValue>) -> bool {
    let Some(v) = value else {
        return false;
    };
    let v = v.as_bytes();
    let Some((scheme, cred)) = v.iter().position(|&c| c == b' ').map(|i| v.split_at(i)) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer") && ct_eq(cred.trim_ascii(), token)
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &ErrorReply { error: msg.into() })
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let t1 = realtime_ns();
    if !authorized(&shared.token, req.headers().get(AUTHORIZATION)) {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/v1/time") => json(
            StatusCode::OK,
            &TimeReply {
                t_ns: t1,
                t2_ns: realtime_ns(),
            },
        ),
        (Method::GET, "/v1/health") => json(
            StatusCode::OK,
            &HealthReply {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                probe_running: shared.prober().is_some(),
            },
        ),
        (Method::POST, "/v1/probe/start") => start(shared, req).await,
        (Method::GET, "/v1/probe/status") => match shared.prober().as_ref() {
            Some(p) => json(StatusCode::OK, &p.live()),
            None => error(StatusCode::CONFLICT, "no probe is running"),
        },
        (Method::POST, "/v1/probe/stop") => stop(shared).await,
        (Method::POST, "/v1/probe/checkpoint") => checkpoint(shared),
        (
            _,
            "/v1/time"
            | "/v1/health"
            | "/v1/probe/start"
            | "/v1/probe/status"
            | "/v1/probe/stop"
            | "/v1/probe/checkpoint",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}", req.method()),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}")),
    }
}

async fn start(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let want: StartRequest = match serde_json::from_slice(&body) {
        Ok(w) => w,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a start request {{target, rate_hz, payload_len}}: {e}"),
            )
        }
    };
    let cfg = ProbeConfig {
        target: want.target,
        rate_hz: want.rate_hz,
        payload_len: want.payload_len,
    };
    if let Err(e) = cfg.validate() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let mut slot = shared.prober();
    if slot.is_some() {
        return error(
            StatusCode::CONFLICT,
            "a probe is already running: stop it first",
        );
    }
    let bind = if cfg.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot bind a UDP socket to {bind}: {e}"),
            )
        }
    };
    let local_addr = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let started_ns = realtime_ns();
    match Prober::start_with(socket, cfg, ProbeOptions::default()) {
        Ok(p) => {
            let reply = StartReply {
                session: p.session(),
                local_addr,
                started_ns,
            };
            *slot = Some(p);
            json(StatusCode::OK, &reply)
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start the prober: {e}"),
        ),
    }
}

/// Hands over what the probe recorded since the previous checkpoint. The
/// threads serve it within one read timeout or sleep (50 ms) when well, so
/// this runs on the async worker with the prober's lock held; two calls
/// cannot overlap.
fn checkpoint(shared: &Shared) -> Response<Full<Bytes>> {
    let slot = shared.prober();
    let Some(p) = slot.as_ref() else {
        return error(StatusCode::CONFLICT, "no probe is running");
    };
    match p.checkpoint() {
        Ok(delta) => json(
            StatusCode::OK,
            &CheckpointReply {
                meta: p.meta(),
                delta,
            },
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn stop(shared: &Shared) -> Response<Full<Bytes>> {
    let Some(p) = shared.prober().take() else {
        return error(StatusCode::CONFLICT, "no probe is running");
    };
    // Stopping joins the probe threads and waits for late replies: not on
    // the async workers.
    match tokio::task::spawn_blocking(move || p.stop()).await {
        Ok(Ok(rec)) => json::<ProbeRecord>(StatusCode::OK, &rec),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the prober failed: {e}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stopping the prober failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret\0"));
        assert!(!ct_eq(b"secret", b"secre"));
        assert!(!ct_eq(b"", b"x"));
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert!(authorized(b"tok", Some(&h("Bearer tok"))));
        assert!(authorized(b"tok", Some(&h("bearer  tok "))));
        assert!(!authorized(b"tok", Some(&h("Basic tok"))));
        assert!(!authorized(b"tok", Some(&h("Bearer"))));
        assert!(!authorized(b"tok", Some(&h("Bearer tok2"))));
        assert!(!authorized(b"tok", None));
    }

    #[test]
    fn start_requests_are_strict_with_defaults() {
        let r: StartRequest = serde_json::from_str(r#"{"target":"127.0.0.1:7"}"#).unwrap();
        assert_eq!((r.rate_hz, r.payload_len), (1000, 64));
        assert!(
            serde_json::from_str::<StartRequest>(r#"{"target":"127.0.0.1:7","rate":5}"#).is_err()
        );
        assert!(serde_json::from_str::<StartRequest>(r#"{"rate_hz":5}"#).is_err());
    }
}
