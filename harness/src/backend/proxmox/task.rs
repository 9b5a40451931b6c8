//! Following a migration task through the API: its status and new log
//! lines polled until it stops, an API blip retried.

use super::api::{form_escape, Api};
use super::{Followed, POLL};
use crate::backend::MigrationRequest;
use crate::live::Live;
use anyhow::Result;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The task's log lines, fetched from `start` on.
async fn log_since(api: &Api, node: &str, upid: &str, lines: &mut Vec<Value>) -> Result<()> {
    let path = format!(
        "/nodes/{node}/tasks/{}/log?start={}&limit=1000",
        form_escape(upid),
        lines.len()
    );
    if let Value::Array(new) = api.get(&path).await? {
        lines.extend(new);
    }
    Ok(())
}

/// How many polls in a row may fail (an API blip) before the task is given up.
const POLL_FAILURES: u32 = 5;

/// Follows a task until it stops.
pub async fn follow(
    api: &Api,
    node: &str,
    upid: &str,
    req: &MigrationRequest<'_>,
    live: &Live,
    deadline: Duration,
) -> Followed {
    let mut f = Followed::default();
    let t0 = tokio::time::Instant::now();
    let task = format!("/nodes/{node}/tasks/{}", form_escape(upid));
    let mut failures = 0;
    loop {
        tokio::time::sleep(POLL).await;
        let polled = async {
            let status = api.get(&format!("{task}/status")).await?;
            log_since(api, node, upid, &mut f.lines).await?;
            anyhow::Ok(status)
        }
        .await;
        let status = match polled {
            Ok(s) => s,
            Err(e) if failures + 1 < POLL_FAILURES => {
                failures += 1;
                live.println(&format!(
                    "warning: following task {upid}: {e:#}; trying again"
                ));
                continue;
            }
            Err(e) => {
                f.error = Some(format!(
                    "following task {upid}: {e:#} ({POLL_FAILURES} polls in a row failed)"
                ));
                return f;
            }
        };
        failures = 0;
        let last = f.lines.last().and_then(|l| l["t"].as_str()).unwrap_or("");
        live.update(&format!(
            "rep {}/{} task {} | {last} | {}",
            req.repetition,
            req.of,
            status["status"].as_str().unwrap_or("?"),
            (req.status_suffix)()
        ));
        if status["status"] == "stopped" {
            if let Err(e) = log_since(api, node, upid, &mut f.lines).await {
                f.error = Some(format!("reading the end of task {upid}'s log: {e:#}"));
            }
            f.exit = Some(
                status["exitstatus"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
            );
            return f;
        }
        let cancel = req.cancel.load(Ordering::SeqCst);
        if (cancel || t0.elapsed() > deadline) && !f.stopped_by_us {
            f.stopped_by_us = true;
            let _ = api.delete(&task).await;
        }
    }
}
