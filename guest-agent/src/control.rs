//! The token-protected HTTP control API (HTTP/1.1, hyper), exactly the
//! contract of [`wire::control`]:
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/health` | | 200 [`Health`] |
//! | `PUT /v1/workloads/{name}` | [`WorkloadSpec`] | 200 [`WorkloadReport`], once the workload runs |
//! | `DELETE /v1/workloads/{name}` | | 200 final [`WorkloadReport`] (a dirty or disk workload's with the integrity check run when stopping; a disk workload's hold ends) |
//! | `POST /v1/workloads/{name}/verify` | none, or [`VerifyRequest`] `{"hold": true}` | 200 [`IntegrityReport`]: writers paused, every page (disk: block) checked, writers resumed; with `hold` (disk only) the writer stays paused, its writes flushed |
//! | `POST /v1/workloads/{name}/resume` | | 200 [`WorkloadReport`] once a held disk workload writes again |
//! | `GET /v1/report` | | 200 [`AgentReport`] (with the guest's [`ClockView`]) |
//! | `PUT /v1/files/{name}` | the file's bytes (up to [`MAX_CLIP_BYTES`]) | 200 [`FileInfo`]; the file is kept in memory, replacing one of the same name |
//! | `GET /v1/files` | | 200 [`FileList`] |
//! | `DELETE /v1/files/{name}` | | 200 [`FileInfo`] of the file removed (workloads that use it keep their copy) |
//!
//! Uploaded files feed the streaming workloads: an `rtp` workload's `clip`
//! (a [`wire::clip`] container) and an `http` workload's `file` name one.
//!
//! Errors carry an [`ApiError`] body: 401 (no or wrong bearer token,
//! checked before anything else), 404 (unknown path, unknown workload or
//! file), 405 (known path, wrong method), 400 (malformed body or impossible
//! spec, naming the field; invalid workload or file name; a command whose
//! program cannot be started; a streaming workload whose file is not
//! uploaded, or for `rtp` is not a clip, with the parse error; a disk
//! workload's device that cannot be opened, e.g. busy or refusing
//! `O_DIRECT`; `hold` asked of a dirty workload), 409 (a workload of that
//! name is running; `verify` of a workload that is not a running dirty or
//! disk workload; `resume` of one that is not held, which includes a hold
//! released after [`HOLD_LIMIT_S`] s; an `http` workload's port cannot be
//! bound), 413
//! (body over 64 KiB, or a file over [`MAX_CLIP_BYTES`]), 507 (working set
//! larger than the guest's available memory), 500 (the agent failed; a
//! disk workload's device failed while pre-filled or checked).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use wire::clip::MAX_CLIP_BYTES;
use wire::control::{AgentReport, ApiError, Health, VerifyRequest, WorkloadSpec};
#[cfg(doc)]
use wire::control::{ClockView, IntegrityReport, WorkloadReport, HOLD_LIMIT_S};

use crate::clock::ClockWatch;
use crate::reflector::ReflectorCounters;
use crate::workload::{Files, VerifyRefused, Workload, WorkloadError, WorkloadVerifier};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Everything the control API reads and changes.
#[derive(Debug)]
pub struct AgentState {
    token: String,
    started: Instant,
    kernel: String,
    reflector_port: u16,
    pid1: bool,
    reflector: Arc<ReflectorCounters>,
    workloads: Mutex<BTreeMap<String, Workload>>,
    files: Mutex<Files>,
    clock: Option<ClockWatch>,
}

/// An uploaded file: the answer to `PUT` and `DELETE /v1/files/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// The file's name.
    pub name: String,
    /// Its size, bytes.
    pub bytes: u64,
}

/// The answer to `GET /v1/files`: every uploaded file, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileList {
    /// The files, in name order.
    pub files: Vec<FileInfo>,
}

