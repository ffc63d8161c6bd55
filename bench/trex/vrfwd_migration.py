"""TRex profile: the migration stream. One sequence-numbered, timestamped stream
(packet group 8) through the first VR at --rate packets/s (the seed paper's
experiment: every packet is accounted for across a live migration of the router
VM); bench/trex/run starts it, triggers the migration and reads TRex's lost,
duplicated and out-of-order counters.

    start -f bench/trex/vrfwd_migration.py -t rate=10000
"""
import vrfwd_streams as vs


class VrfwdMigration:
    def get_streams(self, tunables, **kwargs):
        p = vs.parser(__doc__)
        p.add_argument('--rate', type=float, default=10_000)
        args = p.parse_args(tunables)
        plan = vs.load_plan(args, '64')
        return [vs.seq_stream(plan, args, vs.MIGRATION_PG, args.rate, 'migration')]


def register():
    return VrfwdMigration()
