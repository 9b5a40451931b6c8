//! The harness's client of the guest agent's control API.
//!
//! Each request opens a TCP connection at the client's site (the lab's
//! client namespace, the only place a lab guest is reachable from, or the
//! harness's own network for a real VM), then speaks HTTP/1.1 with hyper
//! over it.

use crate::backend::Site;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;

/// A connection failure worth another try: the guest is there but slow.
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::Interrupted
            )
        })
    })
}

/// Where and how to reach one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    /// Where to connect from.
    pub site: Site,
    /// The agent's control address.
    pub addr: SocketAddr,
    /// Bearer token.
    pub token: String,
}

impl AgentClient {
    async fn connect_once(&self) -> Result<tokio::net::TcpStream> {
        let (site, addr) = (self.site.clone(), self.addr);
        let std = tokio::task::spawn_blocking(move || {
            site.enter(move || {
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                Ok(s)
            })
        })
        .await
        .map_err(|e| anyhow!("connect task: {e}"))?
        .with_context(|| format!("cannot connect to the agent at {}", self.addr))?;
        Ok(tokio::net::TcpStream::from_std(std)?)
    }

    /// Connects, trying again while the guest is briefly unreachable (just
    /// after a migration a busy TCG guest can take a second or two to
    /// answer); the caller's timeout bounds the whole request.
    async fn connect(&self) -> Result<tokio::net::TcpStream> {
        loop {
            match self.connect_once().await {
                Ok(s) => return Ok(s),
                Err(e) if is_transient(&e) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request with a JSON body (or none) and parses the JSON
    /// answer.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<T> {
        let body = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
        self.request_with(method, path, body, "application/json", timeout)
            .await
    }

    /// `PUT /v1/files/{name}`: hands the agent a file (a clip to stream).
    pub async fn put_file(&self, name: &str, bytes: Vec<u8>) -> Result<serde_json::Value> {
        self.request_with(
            Method::PUT,
            &format!("/v1/files/{name}"),
            Bytes::from(bytes),
            "application/octet-stream",
            Duration::from_secs(60),
        )
        .await
    }

    /// Sends one request with `body` of `content_type` and parses the
    /// JSON answer.
    async fn request_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
        timeout: Duration,
    ) -> Result<T> {
        let fut = async {
            let stream = self.connect().await?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .context("HTTP handshake with the agent")?;
            let conn_task = tokio::spawn(conn);
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", self.addr.to_string())
                .header("authorization", format!("Bearer {}", self.token))
                .header("content-type", content_type)
                .body(Full::new(body))
                .context("building the request")?;
            let resp = sender
                .send_request(req)
                .await
                .context("sending the request")?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .context("reading the answer")?
                .to_bytes();
            conn_task.abort();
            if !status.is_success() {
                bail!(
                    "agent answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                );
            }
            serde_json::from_slice::<T>(&bytes).with_context(|| {
                format!(
                    "agent's answer is not what was expected: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("no answer within {:.1} s", timeout.as_secs_f64()))?
            .with_context(|| format!("{method} {path} on the agent at {}", self.addr))
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<wire::control::Health> {
        self.request(Method::GET, "/v1/health", None, Duration::from_secs(3))
            .await
    }

    /// Polls health until the agent answers or `deadline` passes; `alive`
    /// is asked between tries and stops the wait early when it says the
    /// VM is gone.
    pub async fn wait_ready(
        &self,
        deadline: Duration,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<wire::control::Health> {
        let start = tokio::time::Instant::now();
        let mut last_err = anyhow!("never tried");
        while start.elapsed() < deadline {
            alive()?;
            match self.health().await {
                Ok(h) => return Ok(h),
                Err(e) => last_err = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last_err.context(format!(
            "the guest agent did not answer within {:.0} s",
            deadline.as_secs_f64()
        )))
    }

    /// `GET /v1/report`.
    pub async fn report(&self) -> Result<wire::control::AgentReport> {
        self.request(Method::GET, "/v1/report", None, Duration::from_secs(5))
            .await
    }

    /// `PUT /v1/workloads/{name}`.
    pub async fn start_workload(
        &self,
        name: &str,
        spec: &wire::control::WorkloadSpec,
    ) -> Result<wire::control::WorkloadReport> {
        let body = serde_json::to_value(spec)?;
        self.request(
            Method::PUT,
            &format!("/v1/workloads/{name}"),
            Some(body),
            Duration::from_secs(30),
        )
        .await
    }

    /// `POST /v1/workloads/{name}/verify`: the dirtier's integrity check.
    pub async fn verify_workload(&self, name: &str) -> Result<wire::control::IntegrityReport> {
        self.request(
            Method::POST,
            &format!("/v1/workloads/{name}/verify"),
            None,
            Duration::from_secs(60),
        )
        .await
    }

    /// `POST /v1/workloads/{name}/verify` with `{"hold": true}`: the disk
    /// workload's check, its writes then held (flushed) until
    /// [`AgentClient::resume_workload`] or the agent's safety release.
    pub async fn verify_and_hold(&self, name: &str) -> Result<wire::control::IntegrityReport> {
        self.request(
            Method::POST,
            &format!("/v1/workloads/{name}/verify"),
            Some(serde_json::json!({"hold": true})),
            Duration::from_secs(60),
        )
        .await
    }

    /// `POST /v1/workloads/{name}/resume`: a held workload writes again.
    pub async fn resume_workload(&self, name: &str) -> Result<serde_json::Value> {
        self.request(
            Method::POST,
            &format!("/v1/workloads/{name}/resume"),
            None,
            Duration::from_secs(10),
        )
        .await
    }

    /// `DELETE /v1/workloads/{name}`.
    pub async fn stop_workload(&self, name: &str) -> Result<wire::control::WorkloadReport> {
        self.request(
            Method::DELETE,
            &format!("/v1/workloads/{name}"),
            None,
            Duration::from_secs(10),
        )
        .await
    }
}
