#!/usr/bin/env bash
# Builds (or removes) the one-machine test topology used by the demo and the
# integration tests:
#
#   ${P}s (sender, 10.0.1.2/24)  --veth--  ${P}u0 ┐
#                                                  │ vrfwd (af_packet ports, root ns)
#   ${P}r (receiver, 10.0.2.2/24) --veth-- ${P}u1 ┤   VR 1: eth0 10.0.1.1/24 on lan0, eth1 10.0.2.1/24 on lan1
#                                                  │   VR 2: same prefixes, overlapping, on lan2/lan3
#   ${P}g (guest of VR 1: g0, g1; ip_forward=1) ── ${P}v0, ${P}v1 (vifs)
#   ${P}t (sender of VR 2) / ${P}q (receiver of VR 2) / ${P}h (guest of VR 2)
#
# SHARED_LAN=1 puts VR 2's eth0 on lan0 beside VR 1's, as 10.0.1.101/24 (lan2
# and ${P}t are then a segment without VRs): the isolation tests' set-up.
#
# DUAL_STACK=1 adds IPv6 to VR 1's side: sender 2001:db8:1::2/64, receiver
# 2001:db8:2::2/64, the guest 2001:db8:1::1/64 and 2001:db8:2::1/64 (forwarding
# IPv6, routing 2001:db8:9::/48 via the receiver's link-local address), and
# VR 1's interfaces the same addresses and route in vrfwd's config.
#
# LAN1_MTU=N gives segment lan1 (VR 1's eth1, the receiver's side) that IP MTU,
# in vrfwd's config and on the guest's g1 and the receiver's eth0.
#
# vrfwd's route protocol listens on port $CONTROL_PORT (default 7700) of the root
# namespace, reached by VR 1's guest on 10.255.0.1 over its control NIC ctl0; VR
# credentials "red-secret-for-tests" and "blue-secret-for-tests"; HOLD_TIME_S, IDLE_TIMEOUT_S,
# KEEPALIVE_S, WRITE_TIMEOUT_S, MAX_ROUTES, MAX_STANZAS_PER_S, MAX_SESSIONS_PER_SOURCE,
# MAX_CONNECTIONS, HELLO_TIMEOUT_S, MAX_AUTH_FAILURES, ACCEPT_V1 override the limits,
# COMPACT_TABLE_KIB sets limits.compact_table_kib (when a VR's table widens);
# METRICS_LISTEN=ADDR:PORT serves Prometheus metrics there;
# HOST_CREDENTIAL (with PEER, the one host it accepts clones from) enables clones;
# STANDBY=1 starts VR 1 in standby (a migration's destination; its guest's NICs
# down until a test brings them up); QUIET_MS and
# DRAIN_MS set control.quiet_ms and control.drain_ms;
# LCORES (default 1) runs that many lcores from core VRFWD_CORE (default 0) on,
# each with a queue pair on every port. The config is written by vrfwd-config
# (in VRFWD_BIN, default target/release), the builder the tests and benchmarks use.
#
# usage: topology.sh up PREFIX CONFIG_OUT | down PREFIX
set -euo pipefail
cmd=$1 P=$2

ns() { ip netns exec "$1" "${@:2}"; }

# veth NS NSIF HOSTIF ADDR/LEN [MAC]: one end in NS, the other in the root ns.
veth() {
  local n=$1 nsif=$2 hostif=$3 addr=$4 mac=${5:-}
  ip link add "$hostif" type veth peer name "$nsif" netns "$n"
  # The host end belongs to vrfwd (af_packet also hands it what the host sends
  # there): no IPv6 chatter of the host's own (MLD, router solicitations) from
  # a MAC that port security would count as spoofed.
  sysctl -qw "net.ipv6.conf.$hostif.disable_ipv6=1"
  ip link set "$hostif" up
  ethtool -K "$hostif" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
  if [ -n "$mac" ]; then ns "$n" ip link set "$nsif" address "$mac"; fi
  ns "$n" ethtool -K "$nsif" tx off rx off gso off tso off gro off >/dev/null 2>&1 || true
  ns "$n" ip link set "$nsif" up
  ns "$n" ip addr add "$addr" dev "$nsif"
}

# The receiver's link-local address: the EUI-64 of its MAC, 02:00:00:00:bb:02.
RECEIVER_LL=fe80::ff:fe00:bb02

