//! `pve-standin DIR`: a stand-in for a two-node Proxmox VE cluster whose
//! migrations are real lab migrations performed the way qemu-server does
//! them ([`harness::backend::proxmox::standin`]). For testing the Proxmox
//! backend; it is not Proxmox. Writes `DIR/ready.json` once it serves;
//! stops on SIGTERM or Ctrl-C and removes its lab.
//!
//! `pve-standin qm …` and `pve-standin pveversion …` are the nodes'
//! commands, run over ssh ([`harness::backend::proxmox::standin::qm`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pve-standin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    use harness::backend::proxmox::standin;
    match args.first().map(String::as_str) {
        Some(cmd @ ("qm" | "pveversion")) => {
            let code = rt.block_on(standin::qm::main(cmd, &args[1..]));
            ExitCode::from(u8::try_from(code).unwrap_or(255))
        }
        Some(dir) if !dir.starts_with('-') => {
            match rt.block_on(standin::run(std::path::Path::new(dir))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pve-standin: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: pve-standin DIR | pve-standin qm … | pve-standin pveversion …");
            ExitCode::from(2)
        }
    }
}
