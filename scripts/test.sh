#!/usr/bin/env bash
# The whole test suite: installs what it needs, then formatting, lints, unit tests
# and integration tests (namespaces, af_packet and ring ports; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The integration tests run the binaries of every crate (vrfwd-agent is another
# package, so `cargo test` alone would not build its executable).
cargo build --workspace --bins
# The Debian packages, which tests/package.rs installs into a clean Debian root.
bash scripts/package.sh >/dev/null
# Integration tests start DPDK processes and namespaces: one test binary at a time.
cargo test --workspace --all-targets -- --test-threads=1
# The lock-free cache's seqlock under loom's memory model (its own cfg, so its own
# target dir: ≈ 1.5 min to build, the check itself takes a second).
RUSTFLAGS="--cfg vrfwd_loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release -p vrfwd --lib loom_tests
# The TRex profiles, loaded by TRex's own client (PyPI: lbr-trex-client, in a
# venv; no TRex server), and the NDR/PDR search against simulated devices.
venv=${VRFWD_TREX_VENV:-/var/cache/vrfwd-testbed/trex-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import lbr_trex_client' 2>/dev/null \
  || "$venv/bin/pip" install -q --disable-pip-version-check lbr-trex-client==3.4.0
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m unittest discover -s bench/trex -t bench/trex