/// The running kernel's release (`uname -r`), or `unknown`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        // Compare against b, or against a itself when b is shorter, so the
        // loop always runs a.len() times.
        let y = b.get(i).copied().unwrap_or(*x);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl AgentState {
    /// State for an agent whose uptime starts now. Starts the clock-watch
    /// thread ([`crate::clock`]), which ends when the state is dropped.
    pub fn new(
        token: String,
        reflector_port: u16,
        pid1: bool,
        reflector: Arc<ReflectorCounters>,
    ) -> Self {
        Self {
            token,
            started: Instant::now(),
            kernel: kernel_release(),
            reflector_port,
            pid1,
            reflector,
            workloads: Mutex::new(BTreeMap::new()),
            files: Mutex::new(Files::new()),
            clock: match ClockWatch::spawn() {
                Ok(c) => Some(c),
                Err(e) => {
                    crate::say!("cannot start the clock-watch thread: {e}");
                    None
                }
            },
        }
    }

    /// The clock-watch thread's handle (`None` if it could not start).
    pub fn clock(&self) -> Option<&ClockWatch> {
        self.clock.as_ref()
    }

    /// The answer to `GET /v1/health`.
    pub fn health(&self) -> Health {
        Health {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            kernel: self.kernel.clone(),
            reflector_port: self.reflector_port,
            pid1: self.pid1,
            init: init_system(self.pid1),
        }
    }

    /// The answer to `GET /v1/report`.
    pub fn report(&self) -> AgentReport {
        let workloads = self
            .lock_workloads()
            .iter()
            .map(|(k, w)| (k.clone(), w.report()))
            .collect();
        AgentReport {
            health: self.health(),
            reflector: self.reflector.snapshot(),
            workloads,
            clock: self
                .clock
                .as_ref()
                .map(ClockWatch::view)
                .unwrap_or_default(),
        }
    }

    fn lock_workloads(&self) -> MutexGuard<'_, BTreeMap<String, Workload>> {
        // A poisoned lock only means a panic elsewhere; the map is still
        // consistent (every change is a single insert or lookup).
        self.workloads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_files(&self) -> MutexGuard<'_, Files> {
        // As for the workloads: every change is a single insert or remove.
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The uploaded files (name and size), in name order.
    pub fn files(&self) -> FileList {
        FileList {
            files: self
                .lock_files()
                .iter()
                .map(|(name, b)| FileInfo {
                    name: name.clone(),
                    bytes: b.len() as u64,
                })
                .collect(),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(value) = req.headers().get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        constant_time_eq(value[7..].trim_ascii(), self.token.as_bytes())
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(b) => (status, b),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{{\"error\":\"cannot encode the answer: {e}\"}}").into_bytes(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    json(status, &ApiError { error: msg.into() })
}

/// Workload and file names: 1 to 64 of `A-Z a-z 0-9 _ - .`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Answers one request.
pub async fn handle(state: Arc<AgentState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !state.authorized(&req) {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match path.as_str() {
        "/v1/health" => match method {
            Method::GET => json(StatusCode::OK, &state.health()),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} {path}: use GET"),
            ),
        },
        "/v1/report" => match method {
            Method::GET => json(StatusCode::OK, &state.report()),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} {path}: use GET"),
            ),
        },
        "/v1/files" => match method {
            Method::GET => json(StatusCode::OK, &state.files()),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} {path}: use GET"),
            ),
        },
        p if p.starts_with("/v1/files/") => {
            let name = &p["/v1/files/".len()..];
            if !valid_name(name) {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("file name {name:?} is invalid: use 1 to 64 of A-Z a-z 0-9 _ - ."),
                );
            }
            let name = name.to_string();
            match method {
                Method::PUT => put_file(state, name, req).await,
                Method::DELETE => match state.lock_files().remove(&name) {
                    Some(b) => json(
                        StatusCode::OK,
                        &FileInfo {
                            name,
                            bytes: b.len() as u64,
                        },
                    ),
                    None => error(StatusCode::NOT_FOUND, format!("no file named {name:?}")),
                },
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} {path}: use PUT or DELETE"),
                ),
            }
        }
        p => {
            if let Some((name, action)) = workload_action(p) {
                let name = name.to_string();
                return match (method, action) {
                    (Method::POST, Action::Verify) => verify_workload(state, name, req).await,
                    (Method::POST, Action::Resume) => resume_workload(state, name).await,
                    (method, _) => error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        format!("{method} {path}: use POST"),
                    ),
                };
            }
            match p.strip_prefix("/v1/workloads/") {
                Some(name) if !name.contains('/') && !name.is_empty() => {
                    if !valid_name(name) {
                        return error(
                        StatusCode::BAD_REQUEST,
                        format!("workload name {name:?} is invalid: use 1 to 64 of A-Z a-z 0-9 _ - ."),
                    );
                    }
                    let name = name.to_string();
                    match method {
                        Method::PUT => put_workload(state, name, req).await,
                        Method::DELETE => delete_workload(state, name).await,
                        _ => error(
                            StatusCode::METHOD_NOT_ALLOWED,
                            format!("{method} {path}: use PUT or DELETE"),
                        ),
                    }
                }
                _ => error(StatusCode::NOT_FOUND, format!("no such path: {path}")),
            }
        }
    }
}

