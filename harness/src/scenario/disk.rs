//! `[vm.disk]` (the VM's disk) and `[workload.disk]` (the guest writing
//! to it while it migrates).

use serde::{Deserialize, Serialize};
use wire::control::DirtyPattern;

/// The disk's bus, as the study's VMs had them (SCSI, IDE) or as most
/// KVM guests have them (virtio-blk).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DiskBus {
    /// `virtio-blk-pci`: `/dev/vda` in the guest.
    #[default]
    VirtioBlk,
    /// `scsi-hd` on a `virtio-scsi-pci` controller: `/dev/sda`.
    Scsi,
    /// `ide-hd` on the machine's IDE controller: `/dev/sda`.
    Ide,
}

impl DiskBus {
    /// The name in scenarios and records.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskBus::VirtioBlk => "virtio-blk",
            DiskBus::Scsi => "scsi",
            DiskBus::Ide => "ide",
        }
    }

    /// Proxmox's drive name for the first disk on this bus.
    pub fn drive(self) -> &'static str {
        match self {
            DiskBus::VirtioBlk => "virtio0",
            DiskBus::Scsi => "scsi0",
            DiskBus::Ide => "ide0",
        }
    }

    /// The disk's device in the guest.
    pub fn guest_device(self) -> &'static str {
        match self {
            DiskBus::VirtioBlk => "/dev/vda",
            DiskBus::Scsi | DiskBus::Ide => "/dev/sda",
        }
    }

    /// The guest kernel modules that drive it, in load order.
    pub fn kernel_modules(self) -> &'static [&'static str] {
        match self {
            DiskBus::VirtioBlk => &["virtio_blk"],
            DiskBus::Scsi => &["scsi_mod", "sd_mod", "virtio_scsi"],
            DiskBus::Ide => &["scsi_mod", "sd_mod", "libata", "ata_piix"],
        }
    }
}

/// The image format.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFormat {
    /// A plain file.
    #[default]
    Raw,
    /// QEMU's copy-on-write format.
    Qcow2,
}

impl DiskFormat {
    /// QEMU's driver name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// Where the disk lives.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DiskStorage {
    /// An image per node, mirrored to the destination during the migration
    /// (`--with-local-disks`).
    #[default]
    Local,
    /// One image both nodes open (shared storage: nothing is copied), the
    /// baseline.
    Shared,
}

impl DiskStorage {
    /// The name in scenarios and records.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskStorage::Local => "local",
            DiskStorage::Shared => "shared",
        }
    }
}

/// `[vm.disk]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpec {
    /// Size, MiB.
    pub size_mib: u64,
    /// `raw` or `qcow2`.
    pub format: DiskFormat,
    /// `virtio-blk`, `scsi` or `ide`.
    pub bus: DiskBus,
    /// `local` (mirrored) or `shared`.
    pub storage: DiskStorage,
}

impl Default for DiskSpec {
    fn default() -> Self {
        Self {
            size_mib: 256,
            format: DiskFormat::Raw,
            bus: DiskBus::VirtioBlk,
            storage: DiskStorage::Local,
        }
    }
}

/// `[workload.disk]`: the guest writes stamped blocks to its disk at a set
/// rate, verified after every migration, by the agent and by the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiskWorkloadSpec {
    /// Write rate, MiB/s (0 = as fast as the guest can).
    pub rate_mib_s: f64,
    /// The region written, MiB from the disk's start.
    pub region_mib: u64,
    /// Block size, KiB (a power of two, 4 to 1024).
    pub block_kib: u32,
    /// `sequential` or `random` over the region.
    pub pattern: DirtyPattern,
}

impl Default for DiskWorkloadSpec {
    fn default() -> Self {
        Self {
            rate_mib_s: 2.0,
            region_mib: 32,
            block_kib: 4,
            pattern: DirtyPattern::Sequential,
        }
    }
}

impl DiskWorkloadSpec {
    /// The agent's workload on the disk of `disk`.
    pub fn to_wire(&self, disk: &DiskSpec) -> wire::control::WorkloadSpec {
        wire::control::WorkloadSpec::Disk {
            device: disk.bus.guest_device().into(),
            offset_mib: 0,
            region_mib: self.region_mib,
            rate_mib_s: self.rate_mib_s,
            block_kib: self.block_kib,
            pattern: self.pattern,
            direct: true,
        }
    }

    /// Refuses a workload that does not fit its disk, naming the keys.
    pub fn check(&self, disk: Option<&DiskSpec>) -> Result<(), String> {
        let Some(disk) = disk else {
            return Err("`workload.disk` needs a disk: add `[vm.disk]`".into());
        };
        if self.region_mib == 0 || self.region_mib > disk.size_mib {
            return Err(format!(
                "`workload.disk.region_mib` = {} must be between 1 and `vm.disk.size_mib` = {}",
                self.region_mib, disk.size_mib
            ));
        }
        if !(4..=1024).contains(&self.block_kib) || !self.block_kib.is_power_of_two() {
            return Err(format!(
                "`workload.disk.block_kib` = {} must be a power of two from 4 to 1024",
                self.block_kib
            ));
        }
        if self.pattern == DirtyPattern::Hotcold {
            return Err("`workload.disk.pattern` = \"hotcold\" is for memory; use \"sequential\" or \"random\"".into());
        }
        if self.rate_mib_s < 0.0 {
            return Err("`workload.disk.rate_mib_s` must not be negative".into());
        }
        Ok(())
    }
}

impl DiskSpec {
    /// Refuses a disk the lab cannot make.
    pub fn check(&self) -> Result<(), String> {
        if !(16..=65536).contains(&self.size_mib) {
            return Err(format!(
                "`vm.disk.size_mib` = {} must be between 16 and 65536",
                self.size_mib
            ));
        }
        Ok(())
    }
}
