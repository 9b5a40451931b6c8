#!/usr/bin/env bash
# Installs what the lab needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (apt-get, namespaces, taps)" >&2
  exit 1
fi
packages=(
  qemu-system-x86     # the two QEMU "nodes"
  linux-image-amd64   # the guest kernel (/boot/vmlinuz-*) and its NIC modules
  iproute2            # namespaces, bridges, veths, taps
  gcc libc6-dev       # linking; libc.a for the statically linked guest agent
  cpio file           # used by tests to cross-check the initramfs writer
  irtt iputils-ping   # compared with our probe by `harness bench probe`
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no Rust toolchain (cargo) on PATH; install one with rustup (Rust 1.80 or newer)" >&2
  exit 1
fi
