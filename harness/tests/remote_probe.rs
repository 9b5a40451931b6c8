//! [`RemoteProbe`] against a real `client-probe serve` subprocess in a
//! network namespace this test creates (`lmig-t-rp-<pid>`, removed by a
//! guard even on panic), with a UDP reflector bound in the same namespace.
//!
//! How the pieces reach each other: the namespace has only loopback, up,
//! with 198.18.254.1/32 on it. The reflector's socket is bound there (from
//! a thread that entered the namespace; the socket stays in it, its loop
//! runs in this process). `client-probe serve` runs inside it via
//! [`ServeProcess`] and listens on 198.18.254.1:7100; the harness side
//! reaches it with [`RemoteProbe::connect_at`], whose connections
//! are opened from inside the namespace (as the harness reaches the guest
//! agent). No interface leaves the namespace; no route is added.
//!
//! Needs root (namespaces) and builds the `client-probe` binary first
//! (`cargo build -p client-probe`, a no-op when it is fresh). The last two
//! tests need neither: they use fake servers on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic with its message is the failure report"
)]

use harness::backend::Site;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::backend::local::lab::netns::{in_netns, ip, ip_in};
use harness::clients::probe::{
    to_remote_clock, ClockAlignment, RemoteProbe, ServeProcess, Timeouts, DEFAULT_EXCHANGES,
};
use harness::clock::now_ns;
use measure::probe::gaps::analyze;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::probe::{Kind, ProbePacket};

const TOKEN: &str = "rp-test-token-0123456789";
const ADDR: &str = "198.18.254.1";

/// A network namespace of this test's own, deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn create() -> TestNetns {
        let name = format!("lmig-t-rp-{}", std::process::id());
        ip(&["netns", "add", &name]).unwrap();
        let ns = TestNetns { name }; // from here on, removed even on panic
        ip_in(&ns.name, &["link", "set", "lo", "up"]).unwrap();
        ip_in(
            &ns.name,
            &["addr", "add", &format!("{ADDR}/32"), "dev", "lo"],
        )
        .unwrap();
        ns
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: {e:#}");
        }
    }
}

