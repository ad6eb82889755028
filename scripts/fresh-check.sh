#!/usr/bin/env bash
# Checks that the quick start works on a FRESH Debian 12 machine: debootstraps a clean bookworm
# root (minbase, like the debian:12 container image), copies the committed tree into it, and
# inside a chroot runs scripts/setup.sh (which also builds and installs the Python package), the
# release configure + build of zoft, a smoke run, and the Python package's pytest suite.
# Prints PASS, or FAIL with the failing step's log tail. Slow (a whole system and a whole build);
# opt-in, not part of CI. Needs root (debootstrap, chroot, mount) and the network.
#
#   scripts/fresh-check.sh [--run] [--worktree] [--keep]
#     --run       also ./scripts/run.sh --trainer.steps 2 (downloads the demo model from PyPI)
#     --worktree  copy the working tree (without build/ models/ .git) instead of git HEAD
#     --keep      keep the root after a PASS (a FAIL always keeps it, for a look inside)
#   ZOFT_FRESH_ROOT  scratch folder (default /tmp/zoft-fresh); its root/ is wiped first
#   ZOFT_FRESH_MIRROR  Debian mirror (default: this machine's, from its apt sources)
# Only the repository goes in, nothing that sits beside it: the demo's data ships in datasets/.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD

run_demo=0 copy_worktree=0 keep=0
for arg in "$@"; do
  case "$arg" in
    --run) run_demo=1 ;;
    --worktree) copy_worktree=1 ;;
    --keep) keep=1 ;;
    *) echo "fresh-check: unknown argument $arg (see the comment at the top)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

scratch=${ZOFT_FRESH_ROOT:-/tmp/zoft-fresh}
root=$scratch/root
logs=$scratch/logs

# The first URI of this machine's Debian sources, so that the check uses the same mirror.
host_mirror() {
  local uri
  uri=$(grep -h -m1 -E '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)
  [ -n "$uri" ] || uri=$(grep -h -m1 -E '^deb .*/debian/? bookworm' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror=${ZOFT_FRESH_MIRROR:-$(host_mirror)}

# Everything mounted under the root, deepest first; a root with anything still mounted is never
# deleted (rm -rf would reach the host's /dev).
unmount_all() {
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$root/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}
trap unmount_all EXIT
remove_root() {
  unmount_all
  if findmnt -rn -o TARGET | grep -qF "$root/"; then
    echo "fresh-check: something is still mounted under $root; not removing it" >&2
    return 1
  fi
  rm -rf "$root"
}

started=$SECONDS
# Runs one named step with its output in logs/<name>.log; on failure prints the tail and stops.
step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "fresh-check: $name ..."
  if "$@" >"$logs/$name.log" 2>&1; then
    echo "fresh-check: $name ok ($((SECONDS - t0)) s)"
  else
    echo "fresh-check: $name FAILED after $((SECONDS - t0)) s; last lines of $logs/$name.log:"
    tail -n 40 "$logs/$name.log" | sed 's/^/    /'
    echo "fresh-check: FAIL at step '$name' (root kept in $root)"
    exit 1
  fi
}

# Runs a command as root inside the fresh system, in the copied tree, with a clean environment.
# Only this machine's network set-up goes in: its resolver and its CA bundle (a machine behind a
# TLS-intercepting proxy trusts the proxy's CA; the fresh root's ca-certificates would not).
in_root() {
  env -i HOME=/root TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/fresh-check-host-ca.crt SSL_CERT_FILE=/etc/fresh-check-host-ca.crt \
    chroot "$root" /bin/bash -c "cd /root/zoft && $1"
}

make_root() {
  command -v debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  debootstrap --variant=minbase bookworm "$root" "$mirror"
  # The same suites as a fresh install: main, updates and security.
  local security=${mirror%/debian}/debian-security
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

mount_system() {
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/fresh-check-host-ca.crt"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
}

copy_tree() {
  mkdir -p "$root/root/zoft"
  if [ "$copy_worktree" = 1 ]; then
    tar -C "$source_dir" --exclude=./build --exclude=./python/build --exclude=./models \
      --exclude=./.git -cf - . | tar -C "$root/root/zoft" -xf -
  else
    git -C "$source_dir" archive HEAD | tar -C "$root/root/zoft" -xf -
  fi
}

remove_root
rm -rf "$logs"
mkdir -p "$root" "$logs"
echo "fresh-check: root $root, mirror $mirror, tree $([ "$copy_worktree" = 1 ] && echo 'working tree' || git -C "$source_dir" rev-parse --short HEAD)"

step debootstrap make_root
step mount mount_system
step copy-tree copy_tree
step setup in_root "./scripts/setup.sh"
step configure in_root "cmake --preset release"
step build in_root "cmake --build --preset release --target zoft"
step smoke in_root "./build/release/zoft --help"
if [ "$run_demo" = 1 ]; then
  step run in_root "./scripts/run.sh --trainer.steps 2"
fi
# The Python package setup.sh built and installed into the root's python3, tested as
# scripts/test.sh tests it (the demo-model tests run after --run, else skip).
step python-tests in_root "ZOFT_CLI=build/release/zoft python3 -m pytest -q -rs python/tests"

elapsed=$((SECONDS - started))
echo "fresh-check: PASS in $((elapsed / 60)) min $((elapsed % 60)) s ($(date -u +%Y-%m-%d), Debian $(cat "$root/etc/debian_version"))"
if [ "$keep" = 1 ]; then unmount_all; else remove_root; fi
