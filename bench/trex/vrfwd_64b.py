"""TRex profile: 64-byte IPv4 UDP through vrfwd, one VR or many (--vrs N, or the VRs
of --plan FILE), destinations at random inside each VR's table.

    start -f bench/trex/vrfwd_64b.py -m 10mpps -t vrs=16,routes=10000
"""
import vrfwd_streams as vs


def register():
    return vs.ForwardingProfile('64', __doc__)
