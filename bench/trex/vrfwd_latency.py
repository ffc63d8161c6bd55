"""TRex profile: a latency stream (TRex timestamps and sequence numbers, packet group
7) through the first VR, beside an optional 64-byte background load (--load-pps)
spread over the VRs as vrfwd_64b.py does. bench/trex/run loads it at 10/50/90% of
the PDR it found.

    start -f bench/trex/vrfwd_latency.py -t latency-pps=1000,load-pps=5000000
"""
import vrfwd_streams as vs


class VrfwdLatency:
    def get_streams(self, tunables, **kwargs):
        p = vs.parser(__doc__)
        p.add_argument('--latency-pps', type=float, default=1000)
        p.add_argument('--load-pps', type=float, default=0)
        args = p.parse_args(tunables)
        plan = vs.load_plan(args, '64')
        streams = [vs.seq_stream(plan, args, vs.LATENCY_PG, args.latency_pps, 'latency')]
        if args.load_pps > 0:
            args.pps = args.load_pps
            streams += vs.vr_streams(plan, args, 'load')
        return streams


def register():
    return VrfwdLatency()
