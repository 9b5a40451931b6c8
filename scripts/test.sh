#!/usr/bin/env bash
# The README's second command: install, build the guest agent, run every
# test (unit, loopback and real-lab integration tests), then check that
# nothing of the lab is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target x86_64-unknown-linux-gnu -p guest-agent
# The lab's QEMUs are named `-name lmig-<run id>-...` (libvirt's:
# `-name guest=lmig-...`), its libvirt daemons use a pid file in their
# private run folder; pgrep only looks.
lab_qemus() {
  pgrep -f -- 'qemu-system-x86_64 -name (guest=)?lmig-' || true
  pgrep -f -- '^libvirtd --listen --pid-file /run/libvirt/libvirtd.pid' || true
}
before_ns=$(ip netns list | awk '{print $1}' | grep -c '^lmig-' || true)
before_qemu=$(lab_qemus | grep -c . || true)
status=0
# The layout's two rules: the measurement core links no I/O library, and
# no module imports another back.
banned=$(cargo tree --locked -p measure -e normal --prefix none | awk '{print $1}' | grep -E '^(tokio|nix|pnet.*|hyper|ffmpeg-next|ffmpeg-sys-next|plotters)$' | sort -u || true)
if [ -n "$banned" ]; then
  echo "test.sh: the measure crate links" $banned >&2
  status=1
fi
python3 scripts/module-cycles.py || status=1
cargo test --workspace --locked --no-fail-fast || status=$?
left=$(ip netns list | awk '{print $1}' | grep '^lmig-' || true)
after_ns=$(printf '%s' "$left" | grep -c . || true)
if [ "$after_ns" -gt "$before_ns" ]; then
  echo "test.sh: the tests left lab namespaces behind:" $left >&2
  status=1
fi
qemus=$(lab_qemus)
if [ "$(printf '%s' "$qemus" | grep -c . || true)" -gt "$before_qemu" ]; then
  echo "test.sh: the tests left lab QEMU or libvirtd processes behind (PIDs):" $qemus >&2
  status=1
fi
exit $status
