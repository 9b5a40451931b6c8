//! `pve-standin DIR`: a stand-in for a two-node Proxmox VE cluster whose
//! migrations are real lab migrations performed the way qemu-server does
//! them ([`harness::backend::proxmox::standin`]). For testing the Proxmox backend; it is not
//! Proxmox. Writes `DIR/ready.json` once it serves; stops on SIGTERM or
//! Ctrl-C and removes its lab.

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: pve-standin DIR");
        return std::process::ExitCode::from(2);
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pve-standin: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(harness::backend::proxmox::standin::run(
        std::path::Path::new(&dir),
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pve-standin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
