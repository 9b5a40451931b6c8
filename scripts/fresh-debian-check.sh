#!/usr/bin/env bash
# Runs the README's two commands in a minimal Debian 12 made on the spot
# (debootstrap --variant=minbase: no Rust, no git, no QEMU), to show that
# they install everything they need on a fresh machine. For developers;
# needs root, debootstrap and about 6 GiB of disk; takes 20-30 minutes.
#
#   bash scripts/fresh-debian-check.sh [WORKDIR]    # default /var/tmp/lmig-fresh
#
# The commit checked is this tree's HEAD (cloned, as CI clones). The chroot
# shares this machine's kernel, /dev (tun, kvm), /sys and /proc, so its
# namespaces and QEMUs are real; its /run and /tmp are its own. CA
# certificates added to this machine (/usr/local/share/ca-certificates)
# are copied in, so a machine behind a TLS-inspecting proxy can fetch
# crates; nothing else of this machine's is. Everything mounted is
# unmounted on exit, also on failure; WORKDIR stays for a look (remove it
# with `rm -rf --one-file-system WORKDIR` once nothing is mounted there).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "fresh-debian-check: run as root (debootstrap, chroot, mounts)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  echo "fresh-debian-check: apt-get install debootstrap" >&2
  exit 1
}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/var/tmp/lmig-fresh}
root=$work/root
mkdir -p "$work"

mounted=()
cleanup() {
  # Innermost first; lazily, so a process still inside cannot block it.
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
mnt() { # mnt ARGS... TARGET
  mount "$@"
  mounted+=("${!#}")
}

if [ ! -x "$root/bin/bash" ]; then
  echo "fresh-debian-check: debootstrap bookworm (minbase) into $root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log"
fi
# What a Debian 12 installation has in its sources.
cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi

# `ip netns` remounts / as a slave: the chroot's / must be a mount point.
mnt --bind "$root" "$root"
mount --make-private "$root"
mnt -t proc proc "$root/proc"
mnt --rbind /sys "$root/sys"
mnt --rbind /dev "$root/dev"
mnt -t tmpfs tmpfs "$root/run"
mnt -t tmpfs tmpfs "$root/tmp"

rm -rf "$root/root/lmig"
git clone -q "$repo" "$root/root/lmig"
echo "fresh-debian-check: checking $(git -C "$root/root/lmig" log --oneline -1)"

inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "$1"
}
# (The copied certificates are trusted once install-deps installs
# ca-certificates, whose set-up reads /usr/local/share/ca-certificates.)
status=0
inside 'cd /root/lmig && bash scripts/quickstart.sh' >"$work/quickstart.log" 2>&1 || status=$?
echo "fresh-debian-check: quickstart exit $status (log: $work/quickstart.log)"
tail -n 8 "$work/quickstart.log"
[ "$status" = 0 ] || exit 1

inside 'cd /root/lmig && bash scripts/test.sh' >"$work/test.log" 2>&1 || status=$?
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$work/test.log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$work/test.log" | awk '{s += $1} END {print s + 0}')
echo "fresh-debian-check: test.sh exit $status: $passed passed, $failed failed (log: $work/test.log)"
# The chroot's namespaces are its own (its /run); its QEMUs are those
# whose root is the chroot.
left=$(inside 'ip netns list')
for pid in $(pgrep -f -- 'qemu-system-x86_64 -name lmig-' || true); do
  [ "$(readlink "/proc/$pid/root")" = "$root" ] && left+=" qemu:$pid"
done
if [ -n "$left" ]; then
  echo "fresh-debian-check: left behind in the chroot: $left" >&2
  status=1
fi
exit "$status"
