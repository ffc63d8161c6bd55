#!/usr/bin/env python3
"""`bench/xen`: N nested-Xen migrations per mode (testbed/xen/run.py), vrfwd and
stock interleaved, every run written to docs/xen-results.md: one row per run
(failed ones too, with why), the machine and the date, and a last line

    xen: runs=<n> vrfwd_lost=<sum> vrfwd_dup=<sum> stock_lost=<sum>

Each run boots two nested Xen hosts under QEMU TCG (≈ 8 min a run on the
project's 2-core machine); run it on an otherwise idle machine, as root:

    cargo build --release --workspace && bench/xen/run.py --runs 5

usage: run.py [--runs N] [--stock-runs M] [--bin DIR] [--out FILE] [--keep DIR]

`--stock-runs` (default: N) runs the stock set-up in the first M rounds only;
`runs=` in the last line counts the vrfwd runs that completed.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, 'testbed', 'xen', 'run.py')


def machine():
    mem_kib = next(int(line.split()[1]) for line in open('/proc/meminfo') if line.startswith('MemTotal'))
    return f'{platform.node()}: {os.cpu_count()} CPUs, {mem_kib / 2**20:.0f} GiB, Linux {platform.release()}'


def one_run(mode, index, a):
    """Runs the testbed once; returns its report, or {'error': …} if it failed."""
    out = os.path.join(a.keep, f'xen-{mode}-{index}.json')
    started = datetime.datetime.now(datetime.timezone.utc)
    t = time.time()
    p = subprocess.run([sys.executable, TESTBED, '--mode', mode, '--out', out, '--bin', a.bin],
                       capture_output=True, text=True)
    rec = {'mode': mode, 'run': index, 'started': started.strftime('%Y-%m-%d %H:%M:%S'),
           'wall_s': round(time.time() - t)}
    if p.returncode == 0 and os.path.exists(out):
        with open(out) as f:
            rec['report'] = json.load(f)
    else:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        rec['error'] = f'exit {p.returncode}: ' + ' / '.join(tail)
    print(json.dumps({k: v for k, v in rec.items() if k != 'report'} |
                     {k: rec.get('report', {}).get(k) for k in ('sent', 'lost', 'duplicates', 'longest_gap_ms')}),
          flush=True)
    return rec


def row(rec):
    r = rec.get('report')
    if r is None:
        return f"| {rec['run']} | {rec['mode']} | {rec['started']} | failed: {rec['error']} | | | | | | | |"
    gap = f"{r['longest_gap_ms']} ms at {r['longest_gap_at_s']} s"
    return (f"| {rec['run']} | {rec['mode']} | {rec['started']} | {r['sent']} | {r['lost']} | "
            f"{r['duplicates']} | {r['reordered']} | {gap} | {r['migration_s']} | {path(r)} | {gap_drops(r)} |")


def path(r):
    """The stream's hops after the hosts (testbed/xen/hops.py), LAN 2's other
    frames included: into the switch from both hosts → out to the neighbour →
    forwarded by it → the receiver's UDP."""
    p = r.get('hops', {}).get('path')
    if not p:
        return '-'
    return ' → '.join(str(p[k]) for k in ('lan2_from_hosts', 'lan2_to_neighbor', 'neighbor_forwarded',
                                          'receiver_udp'))


def gap_drops(r):
    """What the outer kernel dropped (IPv4) during the longest gap, by function and reason."""
    k = r.get('kernel_drops', {})
    if not k.get('available'):
        return '-'
    drops = k['in_windows'][0]['drops'] if k['in_windows'] else {}
    return ', '.join(f'{n} × {w}' for w, n in drops.items()) or 'none'


def write(recs, a):
    done = [r for r in recs if 'report' in r]
    total = lambda mode, key: sum(r['report'][key] for r in done if r['mode'] == mode)  # noqa: E731
    runs = sum(1 for r in done if r['mode'] == 'vrfwd')
    lines = [
        '# Nested Xen migrations: every run',
        '',
        'Written by `bench/xen/run.py` (docs/migration.md, "Nested Xen testbed"): each run',
        'boots two Xen 4.17 hosts under QEMU TCG, creates the router DomU on A and',
        '`xl migrate`s it to B while a 1 kpps sequence-numbered stream crosses it',
        '(vrfwd mode: through `hooks/vrfwd-migrate`; stock: Xen\'s bridges). Lost =',
        'sent − received once; gaps are the longest silence at the receiver, seconds',
        'after the migration command started. Failed runs are listed with why.',
        'Path: the frames LAN 2\'s switch took from both hosts → sent to the neighbour',
        '→ the neighbour forwarded → the receiver\'s UDP took in (OSPF and ARP',
        'included); drops in the gap: every IPv4 packet the outer kernel freed as',
        'dropped (skb:kfree_skb) in the longest gap ± 0.2 s.',
        '',
        f'Machine: {machine()}. Runs started {recs[0]["started"] if recs else "-"} UTC.',
        '',
        '| run | mode | started (UTC) | sent | lost | duplicated | reordered | longest gap | migration s '
        '| path | drops in the gap |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
        *[row(r) for r in recs],
        '',
        f'xen: runs={runs} vrfwd_lost={total("vrfwd", "lost")} '
        f'vrfwd_dup={total("vrfwd", "duplicates")} stock_lost={total("stock", "lost")}',
    ]
    with open(a.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=int, default=5, help='vrfwd runs')
    ap.add_argument('--stock-runs', type=int, default=None, help='stock runs (default: --runs)')
    ap.add_argument('--bin', default=os.path.join(ROOT, 'target', 'release'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'docs', 'xen-results.md'))
    ap.add_argument('--keep', default='/tmp/vrfwd-bench-xen', help='where each run\'s JSON report stays')
    a = ap.parse_args()
    os.makedirs(a.keep, exist_ok=True)
    recs = []
    stock_runs = a.runs if a.stock_runs is None else a.stock_runs
    for i in range(1, a.runs + 1):
        for mode in ('vrfwd', 'stock') if i <= stock_runs else ('vrfwd',):
            recs.append(one_run(mode, i, a))
            write(recs, a)  # after every run: an interrupted series keeps its rows


if __name__ == '__main__':
    main()
