//! The agent's configuration: from the kernel command line in lab guests,
//! from command-line flags on real VMs.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use thiserror::Error;

/// Default TCP port of the control API.
pub const DEFAULT_CONTROL_PORT: u16 = 7000;
/// Default UDP port of the probe reflector.
pub const DEFAULT_REFLECTOR_PORT: u16 = 7001;

/// Kernel command-line keys the agent reads (all start with `lmig.`).
pub mod keys {
    /// IPv4 address and prefix length of the NIC, `198.18.0.10/24`.
    pub const ADDR: &str = "lmig.addr";
    /// Name of the NIC (optional; default: the first non-`lo` interface).
    pub const IFACE: &str = "lmig.iface";
    /// Bearer token of the control API.
    pub const TOKEN: &str = "lmig.token";
    /// TCP port of the control API (default 7000).
    pub const CONTROL_PORT: &str = "lmig.control_port";
    /// UDP port of the probe reflector (default 7001).
    pub const REFLECTOR_PORT: &str = "lmig.reflector_port";
}

/// Why the configuration could not be built.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A required kernel command-line key is absent.
    #[error("kernel command line lacks {0}")]
    MissingKey(&'static str),
    /// A key has a value that cannot be used.
    #[error("{key}={value:?} is not valid: {reason}")]
    BadValue {
        /// The key, e.g. `lmig.addr`.
        key: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// Service mode was started with neither `--token` nor `--token-file`.
    #[error("no token: give --token or --token-file")]
    NoToken,
    /// The token file could not be read.
    #[error("cannot read token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds no token.
    #[error("token file {0} is empty")]
    EmptyTokenFile(PathBuf),
}

/// How the agent configures the guest's NIC (lab mode only).
#[derive(Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The NIC's IPv4 address.
    pub addr: Ipv4Addr,
    /// Its prefix length (0 to 32); only the connected subnet is routed.
    pub prefix_len: u8,
    /// The NIC's name; `None` means the first interface in
    /// `/sys/class/net` that is not `lo`.
    pub iface: Option<String>,
}

impl fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)?;
        if let Some(i) = &self.iface {
            write!(f, " on {i}")?;
        }
        Ok(())
    }
}

/// Everything the agent needs to run.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Bearer token every control request must carry.
    pub token: String,
    /// Where the control API listens.
    pub control_listen: SocketAddr,
    /// UDP port of the probe reflector (bound on 0.0.0.0).
    pub reflector_port: u16,
    /// NIC set-up, `Some` in lab mode only.
    pub network: Option<NetworkConfig>,
    /// Problems that did not stop parsing (unknown `lmig.*` keys); the
    /// caller prints them.
    pub warnings: Vec<String>,
}

impl fmt::Debug for AgentConfig {
    /// Never prints the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("control_listen", &self.control_listen)
            .field("reflector_port", &self.reflector_port)
            .field("network", &self.network)
            .field("warnings", &self.warnings)
            .finish()
    }
}

fn parse_port(key: &'static str, value: &str) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(0) => Err(bad(key, value, "port 0 is not allowed")),
        Ok(p) => Ok(p),
        Err(e) => Err(bad(key, value, &e.to_string())),
    }
}

fn bad(key: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_addr(value: &str) -> Result<(Ipv4Addr, u8), ConfigError> {
    let key = keys::ADDR;
    let (a, p) = value.split_once('/').ok_or_else(|| {
        bad(
            key,
            value,
            "expected IPv4ADDRESS/PREFIX, e.g. 198.18.0.10/24",
        )
    })?;
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|e: std::net::AddrParseError| bad(key, value, &e.to_string()))?;
    let prefix: u8 = p
        .parse()
        .map_err(|_| bad(key, value, "prefix length must be a number from 0 to 32"))?;
    if prefix > 32 {
        return Err(bad(
            key,
            value,
            "prefix length must be a number from 0 to 32",
        ));
    }
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
        return Err(bad(key, value, "not a unicast address"));
    }
    Ok((addr, prefix))
}

fn validate_token(key: &'static str, token: &str) -> Result<(), ConfigError> {
    if token.is_empty() {
        return Err(bad(key, token, "the token is empty"));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(key, "<redacted>", "the token contains whitespace"));
    }
    Ok(())
}