/// What is done to a workload by `POST /v1/workloads/{name}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Verify,
    Resume,
}

/// The workload name and action of an action path, if `path` is one.
fn workload_action(path: &str) -> Option<(&str, Action)> {
    let rest = path.strip_prefix("/v1/workloads/")?;
    let (name, action) = rest.split_once('/')?;
    let action = match action {
        "verify" => Action::Verify,
        "resume" => Action::Resume,
        _ => return None,
    };
    valid_name(name).then_some((name, action))
}

/// Reads a request's body of at most `limit` bytes; the error answer (413
/// naming `what` and the limit, or 400) otherwise.
async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{what} larger than {limit} bytes"),
            ))
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )),
    }
}

async fn put_file(
    state: Arc<AgentState>,
    name: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_CLIP_BYTES, "file").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let info = FileInfo {
        name: name.clone(),
        bytes: body.len() as u64,
    };
    let old = state.lock_files().insert(name, body);
    // A replaced file may be large: free it off the async thread.
    if let Some(old) = old {
        tokio::task::spawn_blocking(move || drop(old));
    }
    json(StatusCode::OK, &info)
}

async fn put_workload(
    state: Arc<AgentState>,
    name: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_BODY, "body").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let spec: WorkloadSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed workload spec: {e}"),
            )
        }
    };
    if state
        .lock_workloads()
        .get(&name)
        .is_some_and(Workload::is_running)
    {
        return error(
            StatusCode::CONFLICT,
            format!("workload {name:?} is already running"),
        );
    }
    // The files a streaming workload may use (shared, not copied).
    let files: Files = match &spec {
        WorkloadSpec::Rtp { clip: f, .. } | WorkloadSpec::Http { file: f, .. } => state
            .lock_files()
            .get(f)
            .map(|b| (f.clone(), b.clone()))
            .into_iter()
            .collect(),
        _ => Files::new(),
    };
    // Allocation and pre-touch (or parsing a clip) take a while: off the
    // async thread.
    let started = tokio::task::spawn_blocking({
        let name = name.clone();
        move || Workload::start_with_files(&name, &spec, &files)
    })
    .await;
    let workload = match started {
        Ok(Ok(w)) => w,
        Ok(Err(e @ (WorkloadError::Invalid(_) | WorkloadError::Spawn { .. }))) => {
            return error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e @ WorkloadError::Bind { .. })) => {
            return error(StatusCode::CONFLICT, e.to_string())
        }
        Ok(Err(e @ WorkloadError::InsufficientMemory { .. })) => {
            return error(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("workload start failed: {e}"),
            )
        }
    };
    let report = workload.report();
    // Insert unless another PUT of the same name won the race meanwhile.
    let inserted = {
        let mut map = state.lock_workloads();
        if map.get(&name).is_some_and(Workload::is_running) {
            Err(workload)
        } else {
            Ok(map.insert(name.clone(), workload))
        }
    };
    let old = match inserted {
        Ok(old) => old,
        Err(mut w) => {
            tokio::task::spawn_blocking(move || w.stop()).await.ok();
            return error(
                StatusCode::CONFLICT,
                format!("workload {name:?} is already running"),
            );
        }
    };
    if let Some(old) = old {
        // A stopped or failed workload of the same name: drop it off the
        // async thread (dropping joins its thread, if any).
        tokio::task::spawn_blocking(move || drop(old));
    }
    json(StatusCode::OK, &report)
}

/// The body of a verify request: none (or only white space) is the
/// default, anything else must be a [`VerifyRequest`].
fn verify_request(body: &[u8]) -> Result<VerifyRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(VerifyRequest::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("malformed verify request: {e}"))
}

/// The verifier of workload `name`, or the status (404, 409) and message
/// of the error answer.
fn verifier_of(state: &AgentState, name: &str) -> Result<WorkloadVerifier, (StatusCode, String)> {
    match state.lock_workloads().get(name).map(Workload::verifier) {
        None => Err((StatusCode::NOT_FOUND, format!("no workload named {name:?}"))),
        Some(Err(e)) => Err((StatusCode::CONFLICT, e.to_string())),
        Some(Ok(v)) => Ok(v),
    }
}

