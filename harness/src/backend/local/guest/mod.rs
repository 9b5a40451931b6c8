//! The lab guest: a Linux kernel plus an initramfs the harness writes
//! itself, with the guest agent as `/init`.

pub mod cpio;
pub mod debian;
pub mod image;

pub use image::{build_image, build_image_with, find_agent, find_kernel, GuestImage, KernelChoice};
