#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ on the stable toolchain (libfuzzer-sys's
# bundled libFuzzer, rustc's stable SanitizerCoverage flags; fuzz/README.md
# says why) and runs each for a number of executions or a time:
#
#   scripts/fuzz.sh --runs 1000000              # every target, 1e6 inputs each
#   scripts/fuzz.sh --seconds 60 rtp qmp        # these two, a minute each
#   scripts/fuzz.sh --list                      # the targets
#
# Per target it prints the executions and the crashes found (a crash stops
# that target: its input is saved in fuzz/artifacts/<target>/); it exits 1
# when any target crashed. New inputs go to fuzz/corpus-generated/<target>/
# (not committed); the seeds in fuzz/corpus/<target>/ are only read.
# Reproduce a crash with
#   fuzz/target/<host>/release/<target> fuzz/artifacts/<target>/crash-...
# Needs cargo and a C++ compiler (scripts/install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

all_targets=(probe_decode rtp clip_decode rtp_ext qmp control_api tool_output replies_csv rtp_pcap agent_config proxmox_tasklog)

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

runs=""
seconds=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --list) printf '%s\n' "${all_targets[@]}"; exit 0 ;;
    -h|--help) usage ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *)
      known=0
      for t in "${all_targets[@]}"; do [ "$t" = "$1" ] && known=1; done
      if [ $known = 0 ]; then
        echo "fuzz.sh: no target $1 (targets: ${all_targets[*]})" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
if [ -n "$runs" ] && [ -n "$seconds" ]; then
  echo "fuzz.sh: give --runs or --seconds, not both" >&2
  exit 2
fi
if [ -z "$runs" ] && [ -z "$seconds" ]; then
  runs=1000000
fi
for v in $runs $seconds; do
  case "$v" in ''|*[!0-9]*) echo "fuzz.sh: $v is not a whole number" >&2; exit 2 ;; esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

command -v cargo >/dev/null || { echo "fuzz.sh: no cargo (run scripts/install-deps.sh)" >&2; exit 1; }
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: no C++ compiler for libFuzzer (run scripts/install-deps.sh, or apt-get install g++)" >&2
  exit 1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
# Coverage instrumentation with stable rustc flags (what cargo-fuzz passes,
# less its nightly-only -Zsanitizer): edge counters, the PC table and
# comparison tracing for libFuzzer; `--cfg fuzzing` as cargo-fuzz sets it;
# overflow checks and debug assertions so that they count as crashes.
# `--target` keeps these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
build_args=(build --release --target "$host")
for t in "${targets[@]}"; do build_args+=(--bin "$t"); done
echo "fuzz.sh: building ${targets[*]}"
cargo "${build_args[@]}"

limit=(-runs="$runs")
[ -n "$seconds" ] && limit=(-max_total_time="$seconds")
results=()
crashed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus-generated/$t" "artifacts/$t" "corpus/$t"
  log="artifacts/$t/last-run.log"
  found() { find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
  before=$(found)
  echo "fuzz.sh: running $t (${limit[*]})"
  status=0
  nice -n 10 "target/$host/release/$t" "${limit[@]}" \
    -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix="artifacts/$t/" \
    "corpus-generated/$t" "corpus/$t" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  after=$(found)
  crashes=$((after - before))
  if [ $status -ne 0 ] && [ $crashes -eq 0 ]; then
    crashes=1 # failed without writing an input (e.g. out of memory at start)
  fi
  if [ $crashes -gt 0 ]; then
    crashed=1
    echo "fuzz.sh: $t CRASHED; see $PWD/$log" >&2
    grep -E "panicked at|^==[0-9]+== ERROR|SUMMARY|Test unit written" "$log" | head -n 8 >&2 || true
  fi
  results+=("$(printf '%-14s %12s executions  %d crashes' "$t" "${execs:-?}" "$crashes")")
done
echo
echo "fuzz.sh: results"
printf '  %s\n' "${results[@]}"
exit $crashed
