//! The QEMU command line, built in one place and printed in full in the
//! bundle so any run can be reproduced by hand.

use crate::scenario::disk::{DiskBus, DiskFormat};
use crate::scenario::Nic;
use std::path::PathBuf;

/// Everything that decides one QEMU process's command line.
#[derive(Debug, Clone)]
pub struct QemuSpec {
    /// `-name`, also the marker by which a process is known to be ours.
    pub name: String,
    /// `kvm` or `tcg`.
    pub accel: &'static str,
    /// Guest RAM.
    pub memory_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// NIC model.
    pub nic: Nic,
    /// The NIC's MAC address.
    pub mac: String,
    /// The tap device (in the node's namespace).
    pub tap: String,
    /// Kernel.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub append: String,
    /// QMP socket.
    pub qmp: PathBuf,
    /// File that receives the serial console.
    pub console: PathBuf,
    /// Start as a migration destination (`-incoming defer`).
    pub incoming: bool,
    /// Stay paused after an incoming migration until `cont` (`-S`, as
    /// Proxmox starts its destinations).
    pub paused: bool,
    /// The VM's disk, if it has one.
    pub disk: Option<QemuDisk>,
}

/// One disk: an image on this node, as a block node and a device.
#[derive(Debug, Clone)]
pub struct QemuDisk {
    /// The image file.
    pub image: PathBuf,
    /// Its format.
    pub format: DiskFormat,
    /// The bus the guest sees it on.
    pub bus: DiskBus,
}

impl QemuDisk {
    /// The format node's name (`drive-scsi0`, as qemu-server names it):
    /// what the mirror copies from and the NBD export serves.
    pub fn node_name(&self) -> String {
        format!("drive-{}", self.bus.drive())
    }

    /// `-blockdev` for the file and the format, then the device (and its
    /// controller).
    fn args(&self) -> Vec<String> {
        let drive = self.bus.drive();
        let file = format!("file-{drive}");
        let node = self.node_name();
        let mut a = vec![
            "-blockdev".to_string(),
            format!(
                "driver=file,filename={},node-name={file}",
                self.image.display()
            ),
            "-blockdev".to_string(),
            format!(
                "driver={},file={file},node-name={node}",
                self.format.as_str()
            ),
        ];
        let device = match self.bus {
            DiskBus::VirtioBlk => format!("virtio-blk-pci,drive={node},id={drive}"),
            DiskBus::Scsi => {
                a.extend([
                    "-device".to_string(),
                    "virtio-scsi-pci,id=scsihw0".to_string(),
                ]);
                format!("scsi-hd,bus=scsihw0.0,drive={node},id={drive}")
            }
            DiskBus::Ide => format!("ide-hd,bus=ide.0,unit=0,drive={node},id={drive}"),
        };
        a.extend(["-device".to_string(), device]);
        a
    }
}

impl QemuSpec {
    /// The arguments after the program name.
    ///
    /// Source and destination must agree on everything that shapes the
    /// machine, so both come from this one function and differ only in
    /// `-incoming`, the console file and the QMP socket.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-name",
            &format!("{},debug-threads=on", self.name),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-machine",
            "pc",
            "-accel",
            self.accel,
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.vcpus.to_string(),
            "-kernel",
            &self.kernel.display().to_string(),
            "-initrd",
            &self.initrd.display().to_string(),
            "-append",
            &self.append,
            "-netdev",
            &format!("tap,id=net0,ifname={},script=no,downscript=no", self.tap),
            "-device",
            &format!(
                "{},netdev=net0,mac={},romfile=",
                self.nic.qemu_device(),
                self.mac
            ),
            "-chardev",
            &format!("file,id=con0,path={}", self.console.display()),
            "-serial",
            "chardev:con0",
            "-qmp",
            &format!("unix:{},server=on,wait=off", self.qmp.display()),
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(d) = &self.disk {
            a.extend(d.args());
        }
        if self.incoming {
            a.extend(["-incoming".to_string(), "defer".to_string()]);
        }
        if self.paused {
            a.push("-S".to_string());
        }
        a
    }
}

/// The guest's kernel command line.
pub fn kernel_append(addr: &str, token: &str, control_port: u16, reflector_port: u16) -> String {
    format!(
        "console=ttyS0 loglevel=4 panic=-1 lmig.addr={addr} lmig.token={token} lmig.control_port={control_port} lmig.reflector_port={reflector_port}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_differs_only_by_incoming() {
        let mut s = QemuSpec {
            name: "lmig-x-vm0".into(),
            accel: "tcg",
            memory_mib: 256,
            vcpus: 1,
            nic: Nic::E1000,
            mac: "52:54:00:4c:4d:10".into(),
            tap: "tap0".into(),
            kernel: "/boot/vmlinuz".into(),
            initrd: "/tmp/i".into(),
            append: kernel_append("198.18.0.10/24", "t", 7000, 7001),
            qmp: "/run/q.sock".into(),
            console: "/run/c.log".into(),
            incoming: false,
            paused: false,
            disk: None,
        };
        let src = s.args();
        s.incoming = true;
        let dst = s.args();
        assert_eq!(&dst[..src.len()], &src[..]);
        assert_eq!(&dst[src.len()..], ["-incoming", "defer"]);
        assert!(src.contains(&"e1000,netdev=net0,mac=52:54:00:4c:4d:10,romfile=".to_string()));
        assert!(src.iter().any(|a| a.contains("lmig.addr=198.18.0.10/24")));
    }
}
