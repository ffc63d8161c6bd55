"""Loads every TRex profile beside this file with TRex's own loader
(STLProfile.load_py, from the PyPI package lbr-trex-client) and checks the streams
it builds: one per VR and frame size, addressed to the VR's MAC, destinations
drawn inside the VR's table, rates that add up. No TRex server needed. Run with
the Python that has lbr-trex-client (scripts/test.sh makes that venv):
    python -m unittest discover -s bench/trex
"""
import glob
import ipaddress
import json
import os
import tempfile
import unittest

import lbr_trex_client  # noqa: F401  (puts TRex's `trex` package on the path)
from trex.stl.api import STLProfile

import plan as vrplan

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = sorted(p for p in glob.glob(os.path.join(HERE, 'vrfwd_*.py')) if not p.endswith('vrfwd_streams.py'))


def load(name, *tunables):
    return STLProfile.load_py(os.path.join(HERE, name), tunables=list(tunables)).get_streams()


def frame_of(stream):
    """The stream's packet as TRex compiled it (bytes, without FCS) and its field engine."""
    j = stream.to_json()
    import base64
    return base64.b64decode(j['packet']['binary']), j['vm']['instructions'], j


class Profiles(unittest.TestCase):
    def test_every_profile_loads_and_compiles(self):
        self.assertEqual([os.path.basename(p) for p in PROFILES],
                         ['vrfwd_64b.py', 'vrfwd_78b_ipv6.py', 'vrfwd_imix.py', 'vrfwd_imix_ipv6.py',
                          'vrfwd_latency.py', 'vrfwd_migration.py'])
        for path in PROFILES:
            streams = STLProfile.load_py(path, tunables=['--routes', '500']).get_streams()
            self.assertTrue(streams, path)
            for s in streams:
                s.to_json()  # what the client sends to the server

    def test_many_vrs_get_their_own_streams_inside_their_tables(self):
        plan = vrplan.make(vrs=4, routes=300, size='imix', seed=3)
        with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
            json.dump(plan, f)
            f.flush()
            streams = load('vrfwd_imix.py', '--plan', f.name, '--pps', '1200000', '--destinations', '64')
        self.assertEqual(len(streams), 4 * 3)
        total = 0
        for s in streams:
            pkt, vm, j = frame_of(s)
            total += j['mode']['rate']['value']
            vr = int(s.get_name().split('-vr')[1].split('-')[0])
            self.assertEqual(pkt[:6].hex(':'), vrplan.vr_mac(vr))
            self.assertEqual(j['flags'] & 1, 1, 'the destination MAC is kept as built')
            size = int(s.get_name().split('-')[-1][:-1])
            self.assertEqual(len(pkt) + 4, size)
            nets = [ipaddress.ip_network(p) for p in plan['vrs'][vr]['prefixes']]
            dsts = [i for i in vm if i['type'] == 'flow_var'][0]['value_list']
            self.assertEqual(len(dsts), 64)
            for d in dsts:
                self.assertTrue(any(ipaddress.ip_address(d) in n for n in nets), d)
            self.assertIn('fix_checksum_ipv4', [i['type'] for i in vm])
        self.assertAlmostEqual(total, 1_200_000, delta=1)

    def test_ipv6_profiles_send_the_smallest_ipv6_frames_inside_the_tables(self):
        streams = load('vrfwd_imix_ipv6.py', '--vrs', '2', '--routes', '200', '--destinations', '32')
        self.assertEqual(sorted({s.get_name().split('-')[-1] for s in streams}), ['1518B', '594B', '78B'])
        plan = vrplan.make(vrs=2, routes=200, size='imix', seed=1, version=6)
        for s in streams:
            pkt, vm, _ = frame_of(s)
            self.assertEqual(pkt[12:14], b'\x86\xdd', 'IPv6')
            self.assertEqual(len(pkt) + 4, int(s.get_name().split('-')[-1][:-1]))
            vr = int(s.get_name().split('-vr')[1].split('-')[0])
            nets = [ipaddress.ip_network(p) for p in plan['vrs'][vr]['prefixes']]
            self.assertTrue(all(n.prefixlen <= 64 for n in nets), 'the first 64 bits hold every prefix')
            low = int.from_bytes(pkt[14 + 24 + 8:14 + 40], 'big')
            var = [i for i in vm if i['type'] == 'flow_var'][0]
            self.assertEqual(var['size'], 8)
            for high in var['value_list']:
                dst = ipaddress.IPv6Address((high << 64) | low)
                self.assertTrue(any(dst in n for n in nets), dst)
            self.assertNotIn('fix_checksum_ipv4', [i['type'] for i in vm])
        self.assertEqual(len(load('vrfwd_78b_ipv6.py', '--vrs', '3', '--routes', '50')), 3)
        with self.assertRaises(ValueError):
            vrplan.make(size='64', version=6)

    def test_synthetic_plans_and_weights(self):
        streams = load('vrfwd_64b.py', '--vrs', '16', '--routes', '100')
        self.assertEqual(len(streams), 16)
        self.assertEqual({frame_of(s)[2]['mode']['rate']['value'] for s in streams}, {1})
        macs = {frame_of(s)[0][:6].hex(':') for s in streams}
        self.assertEqual(macs, {vrplan.vr_mac(v) for v in range(16)})

    def test_latency_and_migration_streams_carry_sequence_numbers(self):
        lat = load('vrfwd_latency.py', '--load-pps', '100000', '--latency-pps', '500', '--vrs', '2', '--routes', '50')
        j = lat[0].to_json()
        self.assertEqual((j['flow_stats']['rule_type'], j['flow_stats']['stream_id']), ('latency', 7))
        self.assertEqual(j['mode']['rate']['value'], 500)
        self.assertEqual(len(lat), 1 + 2)
        mig = load('vrfwd_migration.py', '--rate', '2000')
        j = mig[0].to_json()
        self.assertEqual((j['flow_stats']['rule_type'], j['flow_stats']['stream_id']), ('latency', 8))
        self.assertEqual(j['mode']['rate']['value'], 2000)

    def test_bad_tunables_are_refused(self):
        with self.assertRaises(Exception):
            load('vrfwd_64b.py', '--vrs', '0')
        with self.assertRaises(Exception):
            load('vrfwd_64b.py', '--plan', '/nonexistent.json')


if __name__ == '__main__':
    unittest.main()
