#!/usr/bin/env bash
# The demo: builds vrfwd, brings up a small namespace topology (sender, receiver,
# and a guest namespace as VR 1's slow path; a second VR with the same prefixes),
# forwards traffic through vrfwd, prints the counters and what went where, and
# removes everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin vrfwd --bin vrfwd-config
P=demo
CONF=$(mktemp /tmp/vrfwd-demo.XXXX.toml)
cleanup() {
  [ -n "${PID:-}" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  bash scripts/topology.sh down $P
  rm -f "$CONF"
}
trap cleanup EXIT
bash scripts/topology.sh up $P "$CONF"
./target/release/vrfwd run -c "$CONF" >/tmp/vrfwd-demo.log 2>&1 &
PID=$!
for _ in $(seq 100); do ./target/release/vrfwd stats -s /run/vrfwd-$P.sock >/dev/null 2>&1 && break; sleep 0.1; done
rx() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }

echo "== ping through VR 1 (first packets take the guest while vrfwd learns the neighbours)"
ip netns exec ${P}s ping -c 3 -i 0.2 10.0.2.2
echo "== ping through VR 2 (same prefixes, its own segments)"
ip netns exec ${P}t ping -c 2 -i 0.2 10.0.2.2
guest_before=$(rx ${P}g g0)
echo "== iperf3: 5 s of UDP at 20 Mbit/s from sender to receiver through VR 1"
ip netns exec ${P}r iperf3 -s -1 -D
sleep 0.5
ip netns exec ${P}s iperf3 -u -b 20M -t 5 -c 10.0.2.2 | tail -4
guest_after=$(rx ${P}g g0)
echo "== traceroute-style check: TTL 1 is answered by the guest's kernel"
ip netns exec ${P}s ping -c 1 -t 1 -W 1 10.0.2.2 || true
echo
echo "== vrfwd counters"
./target/release/vrfwd stats -s /run/vrfwd-$P.sock
echo "== what went where: frames the guest received on eth0 during the iperf3 run: $((guest_after - guest_before))"
echo "   (the data went sender -> vrfwd -> receiver; the guest only saw control traffic)"
