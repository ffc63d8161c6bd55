"""TRex profile: IMIX IPv6 UDP (7:4:1 of 78, 594 and 1518 bytes: IPv4's IMIX with
the smallest IPv6 frame in place of 64 bytes) through vrfwd, one VR or many
(--vrs N, or the VRs of an IPv6 --plan FILE), destinations at random inside each
VR's table.

    start -f bench/trex/vrfwd_imix_ipv6.py -m 2mpps -t vrs=4
"""
import vrfwd_streams as vs


def register():
    return vs.ForwardingProfile('imix', __doc__, version=6)
