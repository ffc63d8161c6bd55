"""NDR and PDR by search, for any traffic generator: TRex (bench/trex/run) and the
in-tree one (bench/compare, vrfwd-trafgen). RFC 2544 throughput is the highest
rate at which a trial loses nothing (NDR); the partial drop rate (PDR) tolerates a
loss ratio (0.5% by default).

Both rates are searched together, as binary searches over the same trials: every
trial at rate r is a pass or a fail for each criterion (loss ratio within its
tolerance), which narrows the interval of each criterion it falls in. The next
trial halves the widest interval. A search ends when every interval is narrower
than the resolution (relative to its upper bound), and each rate is the highest
rate that passed, never an interpolation.

`trial(rate)` is the generator: it runs one trial at `rate` (packets per second)
and returns a mapping with at least `offered` and `received` (or `loss_ratio`);
a trial marked `generator_bound` measured the generator: the rate it did keep
(`offered_pps`, else `offered` / `seconds`) becomes the top of the search, and
the search reports that it reached the generator's limit.
"""

DEFAULT_CRITERIA = {'ndr': 0.0, 'pdr': 0.005}


def loss_ratio(result):
    if 'loss_ratio' in result:
        return float(result['loss_ratio'])
    offered = result['offered']
    return 0.0 if offered == 0 else max(0, offered - result['received']) / offered


class Bounds:
    """What the trials so far say about one criterion: the highest rate that
    passed, and the lowest rate above it that failed. A fail below a pass (noise:
    the device is not monotonic at this resolution) no longer bounds anything."""

    def __init__(self, tolerance, low, high):
        self.tolerance = tolerance
        self.low, self.high = low, high
        self.results = []  # (rate, passed)
        self.done = False

    def record(self, rate, ratio):
        self.results.append((rate, ratio <= self.tolerance))

    @property
    def passed(self):
        return max((r for r, ok in self.results if ok), default=None)

    @property
    def failed(self):
        above = self.passed if self.passed is not None else float('-inf')
        return min((r for r, ok in self.results if not ok and r > above), default=None)

    def interval(self):
        passed, failed = self.passed, self.failed
        return (passed if passed is not None else self.low, failed if failed is not None else self.high)

    def width(self):
        lo, hi = self.interval()
        return (hi - lo) / hi if hi > 0 else 0.0

    def next_rate(self, resolution):
        """The rate to try next for this criterion, or None when it is found."""
        passed, failed = self.passed, self.failed
        if self.done or (passed is not None and passed >= self.high * (1 - resolution)):
            return None  # found, or passes at the top of the range
        if failed is None:
            return self.high
        if failed <= self.low:
            return None  # fails even at the bottom
        lo, hi = self.interval()
        if (hi - lo) / hi <= resolution:
            return None
        # Geometric steps while the interval spans more than a factor of two, so a
        # device far below the top is bracketed quickly; halving after that.
        return (lo * hi) ** 0.5 if hi > 2 * lo else (lo + hi) / 2


def search(trial, max_rate, criteria=None, resolution=0.01, min_rate=None, max_trials=40, log=None):
    """Finds each criterion's rate in [min_rate, max_rate] (pps; min_rate defaults
    to max_rate / 1000).

    Returns {'rates': {name: pps, 0 if even min_rate failed}, 'trials': [results
    with their 'rate'], 'generator_bound': bool, 'limits': {name: (passed, failed)}}.
    """
    criteria = dict(DEFAULT_CRITERIA if criteria is None else criteria)
    if max_rate <= 0 or not 0 < resolution < 1:
        raise ValueError('max_rate must be > 0 and 0 < resolution < 1')
    low = min_rate if min_rate is not None else max_rate / 1000
    bounds = {name: Bounds(tol, low, max_rate) for name, tol in criteria.items()}
    trials, generator_bound, tried = [], False, set()
    while len(trials) < max_trials:
        pending = [(b.width(), name, b.next_rate(resolution)) for name, b in bounds.items()]
        pending = [p for p in pending if p[2] is not None]
        if not pending:
            break
        _, name, rate = max(pending)
        rate = int(round(rate))
        if rate in tried:  # the interval is narrower than one packet per second
            bounds[name].done = True
            continue
        tried.add(rate)
        result = dict(trial(rate))
        result['rate'] = rate
        trials.append(result)
        ratio = loss_ratio(result)
        if result.get('generator_bound'):
            # The generator offered less than asked: what it did offer is the
            # highest rate that can be measured, and the trial counts there.
            generator_bound = True
            if 'offered_pps' in result:
                rate = int(result['offered_pps'])
            elif result.get('seconds'):
                rate = int(result['offered'] / result['seconds'])
            for b in bounds.values():
                b.high = min(b.high, rate)
                b.low = min(b.low, b.high / 1000)
                b.results = [(r, ok) for r, ok in b.results if r <= b.high]
        if log:
            log(f'trial {len(trials)}: {rate / 1e6:.4f} Mpps loss {ratio:.6f} (searching {name})'
                + (' generator-bound' if result.get('generator_bound') else ''))
        for b in bounds.values():
            b.record(rate, ratio)
    rates = {name: (b.passed or 0) for name, b in bounds.items()}
    return {'rates': rates, 'trials': trials, 'generator_bound': generator_bound,
            'limits': {name: b.interval() for name, b in bounds.items()}}
