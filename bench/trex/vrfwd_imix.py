"""TRex profile: IMIX (7:4:1 of 64, 594 and 1518 bytes) IPv4 UDP through vrfwd,
one VR or many (--vrs N, or the VRs of --plan FILE), destinations at random
inside each VR's table.

    start -f bench/trex/vrfwd_imix.py -m 2mpps -t vrs=4
"""
import vrfwd_streams as vs


def register():
    return vs.ForwardingProfile('imix', __doc__)
