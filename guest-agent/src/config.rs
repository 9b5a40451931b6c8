//! The agent's configuration: from the kernel command line in lab guests,
//! from a TOML file and/or command-line flags on real VMs.
//!
//! The service settings are the kernel command line's, less the NIC (a
//! service never configures networking):
//!
//! | kernel command line (lab) | config file key (service) | flag (service) |
//! |---|---|---|
//! | `lmig.token=T` | `token_file = "PATH"` or `token = "T"` | `--token-file PATH`, `--token T` |
//! | `lmig.control_port=7000` | `listen = "0.0.0.0:7000"` | `--listen ADDR:PORT` |
//! | `lmig.reflector_port=7001` | `reflector = "0.0.0.0:7001"` | `--reflector ADDR:PORT`, `--reflector-port PORT` |
//! | `lmig.addr`, `lmig.iface` | (none: lab only) | (none) |
//!
//! A flag overrides the file's key; the file is read strictly (an unknown
//! key is an error naming the file, the line and the key).

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
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

/// The environment variable that may carry the service-mode token.
pub const TOKEN_ENV: &str = "LMIG_AGENT_TOKEN";

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
    /// Service mode has no token: no `--token-file` flag, no `LMIG_AGENT_TOKEN` and
    /// no `token` or `token_file` key in the configuration file.
    #[error(
        "no token: the control API needs one. Give --token-file PATH (a file holding only the token) \
         or LMIG_AGENT_TOKEN in the environment, or set token_file = \"PATH\" in the --config file"
    )]
    NoToken,
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML, has an unknown key or a
    /// value of the wrong kind.
    #[error("{path}:{line}:{column}: {message}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A setting parses but cannot be used.
    #[error("{setting} {value} is not valid: {reason}")]
    BadSetting {
        /// The key or flag, e.g. `reflector`.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
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
    /// UDP port of the probe reflector.
    pub reflector_port: u16,
    /// The IPv4 address the reflector binds (0.0.0.0 in lab mode: every
    /// address).
    pub reflector_ip: Ipv4Addr,
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
            .field("reflector_ip", &self.reflector_ip)
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
            reflector_ip: Ipv4Addr::UNSPECIFIED,
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
            reflector_ip: Ipv4Addr::UNSPECIFIED,
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

/// The service configuration file (TOML), e.g. `/etc/lmig-agent.toml`:
///
/// ```toml
/// listen = "0.0.0.0:7000"               # control API, TCP
/// reflector = "0.0.0.0:7001"            # probe reflector, UDP, IPv4
/// token_file = "/etc/lmig-agent.token"  # or: token = "..."
/// ```
///
/// Every key is optional; an unknown key is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Where the control API listens (default `0.0.0.0:7000`).
    pub listen: Option<SocketAddr>,
    /// Where the probe reflector listens, an IPv4 address and port
    /// (default `0.0.0.0:7001`).
    pub reflector: Option<SocketAddr>,
    /// The bearer token itself (prefer `token_file`: the configuration
    /// file can then be readable by all).
    pub token: Option<String>,
    /// A file whose content (trimmed) is the token; a relative path is
    /// taken from the configuration file's folder.
    pub token_file: Option<PathBuf>,
}

