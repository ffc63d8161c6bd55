#!/usr/bin/env bash
# Builds the Debian packages vrfwd and vrfwd-agent (dpkg-buildpackage, debhelper)
# from release binaries: target/package/vrfwd_*.deb and vrfwd-agent_*.deb.
# The build runs in target/package/build, a copy of debian/ only, so that its
# output lands in target/package. Needs debhelper (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo build --release -p vrfwd --bin vrfwd -p vrfwd-agent --bin vrfwd-agent
out=$root/target/package
rm -rf "$out"
mkdir -p "$out/build"
cp -r debian "$out/build/"
# -d: cargo and rustc come from rustup, not from Build-Depends.
(cd "$out/build" && VRFWD_SRC="$root" VRFWD_TARGET="$root/target" \
  dpkg-buildpackage -b -us -uc -d >"$out/build.log" 2>&1) \
  || { tail -40 "$out/build.log" >&2; exit 1; }
ls "$out"/*.deb
