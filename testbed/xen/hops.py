"""Where a packet goes between the nested hosts and the receiver: the evidence
the Xen testbed records around a migration (docs/migration.md, "Nested Xen
testbed").

- `HopCounters`: the counters of every hop a forwarded packet crosses after it
  leaves a nested host: the outer switch's ports on LAN 2 (what entered from each
  host's tap, what left towards the neighbour), the neighbour's links and IP
  forwarding (/proc/net/snmp, /proc/net/netstat: what `nstat` shows), the
  receiver's link and UDP. Deltas over the migration, nonzero only.
- `FdbMonitor`: `bridge monitor fdb` on the outer switch, each event stamped on
  arrival: which port the switch believed a MAC behind, over time.
- `DropTrace`: the outer kernel's `skb:kfree_skb` tracepoint (IPv4 only) in a
  private tracefs instance: every packet any outer bridge, veth or stack dropped,
  with the function and the reason, including the drops nothing else counts (a
  bridge discarding a frame whose destination is behind its ingress port, a
  stack discarding a frame to another host's MAC).
"""
import json
import os
import re
import subprocess
import threading
import time

TRACEFS = '/sys/kernel/tracing'


def _read(ns, path):
    return subprocess.run(['ip', 'netns', 'exec', ns, 'cat', path], capture_output=True, text=True,
                          check=True).stdout


def snmp(ns):
    """/proc/net/snmp and /proc/net/netstat in namespace ns: {'Ip.ForwDatagrams': n, …}."""
    out = {}
    for path in ('/proc/net/snmp', '/proc/net/netstat'):
        lines = _read(ns, path).splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            group, names = names.split(':', 1)
            for k, v in zip(names.split(), values.split(':', 1)[1].split()):
                out[f'{group}.{k}'] = int(v)
    return out


def links(ns):
    """Each link's rx/tx packets and drops in namespace ns."""
    js = json.loads(subprocess.run(['ip', '-n', ns, '-s', '-j', 'link', 'show'], capture_output=True,
                                   text=True, check=True).stdout)
    out = {}
    for l in js:
        s = l['stats64']
        for d in ('rx', 'tx'):
            for k in ('packets', 'dropped'):
                out[f'{l["ifname"]}.{d}_{k}'] = s[d][k]
    return out


class HopCounters:
    """Counters of every hop after the nested hosts: namespaces sw (its links),
    b (links and IP), rcv (link and UDP)."""

    def __init__(self, ns):
        self.ns = ns

    def read(self):
        c = {f'sw:{k}': v for k, v in links(self.ns['sw']).items()}
        for n in ('b', 'rcv'):
            c.update({f'{n}:{k}': v for k, v in links(self.ns[n]).items()})
            c.update({f'{n}:{k}': v for k, v in snmp(self.ns[n]).items()
                      if k.split('.')[0] in ('Ip', 'IpExt', 'Udp', 'TcpExt')})
        return c

    @staticmethod
    def delta(before, after):
        return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] != before.get(k, 0)}


class FdbMonitor:
    """`bridge monitor fdb` in namespace ns; keeps (unix time, line) for the lines
    naming one of macs."""

    def __init__(self, ns, macs):
        self.macs = [m.lower() for m in macs]
        self.events = []
        self.p = subprocess.Popen(['ip', 'netns', 'exec', ns, 'bridge', 'monitor', 'fdb'],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  start_new_session=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            if any(m in line.lower() for m in self.macs):
                self.events.append((time.time(), line.strip()))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=5)
        self.t.join(timeout=5)
        return self.events


LINE = re.compile(r'\s(\d+\.\d+): kfree_skb: .*protocol=(\d+) location=([^+ ]+)\S* reason: (\S+)')


class DropTrace:
    """skb:kfree_skb for IPv4 in a private tracefs instance, on CLOCK_MONOTONIC.
    `available` is False (and nothing is traced) where tracefs cannot be used."""

    def __init__(self, name):
        self.dir = os.path.join(TRACEFS, 'instances', name)
        self.available = False
        if not os.path.isdir(os.path.join(TRACEFS, 'instances')):
            subprocess.run(['mount', '-t', 'tracefs', 'nodev', TRACEFS], capture_output=True)
        try:
            self.remove()
            os.mkdir(self.dir)
            self._write('trace_clock', 'mono')
            self._write('buffer_size_kb', '16384')
            self._write('events/skb/kfree_skb/filter', 'protocol == 2048')
            self._write('events/skb/kfree_skb/enable', '1')
            self.available = True
        except OSError:
            self.remove()

    def _write(self, f, value):
        with open(os.path.join(self.dir, f), 'w') as fh:
            fh.write(value)

    def stop(self, t0_mono, windows):
        """The drops since the start, by (function, reason): count and the first and
        last drop, seconds after t0_mono; and how many fell in each (start, end)
        window (seconds after t0_mono)."""
        if not self.available:
            return {'available': False}
        self._write('events/skb/kfree_skb/enable', '0')
        with open(os.path.join(self.dir, 'trace')) as f:
            text = f.read()
        self.remove()
        by = {}
        in_window = [{} for _ in windows]
        for m in LINE.finditer(text):
            t = float(m.group(1)) - t0_mono
            key = f'{m.group(3)} {m.group(4)}'
            e = by.setdefault(key, [0, t, t])
            e[0] += 1
            e[2] = t
            for w, (a, b) in zip(in_window, windows):
                if a <= t <= b:
                    w[key] = w.get(key, 0) + 1
        return {'available': True,
                'by_location': {k: {'count': c, 'first_s': round(a, 3), 'last_s': round(b, 3)}
                                for k, (c, a, b) in sorted(by.items(), key=lambda kv: -kv[1][0])},
                'in_windows': [{'window_s': [round(a, 3), round(b, 3)], 'drops': w}
                               for (a, b), w in zip(windows, in_window)]}

    def remove(self):
        if os.path.isdir(self.dir):
            try:
                with open(os.path.join(self.dir, 'events/skb/kfree_skb/enable'), 'w') as f:
                    f.write('0')
            except OSError:
                pass
            os.rmdir(self.dir)
