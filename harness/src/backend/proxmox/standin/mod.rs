//! A stand-in for a two-node Proxmox VE cluster, for testing the Proxmox
//! backend where no cluster can be had. It is a stand-in, not Proxmox: an
//! HTTPS server answering the API subset the backend uses
//! ([`routes`]), whose migrations are real migrations of a real guest in
//! the embedded lab, performed the way qemu-server performs them
//! (`migration.flow = "proxmox"`: destination paused with `-S`,
//! auto-converge and xbzrle, downtime limit 100 ms, `query-migrate`
//! polled at qemu-server's pace, `cont` only after the cleanup step), with
//! the task log written in Proxmox's formats as it goes.
//!
//! It serves inside the lab's client namespace, where the guest's agent
//! is reachable too: a harness run there (`ip netns exec NS harness run`)
//! sees what a tester's laptop on a cluster's LAN sees. `ready.json` in
//! its folder says where everything is; the API token and the agent's
//! token are files beside it (mode 0600).

pub mod qm;
pub mod routes;
pub mod sshd;

use crate::backend::local::lab::Node;
use crate::backend::local::LocalLab;
use crate::backend::{Backend, MigrationRequest, Site};
use crate::live::Live;
use crate::scenario::{Acceleration, MigrationFlow, Scenario};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use routes::{Caller, Job, State};
use serde_json::json;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The port the API listens on, as Proxmox's does.
pub const PORT: u16 = 8006;
/// The nodes' names in the stand-in.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// The lab the stand-in migrates: the quickstart's guest, Proxmox's way.
fn lab_scenario() -> Scenario {
    let mut s = Scenario {
        name: "pve-standin".into(),
        acceleration: Acceleration::Tcg,
        ..Scenario::default()
    };
    s.vm.memory_mib = 256;
    s.migration.flow = MigrationFlow::Proxmox;
    s.migration.downtime_limit_ms = 100;
    s.migration.max_bandwidth_mib_s = 128.0;
    s
}

fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Builds the lab, boots the guest, and serves the API until Ctrl-C or
/// SIGTERM; then removes the lab. `dir` receives `ready.json` and the
/// two token files.
pub async fn run(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scenario = lab_scenario();
    let mut lab = LocalLab::create(&scenario, None, Vec::new())?;
    let served = serve(&mut lab, &scenario, dir).await;
    let down = lab.teardown().await;
    served.and(down)
}

async fn serve(lab: &mut LocalLab, scenario: &Scenario, dir: &Path) -> Result<()> {
    let live = Live::new();
    lab.prepare(scenario, &live).await?;
    let ep = lab.endpoints();
    let secret = wire::random::token_hex(16)?;
    let token = format!("root@pam!standin={secret}");
    write_secret(&dir.join("api-token"), &token)?;
    write_secret(&dir.join("agent-token"), &ep.agent.token)?;
    let addr = std::net::SocketAddr::new(ep.client_addr, PORT);
    let (cert, key, fingerprint) = certificate(&ep.client_addr.to_string())?;
    let listener = ep
        .client
        .enter(move || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .context("binding the API in the lab's client namespace")?;
    let (jobs_tx, jobs) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(State {
        token,
        nodes: NODES.map(String::from),
        vmid: crate::backend::local::proxmox_flow::VMID,
        on: Mutex::new(0),
        locked: Default::default(),
        tasks: Mutex::new(Default::default()),
        jobs: jobs_tx,
        migration_addrs: lab.migration_addrs(),
    });
    let socket = dir.join("qm.sock");
    let local = local_socket(&socket)?;
    let ssh = ssh_nodes(dir, &ep, &socket, &live);
    let ready = json!({
        "client_netns": client_netns(&ep.client),
        "api_url": format!("https://{addr}"),
        "fingerprint": fingerprint,
        "nodes": NODES,
        "vmid": state.vmid,
        "agent": ep.agent.addr.to_string(),
        "reflector": ep.reflector.to_string(),
        "api_token_file": dir.join("api-token"),
        "agent_token_file": dir.join("agent-token"),
        "ssh_hosts": ssh.as_ref().ok().map(|n| n.hosts.clone()),
        "ssh_identity_file": ssh.as_ref().ok().map(|n| n.identity.clone()),
        "ssh_known_hosts": ssh.as_ref().ok().map(|n| n.known_hosts.clone()),
        "ssh_error": ssh.as_ref().err().map(|e| format!("{e:#}")),
        "migration_network": format!("{}/24", std::net::Ipv4Addr::from(u32::from(state.migration_addrs[0]) & 0xffff_ff00)),
        "note": "a stand-in for a Proxmox VE cluster: real lab migrations performed the way qemu-server performs them; not Proxmox",
    });
    let tls = tls_acceptor(cert, key)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    std::fs::write(dir.join("ready.json"), serde_json::to_vec_pretty(&ready)?)?;
    live.println(&format!(
        "pve-standin: serving https://{addr} (fingerprint {fingerprint})"
    ));
    tokio::select! {
        r = accept_loop(listener, tls, state.clone()) => r,
        r = local_loop(local, state.clone()) => r,
        r = lab_loop(lab, jobs, state, &live) => r,
        _ = shutdown_signal() => Ok(()),
    }
}

/// The local socket the nodes' `qm` reaches the stand-in on (root only).
fn local_socket(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// The nodes' sshd, where OpenSSH's server is installed; a reason where not
/// (the API still serves).
fn ssh_nodes(
    dir: &Path,
    ep: &crate::backend::Endpoints,
    socket: &Path,
    live: &Live,
) -> Result<sshd::Nodes> {
    if !Path::new(sshd::SSHD).exists() {
        anyhow::bail!("{} is not installed (openssh-server)", sshd::SSHD);
    }
    let nodes = sshd::Nodes::start(
        dir,
        &client_netns(&ep.client),
        ep.client_addr,
        &NODES,
        socket,
    );
    match &nodes {
        Ok(n) => live.println(&format!(
            "pve-standin: nodes over ssh at {}",
            n.hosts.join(", ")
        )),
        Err(e) => live.println(&format!("pve-standin: no ssh nodes: {e:#}")),
    }
    nodes
}

async fn local_loop(listener: tokio::net::UnixListener, state: Arc<State>) -> Result<()> {
    loop {
        let (unix, _) = listener.accept().await.context("accepting on qm.sock")?;
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req, true));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(unix), svc)
                .await;
        });
    }
}

