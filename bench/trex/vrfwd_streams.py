"""Stream builders shared by the vrfwd TRex profiles (vrfwd_64b.py, vrfwd_imix.py,
vrfwd_78b_ipv6.py, vrfwd_imix_ipv6.py, vrfwd_latency.py, vrfwd_migration.py). A
profile's tunables pick the plan (see plan.py: the VRs' MACs and route tables, of
one family) or describe a synthetic one.

Each VR gets its own streams: frames addressed to the VR's interface MAC (kept as
built: TRex would otherwise write the port's configured destination MAC), with
the field engine drawing the destination address at random from addresses
inside that VR's table: IPv4, the whole address and the header checksum fixed;
IPv6 (no header checksum), the first 64 bits of the address, which hold every
prefix of the plan (none is longer than /64), the last 64 bits those of one
drawn address. The UDP checksum is not rewritten: routers do not check it. The streams' rates are
relative weights: the driver (bench/trex/run) sets the total with
`start(mult="<N>pps")`, or a profile's `--pps` makes them absolute.
"""
import argparse

import plan as vrplan
import ipaddress

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from trex.stl.api import (STLFlowLatencyStats, STLPktBuilder, STLStream, STLStreamDstMAC_PKT,
                          STLTXCont, STLVmFixIpv4, STLVmFlowVar, STLVmWrFlowVar)

UDP_PORT = 0x5647  # vrfwd-trafgen's, so both generators' frames look alike
# Packet-group ids of the latency and migration streams.
LATENCY_PG = 7
MIGRATION_PG = 8


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--plan', help='a plan JSON (bench/trex/plan.py); without it a synthetic one')
    p.add_argument('--vrs', type=int, default=1, help='synthetic plan: VRs')
    p.add_argument('--routes', type=int, default=10_000, help='synthetic plan: prefixes per VR')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--destinations', type=int, default=4096,
                   help='addresses drawn per VR (the field engine picks among them at random)')
    p.add_argument('--pps', type=float, default=0, help='total packets/s (0: relative weights)')
    return p


def load_plan(args, size, version=4):
    """The plan of --plan, or a synthetic one of `size` and IP `version`."""
    if args.vrs < 1 or args.destinations < 1:
        raise ValueError('--vrs and --destinations must be at least 1')
    if args.plan:
        return vrplan.load(args.plan)
    return vrplan.make(args.vrs, args.routes, size, args.seed, version)


def frame(vr, src_mac, src_ip, size, dst):
    """A UDP frame of `size` bytes on the wire (TRex adds the 4-byte FCS) to `dst`
    (an integer), of the source address's family."""
    if ipaddress.ip_address(src_ip).version == 6:
        ip = IPv6(src=src_ip, dst=str(ipaddress.IPv6Address(dst)), hlim=64)
    else:
        ip = IP(src=src_ip, dst=str(ipaddress.IPv4Address(dst)), ttl=64)
    base = Ether(dst=vr['mac'], src=src_mac) / ip / UDP(sport=UDP_PORT, dport=UDP_PORT)
    return base / (b'\x00' * max(0, size - 4 - len(base)))


def destination_vm(dsts, version):
    """Field-engine instructions that write a destination drawn from `dsts`."""
    if version == 6:
        return [STLVmFlowVar(name='dst', value_list=sorted({d >> 64 for d in dsts}), op='random', size=8),
                STLVmWrFlowVar(fv_name='dst', pkt_offset='IPv6.dst')]
    return [STLVmFlowVar(name='dst', value_list=dsts, op='random', size=4),
            STLVmWrFlowVar(fv_name='dst', pkt_offset='IP.dst'),
            STLVmFixIpv4(offset='IP')]


def vr_streams(plan, args, name):
    """Per VR and frame size of the plan's mix, a continuous stream to random
    destinations inside the VR's table; weights split the total evenly over the
    VRs and by the size mix."""
    streams = []
    sizes = vrplan.sizes(plan)
    version = vrplan.family(plan)
    total_weight = sum(w for _, w in sizes) * len(plan['vrs'])
    for v, vr in enumerate(plan['vrs']):
        dsts = vrplan.destinations(vr, min(args.destinations, 65535), args.seed + v)
        for size, weight in sizes:
            vm = destination_vm(dsts, version)
            pps = args.pps * weight / total_weight if args.pps else weight
            pkt = frame(vr, plan['src_mac'], plan['src_ip'], size, dsts[0])
            streams.append(STLStream(
                name=f'{name}-vr{v}-{size}B',
                packet=STLPktBuilder(pkt=pkt, vm=vm),
                mode=STLTXCont(pps=pps),
                mac_dst_override_mode=STLStreamDstMAC_PKT))
    return streams


def seq_stream(plan, args, pg_id, pps, name):
    """One stream to one address inside the first VR's table, with TRex's sequence
    numbers and timestamps (packet group `pg_id`): loss, duplicates, reordering
    and latency per packet."""
    vr = plan['vrs'][0]
    dst = vrplan.destinations(vr, 1, args.seed)[0]
    pkt = frame(vr, plan['src_mac'], plan['src_ip'], vrplan.sizes(plan)[0][0], dst)
    return STLStream(name=name, packet=STLPktBuilder(pkt=pkt), mode=STLTXCont(pps=pps),
                     flow_stats=STLFlowLatencyStats(pg_id=pg_id), mac_dst_override_mode=STLStreamDstMAC_PKT)


class ForwardingProfile:
    """The profile of vrfwd_64b.py, vrfwd_imix.py and their IPv6 variants:
    `vr_streams` with one size mix, of one family (a synthetic plan's)."""

    def __init__(self, size, doc, version=4):
        self.size, self.doc, self.version = size, doc, version

    def get_streams(self, tunables, **kwargs):
        args = parser(self.doc).parse_args(tunables)
        plan = load_plan(args, self.size, self.version)
        return vr_streams(plan, args, 'imix' if self.size == 'imix' else f'{self.size}b')
