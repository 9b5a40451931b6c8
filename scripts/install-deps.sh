#!/usr/bin/env bash
# Installs what the lab needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (apt-get, namespaces, taps)" >&2
  exit 1
fi
packages=(
  ca-certificates     # cargo fetches crates over HTTPS
  git                 # the bundle's manifest records `git describe` of this tree
  python3             # scripts/module-cycles.py (test.sh checks the module graph); tests/junit.rs reads the JUnit XML back
  libxml2-utils       # xmllint: tests/junit.rs validates --junit's XML against tests/data/junit.xsd
  linux-image-amd64   # the guest kernel (/boot/vmlinuz-*) and its NIC modules
  iproute2            # namespaces, bridges, veths, taps
  gcc libc6-dev       # linking; libc.a for the statically linked guest agent
  g++                 # scripts/fuzz.sh: libfuzzer-sys compiles its bundled libFuzzer (C++)
  cpio file           # used by tests to cross-check the initramfs writer
  irtt iputils-ping   # compared with our probe by `harness bench probe`
  stress-ng           # compared with the agent's memory dirtier by `harness bench dirty`
  chromium            # headless: renders report.html in the report test
  fonts-dejavu-core   # a font for the SVG plots' text in headless Chromium (fresh machines have none)
  debootstrap e2fsprogs  # vm.image = "debian": the Debian 12 guest from Debian's packages; mke2fs -d and debugfs make its disk
  tshark              # independent RTP analyser: the streams test checks ours against `tshark -z rtp,streams`
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev libclang-dev pkg-config ffmpeg  # media crate: ffmpeg-next (libx264 encoder, H.264 decoder, MPEG-TS muxer); ffprobe checks its MPEG-TS
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
# QEMU from bookworm-backports (10.0), not bookworm's 7.2: 7.2's TCG live
# migration loses pages a running guest dirties, so the destination's
# kernel panics (list_add corruption, timerqueue_add GPFs), even for an
# idle guest now and then (docs/findings.md). 10.0 migrates cleanly.
backports() {
  echo "install-deps: installing $* from bookworm-backports"
  echo "deb http://deb.debian.org/debian bookworm-backports main" \
    > /etc/apt/sources.list.d/lmig-bookworm-backports.list
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -t bookworm-backports "$@" >/dev/null
}
qemu_major() { qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'; }
if [ "$(qemu_major)" = "" ] || [ "$(qemu_major)" -lt 10 ]; then
  backports qemu-system-x86
fi
# qemu-img (VM disks: empty images, reading one from the host), of the
# same QEMU release.
if ! command -v qemu-img >/dev/null 2>&1; then
  backports qemu-utils
fi
# libvirt for the libvirt backend (two daemons in the lab), also from
# bookworm-backports: 11.3 pairs with QEMU 10 (bookworm's 9.0 predates it).
# The monolithic libvirtd; no daemon is enabled or started here (the lab
# starts its own, in its namespaces).
libvirt_major() { libvirtd --version 2>/dev/null | sed -n 's/.* \([0-9]*\)\.[0-9.]*$/\1/p'; }
if [ "$(libvirt_major)" = "" ] || [ "$(libvirt_major)" -lt 11 ]; then
  backports libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
fi
# OpenSSH's server for the Proxmox stand-in's nodes (`qm migrate` over ssh):
# the stand-in runs its own sshd processes in the lab's namespaces. The
# package would start and enable the host's sshd; a policy-rc.d refuses the
# start while it installs, and on a systemd machine the units it enabled are
# disabled again (only when this script installed the package).
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
  echo "install-deps: installing openssh-server (its sshd is not started or enabled)"
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null || { [ "$own_policy" = 1 ] && rm -f "$policy"; exit 1; }
  [ "$own_policy" = 1 ] && rm -f "$policy"
  if [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
fi
# Rust: the machine's own toolchain if it has one (rustup's, say) that is new
# enough; otherwise Debian 12's own rustc-web/cargo-web (1.85 in bookworm,
# newer from bookworm-security), so a fresh machine needs nothing from
# outside Debian.
need_rust=1.82
rust_ok() {
  local v
  v=$(cargo --version 2>/dev/null | sed -n 's/^cargo \([0-9]*\.[0-9]*\).*/\1/p')
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$need_rust" "$v" | sort -V | head -n1)" = "$need_rust" ]
}
if ! rust_ok; then
  if command -v cargo >/dev/null 2>&1 && [ "$(command -v cargo)" != /usr/bin/cargo ]; then
    echo "install-deps: $(command -v cargo) is $(cargo --version); this project needs Rust $need_rust or newer (rustup update)" >&2
    exit 1
  fi
  echo "install-deps: installing Debian's Rust toolchain (cargo-web, rustc-web)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends cargo-web rustc-web >/dev/null
  hash -r
  if ! rust_ok; then
    echo "install-deps: Debian's cargo-web is $(cargo --version 2>&1); this project needs Rust $need_rust or newer" >&2
    exit 1
  fi
fi
