//! A small client of the Proxmox VE REST API over HTTPS: one connection per
//! request (the calls are seconds apart), the API token in the
//! `Authorization` header, and the node's clock read off every answer's
//! `Date` header.

use super::tls::Trust;
use crate::clock::now_ns;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one request may take, connection included.
const DEADLINE: Duration = Duration::from_secs(15);

/// An API token, `USER@REALM!TOKENID=SECRET`. Never printed whole.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// Checks the form; the error shows no part of the secret.
    pub fn parse(text: &str, origin: &str) -> Result<ApiToken> {
        let t = text.trim();
        let (id, secret) = t.split_once('=').unwrap_or((t, ""));
        if !id.contains('@') || !id.contains('!') || secret.is_empty() {
            bail!("the API token from {origin} is not of the form USER@REALM!TOKENID=SECRET");
        }
        Ok(ApiToken(t.to_string()))
    }

    /// `USER@REALM!TOKENID`, for messages.
    pub fn id(&self) -> &str {
        self.0.split_once('=').map_or("", |(id, _)| id)
    }

    /// The secret part, to redact it wherever text could carry it.
    pub fn secret(&self) -> &str {
        self.0.split_once('=').map_or("", |(_, s)| s)
    }

    fn header(&self) -> String {
        format!("PVEAPIToken={}", self.0)
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({}=<redacted>)", self.id())
    }
}

/// An answer other than 200, with Proxmox's message.
#[derive(Debug, thiserror::Error)]
#[error("the Proxmox API answered {status} to {what}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The request, `POST /nodes/…`.
    pub what: String,
    /// Proxmox's `message`, or the reason phrase.
    pub message: String,
}

/// What the answers' `Date` headers say of the node's clock: the harness's
/// clock minus the node's lies in `[lo_ns, hi_ns]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBounds {
    /// Lower bound, ns.
    pub lo_ns: i64,
    /// Upper bound, ns.
    pub hi_ns: i64,
}

impl ClockBounds {
    /// A `Date` of second `s` was written between `t0` and `t1` (harness
    /// clock), when the node's clock read somewhere in `[s, s + 1)`.
    fn of(t0: i64, t1: i64, s: i64) -> ClockBounds {
        let node = s * 1_000_000_000;
        ClockBounds {
            lo_ns: t0 - (node + 1_000_000_000),
            hi_ns: t1 - node,
        }
    }

    /// A reading of `node_ns` (the node's clock, ns) taken between `t0`
    /// and `t1` (harness clock): `date +%s%N` over ssh.
    pub fn of_reading(t0: i64, t1: i64, node_ns: i64) -> ClockBounds {
        ClockBounds {
            lo_ns: t0 - node_ns,
            hi_ns: t1 - node_ns,
        }
    }

    /// The tighter of two readings (their overlap), or the newer one if
    /// they do not overlap (the node's clock stepped).
    pub fn narrow(self, new: ClockBounds) -> ClockBounds {
        let (lo, hi) = (self.lo_ns.max(new.lo_ns), self.hi_ns.min(new.hi_ns));
        if lo <= hi {
            ClockBounds {
                lo_ns: lo,
                hi_ns: hi,
            }
        } else {
            new
        }
    }
}

/// The API of one cluster.
pub struct Api {
    host: String,
    port: u16,
    tls: tokio_rustls::TlsConnector,
    token: ApiToken,
    clock: Mutex<Option<ClockBounds>>,
}

/// `https://host[:port][/…]` → host and port (8006 by default).
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("`backend.api_url` = {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse()
                .with_context(|| format!("`backend.api_url` = {url:?}: bad port {p:?}"))?;
            (h, port)
        }
        _ => (authority, 8006),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("`backend.api_url` = {url:?} names no host");
    }
    Ok((host.to_string(), port))
}

impl Api {
    /// A client of `url`, trusting `trust`, authenticating with `token`.
    pub fn new(url: &str, trust: &Trust, token: ApiToken) -> Result<Api> {
        let (host, port) = parse_url(url)?;
        let tls = tokio_rustls::TlsConnector::from(super::tls::client_config(trust)?);
        Ok(Api {
            host,
            port,
            tls,
            token,
            clock: Mutex::new(None),
        })
    }

    /// What the answers so far say of the node's clock.
    pub fn clock(&self) -> Option<ClockBounds> {
        self.clock.lock().ok().and_then(|c| *c)
    }