/// Keys of the kernel command line that have no place in a service
/// configuration, and what to write instead.
fn lab_key_hint(message: &str) -> Option<&'static str> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    Some(match key {
        "addr" | "iface" | "lmig.addr" | "lmig.iface" => {
            "outside the lab the agent configures no network: it listens on the addresses the VM already has (see `listen` and `reflector`)"
        }
        "control_port" | "lmig.control_port" | "port" => "write listen = \"0.0.0.0:PORT\"",
        "reflector_port" | "lmig.reflector_port" => "write reflector = \"0.0.0.0:PORT\"",
        _ => return None,
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = (0..=offset.min(text.len()))
        .rev()
        .find(|o| text.is_char_boundary(*o))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl ServiceFile {
    /// Parses the text of a configuration file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            let mut message = e.message().trim().to_string();
            if message.is_empty() {
                // The toml crate gives no message for some inputs (a
                // control character in a comment, found by fuzzing).
                message = "not valid TOML here (a stray control character?)".into();
            }
            if let Some(hint) = lab_key_hint(&message) {
                message = format!("{message}; {hint}");
            }
            ConfigError::ConfigParse {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
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
                  configured by a TOML file (--config) and/or the flags below (a flag overrides the \
                  file), and does not mount, load modules or touch networking."
)]
pub struct Cli {
    /// Lab mode without being PID 1: parse the kernel command line
    /// (`/proc/cmdline` or `--cmdline`), print the configuration and exit;
    /// touches nothing.
    #[arg(
        long,
        conflicts_with_all = ["config", "token_file", "listen", "reflector", "reflector_port"]
    )]
    pub pid1: bool,
    /// With `--pid1`: the command line to parse instead of `/proc/cmdline`.
    #[arg(long, value_name = "TEXT", requires = "pid1")]
    pub cmdline: Option<String>,
    /// Service mode: a TOML configuration file with the keys `listen`,
    /// `reflector`, `token_file` (or `token`); flags override its keys.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Service mode: the bearer token of the control API, from the
    /// environment variable [`TOKEN_ENV`] (never a flag: a command line is
    /// readable by every local user). `--token-file` wins over it.
    #[arg(skip)]
    pub token: Option<String>,
    /// Service mode: a file whose content (trimmed) is the token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Service mode: where the control API listens, TCP [default:
    /// 0.0.0.0:7000] (port 0: any free port, shown in the ready line).
    #[arg(long, visible_alias = "control-listen", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Service mode: where the probe reflector listens, UDP, IPv4
    /// [default: 0.0.0.0:7001] (port 0: any free port, shown in the ready
    /// line).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "reflector_port")]
    pub reflector: Option<SocketAddr>,
    /// Service mode: the reflector's UDP port only (its address stays the
    /// configuration file's, or 0.0.0.0).
    #[arg(long, value_name = "PORT")]
    pub reflector_port: Option<u16>,
}

/// Reads a token file: its content, trimmed, must be one token.
fn read_token_file(path: &Path, setting: &'static str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(ConfigError::EmptyTokenFile(path.to_path_buf()));
    }
    validate_token(setting, t)?;
    Ok(t.to_string())
}