/// A minimal reflector (as in client-probe's loopback test): echoes each
/// probe request as a reply with its receive count and timestamps. Stopped
/// and joined on drop.
struct Reflector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reflector {
    fn start_in(ns: &str) -> Reflector {
        let bind: SocketAddr = format!("{ADDR}:0").parse().unwrap();
        let sock = in_netns(ns, move || UdpSocket::bind(bind)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut counts: HashMap<u64, u64> = HashMap::new();
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let rx = now_ns();
                let Ok(mut p) = ProbePacket::decode(&buf[..len]) else {
                    continue;
                };
                if p.kind != Kind::Request {
                    continue;
                }
                let c = counts.entry(p.session).or_insert(0);
                *c += 1;
                p.kind = Kind::Reply;
                p.reflector_rx_ns = rx;
                p.reflector_rx_count = *c;
                p.reflector_tx_ns = now_ns();
                p.encode(&mut buf);
                let _ = sock.send_to(&buf[..len], from);
            }
        });
        Reflector {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `client-probe` binary next to this test's target folder, built (or
/// brought up to date) first: `cargo test -p harness` builds client-probe's
/// library but not its binary.
fn client_probe_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/remote_probe-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("client-probe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "client-probe", "--bin", "client-probe"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd.output();
    let built = matches!(&out, Ok(o) if o.status.success());
    assert!(
        built && bin.is_file(),
        "the client-probe binary is needed at {} and building it failed: run `cargo build -p client-probe` first\n{}",
        bin.display(),
        match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => format!("cannot run cargo: {e}"),
        }
    );
    bin
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn remote_probe_start_stop_collect_and_failures_in_a_namespace() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it creates a network namespace): run it as root"
    );
    let binary = client_probe_binary();
    let (ns_name, serve_pid) = {
        let ns = TestNetns::create();
        let refl = Reflector::start_in(&ns.name);
        let listen: SocketAddr = format!("{ADDR}:7100").parse().unwrap();
        let mut serve =
            ServeProcess::spawn_at(&Site::lab_namespace(&ns.name), &binary, listen, TOKEN).unwrap();
        let pid = serve.pid();
        // `ip netns exec` replaced itself with client-probe: the PID is its.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "client-probe");
        let base = serve.base_url();
        assert_eq!(base, "http://198.18.254.1:7100");

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A wrong token: refused at once, saying so.
            let t = Instant::now();
            let e = RemoteProbe::connect_at(&Site::lab_namespace(&ns.name), &base, "wrong-token")
                .await
                .unwrap_err();
            let msg = format!("{e:#}");
            eprintln!("wrong token: {msg}");
            assert!(msg.contains("401") && msg.contains("token"), "{msg}");
            assert!(msg.contains(&base) && msg.contains("/v1/health"), "{msg}");
            assert!(t.elapsed() < Duration::from_secs(2), "not retried");

            let probe = RemoteProbe::connect_at(&Site::lab_namespace(&ns.name), &base, TOKEN)
                .await
                .unwrap();
            assert_eq!(probe.base(), base);
            assert_eq!(probe.health().version, env!("CARGO_PKG_VERSION"));
            assert!(!probe.health().probe_running);

            // One host, one clock: the true offset is 0, inside the bound.
            let before = probe.clock_offset(DEFAULT_EXCHANGES).await.unwrap();
            eprintln!(
                "offset before: {} ns ± {} ns (delay {} ns, {} of {} exchanges)",
                before.offset_ns,
                before.uncertainty_ns,
                before.delay_ns,
                before.exchanges_used,
                before.exchanges.len()
            );
            assert_eq!(before.exchanges.len(), DEFAULT_EXCHANGES);
            assert!(before.exchanges_used >= 1);
            assert!(
                before.offset_ns.abs() <= before.uncertainty_ns,
                "{before:?}"
            );
            assert!(before.uncertainty_ns > 0, "{before:?}");
            assert!(before.uncertainty_ns < 5_000_000, "{before:?}");
            assert_eq!(before.remote, base);

            let t_start = now_ns();
            let started = probe.start(refl.addr, 1000, 64).await.unwrap();
            let e = probe.start(refl.addr, 1000, 64).await.unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains("409") && msg.contains("already running"),
                "{msg}"
            );
            assert!(msg.contains("POST /v1/probe/start"), "{msg}");

            let mut live = None;
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let l = probe.live().await.unwrap();
                let enough = l.replies >= 100;
                live = Some(l);
                if enough {
                    break;
                }
            }
            let live = live.unwrap();
            eprintln!("live: {}", live.line());
            assert!(live.replies >= 100 && live.sent >= live.replies, "{live:?}");

            // A checkpoint: what was recorded so far, on our clock.
            let (meta, delta) = probe.checkpoint(&before).await.unwrap();
            assert_eq!(meta.session, started.session);
            assert_eq!(delta.first_seq, 0);
            assert!(delta.replies.len() >= 100, "{}", delta.replies.len());

            let ran = Duration::from_nanos((now_ns() - t_start) as u64);
            tokio::time::sleep(Duration::from_secs(1).saturating_sub(ran)).await;
            let collected = probe.stop_and_collect(&before).await.unwrap();
            let t_stop = now_ns();
            let rec = &collected.record;
            let s = analyze(rec, None, 5_000_000);
            eprintln!(
                "collected: sent {}, replies {}, lost {}, max gap {:.2} ms",
                s.probes_sent, s.replies, s.lost, s.max_gap_ms
            );
            assert_eq!(rec.session, started.session);
            assert_eq!(rec.target, refl.addr.to_string());
            assert_eq!((rec.rate_hz, rec.payload_len), (1000, 64));
            assert!((900..1500).contains(&s.probes_sent), "{}", s.probes_sent);
            assert_eq!(s.lost, 0, "{s:?}");
            assert_eq!(s.replies, s.probes_sent);
            assert!(rec.replies.iter().all(|r| r.kernel_ts));
            // The checkpoint, converted the same way, is a prefix of it.
            assert_eq!(rec.send_ns[..delta.send_ns.len()], delta.send_ns[..]);
            assert_eq!(rec.replies[..delta.replies.len()], delta.replies[..]);

            // Converted with the offset measured before, and it says so.
            let clock: &ClockAlignment = &collected.clock;
            assert_eq!(clock.applied_offset_ns, before.offset_ns);
            assert_eq!(clock.before, before);
            let after = clock.after.as_ref().expect("measured again after stopping");
            assert_eq!(after.exchanges.len(), DEFAULT_EXCHANGES);
            assert!(after.offset_ns.abs() <= after.uncertainty_ns, "{after:?}");
            assert!(after.measured_at_ns > before.measured_at_ns);
            let drift = clock.drift_ns.unwrap();
            assert!(
                drift.abs() <= before.uncertainty_ns + after.uncertainty_ns,
                "{clock:?}"
            );
            assert!(clock.max_error_ns.unwrap() >= before.uncertainty_ns);
            // On our clock, every send lies between our start and stop
            // requests (the offset's bound and a millisecond of slack).
            let slack = before.uncertainty_ns + 1_000_000;
            let first = *rec.send_ns.first().unwrap();
            let last = *rec.send_ns.last().unwrap();
            assert!(first >= t_start - slack && last <= t_stop + slack);
            // The remote's own start time, moved to our clock, precedes
            // the first send.
            assert!(first >= started.started_ns - clock.applied_offset_ns);
            // Undoing the conversion gives the remote's times back.
            let mut raw = rec.clone();
            to_remote_clock(&mut raw, clock.applied_offset_ns);
            assert_eq!(raw.send_ns[0], first + clock.applied_offset_ns);
            let json = serde_json::to_string_pretty(clock).unwrap();
            let back: ClockAlignment = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, clock);

            let e = probe.live().await.unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains("GET /v1/probe/status") && msg.contains("409"),
                "{msg}"
            );

            // A remote that stops answering: every request times out.
            probe.start(refl.addr, 1000, 64).await.unwrap();
            let impatient = RemoteProbe::connect_at(&Site::lab_namespace(&ns.name), &base, TOKEN)
                .await
                .unwrap()
                .with_timeouts(Timeouts {
                    connect: Duration::from_secs(1),
                    request: Duration::from_secs(1),
                    stop: Duration::from_secs(1),
                });
            assert!(impatient.health().probe_running);
            let nix_pid = nix::unistd::Pid::from_raw(pid as i32);
            nix::sys::signal::kill(nix_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
            let t = Instant::now();
            let e = impatient.live().await.unwrap_err();
            let msg = format!("{e:#}");
            eprintln!("stopped remote: {msg}");
            assert!(
                msg.contains("GET /v1/probe/status") && msg.contains(&base),
                "{msg}"
            );
            assert!(msg.contains("no answer within 1.0 s"), "{msg}");
            assert!(t.elapsed() < Duration::from_secs(3));

            // Killed mid-run (by its PID): stop_and_collect fails, naming
            // the endpoint, promptly.
            nix::sys::signal::kill(nix_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
            let t = Instant::now();
            let e = probe.stop_and_collect(&before).await.unwrap_err();
            let msg = format!("{e:#}");
            eprintln!("killed remote: {msg}");
            assert!(
                msg.contains("POST /v1/probe/stop") && msg.contains(&base),
                "{msg}"
            );
            assert!(t.elapsed() < Duration::from_secs(10));
            let e = probe.clock_offset(4).await.unwrap_err();
            assert!(format!("{e:#}").contains("GET /v1/time"), "{e:#}");
        });
        // SIGKILL is delivered at once, but the process may take a moment
        // to become a zombie the parent can reap.
        let mut status = None;
        for _ in 0..200 {
            status = serve.try_wait().unwrap();
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(status.is_some(), "killed, so it has ended within 2 s");
        (ns.name.clone(), pid)
        // serve, refl, then the namespace are dropped here, in that order.
    };
    assert!(!process_exists(serve_pid), "PID {serve_pid} still exists");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.split_whitespace().any(|n| n == ns_name),
        "namespace {ns_name} left behind: {list}"
    );
}

