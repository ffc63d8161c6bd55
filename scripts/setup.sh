#!/usr/bin/env bash
# Installs what vrfwd needs to build, test and run on Debian 12 (as root):
# DPDK 22.11 (headers, PMDs, l3fwd sources), clang for bindgen, and the tools the
# tests and the demo drive (iproute2, scapy, ping, iperf3, tcpdump, BIRD 2, FRR,
# QEMU and busybox for the migration testbed's router guest; debootstrap and
# socat for the nested Xen testbed; faketime for the agent's clock-step test;
# python3-venv for TRex's client in the tests; prometheus, with promtool, for the
# metrics test; debhelper for scripts/package.sh).
# vrfwd runs with --no-huge in tests and the demo, so no hugepages are reserved.
set -euo pipefail
pkgs=(libdpdk-dev dpdk dpdk-dev dpdk-doc libclang-dev clang pkg-config meson ninja-build
      iproute2 ethtool iputils-ping iperf3 tcpdump python3-scapy procps bird2 frr
      qemu-system-x86 busybox-static cpio debootstrap socat faketime python3-venv prometheus
      debhelper)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust toolchain) is required" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
