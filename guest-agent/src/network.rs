//! Lab-guest networking: loopback and the one NIC, with no route beyond
//! the connected subnet.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::NetworkConfig;
use crate::netif;

/// How long to wait for the NIC to appear after its driver is loaded.
pub const IFACE_WAIT: Duration = Duration::from_secs(10);

/// Why the network could not be set up.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// No interface appeared in time.
    #[error("no network interface {what} appeared in /sys/class/net within {secs} s")]
    NoInterface {
        /// Which one was awaited.
        what: String,
        /// The wait.
        secs: u64,
    },
    /// An ioctl failed.
    #[error("cannot configure {iface}")]
    Configure {
        /// The interface.
        iface: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Interface names in `dir` (normally `/sys/class/net`), sorted, without `lo`.
pub fn list_interfaces(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits up to `timeout` for interface `wanted` (or, if `None`, for any
/// interface other than `lo`) to appear in `dir`, and returns its name.
pub fn wait_for_interface(
    dir: &Path,
    wanted: Option<&str>,
    timeout: Duration,
) -> Result<String, NetworkError> {
    let deadline = Instant::now() + timeout;
    loop {
        let names = list_interfaces(dir);
        let found = match wanted {
            Some(w) => names.into_iter().find(|n| n == w),
            None => names.into_iter().next(),
        };
        if let Some(n) = found {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(NetworkError::NoInterface {
                what: wanted.map_or_else(|| "(other than lo)".to_string(), |w| w.to_string()),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Brings `lo` up with 127.0.0.1/8.
pub fn setup_loopback() -> Result<(), NetworkError> {
    netif::configure_ipv4("lo", Ipv4Addr::LOCALHOST, 8).map_err(|source| NetworkError::Configure {
        iface: "lo".into(),
        source,
    })
}

/// Finds the NIC (waiting up to [`IFACE_WAIT`]) and gives it the
/// configured address; returns the interface's name.
pub fn setup_nic(cfg: &NetworkConfig) -> Result<String, NetworkError> {
    let iface = wait_for_interface(
        Path::new("/sys/class/net"),
        cfg.iface.as_deref(),
        IFACE_WAIT,
    )?;
    netif::configure_ipv4(&iface, cfg.addr, cfg.prefix_len).map_err(|source| {
        NetworkError::Configure {
            iface: iface.clone(),
            source,
        }
    })?;
    Ok(iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_non_lo_interface() {
        let dir = std::env::temp_dir().join(format!("ga-net-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lo")).unwrap();
        let e = wait_for_interface(&dir, None, Duration::from_millis(150)).unwrap_err();
        assert!(e.to_string().contains("other than lo"), "{e}");
        std::fs::create_dir_all(dir.join("eth1")).unwrap();
        std::fs::create_dir_all(dir.join("eth0")).unwrap();
        assert_eq!(
            wait_for_interface(&dir, None, Duration::ZERO).unwrap(),
            "eth0"
        );
        assert_eq!(
            wait_for_interface(&dir, Some("eth1"), Duration::ZERO).unwrap(),
            "eth1"
        );
        // An interface that shows up while waiting is found.
        let late = dir.join("ens3");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::create_dir_all(late).unwrap();
        });
        assert_eq!(
            wait_for_interface(&dir, Some("ens3"), Duration::from_secs(5)).unwrap(),
            "ens3"
        );
        t.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
