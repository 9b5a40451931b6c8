//! The built `guest-agent` binary as a service on a real VM would run it:
//! a child process configured by a TOML file on 127.0.0.1, checked from
//! outside over its control API and its reflector, then ended by its PID.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use guest_agent::Ready;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use wire::control::{Health, WorkloadReport};
use wire::probe::{Kind, ProbePacket, HEADER_LEN};

const TOKEN: &str = "svc-test-token-7f3a";

/// A scratch folder for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ga-svc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP and a UDP port on 127.0.0.1 that were free a moment ago.
fn free_ports() -> (u16, u16) {
    let t = TcpListener::bind("127.0.0.1:0").unwrap();
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        t.local_addr().unwrap().port(),
        u.local_addr().unwrap().port(),
    )
}

/// The agent as a child process; on drop (a failed test) it is ended by
/// its PID and waited for, so no process outlives the test.
struct Agent {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Agent {
    fn start(config: &Path, stderr: PathBuf) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_guest-agent"))
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            stderr,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Fails the test with the agent's output if it has exited.
    fn check_alive(&mut self) {
        if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the agent exited ({st}): {}", self.log());
        }
    }

    /// SIGTERM by PID, then waits (SIGKILL by PID after 5 s).
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        kill(pid, Signal::SIGTERM).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = kill(pid, Signal::SIGKILL);
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.take().unwrap().wait();
        }
    }
}

/// One HTTP/1.1 request on a fresh connection, as curl would send it;
/// returns the status code and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

#[test]
fn service_from_a_config_file_serves_api_workloads_and_reflector() {
    let d = Scratch::new("run");
    let (control_port, reflector_port) = free_ports();
    d.file("agent.token", &format!("{TOKEN}\n"));
    let config = d.file(
        "lmig-agent.toml",
        &format!(
            "# as in guest-agent/dist/lmig-agent.toml, on loopback\n\
             listen = \"127.0.0.1:{control_port}\"\n\
             reflector = \"127.0.0.1:{reflector_port}\"\n\
             token_file = \"agent.token\"\n"
        ),
    );
    let mut agent = Agent::start(&config, d.0.join("stderr.log"));
    let control = SocketAddr::from((Ipv4Addr::LOCALHOST, control_port));
    let reflector = SocketAddr::from((Ipv4Addr::LOCALHOST, reflector_port));

    // Wait for /v1/health with the token.
    let deadline = Instant::now() + Duration::from_secs(15);
    let health: Health = loop {
        agent.check_alive();
        if TcpStream::connect_timeout(&control, Duration::from_millis(200)).is_ok() {
            let (status, body) = http(control, "GET", "/v1/health", Some(TOKEN), "");
            assert_eq!(status, 200, "{body}");
            break serde_json::from_str(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "no answer: {}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!health.pid1, "a service, not PID 1");
    assert_eq!(health.reflector_port, reflector_port);
    assert_eq!(health.agent_version, env!("CARGO_PKG_VERSION"));
    let log = agent.log();
    let ready = log
        .lines()
        .find_map(Ready::parse)
        .unwrap_or_else(|| panic!("no ready line in {log}"));
    assert_eq!(
        (ready.control_port, ready.reflector_port),
        (control_port, reflector_port)
    );
    assert!(log.contains("lmig-agent.toml"), "{log}");
    assert!(!log.contains(TOKEN), "the token is never printed: {log}");

    // Without the token, or with a wrong one: 401.
    let (status, body) = http(control, "GET", "/v1/health", None, "");
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(control, "GET", "/v1/health", Some("wrong"), "");
    assert_eq!(status, 401);

    // A small dirty workload, started and stopped through the API.
    let (status, body) = http(
        control,
        "PUT",
        "/v1/workloads/svc-dirty",
        Some(TOKEN),
        r#"{"kind":"dirty","working_set_mib":4,"rate_mib_s":8}"#,
    );
    assert_eq!(status, 200, "{body}");
    let started: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(started.state, "running", "{started:?}");
    std::thread::sleep(Duration::from_millis(1300));
    let (status, body) = http(
        control,
        "DELETE",
        "/v1/workloads/svc-dirty",
        Some(TOKEN),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let done: WorkloadReport = serde_json::from_str(&body).unwrap();
    assert_eq!(done.state, "stopped", "{done:?}");
    assert!(
        done.pages_written >= 8 * 256,
        "8 MiB/s for over a second: {done:?}"
    );
    assert_eq!(done.target_mib_s, Some(8.0));
    assert!(!done.per_second_mib_s.is_empty(), "{done:?}");
    let integrity = done.integrity.expect("checked when stopped");
    assert_eq!(
        (integrity.checked_pages, integrity.corrupted_pages),
        (1024, 0)
    );

    // The reflector answers a probe.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; HEADER_LEN + 8];
    let session = 0x5e4_1ce;
    ProbePacket::request(session, 7, 1_700_000_000_000_000_000).encode(&mut buf);
    sock.send_to(&buf, reflector).unwrap();
    let mut rx = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut rx).unwrap();
    assert_eq!(from, reflector);
    let reply = ProbePacket::decode(&rx[..n]).unwrap();
    assert_eq!(reply.kind, Kind::Reply);
    assert_eq!((reply.session, reply.seq), (session, 7));
    assert_eq!(reply.reflector_rx_count, 1);
    assert!(reply.reflector_rx_ns > 0 && reply.reflector_tx_ns >= reply.reflector_rx_ns);

    // Ended by its PID, and waited for.
    agent.check_alive();
    let status = agent.stop();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
}

/// Runs the binary with `args` to its end (it must fail fast) and returns
/// its exit code and stderr.
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guest-agent"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_config_key_fails_naming_file_line_and_key() {
    let d = Scratch::new("bad");
    d.file("agent.token", TOKEN);
    let config = d.file(
        "lmig-agent.toml",
        "listen = \"127.0.0.1:0\"\nreflector = \"127.0.0.1:0\"\n\ntoken_fil = \"agent.token\"\n",
    );
    let (code, err) = run_to_end(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let want = format!("{}:4:", config.display());
    assert!(err.contains(&want), "file and line {want}: {err}");
    assert!(err.contains("unknown field `token_fil`"), "{err}");
    assert!(
        err.contains("`token_file`"),
        "it lists the valid keys: {err}"
    );
    assert!(err.starts_with("lmig-agent: fatal:"), "{err}");
}

#[test]
fn missing_token_fails_clearly() {
    let d = Scratch::new("notoken");
    let config = d.file("lmig-agent.toml", "listen = \"127.0.0.1:0\"\n");
    let (code, err) = run_to_end(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no token") && err.contains("token_file"),
        "{err}"
    );

    let absent = d.0.join("absent.token");
    let (code, err) = run_to_end(&[
        "--config",
        config.to_str().unwrap(),
        "--token-file",
        absent.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot read token file {}", absent.display())),
        "{err}"
    );
}
