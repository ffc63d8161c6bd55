"""TRex profile: 78-byte IPv6 UDP (the smallest IPv6 UDP frame, RFC 5180) through
vrfwd, one VR or many (--vrs N, or the VRs of an IPv6 --plan FILE), destinations
at random inside each VR's table (prefixes shaped like the IPv6 Internet's).

    start -f bench/trex/vrfwd_78b_ipv6.py -m 10mpps -t vrs=16,routes=10000
"""
import vrfwd_streams as vs


def register():
    return vs.ForwardingProfile('78', __doc__, version=6)