impl AgentConfig {
    /// A lab-mode configuration with the default ports.
    pub fn lab(network: NetworkConfig, token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            control_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_CONTROL_PORT)),
            reflector_port: DEFAULT_REFLECTOR_PORT,
            network: Some(network),
            warnings: Vec::new(),
        }
    }

    /// Parses the kernel command line (the text of `/proc/cmdline`).
    ///
    /// Reads `lmig.addr` (required, `A.B.C.D/PREFIX`), `lmig.token`
    /// (required), `lmig.iface`, `lmig.control_port` (default 7000) and
    /// `lmig.reflector_port` (default 7001). Other `lmig.*` keys become
    /// [`AgentConfig::warnings`]; keys without the `lmig.` prefix are
    /// ignored. A value may be wrapped in double quotes. When a key is
    /// repeated the last one wins, as in the kernel.
    pub fn from_cmdline(cmdline: &str) -> Result<Self, ConfigError> {
        let mut addr = None;
        let mut iface = None;
        let mut token = None;
        let mut control_port = DEFAULT_CONTROL_PORT;
        let mut reflector_port = DEFAULT_REFLECTOR_PORT;
        let mut warnings = Vec::new();
        for word in cmdline.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !key.starts_with("lmig.") {
                continue;
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            match key {
                keys::ADDR => addr = Some(parse_addr(value)?),
                keys::IFACE => {
                    if value.is_empty() || value.len() >= libc::IFNAMSIZ || value.contains('/') {
                        return Err(bad(keys::IFACE, value, "not an interface name"));
                    }
                    iface = Some(value.to_string());
                }
                keys::TOKEN => {
                    validate_token(keys::TOKEN, value)?;
                    token = Some(value.to_string());
                }
                keys::CONTROL_PORT => control_port = parse_port(keys::CONTROL_PORT, value)?,
                keys::REFLECTOR_PORT => reflector_port = parse_port(keys::REFLECTOR_PORT, value)?,
                other => warnings.push(format!("unknown kernel command-line key {other} ignored")),
            }
        }
        let (addr, prefix_len) = addr.ok_or(ConfigError::MissingKey(keys::ADDR))?;
        let token = token.ok_or(ConfigError::MissingKey(keys::TOKEN))?;
        Ok(Self {
            token,
            control_listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, control_port)),
            reflector_port,
            network: Some(NetworkConfig {
                addr,
                prefix_len,
                iface,
            }),
            warnings,
        })
    }

    /// The `lmig.*` kernel command-line keys that [`AgentConfig::from_cmdline`]
    /// turns back into this configuration (for whoever builds the guest's
    /// command line). Without a [`NetworkConfig`] the `lmig.addr` key is
    /// left out, so the result would not parse.
    pub fn to_cmdline(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = &self.network {
            parts.push(format!("{}={}/{}", keys::ADDR, n.addr, n.prefix_len));
            if let Some(i) = &n.iface {
                parts.push(format!("{}={i}", keys::IFACE));
            }
        }
        parts.push(format!("{}={}", keys::TOKEN, self.token));
        parts.push(format!(
            "{}={}",
            keys::CONTROL_PORT,
            self.control_listen.port()
        ));
        parts.push(format!("{}={}", keys::REFLECTOR_PORT, self.reflector_port));
        parts.join(" ")
    }
}

/// Command-line flags of the `guest-agent` binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "guest-agent",
    version,
    about = "Live-migration lab guest agent: UDP probe reflector, workloads and a token-protected HTTP control API.",
    long_about = "Live-migration lab guest agent. As PID 1 (lab guests) it reads lmig.* keys from \
                  /proc/cmdline, sets up the guest and never exits. Otherwise it runs as a service \
                  configured by the flags below and does not touch networking."
)]
pub struct Cli {
    /// Lab mode without being PID 1: parse the kernel command line
    /// (`/proc/cmdline` or `--cmdline`), print the configuration and exit;
    /// touches nothing.
    #[arg(long)]
    pub pid1: bool,
    /// With `--pid1`: the command line to parse instead of `/proc/cmdline`.
    #[arg(long, value_name = "TEXT", requires = "pid1")]
    pub cmdline: Option<String>,
    /// Service mode: the bearer token of the control API.
    #[arg(long, value_name = "T", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Service mode: a file whose content (trimmed) is the token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Service mode: where the control API listens (port 0: any free
    /// port, shown in the ready line).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:7000")]
    pub control_listen: SocketAddr,
    /// Service mode: UDP port of the probe reflector (0: any free port,
    /// shown in the ready line).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_REFLECTOR_PORT)]
    pub reflector_port: u16,
}

