#!/usr/bin/env bash
# The README's first command: install, build, run scenarios/quickstart.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec target/release/harness run scenarios/quickstart.toml "$@"
