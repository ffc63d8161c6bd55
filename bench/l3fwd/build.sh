#!/usr/bin/env bash
# Builds DPDK's l3fwd from Debian's example sources (dpdk-doc) into DIR/l3fwd and
# prints the binary's path: the baseline of bench/fastpath and bench/compare.
# Changed for virtual ports and large tables: no RX checksum offload and no RSS
# (pcap, ring and memif refuse them), and LPM and LPM6 with room for 1M rules.
set -euo pipefail
dir=${1:?usage: build.sh DIR}
src=/usr/share/dpdk/examples/l3fwd
build=$dir/l3fwd
mkdir -p "$build"
cp -r "$src"/. "$build"/
sed -i -e 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,//' \
       -e 's/\.mq_mode = RTE_ETH_MQ_RX_RSS,/.mq_mode = RTE_ETH_MQ_RX_NONE,/' "$build/main.c"
sed -i -e 's/IPV4_L3FWD_LPM_MAX_RULES         1024/IPV4_L3FWD_LPM_MAX_RULES (1 << 20)/' \
       -e 's/IPV4_L3FWD_LPM_NUMBER_TBL8S (1 << 8)/IPV4_L3FWD_LPM_NUMBER_TBL8S (1 << 16)/' \
       -e 's/IPV6_L3FWD_LPM_MAX_RULES         1024/IPV6_L3FWD_LPM_MAX_RULES (1 << 20)/' "$build/l3fwd_lpm.c"
# The sources include examples/common/sse/port_group.h.
sed -i 's|CFLAGS += -O3|CFLAGS += -O3 -I/usr/share/dpdk/examples/common|' "$build/Makefile"
grep -q 'RTE_ETH_MQ_RX_NONE' "$build/main.c" && grep -q 'IPV4_L3FWD_LPM_MAX_RULES (1 << 20)' "$build/l3fwd_lpm.c" \
  && grep -q 'IPV6_L3FWD_LPM_MAX_RULES (1 << 20)' "$build/l3fwd_lpm.c" \
  || { echo "build.sh: l3fwd's sources changed; the edits no longer apply" >&2; exit 1; }
make -s -C "$build" shared >&2
echo "$build/build/l3fwd"
