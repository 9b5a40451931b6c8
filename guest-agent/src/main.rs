//! The `guest-agent` binary: PID 1 of lab guests, or a service on real
//! VMs. Everything but argument handling lives in the library.

use anyhow::Context as _;
use clap::Parser as _;
use guest_agent::{pid1, say, AgentConfig, Cli};

fn main() {
    if std::process::id() == 1 {
        // PID 1 must never exit: take the configuration from /proc/cmdline
        // (or from `--pid1 --cmdline TEXT` init arguments, for tests),
        // ignore any other arguments, and power off on a fatal error.
        pid1::install_panic_hook();
        let cmdline = Cli::try_parse().ok().and_then(|c| c.cmdline);
        let err = match guest_agent::run_lab(cmdline) {
            Ok(never) => match never {},
            Err(e) => anyhow::Error::from(e),
        };
        pid1::fatal(&format!("{err:#}"));
    }
    if let Err(e) = not_pid1() {
        say!("fatal: {e:#}");
        std::process::exit(1);
    }
}

fn not_pid1() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.pid1 {
        // Lab mode for testing the parser: parse and print, touch nothing.
        let text = match cli.cmdline {
            Some(t) => t,
            None => {
                std::fs::read_to_string("/proc/cmdline").context("cannot read /proc/cmdline")?
            }
        };
        let config = AgentConfig::from_cmdline(&text).context("bad kernel command line")?;
        for w in &config.warnings {
            say!("warning: {w}");
        }
        say!("lab configuration (not PID 1, nothing done): {config:?}");
        return Ok(());
    }
    // Service mode: no mounts, no modules, no NIC set-up, no reaper.
    let config = cli.service_config().context("bad service configuration")?;
    say!(
        "starting, version {} (service{}): control API on {}, reflector on {}:{}",
        env!("CARGO_PKG_VERSION"),
        cli.config
            .as_ref()
            .map_or_else(String::new, |p| format!(", configured by {}", p.display())),
        config.control_listen,
        config.reflector_ip,
        config.reflector_port
    );
    for w in &config.warnings {
        say!("warning: {w}");
    }
    match guest_agent::run(config, false) {
        Ok(never) => match never {},
        Err(e) => Err(anyhow::Error::from(e)).context("the agent stopped"),
    }
}
