"""TRex profile: 64-byte IPv4 UDP through vrfwd, one VR or many (--vrs N, or the VRs
of --plan FILE), destinations at random inside each VR's table.

    start -f bench/trex/vrfwd_64b.py -m 10mpps -t vrs=16,routes=10000
"""
import vrfwd_streams as vs


class VrfwdSmall:
    def get_streams(self, tunables, **kwargs):
        args = vs.parser(__doc__).parse_args(tunables)
        plan = vs.load_plan(args, '64')
        return vs.vr_streams(plan, vs.vrplan.SIZES['64'], args, '64b')


def register():
    return VrfwdSmall()
