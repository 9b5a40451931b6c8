//! The scenario's `[backend]` table: which platform the run migrates on.
//! Switching platform changes this table and nothing else.

use serde::{Deserialize, Serialize};

/// The platform kinds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The embedded lab: two QEMU processes driven over QMP.
    #[default]
    Local,
    /// libvirt: the lab's two libvirt daemons, driven through `virsh`.
    Libvirt,
}

impl BackendKind {
    /// The name in scenarios and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Libvirt => "libvirt",
        }
    }
}

/// How the lab's libvirt daemons carry the migration stream.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LibvirtTransport {
    /// `qemu+tcp://` between the daemons and `tcp://` for QEMU's stream,
    /// over the lab's migration link.
    #[default]
    Tcp,
    /// UNIX sockets in a folder both daemons see (libvirt documents this
    /// for containers on one host).
    Unix,
}

/// `[backend]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackendSpec {
    /// `local` (the default) or `libvirt`.
    pub kind: BackendKind,
    /// libvirt only: `tcp` (the default) or `unix`.
    pub transport: Option<LibvirtTransport>,
}

impl BackendSpec {
    /// Refuses keys that belong to another kind, naming key and kind.
    pub fn check(&self) -> Result<(), String> {
        if self.transport.is_some() && self.kind != BackendKind::Libvirt {
            return Err(format!(
                "`backend.transport` is a libvirt key; this scenario's backend is `{}`",
                self.kind.as_str()
            ));
        }
        Ok(())
    }
}
