//! The lab guest as a libvirt domain.
//!
//! The same machine the local backend starts by hand (pc machine, TCG,
//! kernel and initramfs booted directly, one NIC on the node's existing tap,
//! serial console to a file), written as domain XML so libvirt starts it,
//! migrates it and reports on it. Nothing libvirt would add by default
//! (USB, balloon, graphics) is there, so the migration stream carries the
//! same devices in both backends.

use crate::scenario::disk::{DiskBus, DiskSpec};
use crate::scenario::Nic;
use std::path::PathBuf;

/// What decides the domain.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    /// The domain's name.
    pub name: String,
    /// `qemu` (TCG) or `kvm`.
    pub domain_type: &'static str,
    /// Guest RAM, MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// NIC model.
    pub nic: Nic,
    /// The NIC's MAC address.
    pub mac: String,
    /// The tap device in each node's namespace (made by the lab, not by
    /// libvirt: `managed='no'`).
    pub tap: String,
    /// Kernel.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line (carries the agent's token: never written to
    /// the bundle unredacted).
    pub cmdline: String,
    /// The serial console's file (both nodes append to the same file).
    pub console: PathBuf,
    /// The disk, if the VM has one, and its image's path as each node's
    /// daemon sees it (the same path, a different file on each node).
    pub disk: Option<(DiskSpec, PathBuf)>,
}

/// The `<disk>` element (and the SCSI controller a SCSI disk needs).
fn disk_xml(disk: &DiskSpec, path: &std::path::Path) -> String {
    let (dev, bus, controller) = match disk.bus {
        DiskBus::VirtioBlk => ("vda", "virtio", ""),
        DiskBus::Scsi => (
            "sda",
            "scsi",
            "\n    <controller type='scsi' model='virtio-scsi'/>",
        ),
        DiskBus::Ide => ("hda", "ide", ""),
    };
    format!(
        "\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='{}'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='{bus}'/>\n    </disk>{controller}",
        disk.format.as_str(),
        escape(&path.display().to_string())
    )
}

impl DomainSpec {
    /// The domain XML.
    pub fn xml(&self) -> String {
        let model = match self.nic {
            Nic::VirtioNet => "virtio",
            Nic::E1000 => "e1000",
        };
        format!(
            r#"<domain type='{ty}'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <interface type='ethernet'>
      <mac address='{mac}'/>
      <target dev='{tap}' managed='no'/>
      <model type='{model}'/>
    </interface>
    <serial type='file'>
      <source path='{console}' append='on'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>{disk}
  </devices>
</domain>
"#,
            ty = self.domain_type,
            name = escape(&self.name),
            mem = self.memory_mib,
            vcpus = self.vcpus,
            kernel = escape(&self.kernel.display().to_string()),
            initrd = escape(&self.initrd.display().to_string()),
            cmdline = escape(&self.cmdline),
            mac = escape(&self.mac),
            tap = escape(&self.tap),
            console = escape(&self.console.display().to_string()),
            disk = self
                .disk
                .as_ref()
                .map_or(String::new(), |(d, p)| disk_xml(d, p)),
        )
    }
}

/// XML text and attribute escaping.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_has_the_lab_machine_and_escapes_values() {
        let d = DomainSpec {
            name: "lmig-x-vm0".into(),
            domain_type: "qemu",
            memory_mib: 256,
            vcpus: 1,
            nic: Nic::VirtioNet,
            mac: "52:54:00:4c:4d:0a".into(),
            tap: "tap0".into(),
            kernel: "/boot/vmlinuz".into(),
            initrd: "/run/lmig/x/initramfs.cpio".into(),
            cmdline: "console=ttyS0 a=<b>&'c'".into(),
            console: "/run/lmig/x/vm0.console.log".into(),
            disk: None,
        };
        let x = d.xml();
        assert!(x.contains("<domain type='qemu'>"));
        assert!(x.contains("<target dev='tap0' managed='no'/>"));
        assert!(x.contains("<model type='virtio'/>"));
        assert!(x.contains("<cmdline>console=ttyS0 a=&lt;b&gt;&amp;&apos;c&apos;</cmdline>"));
        assert!(x.contains("<memory unit='MiB'>256</memory>"));
    }
}
