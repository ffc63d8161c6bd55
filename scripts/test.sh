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
# Integration tests start DPDK processes and namespaces: one test binary at a time.
cargo test --workspace --all-targets -- --test-threads=1