#[test]
fn dropping_a_serve_process_ends_it_and_leaves_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it creates a network namespace): run it as root"
    );
    let binary = client_probe_binary();
    let name = format!("lmig-t-rp-{}-drop", std::process::id());
    let pid = {
        ip(&["netns", "add", &name]).unwrap();
        let _ns = TestNetns { name: name.clone() };
        ip_in(&name, &["link", "set", "lo", "up"]).unwrap();
        let serve = ServeProcess::spawn_at(
            &Site::lab_namespace(&name),
            &binary,
            "127.0.0.1:7100".parse().unwrap(),
            TOKEN,
        )
        .unwrap();
        let pid = serve.pid();
        assert!(process_exists(pid));
        // A second one on the same address fails, with what it said.
        let e = ServeProcess::spawn_at(
            &Site::lab_namespace(&name),
            &binary,
            "127.0.0.1:7100".parse().unwrap(),
            TOKEN,
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("exited") && msg.contains("cannot listen"),
            "{msg}"
        );
        pid
    };
    assert!(!process_exists(pid), "PID {pid} still exists");
    assert!(!harness::backend::local::lab::netns::list().contains(&name));
}

/// A fake control API on 127.0.0.1: answers every request from `answer`
/// (path to a raw HTTP response), then closes the connection.
async fn fake_server(answer: fn(&str) -> String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                let _ = s.write_all(answer(&path).as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn http_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn garbled_answers_name_the_endpoint() {
    // Garbage for the health check: connect fails at once, naming it.
    let addr = fake_server(|_| http_ok("this is not json")).await;
    let base = format!("http://{addr}");
    let e = RemoteProbe::connect(&base, TOKEN).await.unwrap_err();
    let msg = format!("{e:#}");
    eprintln!("{msg}");
    assert!(
        msg.contains("GET /v1/health") && msg.contains(&base),
        "{msg}"
    );
    assert!(msg.contains("not a valid HealthReply"), "{msg}");
    assert!(msg.contains("this is not json"), "{msg}");
    // A token that cannot go in a header fails at once, not after 5 s.
    let t = Instant::now();
    let e = RemoteProbe::connect(&base, "two\nlines").await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("building the request"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(1));

    // A good health check, then garbage from /v1/time and /v1/probe/stop.
    let addr = fake_server(|path| match path {
        "/v1/health" => http_ok(r#"{"version":"9.9.9","probe_running":false}"#),
        "/v1/time" => http_ok(r#"{"t_ns":"soon"}"#),
        _ => http_ok("[1, 2"),
    })
    .await;
    let base = format!("http://{addr}");
    let probe = RemoteProbe::connect(&base, TOKEN).await.unwrap();
    assert_eq!(probe.health().version, "9.9.9");
    let e = probe.clock_offset(3).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("GET /v1/time") && msg.contains(&base), "{msg}");
    assert!(msg.contains("not a valid TimeReply"), "{msg}");
    let fake_offset = harness::clients::probe::ClockOffsetRecord::from_exchanges(
        &base,
        vec![wire::clocksync::TimeSample {
            t0_ns: 0,
            t1_ns: 1,
            t2_ns: 1,
            t3_ns: 2,
        }],
    )
    .unwrap();
    let e = probe.stop_and_collect(&fake_offset).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("POST /v1/probe/stop"), "{msg}");
    assert!(msg.contains("not a valid ProbeRecord"), "{msg}");
}

#[tokio::test]
async fn nobody_listening_fails_within_the_health_wait() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let t = Instant::now();
    let e = RemoteProbe::connect(&format!("http://{addr}/"), TOKEN)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    eprintln!("{msg}");
    assert!(
        msg.starts_with(&format!(
            "the remote probe at http://{addr} did not answer GET /v1/health within 5 s"
        )),
        "{msg}"
    );
    assert!(msg.contains("refused"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
}