    /// `GET /api2/json{path}` → its `data`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.request("GET", path, None).await
    }

    /// `DELETE /api2/json{path}` (stops a task).
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.request("DELETE", path, None).await
    }

    /// `POST /api2/json{path}` with a form body → its `data`.
    pub async fn post(&self, path: &str, form: &[(&str, String)]) -> Result<Value> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request("POST", path, Some(body)).await
    }

    async fn request(&self, method: &str, path: &str, body: Option<String>) -> Result<Value> {
        let what = format!("{method} {path}");
        let t0 = now_ns();
        let (status, date, text) =
            tokio::time::timeout(DEADLINE, self.exchange(method, path, body))
                .await
                .with_context(|| {
                    format!(
                        "{what}: no answer from {}:{} within {DEADLINE:?}",
                        self.host, self.port
                    )
                })?
                .with_context(|| format!("{what} at https://{}:{}", self.host, self.port))?;
        let t1 = now_ns();
        if let Some(s) = date.as_deref().and_then(parse_http_date) {
            if let Ok(mut c) = self.clock.lock() {
                let new = ClockBounds::of(t0, t1, s);
                *c = Some(c.map_or(new, |old| old.narrow(new)));
            }
        }
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            let message = json
                .get("message")
                .and_then(Value::as_str)
                .map(|m| m.trim().to_string())
                .unwrap_or_else(|| text.trim().chars().take(200).collect());
            return Err(ApiError {
                status,
                what,
                message: message.replace(self.token.secret(), "<redacted>"),
            }
            .into());
        }
        Ok(json.get("data").cloned().unwrap_or(Value::Null))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Option<String>, String)> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .context("cannot connect")?;
        let name = ServerName::try_from(self.host.clone()).context("the API's host name")?;
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("/api2/json{path}"))
            .header("Host", format!("{}:{}", self.host, self.port))
            .header("Authorization", self.token.header());
        if body.is_some() {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request")?;
        let resp = send
            .send_request(req)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|d| d.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        Ok((status, date, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTTP `Date` (`Wed, 02 Dec 2026 01:20:33 GMT`) → epoch seconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut p = text.split_whitespace().skip(1);
    let day: u8 = p.next()?.parse().ok()?;
    let name = p.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as u8 + 1;
    let year: i64 = p.next()?.parse().ok()?;
    let mut hms = p.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if p.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = measure::platform::proxmox::timestamp::days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Epoch seconds as an HTTP `Date` (IMF-fixdate), as the stand-in sends it.
pub fn http_date(epoch_s: i64) -> String {
    let (days, secs) = (epoch_s.div_euclid(86_400), epoch_s.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The API client behind an `Arc`, as the backend and its tasks share it.
pub type SharedApi = Arc<Api>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = ApiToken::parse("root@pam!lmig=1234-abcd\n", "file t").unwrap();
        assert_eq!(t.id(), "root@pam!lmig");
        assert!(!format!("{t:?}").contains("1234"));
        let e = ApiToken::parse("just-a-secret", "file t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("USER@REALM!TOKENID=SECRET") && !e.contains("just-a-secret"),
            "{e}"
        );
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            parse_url("https://pve1:8006").unwrap(),
            ("pve1".into(), 8006)
        );
        assert_eq!(
            parse_url("https://198.18.0.2/").unwrap(),
            ("198.18.0.2".into(), 8006)
        );
        assert_eq!(
            parse_url("https://[fd00::1]:443").unwrap(),
            ("fd00::1".into(), 443)
        );
        assert!(parse_url("http://pve1").is_err());
        assert!(parse_url("https://pve1:x").is_err());
    }

    #[test]
    fn http_dates_round_trip_and_bound_the_clock() {
        let s = 1_796_174_135;
        let text = http_date(s);
        assert_eq!(text, "Wed, 02 Dec 2026 01:15:35 GMT");
        assert_eq!(parse_http_date(&text), Some(s));
        assert_eq!(parse_http_date("garbage"), None);
        // Sent at node time s + 0.2 s, answered 0.1 s later, same clocks.
        let b = ClockBounds::of(
            s * 1_000_000_000 + 200_000_000,
            s * 1_000_000_000 + 300_000_000,
            s,
        );
        assert!(b.lo_ns <= 0 && 0 <= b.hi_ns, "{b:?}");
        let later = ClockBounds::of(
            s * 1_000_000_000 + 900_000_000,
            s * 1_000_000_000 + 950_000_000,
            s,
        );
        let n = b.narrow(later);
        assert!(n.hi_ns - n.lo_ns < b.hi_ns - b.lo_ns);
    }

    #[test]
    fn form_values_are_escaped() {
        assert_eq!(form_escape("a b&c=d"), "a%20b%26c%3Dd");
    }
}