impl Cli {
    /// The service-mode configuration these flags describe (reads the
    /// token file if one is given).
    pub fn service_config(&self) -> Result<AgentConfig, ConfigError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => {
                validate_token("--token", t)?;
                t.clone()
            }
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(ConfigError::EmptyTokenFile(path.clone()));
                }
                validate_token("--token-file", t)?;
                t.to_string()
            }
            (None, None) => return Err(ConfigError::NoToken),
        };
        Ok(AgentConfig {
            token,
            control_listen: self.control_listen,
            reflector_port: self.reflector_port,
            network: None,
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const DEBIAN: &str = "BOOT_IMAGE=/vmlinuz console=ttyS0 quiet panic=-1";

    #[test]
    fn full_lab_cmdline() {
        let c = AgentConfig::from_cmdline(&format!(
            "{DEBIAN} lmig.addr=198.18.0.10/24 lmig.iface=eth1 lmig.token=s3cret \
             lmig.control_port=8000 lmig.reflector_port=8001\n"
        ))
        .unwrap();
        assert_eq!(c.token, "s3cret");
        assert_eq!(c.control_listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(c.reflector_port, 8001);
        assert_eq!(
            c.network,
            Some(NetworkConfig {
                addr: Ipv4Addr::new(198, 18, 0, 10),
                prefix_len: 24,
                iface: Some("eth1".into())
            })
        );
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = AgentConfig::from_cmdline(
            "lmig.token=\"t\" quiet lmig.addr=198.18.0.11/15 lmig.colour=blue other.key=1",
        )
        .unwrap();
        assert_eq!(c.token, "t");
        assert_eq!(c.control_listen.port(), 7000);
        assert_eq!(c.reflector_port, 7001);
        let n = c.network.unwrap();
        assert_eq!(n.iface, None);
        assert_eq!(n.prefix_len, 15);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("lmig.colour"), "{:?}", c.warnings);
    }

    #[test]
    fn missing_token_names_the_key() {
        let e = AgentConfig::from_cmdline("lmig.addr=198.18.0.10/24").unwrap_err();
        assert!(matches!(e, ConfigError::MissingKey("lmig.token")));
        assert!(e.to_string().contains("lmig.token"), "{e}");
        let e = AgentConfig::from_cmdline("lmig.addr=198.18.0.10/24 lmig.token=").unwrap_err();
        assert!(e.to_string().contains("lmig.token"), "{e}");
    }

    #[test]
    fn missing_addr_names_the_key() {
        let e = AgentConfig::from_cmdline(&format!("{DEBIAN} lmig.token=x")).unwrap_err();
        assert!(e.to_string().contains("lmig.addr"), "{e}");
    }

    #[test]
    fn bad_addresses_name_the_value() {
        for v in [
            "198.18.0.10",
            "198.18.0.300/24",
            "198.18.0.10/33",
            "198.18.0.10/x",
            "fe80::1/64",
            "0.0.0.0/8",
            "",
        ] {
            let e = AgentConfig::from_cmdline(&format!("lmig.token=x lmig.addr={v}")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("lmig.addr"), "{msg}");
            assert!(msg.contains(&format!("{v:?}")), "{msg}");
        }
    }

    #[test]
    fn bad_ports_and_iface() {
        for (k, v) in [
            ("lmig.control_port", "0"),
            ("lmig.control_port", "70000"),
            ("lmig.reflector_port", "abc"),
            ("lmig.iface", "a/b"),
            ("lmig.iface", "averyveryverylongname"),
        ] {
            let e = AgentConfig::from_cmdline(&format!("lmig.token=x lmig.addr=1.2.3.4/8 {k}={v}"))
                .unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(k) && msg.contains(v), "{msg}");
        }
    }

    #[test]
    fn to_cmdline_round_trips() {
        let mut c = AgentConfig::lab(
            NetworkConfig {
                addr: Ipv4Addr::new(198, 18, 1, 2),
                prefix_len: 16,
                iface: Some("ens3".into()),
            },
            "tok",
        );
        c.reflector_port = 9999;
        let again = AgentConfig::from_cmdline(&format!("{DEBIAN} {}", c.to_cmdline())).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn debug_hides_the_token() {
        let c = AgentConfig::from_cmdline("lmig.token=hunter2 lmig.addr=1.2.3.4/8").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn service_flags() {
        let cli = Cli::try_parse_from(["guest-agent", "--token", "abc"]).unwrap();
        let c = cli.service_config().unwrap();
        assert_eq!(c.token, "abc");
        assert_eq!(c.control_listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(c.reflector_port, 7001);
        assert!(c.network.is_none());

        let dir = std::env::temp_dir().join(format!("ga-token-{}", std::process::id()));
        std::fs::write(&dir, "fromfile\n").unwrap();
        let cli = Cli::try_parse_from([
            "guest-agent",
            "--token-file",
            dir.to_str().unwrap(),
            "--control-listen",
            "127.0.0.1:9000",
            "--reflector-port",
            "9001",
        ])
        .unwrap();
        let c = cli.service_config().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.token, "fromfile");
        assert_eq!(c.control_listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.reflector_port, 9001);

        let cli = Cli::try_parse_from(["guest-agent"]).unwrap();
        assert!(matches!(cli.service_config(), Err(ConfigError::NoToken)));
        assert!(Cli::try_parse_from(["guest-agent", "--token", "a", "--token-file", "b"]).is_err());
        assert!(Cli::try_parse_from(["guest-agent", "--cmdline", "x"]).is_err());
    }
}
