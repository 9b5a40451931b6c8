//! `qm` and `pveversion` as the stand-in's nodes have them (`pve-standin
//! qm …`, `pve-standin pveversion …`): what an administrator runs on a
//! node over ssh. Like Proxmox's own, they act as root through the same
//! API code the HTTPS server runs, here over the stand-in's local socket
//! (`qm.sock`, mode 0600), where `migration_type` and `migration_network`
//! are allowed.
//!
//! `qm migrate` prints the task's log as it grows, without its final
//! `TASK …` line, and exits 0 when the task ended `OK`; otherwise it
//! prints the task's exit status on stderr and exits 255 (a Perl `die`).
//! A hang-up, SIGTERM or Ctrl-C stops the task (as qemu-server's worker
//! aborts on a signal), and it goes on printing until the task has stopped.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The exit code of a failed command (Perl's `die`).
const DIED: i32 = 255;

/// One call on the local socket → HTTP status and body.
async fn call(socket: &Path, method: &str, path: &str, body: String) -> Result<(u16, Value)> {
    let unix = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach the stand-in at {}", socket.display()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(unix)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("/api2/json{path}"))
        .header("Host", "localhost")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A call's `data`, or Proxmox's message as the error.
async fn data(socket: &Path, method: &str, path: &str, body: String) -> Result<Value> {
    let (status, v) = call(socket, method, path, body).await?;
    if status != 200 {
        bail!(
            "{}",
            v["message"]
                .as_str()
                .unwrap_or("the stand-in refused")
                .trim()
        );
    }
    Ok(v["data"].clone())
}

/// `--socket S --node N rest…` → (S, N, rest).
fn common_args(args: &[String]) -> Result<(PathBuf, String, Vec<String>)> {
    let (mut socket, mut node, mut rest) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => socket = it.next().map(PathBuf::from),
            "--node" => node = it.next().cloned(),
            _ => rest.push(a.clone()),
        }
    }
    match (socket, node) {
        (Some(s), Some(n)) => Ok((s, n, rest)),
        _ => bail!("the stand-in's commands need --socket and --node"),
    }
}

/// Runs `cmd` (`qm` or `pveversion`) → the process's exit code.
pub async fn main(cmd: &str, args: &[String]) -> i32 {
    let run = async {
        let (socket, node, rest) = common_args(args)?;
        match (cmd, rest.first().map(String::as_str)) {
            ("pveversion", _) => pveversion(&socket).await,
            ("qm", Some("status")) => status(&socket, &node, &rest[1..]).await,
            ("qm", Some("migrate")) => migrate(&socket, &node, &rest[1..]).await,
            _ => bail!("the stand-in's {cmd} knows `qm status`, `qm migrate` and `pveversion` only, not {rest:?}"),
        }
    };
    match run.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            DIED
        }
    }
}

async fn pveversion(socket: &Path) -> Result<i32> {
    let v = data(socket, "GET", "/version", String::new()).await?;
    println!(
        "pve-manager/{}/standin (a stand-in for Proxmox VE, not Proxmox)",
        v["version"].as_str().unwrap_or("?")
    );
    Ok(0)
}

async fn status(socket: &Path, node: &str, args: &[String]) -> Result<i32> {
    let vmid = args.first().context("usage: qm status VMID")?;
    let path = format!("/nodes/{node}/qemu/{vmid}/status/current");
    let v = data(socket, "GET", &path, String::new()).await?;
    println!("status: {}", v["status"].as_str().unwrap_or("unknown"));
    Ok(0)
}

/// `VMID TARGET [--key [value]]…` → the API's form (a flag alone is `1`).
fn migrate_form(args: &[String]) -> Result<(String, String)> {
    let (Some(vmid), Some(target)) = (args.first(), args.get(1)) else {
        bail!("usage: qm migrate VMID TARGET [OPTIONS]");
    };
    let mut form = vec![format!("target={}", super::super::api::form_escape(target))];
    let mut i = 2;
    while i < args.len() {
        let key = args[i]
            .strip_prefix("--")
            .with_context(|| format!("qm migrate: unexpected argument {:?}", args[i]))?;
        let value = match args.get(i + 1) {
            Some(v) if !v.starts_with("--") => {
                i += 1;
                v.as_str()
            }
            _ => "1",
        };
        form.push(format!("{key}={}", super::super::api::form_escape(value)));
        i += 1;
    }
    Ok((vmid.clone(), form.join("&")))
}

async fn migrate(socket: &Path, node: &str, args: &[String]) -> Result<i32> {
    let (vmid, form) = migrate_form(args)?;
    let upid = data(
        socket,
        "POST",
        &format!("/nodes/{node}/qemu/{vmid}/migrate"),
        form,
    )
    .await?;
    let upid = upid
        .as_str()
        .context("the stand-in gave no UPID")?
        .to_string();
    let task = format!(
        "/nodes/{node}/tasks/{}",
        super::super::api::form_escape(&upid)
    );
    let mut signals = Signals::new()?;
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = signals.any() => {
                let _ = call(socket, "DELETE", &task, String::new()).await;
            }
        }
        let status = data(socket, "GET", &format!("{task}/status"), String::new()).await?;
        let log = data(
            socket,
            "GET",
            &format!("{task}/log?start={printed}&limit=1000"),
            String::new(),
        )
        .await?;
        for line in log.as_array().into_iter().flatten() {
            printed += 1;
            let t = line["t"].as_str().unwrap_or("");
            if !t.starts_with("TASK ") {
                // A hung-up terminal fails the write; the task goes on being followed.
                let _ = writeln!(std::io::stdout(), "{t}");
            }
        }
        if status["status"] == "stopped" {
            let exit = status["exitstatus"].as_str().unwrap_or("unknown");
            if exit == "OK" {
                return Ok(0);
            }
            let _ = writeln!(std::io::stderr(), "{exit}");
            return Ok(DIED);
        }
    }
}

/// Hang-up, SIGTERM and Ctrl-C, as one stream.
struct Signals(Vec<tokio::signal::unix::Signal>);

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals(vec![
            signal(SignalKind::hangup())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ]))
    }

    async fn any(&mut self) {
        let [a, b, c] = &mut self.0[..] else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::migrate_form;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn qm_migrate_arguments_become_the_api_form() {
        let (vmid, form) = migrate_form(&args(
            "100 node-b --online --with-local-disks 1 --migration_network 198.18.0.0/24",
        ))
        .unwrap();
        assert_eq!(vmid, "100");
        assert_eq!(
            form,
            "target=node-b&online=1&with-local-disks=1&migration_network=198.18.0.0%2F24"
        );
        assert!(migrate_form(&args("100")).is_err());
        assert!(migrate_form(&args("100 node-b stray")).is_err());
    }
}
