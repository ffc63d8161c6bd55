"""Unit tests of the NDR/PDR search (search.py) and of bench/trex/run's search
command, against simulated devices: no TRex, no traffic. Run:
    python3 -m unittest discover -s bench/trex
"""
import importlib.machinery
import importlib.util
import os
import random
import unittest

import search

HERE = os.path.dirname(os.path.abspath(__file__))


def device(capacity, generator=None, noise=None, seconds=1.0):
    """A device that forwards up to `capacity` pps and drops the excess; a generator
    that cannot offer more than `generator` pps; `noise(rate)` extra lost packets."""
    def trial(rate):
        offered_rate = min(rate, generator) if generator else rate
        offered = int(offered_rate * seconds)
        lost = max(0, offered - int(capacity * seconds))
        if noise:
            lost = min(offered, lost + noise(rate))
        return {'offered': offered, 'received': offered - lost, 'seconds': seconds,
                'generator_bound': offered < rate * seconds * 0.995}
    return trial


class Search(unittest.TestCase):
    def check_found(self, found, criteria):
        """Every rate reported is one that a trial passed."""
        for name, tol in criteria.items():
            r = found['rates'][name]
            if r:
                passing = [t for t in found['trials'] if t['rate'] == r or int(t['offered'] / t['seconds']) == r]
                self.assertTrue(passing, f'{name}={r} was never tried')
                self.assertLessEqual(search.loss_ratio(passing[-1]), tol)

    def test_ndr_and_pdr_of_a_device_with_a_capacity(self):
        found = search.search(device(4_000_000), 14_880_000, resolution=0.005)
        ndr, pdr = found['rates']['ndr'], found['rates']['pdr']
        self.assertTrue(4_000_000 * 0.995 <= ndr <= 4_000_000, ndr)
        # PDR: 0.5% loss is allowed, so up to capacity / 0.995.
        self.assertTrue(4_000_000 <= pdr <= 4_020_101, pdr)
        self.assertFalse(found['generator_bound'])
        self.assertLessEqual(len(found['trials']), 20)
        self.check_found(found, search.DEFAULT_CRITERIA)

    def test_a_device_that_never_loses_is_measured_at_the_top_in_one_trial(self):
        found = search.search(device(1e12), 1_000_000)
        self.assertEqual(found['rates'], {'ndr': 1_000_000, 'pdr': 1_000_000})
        self.assertEqual(len(found['trials']), 1)

    def test_a_device_that_loses_everything_has_no_rate(self):
        found = search.search(device(0), 1_000_000, resolution=0.01, min_rate=1000)
        self.assertEqual(found['rates'], {'ndr': 0, 'pdr': 0})
        self.assertLessEqual(len(found['trials']), 12)

    def test_the_generator_limit_is_reported_not_taken_for_the_device(self):
        found = search.search(device(5_000_000, generator=2_000_000), 10_000_000)
        self.assertTrue(found['generator_bound'])
        self.assertEqual(found['rates']['ndr'], 2_000_000)
        self.assertLessEqual(len(found['trials']), 3)

    def test_a_device_slower_than_a_bound_generator_is_still_searched(self):
        # The generator offers 170k of the 2M asked; the device forwards 100k.
        found = search.search(device(100_000, generator=170_000), 2_000_000, resolution=0.01)
        self.assertTrue(found['generator_bound'])
        self.assertTrue(99_000 <= found['rates']['ndr'] <= 100_000, found['rates'])
        self.check_found(found, search.DEFAULT_CRITERIA)

    def test_noise_never_reports_a_failed_rate_and_the_search_ends(self):
        rng = random.Random(5)
        # Occasional single losses well below capacity: NDR ends lower, PDR not.
        noisy = device(3_000_000, noise=lambda r: 1 if rng.random() < 0.3 else 0)
        for _ in range(20):
            found = search.search(noisy, 10_000_000, resolution=0.01)
            self.check_found(found, search.DEFAULT_CRITERIA)
            self.assertLessEqual(found['rates']['ndr'], 3_000_000)
            self.assertTrue(2_970_000 <= found['rates']['pdr'] <= 3_015_076, found['rates'])
            self.assertLessEqual(len(found['trials']), 40)

    def test_more_criteria_share_the_trials(self):
        criteria = {'ndr': 0, 'pdr': 0.005, 'loss1': 0.01, 'loss5': 0.05}
        found = search.search(device(1_000_000), 2_000_000, criteria, resolution=0.01)
        for name, tol in criteria.items():
            top = 1_000_000 / (1 - tol)
            self.assertTrue(top * 0.99 <= found['rates'][name] <= top, (name, found['rates'][name]))
        self.check_found(found, criteria)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            search.search(device(1), 0)
        with self.assertRaises(ValueError):
            search.search(device(1), 100, resolution=1.5)


class Driver(unittest.TestCase):
    """bench/trex/run's ndr-pdr command with a simulated TRex in place of the client."""

    @classmethod
    def setUpClass(cls):
        loader = importlib.machinery.SourceFileLoader('trex_run', os.path.join(HERE, 'run'))
        spec = importlib.util.spec_from_loader('trex_run', loader)
        cls.driver = importlib.util.module_from_spec(spec)
        loader.exec_module(cls.driver)

    def test_rates_and_tunables_parse(self):
        self.assertEqual(self.driver.rate('14.88mpps'), 14_880_000)
        self.assertEqual(self.driver.rate('500kpps'), 500_000)
        self.assertEqual(self.driver.rate('1000'), 1000)
        self.assertEqual(self.driver.tunables('vrs=16, routes=100'), ['--vrs', '16', '--routes', '100'])

    def test_latency_percentiles_are_bucket_upper_bounds(self):
        hist = {'10': 50, '20': 40, '30': 9, '100': 1}
        p = self.driver.percentiles(hist, total_max=150)
        self.assertEqual(p, {'p50': 20, 'p90': 30, 'p99': 100, 'p99.9': 150})

    def test_ndr_pdr_command_writes_json_and_markdown(self):
        import json
        import tempfile

        class SimulatedTrex:
            def trial(self, pps):
                return device(2_500_000)(pps)

        with tempfile.TemporaryDirectory() as d:
            ns = type('A', (), dict(max_rate=10_000_000, resolution=0.01, min_rate=None, ndr_loss=0.0,
                                    pdr_loss=0.005, profile='p.py', tunables='vrs=2', duration=1,
                                    json=os.path.join(d, 'r.json'), markdown=os.path.join(d, 'r.md')))
            result = self.driver.ndr_pdr(ns, SimulatedTrex())
            with open(ns.json) as f:
                self.assertEqual(json.load(f)['rates'], result['rates'])
            with open(ns.markdown) as f:
                md = f.read()
            self.assertIn('| NDR | 0% |', md)
            self.assertTrue(2.475 <= result['rates']['ndr'] / 1e6 <= 2.5)


if __name__ == '__main__':
    unittest.main()