/// The answer to a refused verify or resume.
fn refusal(e: VerifyRefused) -> Response<Full<Bytes>> {
    let status = match e {
        VerifyRefused::HoldUnsupported(_) => StatusCode::BAD_REQUEST,
        VerifyRefused::NotDirty(_)
        | VerifyRefused::NotRunning(_)
        | VerifyRefused::NotHeld { .. } => StatusCode::CONFLICT,
        VerifyRefused::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn verify_workload(
    state: Arc<AgentState>,
    name: String,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_BODY, "body").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ask = match verify_request(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let verifier = match verifier_of(&state, &name) {
        Ok(v) => v,
        Err((status, msg)) => return error(status, msg),
    };
    match tokio::task::spawn_blocking(move || verifier.verify(ask.hold)).await {
        Ok(Ok(report)) => json(StatusCode::OK, &report),
        Ok(Err(e)) => refusal(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("verifying {name:?} failed: {e}"),
        ),
    }
}

async fn resume_workload(state: Arc<AgentState>, name: String) -> Response<Full<Bytes>> {
    let verifier = match verifier_of(&state, &name) {
        Ok(v) => v,
        Err((status, msg)) => return error(status, msg),
    };
    match tokio::task::spawn_blocking(move || verifier.resume()).await {
        Ok(Ok(())) => match state.lock_workloads().get(&name).map(Workload::report) {
            Some(report) => json(StatusCode::OK, &report),
            None => error(StatusCode::NOT_FOUND, format!("no workload named {name:?}")),
        },
        Ok(Err(e)) => refusal(e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("resuming {name:?} failed: {e}"),
        ),
    }
}

async fn delete_workload(state: Arc<AgentState>, name: String) -> Response<Full<Bytes>> {
    // Take it out while stopping so the lock is not held across the join,
    // then put the stopped workload back for the report.
    let Some(mut w) = state.lock_workloads().remove(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no workload named {name:?}"));
    };
    match tokio::task::spawn_blocking(move || {
        let report = w.stop();
        (w, report)
    })
    .await
    {
        Ok((w, report)) => {
            state.lock_workloads().entry(name).or_insert(w);
            json(StatusCode::OK, &report)
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stopping {name:?} failed: {e}"),
        ),
    }
}

/// Serves the control API on `listener` until the listener fails.
///
/// Each connection is served on its own task; a failed connection is
/// logged and does not stop the server.
pub async fn serve(listener: TcpListener, state: Arc<AgentState>) -> std::io::Error {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) if is_transient(&e) => {
                crate::say!("control: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return e,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                if !e.is_incomplete_message() {
                    crate::say!("control: connection error: {e}");
                }
            }
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// What runs as PID 1: the agent itself, or systemd when the system was
/// booted with it (`/run/systemd/system` exists: `sd_booted()`'s test; a
/// hardened unit cannot see `/proc/1`), or else PID 1's name if visible.
fn init_system(pid1: bool) -> Option<String> {
    if pid1 {
        return Some("guest-agent".into());
    }
    if std::path::Path::new("/run/systemd/system").is_dir() {
        return Some("systemd".into());
    }
    std::fs::read_to_string("/proc/1/comm")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn action_paths() {
        assert_eq!(
            workload_action("/v1/workloads/d-1/verify"),
            Some(("d-1", Action::Verify))
        );
        assert_eq!(
            workload_action("/v1/workloads/d/resume"),
            Some(("d", Action::Resume))
        );
        assert_eq!(workload_action("/v1/workloads/d"), None);
        assert_eq!(workload_action("/v1/workloads/d/pause"), None);
        assert_eq!(workload_action("/v1/workloads/a/b/verify"), None);
        assert_eq!(workload_action("/v1/workloads//verify"), None);
    }

    #[test]
    fn verify_bodies() {
        assert_eq!(verify_request(b""), Ok(VerifyRequest::default()));
        assert_eq!(verify_request(b" \n"), Ok(VerifyRequest::default()));
        assert_eq!(verify_request(b"{}"), Ok(VerifyRequest { hold: false }));
        assert_eq!(
            verify_request(br#"{"hold":true}"#),
            Ok(VerifyRequest { hold: true })
        );
        let e = verify_request(br#"{"hold":1}"#).unwrap_err();
        assert!(e.contains("malformed verify request"), "{e}");
        let e = verify_request(br#"{"held":true}"#).unwrap_err();
        assert!(e.contains("held"), "{e}");
    }

    #[test]
    fn names() {
        assert!(valid_name("dirty-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("%2e%2e"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
