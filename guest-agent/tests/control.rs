//! The control API over a real TCP socket, and the binary's service mode.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;

use guest_agent::reflector::Reflector;
use guest_agent::Ready;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use wire::control::{AgentReport, ApiError, Health, IntegrityReport, WorkloadReport};
use wire::probe::ProbePacket;

const TOKEN: &str = "test-token-123";

async fn start() -> (SocketAddr, Reflector) {
    common::start_agent(TOKEN).await
}

/// One request on a fresh connection; returns status and body.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn api_error(body: &str) -> String {
    serde_json::from_str::<ApiError>(body).unwrap().error
}

#[tokio::test]
async fn auth_is_required_everywhere() {
    let (addr, _r) = start().await;
    for path in ["/v1/health", "/v1/report", "/nope"] {
        let (s, body) = call(addr, Method::GET, path, None, "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(api_error(&body).contains("token"), "{body}");
        let (s, _) = call(addr, Method::GET, path, Some("wrong"), "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call(addr, Method::GET, path, Some("test-token-12"), "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = call(
        addr,
        Method::PUT,
        "/v1/workloads/a",
        None,
        r#"{"kind":"dirty","working_set_mib":1,"rate_mib_s":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let (addr, r) = start().await;
    let (s, body) = call(addr, Method::GET, "/v1/health", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let h: Health = serde_json::from_str(&body).unwrap();
    assert_eq!(h.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(h.reflector_port, r.local_addr().port());
    assert!(!h.pid1);
    assert!(!h.kernel.is_empty() && h.kernel != "unknown");

    let (s, body) = call(addr, Method::GET, "/v1/nothing", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(api_error(&body).contains("/v1/nothing"));
    let (s, _) = call(addr, Method::GET, "/v1/workloads/a/b", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(addr, Method::POST, "/v1/health", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn dirty_workload_lifecycle_and_report() {
    let (addr, r) = start().await;
    let spec = r#"{"kind":"dirty","working_set_mib":8,"rate_mib_s":16}"#;

    // Malformed bodies name the problem.
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/d1",
        Some(TOKEN),
        "{not json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("malformed"), "{body}");
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/d1",
        Some(TOKEN),
        r#"{"kind":"dirty","working_set_mib":8,"rate_mib_s":16,"oops":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("oops"), "{body}");
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/d1",
        Some(TOKEN),
        r#"{"kind":"dirty","working_set_mib":0,"rate_mib_s":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("working_set_mib"), "{body}");
    let (s, _) = call(
        addr,
        Method::PUT,
        "/v1/workloads/bad%20name",
        Some(TOKEN),
        spec,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Unknown workload.
    let (s, _) = call(addr, Method::DELETE, "/v1/workloads/d1", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Start, conflict, stop.
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/d1", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let started: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(started.name, "d1");
    assert_eq!(started.state, "running");
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/d1", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(api_error(&body).contains("d1"));

    // Some probe traffic, so the report's reflector counters move.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; wire::probe::HEADER_LEN];
    ProbePacket::request(77, 0, 1).encode(&mut buf);
    c.send_to(&buf, r.local_addr()).unwrap();
    let mut rbuf = [0u8; 128];
    c.recv_from(&mut rbuf).unwrap();
    c.send_to(b"junk", r.local_addr()).unwrap();

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert_eq!(rep.reflector.echoed, 1);
    assert_eq!(rep.reflector.malformed, 1);
    assert_eq!(rep.reflector.sessions, 1);
    assert!(!rep.health.pid1);
    let w = &rep.workloads["d1"];
    assert_eq!(w.state, "running");
    assert!(w.pages_written > 0);
    assert_eq!(w.per_second_mib_s.len(), 1, "{w:?}");

    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/d1", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
    let fin: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(fin.state, "stopped");
    assert!(fin.pages_written >= w.pages_written);
    assert!(fin.elapsed_ms >= 1200, "{fin:?}");
    assert!((fin.achieved_mib_s - 16.0).abs() < 16.0 * 0.3, "{fin:?}");

    // Stopped workloads stay in the report; the name can be reused.
    let (_, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert_eq!(rep.workloads["d1"].state, "stopped");
    let (s, _) = call(addr, Method::PUT, "/v1/workloads/d1", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/d1", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
    let again: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert!(again.elapsed_ms < fin.elapsed_ms, "a fresh run: {again:?}");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let (addr, _r) = start().await;
    let big = format!("{{\"kind\":\"dirty\",\"x\":\"{}\"}}", "a".repeat(100_000));
    let (s, _) = call(addr, Method::PUT, "/v1/workloads/big", Some(TOKEN), &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn binary_service_mode_prints_ready_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guest-agent"))
        .env("LMIG_AGENT_TOKEN", TOKEN)
        .args(["--control-listen", "127.0.0.1:0", "--reflector-port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let ready = loop {
        let line = lines.next().expect("agent exited before ready").unwrap();
        if let Some(r) = Ready::parse(&line) {
            assert_eq!(line, r.to_string(), "exactly the documented ready line");
            break r;
        }
    };
    assert_eq!(ready.addr.to_string(), "127.0.0.1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (s, body) = rt.block_on(call(
        SocketAddr::from(([127, 0, 0, 1], ready.control_port)),
        Method::GET,
        "/v1/health",
        Some(TOKEN),
        "",
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s, StatusCode::OK);
    let h: Health = serde_json::from_str(&body).unwrap();
    assert_eq!(h.reflector_port, ready.reflector_port);
}

#[test]
fn binary_pid1_flag_only_parses() {
    let out = Command::new(env!("CARGO_BIN_EXE_guest-agent"))
        .args([
            "--pid1",
            "--cmdline",
            "quiet lmig.addr=198.18.0.10/24 lmig.token=x lmig.what=1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("lmig.what"), "{err}");
    assert!(err.contains("198.18.0.10/24"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_guest-agent"))
        .args(["--pid1", "--cmdline", "lmig.addr=198.18.0.10/24"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lmig-agent: fatal:") && err.contains("lmig.token"),
        "{err}"
    );
}

#[tokio::test]
async fn command_workload_lifecycle() {
    let (addr, _r) = start().await;
    let spec = r#"{"kind":"command","argv":["/bin/sleep","30"]}"#;
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/cmd-it", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let started: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(started.state, "running", "{started:?}");
    let (_, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert_eq!(rep.workloads["cmd-it"].state, "running");
    let (s, _) = call(addr, Method::PUT, "/v1/workloads/cmd-it", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::CONFLICT);

    let t = std::time::Instant::now();
    let (s, body) = call(
        addr,
        Method::DELETE,
        "/v1/workloads/cmd-it",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fin: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(fin.state, "stopped", "{fin:?}");
    assert_eq!(fin.error, None);
    assert!(t.elapsed() < Duration::from_secs(3), "ended by SIGTERM");
    let (_, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert_eq!(rep.workloads["cmd-it"].state, "stopped");

    // A program that does not exist: refused, and the answer names it.
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/cmd-missing",
        Some(TOKEN),
        r#"{"kind":"command","argv":["/nonexistent/program","x"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let e = api_error(&body);
    assert!(e.contains("cannot start /nonexistent/program"), "{e}");
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/cmd-empty",
        Some(TOKEN),
        r#"{"kind":"command","argv":[]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(api_error(&body).contains("argv"), "{body}");

    // A program that fails at once: started, then reported failed with
    // its exit status.
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/cmd-false",
        Some(TOKEN),
        r#"{"kind":"command","argv":["/bin/false"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let r: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(r.state, "failed", "{r:?}");
    assert!(r.error.unwrap().contains("exited with status 1"));
}

#[tokio::test]
async fn verify_endpoint_and_new_report_fields() {
    let (addr, _r) = start().await;
    // Validation errors name the field.
    for (spec, field) in [
        (
            r#"{"kind":"dirty","working_set_mib":4,"rate_mib_s":8,"hot_fraction":1.5}"#,
            "hot_fraction",
        ),
        (
            r#"{"kind":"dirty","working_set_mib":4,"rate_mib_s":8,"hot_share":-1}"#,
            "hot_share",
        ),
        (
            r#"{"kind":"dirty","working_set_mib":4,"rate_mib_s":8,"threads":100}"#,
            "threads",
        ),
        (
            r#"{"kind":"dirty","working_set_mib":4,"rate_mib_s":8,"pattern":"zigzag"}"#,
            "zigzag",
        ),
    ] {
        let (s, body) = call(addr, Method::PUT, "/v1/workloads/v", Some(TOKEN), spec).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(api_error(&body).contains(field), "{body}");
    }
    // Unknown workload, wrong method.
    let (s, _) = call(
        addr,
        Method::POST,
        "/v1/workloads/v/verify",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(addr, Method::GET, "/v1/workloads/v/verify", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);

    let spec =
        r#"{"kind":"dirty","working_set_mib":8,"rate_mib_s":16,"pattern":"hotcold","threads":2}"#;
    let (s, body) = call(addr, Method::PUT, "/v1/workloads/v", Some(TOKEN), spec).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let started: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(started.target_mib_s, Some(16.0));
    assert!(started.started_realtime_ns > 1_600_000_000_000_000_000);
    assert_eq!(started.integrity, None);

    let (s, body) = call(
        addr,
        Method::POST,
        "/v1/workloads/v/verify",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let i: IntegrityReport = serde_json::from_str(&body).unwrap();
    assert_eq!(i.checked_pages, 8 * 256);
    assert_eq!(i.corrupted_pages, 0);
    assert!(i.first_corrupted.is_empty());
    assert!(i.checked_at_realtime_ns >= started.started_realtime_ns);

    let (_, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert_eq!(rep.workloads["v"].state, "running");
    assert_eq!(rep.workloads["v"].integrity.as_ref(), Some(&i));
    // The clock view is there (its content depends on the machine).
    assert!(rep.clock.gaps.len() <= 1002);
    assert!(body.contains("\"clock\""), "{body}");

    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/v", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fin: WorkloadReport = serde_json::from_str(&body).unwrap();
    let fi = fin.integrity.unwrap();
    assert_eq!((fi.checked_pages, fi.corrupted_pages), (8 * 256, 0));
    assert!(fi.checked_at_realtime_ns >= i.checked_at_realtime_ns);

    // Stopped, or not a dirty workload: 409.
    let (s, body) = call(
        addr,
        Method::POST,
        "/v1/workloads/v/verify",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    let (s, _) = call(
        addr,
        Method::PUT,
        "/v1/workloads/c",
        Some(TOKEN),
        r#"{"kind":"command","argv":["/bin/sleep","30"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(
        addr,
        Method::POST,
        "/v1/workloads/c/verify",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(api_error(&body).contains("not a dirty"), "{body}");
    let (s, _) = call(addr, Method::DELETE, "/v1/workloads/c", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn disk_workload_verify_hold_and_resume() {
    let (addr, _r) = start().await;
    let img = format!("/tmp/lmig-control-disk-{}.img", std::process::id());
    std::fs::File::create(&img).unwrap();
    let disk = |extra: &str| {
        format!(
            r#"{{"kind":"disk","device":"{img}","region_mib":1,"rate_mib_s":4,"direct":false{extra}}}"#
        )
    };
    // Bad specs name the field.
    for (extra, field) in [
        (r#","block_kib":3"#, "block_kib"),
        (r#","pattern":"hotcold""#, "hotcold"),
        (r#","offset_mib":1,"oops":1"#, "oops"),
    ] {
        let (s, body) = call(
            addr,
            Method::PUT,
            "/v1/workloads/d",
            Some(TOKEN),
            &disk(extra),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(api_error(&body).contains(field), "{body}");
    }
    let (s, body) = call(
        addr,
        Method::PUT,
        "/v1/workloads/d",
        Some(TOKEN),
        r#"{"kind":"disk","device":"/nonexistent/disk","region_mib":1,"rate_mib_s":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(api_error(&body).contains("/nonexistent/disk"), "{body}");

    let (s, body) = call(addr, Method::PUT, "/v1/workloads/d", Some(TOKEN), &disk("")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let started: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(started.state, "running");
    assert_eq!(started.blocks_written, Some(0));

    let post =
        |path: &'static str, body: &'static str| call(addr, Method::POST, path, Some(TOKEN), body);
    let (s, body) = post("/v1/workloads/d/verify", r#"{"hold":true}"#).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let held: IntegrityReport = serde_json::from_str(&body).unwrap();
    assert_eq!((held.checked_pages, held.corrupted_pages), (256, 0));
    assert!(held.versions_digest.is_some(), "{body}");
    let (s, body) = post("/v1/workloads/d/resume", "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let resumed: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(resumed.state, "running");
    let (s, body) = post("/v1/workloads/d/resume", "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert!(api_error(&body).contains("not held"), "{body}");
    // An empty body verifies without holding.
    let (s, body) = post("/v1/workloads/d/verify", "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = post("/v1/workloads/d/resume", "").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, body) = post("/v1/workloads/d/verify", r#"{"hold":1}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        api_error(&body).contains("malformed verify request"),
        "{body}"
    );
    let (s, _) = call(addr, Method::GET, "/v1/workloads/d/resume", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);

    // 4 MiB/s of 4 KiB blocks: about 200 blocks in 200 ms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, body) = call(addr, Method::GET, "/v1/report", Some(TOKEN), "").await;
    let rep: AgentReport = serde_json::from_str(&body).unwrap();
    assert!(rep.workloads["d"].blocks_written.unwrap() > 50, "{body}");
    // A held workload is released by DELETE, which checks once more.
    let (s, _) = post("/v1/workloads/d/verify", r#"{"hold":true}"#).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = call(addr, Method::DELETE, "/v1/workloads/d", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let fin: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(fin.state, "stopped");
    let fi = fin.integrity.unwrap();
    assert_eq!((fi.checked_pages, fi.corrupted_pages), (256, 0));
    assert!(fi.versions_digest.is_some());
    let (s, _) = post("/v1/workloads/d/resume", "").await;
    assert_eq!(s, StatusCode::CONFLICT);

    // A dirty workload verifies, but cannot be held.
    let (s, _) = call(
        addr,
        Method::PUT,
        "/v1/workloads/m",
        Some(TOKEN),
        r#"{"kind":"dirty","working_set_mib":2,"rate_mib_s":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = post("/v1/workloads/m/verify", r#"{"hold":true}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        api_error(&body).contains("only a disk workload can be held"),
        "{body}"
    );
    let (s, body) = post("/v1/workloads/m/verify", r#"{"hold":false}"#).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let i: IntegrityReport = serde_json::from_str(&body).unwrap();
    assert_eq!(i.versions_digest, None);
    assert!(!body.contains("versions_digest"), "{body}");
    let (s, _) = post("/v1/workloads/m/resume", "").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(addr, Method::DELETE, "/v1/workloads/m", Some(TOKEN), "").await;
    assert_eq!(s, StatusCode::OK);
    let _ = std::fs::remove_file(&img);
}