/// The namespace a [`Site`] stands for, from its description.
fn client_netns(site: &Site) -> String {
    site.describe()
        .strip_prefix("network namespace ")
        .unwrap_or("")
        .to_string()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A self-signed certificate for `host`: PEM-free DER, and its
/// fingerprint as Proxmox shows one.
fn certificate(
    host: &str,
) -> Result<(
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
    String,
)> {
    let ck = rcgen::generate_simple_self_signed(vec![host.to_string(), "pve-standin".into()])
        .context("generating the stand-in's certificate")?;
    let der = ck.cert.der().clone();
    let fp = crate::backend::proxmox::tls::fingerprint_of(der.as_ref());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    Ok((der, key, fp))
}

fn tls_acceptor(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("the stand-in's TLS configuration")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
) -> Result<()> {
    loop {
        let (tcp, _) = listener.accept().await.context("accepting")?;
        let (tls, state) = (tls.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req, false));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
    local_root: bool,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let caller = if local_root {
        Caller::Root
    } else {
        Caller::Header(auth.as_deref())
    };
    let (status, json) = routes::answer(&state, &method, &path, caller, &body);
    let date = crate::backend::proxmox::api::http_date(crate::clock::now_ns() / 1_000_000_000);
    let resp = hyper::Response::builder()
        .status(status)
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Date", date)
        .body(Full::new(Bytes::from(json.to_string())));
    Ok(resp.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
}

/// Performs the migrations the API starts, one at a time, on the lab.
async fn lab_loop(
    lab: &mut LocalLab,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    state: Arc<State>,
    live: &Live,
) -> Result<()> {
    let mut n = 0;
    while let Some(job) = jobs.recv().await {
        n += 1;
        lab.set_task_log(job.task.log.clone());
        let no_suffix = String::new;
        let req = MigrationRequest {
            repetition: n,
            of: n,
            faults: Vec::new(),
            status_suffix: &no_suffix,
            cancel: &job.task.stop,
        };
        let exit = match lab.migrate(&req, live).await {
            Ok(rec) if rec.status == measure::migration::record::RepStatus::Completed => {
                "OK".to_string()
            }
            Ok(_) => "migration aborted".to_string(),
            Err(e) => {
                job.task
                    .log
                    .plain(&measure::platform::proxmox::tasklog::LineKind::TaskError {
                        message: format!("{e:#}"),
                    });
                "migration problems".to_string()
            }
        };
        if let Ok(mut on) = state.on.lock() {
            *on = match lab.vm_node() {
                Some(Node::B) => 1,
                _ => 0,
            };
        }
        if let Ok(mut e) = job.task.exit.lock() {
            *e = Some(exit);
        }
        state.locked.store(false, Ordering::SeqCst);
    }
    Ok(())
}