impl Cli {
    /// The service-mode configuration: the `--config` file's keys (if one
    /// is given), overridden by the flags, with the defaults for what
    /// neither sets. Reads the token file. The token is required.
    pub fn service_config(&self) -> Result<AgentConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => ServiceFile::load(p)?,
            None => ServiceFile::default(),
        };
        let origin = self
            .config
            .as_ref()
            .map_or_else(String::new, |p| format!(" (in {})", p.display()));
        if file.token.is_some() && file.token_file.is_some() {
            return Err(ConfigError::BadSetting {
                setting: "token",
                value: format!("and token_file{origin}"),
                reason: "give one of token and token_file, not both".into(),
            });
        }
        let from_env = self.token.clone().or_else(|| std::env::var(TOKEN_ENV).ok());
        let token = if let Some(path) = &self.token_file {
            read_token_file(path, "--token-file")?
        } else if let Some(t) = &from_env {
            validate_token(TOKEN_ENV, t.trim())?;
            t.trim().to_string()
        } else if let Some(t) = &file.token {
            validate_token("token", t)?;
            t.clone()
        } else if let Some(path) = &file.token_file {
            // Relative to the configuration file's folder.
            let base = self
                .config
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new(""));
            read_token_file(&base.join(path), "token_file")?
        } else {
            return Err(ConfigError::NoToken);
        };
        let control_listen = self.listen.or(file.listen).unwrap_or(SocketAddr::from((
            Ipv4Addr::UNSPECIFIED,
            DEFAULT_CONTROL_PORT,
        )));
        let default_reflector = SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_REFLECTOR_PORT));
        let reflector = match (self.reflector, self.reflector_port) {
            (Some(a), _) => a,
            (None, Some(port)) => {
                SocketAddr::new(file.reflector.unwrap_or(default_reflector).ip(), port)
            }
            (None, None) => file.reflector.unwrap_or(default_reflector),
        };
        let IpAddr::V4(reflector_ip) = reflector.ip() else {
            return Err(ConfigError::BadSetting {
                setting: "reflector",
                value: format!("{reflector}{origin}"),
                reason: "the reflector listens on IPv4 only, e.g. 0.0.0.0:7001".into(),
            });
        };
        Ok(AgentConfig {
            token,
            control_listen,
            reflector_port: reflector.port(),
            reflector_ip,
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
    fn a_toml_error_without_a_message_still_says_what_is_wrong() {
        let e = ServiceFile::parse("# a comment \u{1}\n", Path::new("a.toml")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a.toml:1:"), "{text}");
        assert!(text.contains("not valid TOML"), "no reason: {text}");
    }

    #[test]
    fn debug_hides_the_token() {
        let c = AgentConfig::from_cmdline("lmig.token=hunter2 lmig.addr=1.2.3.4/8").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn service_flags() {
        let mut cli = Cli::try_parse_from(["guest-agent"]).unwrap();
        cli.token = Some("abc".into());
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
        let e = cli.service_config().unwrap_err();
        assert!(matches!(e, ConfigError::NoToken));
        assert!(e.to_string().contains("--token-file"), "{e}");
        assert!(
            Cli::try_parse_from(["guest-agent", "--token", "a"]).is_err(),
            "no token on the command line"
        );
        assert!(Cli::try_parse_from(["guest-agent", "--cmdline", "x"]).is_err());
        assert!(Cli::try_parse_from(["guest-agent", "--pid1", "--config", "x"]).is_err());
        assert!(Cli::try_parse_from([
            "guest-agent",
            "--reflector",
            "0.0.0.0:1",
            "--reflector-port",
            "2"
        ])
        .is_err());
    }

    /// A scratch folder removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("ga-cfg-{tag}-{}", std::process::id()));
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

    /// `extra` may hold `--token T`, which stands for the token in the
    /// environment (set on the parsed command line, not in the process's
    /// environment, which tests share).
    fn with_config(path: &Path, extra: &[&str]) -> Result<AgentConfig, ConfigError> {
        let mut args = vec!["guest-agent", "--config", path.to_str().unwrap()];
        let mut token = None;
        let mut it = extra.iter();
        while let Some(a) = it.next() {
            if *a == "--token" {
                token = it.next().map(|t| t.to_string());
            } else {
                args.push(a);
            }
        }
        let mut cli = Cli::try_parse_from(args).unwrap();
        cli.token = token;
        cli.service_config()
    }

    #[test]
    fn config_file_sets_everything_and_flags_override_it() {
        let d = Scratch::new("full");
        d.file("token", "  from-file\n");
        let cfg = d.file(
            "agent.toml",
            "# comment\nlisten = \"127.0.0.1:7100\"\nreflector = \"127.0.0.1:7101\"\ntoken_file = \"token\"\n",
        );
        let c = with_config(&cfg, &[]).unwrap();
        assert_eq!(c.token, "from-file", "relative to the config's folder");
        assert_eq!(c.control_listen, "127.0.0.1:7100".parse().unwrap());
        assert_eq!(
            (c.reflector_ip, c.reflector_port),
            (Ipv4Addr::LOCALHOST, 7101)
        );
        assert!(c.network.is_none());

        let c = with_config(
            &cfg,
            &[
                "--listen",
                "0.0.0.0:8000",
                "--reflector-port",
                "8001",
                "--token",
                "flag",
            ],
        )
        .unwrap();
        assert_eq!(c.token, "flag");
        assert_eq!(c.control_listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(
            (c.reflector_ip, c.reflector_port),
            (Ipv4Addr::LOCALHOST, 8001)
        );
        let c = with_config(&cfg, &["--reflector", "0.0.0.0:9001"]).unwrap();
        assert_eq!(
            (c.reflector_ip, c.reflector_port),
            (Ipv4Addr::UNSPECIFIED, 9001)
        );

        // Empty file: defaults, and the token is still required.
        let empty = d.file("empty.toml", "");
        let e = with_config(&empty, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::NoToken), "{e}");
        let c = with_config(&empty, &["--token", "t"]).unwrap();
        assert_eq!(c.control_listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(
            (c.reflector_ip, c.reflector_port),
            (Ipv4Addr::UNSPECIFIED, 7001)
        );
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let p = Path::new("/etc/lmig-agent.toml");
        let e =
            ServiceFile::parse("listen = \"0.0.0.0:7000\"\n\ncolour = \"blue\"\n", p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/lmig-agent.toml:3:"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
        assert!(
            matches!(e, ConfigError::ConfigParse { line: 3, .. }),
            "{e:?}"
        );

        let e = ServiceFile::parse("token = \"t\"\ncontrol_port = 7000\n", p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/lmig-agent.toml:2:"), "{msg}");
        assert!(
            msg.contains("control_port") && msg.contains("listen = "),
            "{msg}"
        );
        let e = ServiceFile::parse("addr = \"198.18.0.10/24\"\n", p).unwrap_err();
        assert!(e.to_string().contains("configures no network"), "{e}");

        // Wrong kinds and bad addresses name the line too.
        let e = ServiceFile::parse("\nlisten = 7000\n", p).unwrap_err();
        assert!(e.to_string().starts_with("/etc/lmig-agent.toml:2:"), "{e}");
        let e = ServiceFile::parse("reflector = \"0.0.0.0\"\n", p).unwrap_err();
        assert!(e.to_string().starts_with("/etc/lmig-agent.toml:1:"), "{e}");
        let e = ServiceFile::parse("[listen]\n", p).unwrap_err();
        assert!(e.to_string().contains("lmig-agent.toml:1:"), "{e}");
    }

    #[test]
    fn token_problems_are_clear() {
        let d = Scratch::new("tok");
        let both = d.file("both.toml", "token = \"a\"\ntoken_file = \"t\"\n");
        let e = with_config(&both, &[]).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        assert!(e.to_string().contains("both.toml"), "{e}");

        let missing = d.file("missing.toml", "token_file = \"/nonexistent/lmig.token\"\n");
        let e = with_config(&missing, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::TokenFile { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/lmig.token"), "{e}");

        d.file("blank", "\n \n");
        let blank = d.file("blank.toml", "token_file = \"blank\"\n");
        let e = with_config(&blank, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::EmptyTokenFile(_)), "{e:?}");

        let spaced = d.file("spaced.toml", "token = \"a b\"\n");
        let e = with_config(&spaced, &[]).unwrap_err();
        assert!(e.to_string().contains("whitespace"), "{e}");
        assert!(
            !e.to_string().contains("a b"),
            "the token is not echoed: {e}"
        );

        let e = with_config(&d.0.join("absent.toml"), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::ConfigRead { .. }), "{e:?}");
        assert!(e.to_string().contains("absent.toml"), "{e}");
    }

    #[test]
    fn the_reflector_is_ipv4_only() {
        let d = Scratch::new("v6");
        let cfg = d.file("v6.toml", "token = \"t\"\nreflector = \"[::]:7001\"\n");
        let e = with_config(&cfg, &[]).unwrap_err();
        assert!(e.to_string().contains("IPv4"), "{e}");
        assert!(e.to_string().contains("v6.toml"), "{e}");
        // IPv6 is fine for the control API.
        let c = with_config(
            &cfg,
            &["--reflector", "0.0.0.0:7001", "--listen", "[::1]:7000"],
        )
        .unwrap();
        assert_eq!(c.control_listen, "[::1]:7000".parse().unwrap());
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1), "inside a character: its start");
        assert_eq!(line_col("a", 99), (1, 2));
    }
}
