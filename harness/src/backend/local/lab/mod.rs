//! The embedded lab: network namespaces, bridges, veths and taps on one
//! Linux machine, built and torn down by the harness.
//!
//! ```text
//!    netns node-a            netns switch              netns node-b
//!  [QEMU]--tap0--br0 --uplink/to-a-- br0 --to-b/uplink-- br0--tap0--[QEMU]
//!    |                                |                              |
//!   mig0 ======== migration link (own subnet) ====================== mig0
//!                                   to-cl
//!                                     |
//!                              netns client (eth0)  [client probe]
//! ```
//!
//! The migration link is a direct veth between the two nodes rather than a
//! VLAN through the switch: it keeps migration traffic off the guest's LAN
//! (so it cannot disturb what the probe measures) and gives `tc` one plain
//! device per side to shape. Addresses are from 198.18.0.0/15 (RFC 2544);
//! no namespace has a default route, so nothing can leave the lab.

pub mod delayline;
pub mod netlink;
pub mod netns;
pub mod topology;

pub use topology::{Lab, LabAddrs, Node, Wan};
