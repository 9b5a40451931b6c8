#!/usr/bin/env bash
# Builds the statically linked guest agent (it becomes the guest's /init)
# and the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
# Name the target explicitly so build scripts and proc-macros stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target x86_64-unknown-linux-gnu -p guest-agent
cargo build --release --locked -p harness -p client-probe