# VR 1's side in IPv6 (DUAL_STACK=1); addresses without duplicate address
# detection, so that they are usable at once.
dual_stack() {
  ns "${P}s" ip addr add 2001:db8:1::2/64 dev eth0 nodad
  ns "${P}r" ip addr add 2001:db8:2::2/64 dev eth0 nodad
  ns "${P}g" ip addr add 2001:db8:1::1/64 dev g0 nodad
  ns "${P}g" ip addr add 2001:db8:2::1/64 dev g1 nodad
  ns "${P}s" ip -6 route add default via 2001:db8:1::1
  ns "${P}r" ip -6 route add default via 2001:db8:2::1
  ns "${P}g" sysctl -qw net.ipv6.conf.all.forwarding=1
  ns "${P}g" ip -6 route add 2001:db8:9::/48 via "$RECEIVER_LL" dev g1
  ns "${P}r" ip addr add 2001:db8:9::1/128 dev lo
  for n in s r g; do ns "$P$n" sysctl -qw net.ipv6.icmp.ratelimit=0; done
}

up() {
  local out=$1 vr2_lan=lan2 vr2_addr=10.0.1.1
  if [ -n "${SHARED_LAN:-}" ]; then vr2_lan=lan0 vr2_addr=10.0.1.101; fi
  local standby=false
  if [ -n "${STANDBY:-}" ]; then standby=true; fi
  for n in s r g t q h; do ip netns add "$P$n"; ns "$P$n" ip link set lo up; done
  # VR 1
  veth "${P}s" eth0 "${P}u0" 10.0.1.2/24 02:00:00:00:aa:02
  veth "${P}r" eth0 "${P}u1" 10.0.2.2/24 02:00:00:00:bb:02
  veth "${P}g" g0 "${P}v0" 10.0.1.1/24 02:00:00:00:01:01
  veth "${P}g" g1 "${P}v1" 10.0.2.1/24 02:00:00:00:02:01
  ns "${P}s" ip route add default via 10.0.1.1
  ns "${P}r" ip route add default via 10.0.2.1
  # VR 1's control NIC: the guest reaches vrfwd's route protocol on 10.255.0.1.
  veth "${P}g" ctl0 "${P}c0" 10.255.0.2/24
  ip addr add 10.255.0.1/24 dev "${P}c0"
  ns "${P}g" sysctl -qw net.ipv4.ip_forward=1
  ns "${P}g" ip route add 10.9.0.0/16 via 10.0.2.2
  local v6=()
  if [ -n "${DUAL_STACK:-}" ]; then dual_stack; v6=(
    --interface 1,eth0,02:00:00:00:01:01,10.0.1.1/24,lan0,v0,address6=2001:db8:1::1/64
    --interface 1,eth1,02:00:00:00:02:01,10.0.2.1/24,lan1,v1,address6=2001:db8:2::1/64
    --route "1,2001:db8:9::/48,$RECEIVER_LL,eth1"); else v6=(
    --interface 1,eth0,02:00:00:00:01:01,10.0.1.1/24,lan0,v0
    --interface 1,eth1,02:00:00:00:02:01,10.0.2.1/24,lan1,v1); fi
  # VR 2: overlapping addresses, its own segments and guest
  veth "${P}t" eth0 "${P}u2" 10.0.1.2/24 02:00:00:00:cc:02
  veth "${P}q" eth0 "${P}u3" 10.0.2.2/24 02:00:00:00:dd:02
  veth "${P}h" g0 "${P}v2" "$vr2_addr/24" 02:00:00:01:01:01
  veth "${P}h" g1 "${P}v3" 10.0.2.1/24 02:00:00:01:02:01
  ns "${P}t" ip route add default via 10.0.1.1
  ns "${P}q" ip route add default via 10.0.2.1
  ns "${P}h" sysctl -qw net.ipv4.ip_forward=1
  # A standby VR's guest runs elsewhere: its NICs stay down here until it "arrives".
  if [ "$standby" = true ]; then
    for i in g0 g1; do ns "${P}g" ip link set "$i" down; done
  fi
  # No ICMP rate limit in the guests: tests count every error they send.
  for g in g h; do ns "$P$g" sysctl -qw net.ipv4.icmp_ratelimit=0; done
  local lcores=${LCORES:-1} cores qpairs="" args=()
  cores=$(seq -s, "${VRFWD_CORE:-0}" $((${VRFWD_CORE:-0} + lcores - 1)))
  [ "$lcores" -gt 1 ] && qpairs=",qpairs=$lcores"
  # PORTS=socket: every port vrfwd's own sockets (which a successor can take
  # over), not the af_packet PMD.
  for p in u v; do
    for i in 0 1 2 3; do
      if [ "${PORTS:-}" = socket ]; then args+=(--port "$p$i=socket:$P$p$i")
      else args+=(--port "$p$i=net_af_packet$P$p$i,iface=$P$p$i$qpairs"); fi
    done
  done
  local lan1_mtu=""
  if [ -n "${LAN1_MTU:-}" ]; then
    lan1_mtu=",mtu=$LAN1_MTU"
    ns "${P}g" ip link set g1 mtu "$LAN1_MTU"
    ns "${P}r" ip link set eth0 mtu "$LAN1_MTU"
  fi
  args+=(--segment lan0=u0 --segment "lan1=u1$lan1_mtu" --segment lan2=u2 --segment lan3=u3)
  [ -n "${METRICS_LISTEN:-}" ] && args+=(--set "metrics.listen=\"$METRICS_LISTEN\"")
  [ -n "${HOST_CREDENTIAL:-}" ] && args+=(
    --set "control.host_credential=\"$HOST_CREDENTIAL\""
    --set "control.peers=[\"${PEER:-10.99.99.99}\"]")
  "${VRFWD_BIN:-$(dirname "$0")/../target/release}/vrfwd-config" \
    --core "${VRFWD_CORE:-0}" --prefix "vrfwd-$P" --socket "/run/vrfwd-$P.sock" \
    --set "cores=[$cores]" \
    --set "control.listen=\"0.0.0.0:${CONTROL_PORT:-7700}\"" \
    --set "control.hold_time_s=${HOLD_TIME_S:-90}" \
    --set "control.idle_timeout_s=${IDLE_TIMEOUT_S:-30}" \
    --set "control.keepalive_s=${KEEPALIVE_S:-10}" \
    --set "control.write_timeout_s=${WRITE_TIMEOUT_S:-10}" \
    --set "control.max_routes_per_vr=${MAX_ROUTES:-2000000}" \
    --set "control.max_stanzas_per_s=${MAX_STANZAS_PER_S:-10000}" \
    --set "control.max_sessions_per_source=${MAX_SESSIONS_PER_SOURCE:-16}" \
    --set "control.max_connections=${MAX_CONNECTIONS:-2048}" \
    --set "control.hello_timeout_s=${HELLO_TIMEOUT_S:-5}" \
    --set "control.max_auth_failures_per_min=${MAX_AUTH_FAILURES:-10}" \
    --set "control.accept_v1=${ACCEPT_V1:-true}" \
    --set "control.quiet_ms=${QUIET_MS:-2000}" \
    --set "control.drain_ms=${DRAIN_MS:-2000}" \
    --set "limits.compact_table_kib=${COMPACT_TABLE_KIB:-65536}" \
    --set "idle.spin_polls=512" --set "idle.max_sleep_us=200" \
    "${args[@]}" \
    --vr "1,name=red,credential=red-secret-for-tests,standby=$standby" \
    "${v6[@]}" \
    --route 1,10.9.0.0/16,10.0.2.2 \
    --vr 2,name=blue,credential=blue-secret-for-tests \
    --interface "2,eth0,02:00:00:01:01:01,$vr2_addr/24,$vr2_lan,v2" \
    --interface 2,eth1,02:00:00:01:02:01,10.0.2.1/24,lan3,v3 \
    -o "$out"   # mode 0600: it holds the VRs' credentials
}

down() {
  # a, b, x: the multipath tests' neighbour routers and the host behind them.
  for n in s r g t q h a b x; do ip netns del "$P$n" 2>/dev/null || true; done
  for l in u0 u1 u2 u3 v0 v1 v2 v3 c0; do ip link del "$P$l" 2>/dev/null || true; done
  rm -f "/run/vrfwd-$P.sock"
}

case $cmd in
  up) down; up "$3" ;;
  down) down ;;
  *) echo "usage: $0 up PREFIX CONFIG_OUT | down PREFIX" >&2; exit 2 ;;
esac
