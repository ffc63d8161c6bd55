"""Stream builders shared by the vrfwd TRex profiles (vrfwd_64b.py, vrfwd_imix.py,
vrfwd_latency.py, vrfwd_migration.py). A profile's tunables pick the plan (see
plan.py: the VRs' MACs and route tables) or describe a synthetic one.

Each VR gets its own streams: frames addressed to the VR's interface MAC (kept as
built: TRex would otherwise write the port's configured destination MAC), with
the field engine drawing the destination address at random from addresses
inside that VR's table and fixing the IPv4 checksum. The streams' rates are
relative weights: the driver (bench/trex/run) sets the total with
`start(mult="<N>pps")`, or a profile's `--pps` makes them absolute.
"""
import argparse

import plan as vrplan
from scapy.layers.inet import IP, UDP
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


def load_plan(args, size):
    plan = vrplan.load(args.plan) if args.plan else vrplan.make(args.vrs, args.routes, size, args.seed)
    if args.vrs < 1 or args.destinations < 1:
        raise ValueError('--vrs and --destinations must be at least 1')
    return plan


def frame(vr, src_mac, src_ip, size, dst='0.0.0.0'):
    """A UDP frame of `size` bytes on the wire (TRex adds the 4-byte FCS)."""
    base = Ether(dst=vr['mac'], src=src_mac) / IP(src=src_ip, dst=dst, ttl=64) / UDP(sport=UDP_PORT, dport=UDP_PORT)
    return base / (b'\x00' * max(0, size - 4 - len(base)))


def vr_streams(plan, sizes, args, name):
    """Per VR and frame size, a continuous stream to random destinations inside the
    VR's table; weights split the total evenly over the VRs and by the size mix."""
    streams = []
    total_weight = sum(w for _, w in sizes) * len(plan['vrs'])
    for v, vr in enumerate(plan['vrs']):
        dsts = vrplan.destinations(vr, min(args.destinations, 65535), args.seed + v)
        for size, weight in sizes:
            vm = [STLVmFlowVar(name='dst', value_list=dsts, op='random', size=4),
                  STLVmWrFlowVar(fv_name='dst', pkt_offset='IP.dst'),
                  STLVmFixIpv4(offset='IP')]
            pps = args.pps * weight / total_weight if args.pps else weight
            streams.append(STLStream(
                name=f'{name}-vr{v}-{size}B',
                packet=STLPktBuilder(pkt=frame(vr, plan['src_mac'], plan['src_ip'], size), vm=vm),
                mode=STLTXCont(pps=pps),
                mac_dst_override_mode=STLStreamDstMAC_PKT))
    return streams


def seq_stream(plan, args, pg_id, pps, name):
    """One stream to one address inside the first VR's table, with TRex's sequence
    numbers and timestamps (packet group `pg_id`): loss, duplicates, reordering
    and latency per packet."""
    vr = plan['vrs'][0]
    dst = vrplan.destinations(vr, 1, args.seed)[0]
    pkt = frame(vr, plan['src_mac'], plan['src_ip'], 64, dst='.'.join(str(dst >> s & 255) for s in (24, 16, 8, 0)))
    return STLStream(name=name, packet=STLPktBuilder(pkt=pkt), mode=STLTXCont(pps=pps),
                     flow_stats=STLFlowLatencyStats(pg_id=pg_id), mac_dst_override_mode=STLStreamDstMAC_PKT)


class ForwardingProfile:
    """The profile of vrfwd_64b.py and vrfwd_imix.py: `vr_streams` with one size mix."""

    def __init__(self, size, doc):
        self.size, self.doc = size, doc

    def get_streams(self, tunables, **kwargs):
        args = parser(self.doc).parse_args(tunables)
        plan = load_plan(args, self.size)
        return vr_streams(plan, vrplan.SIZES[self.size], args, 'imix' if self.size == 'imix' else '64b')
