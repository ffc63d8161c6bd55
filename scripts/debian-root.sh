#!/usr/bin/env bash
# A clean Debian 12 root for the package test (tests/package.rs): debootstrap
# minbase with systemd (for `systemd-analyze verify` against the root) and
# apt's package lists, made once in CACHE_DIR, as the Xen testbed's image is.
# The test installs the packages into a copy; what apt downloads for them is
# kept here for the next run.
#
# usage: debian-root.sh CACHE_DIR   → CACHE_DIR/debian12-root
set -euo pipefail
cache=$1
root=$cache/debian12-root
[ -f "$root/.complete" ] && exit 0
mirror=${MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
mkdir -p "$cache"
rm -rf "$root"
debootstrap --variant=minbase --include=systemd bookworm "$root" "$mirror" >/dev/null
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
  >"$root/etc/apt/sources.list"
chroot "$root" apt-get update -qq
touch "$root/.complete"
