"""TRex profile: IMIX (7:4:1 of 64, 594 and 1518 bytes) IPv4 UDP through vrfwd,
one VR or many (--vrs N, or the VRs of --plan FILE), destinations at random
inside each VR's table.

    start -f bench/trex/vrfwd_imix.py -m 2mpps -t vrs=4
"""
import vrfwd_streams as vs


class VrfwdImix:
    def get_streams(self, tunables, **kwargs):
        args = vs.parser(__doc__).parse_args(tunables)
        plan = vs.load_plan(args, 'imix')
        return vs.vr_streams(plan, vs.vrplan.SIZES['imix'], args, 'imix')


def register():
    return VrfwdImix()
