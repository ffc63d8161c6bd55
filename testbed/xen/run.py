#!/usr/bin/env python3
"""The nested Xen testbed: `xl migrate` of a router DomU between two real Xen 4.17
hosts, with vrfwd in each Dom0 or with Xen's stock bridges.

    sender 10.1.0.2 ── lan1 ──┬───────────────┬── (switch: Linux bridges)
    B (BIRD, OSPF) ─── lan2 ──┤               │     receiver 10.20.0.2 behind B
                       mgmt ──┤ 10.99.0.0/24  │
                        host A (.11)    host B (.12)

Each host is QEMU (TCG: this machine's /dev/kvm cannot run Xen) booting Xen 4.17
with a Debian 12 Dom0 (testbed/xen/build-dom0.sh) and three NICs: eth0 on mgmt
(xl migrate, vrfwd's clone), eth1 on lan1 and eth2 on lan2 (vrfwd's uplinks, or
bridged in stock mode). The router is a PV DomU: the testbed's guest
(testbed/guest/build.sh: Debian kernel with netfront, BIRD 2, vrfwd-agent) with a
vif on lan1, one on lan2 and one on the Dom0's control bridge. In vrfwd mode its
data vifs use `script=vif-vrfwd` (hooks/), so each Dom0's vrfwd attaches them
when they appear, and the migration runs through hooks/vrfwd-migrate.

A run boots both hosts, starts vrfwd (vrfwd mode), creates the DomU on A, waits
until the route BIRD learned by OSPF forwards, then migrates the DomU to B while
vrfwd-stream sends a sequence-numbered UDP stream through it. It writes one JSON
document: lost, duplicated and reordered packets, the longest gap, the migration
time, and where the packets were forwarded (vrfwd's counters vs the vifs').
Timings are emulation speed; only the loss comparison carries over to hardware.

usage: run.py --mode vrfwd|stock --out FILE [--pps N] [--work DIR]
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from migration import ROOT, bridge, kill_netns, log, run, spawn, stop, veth, wait_for  # noqa: E402
from hops import DropTrace, FdbMonitor, HopCounters  # noqa: E402

HOSTS = {'A': '10.99.0.11', 'B': '10.99.0.12'}
CONTROL_PORT = 7010  # the guest's agent.toml and the hosts' clone sessions
MIGRATE_PORT = 8002
MACS = ['52:54:00:12:00:01', '52:54:00:12:00:02', '52:54:00:12:00:03']
GUEST_ADDR = ['10.1.0.1/24', '10.2.0.1/24']
DOMAIN = 'router'
# What a nested Xen host prints when the emulation, not the software under test,
# failed (seen in the feasibility runs: shared/prototypes/xen-nested/NOTES.md).
EMULATION_FAILURES = ('(XEN) Panic', 'Kernel panic', 'general protection fault', 'segfault at',
                      'emulation failure', 'invalid opcode')


# The emulated CPU: TCG's `max` without AVX and XSAVE. With XSAVE, user space in
# the nested Dom0 crashed in libc's malloc (an SSE load returning zeros: xl and
# vrfwd, the same instruction) within minutes.
CPU = 'max,xsave=off,avx=off,avx2=off,fma=off,f16c=off'


def link_stats(ns):
    """`ip -s -j link show` in namespace ns: each link with its counters."""
    out = subprocess.run(['ip', '-n', ns, '-s', '-j', 'link', 'show'], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


class EmulationFailure(RuntimeError):
    pass


class XenTestbed:
    def __init__(self, a):
        self.a = a
        self.p = a.prefix
        self.work = os.path.abspath(a.work)
        self.share = os.path.join(self.work, 'share')
        self.ns = {n: f'{self.p}{n}' for n in ('sw', 'snd', 'rcv', 'b')}
        self.procs = {}
        self.evidence = []  # the FdbMonitor and DropTrace of a migration, stopped in down()

    # ---- images and share -------------------------------------------------------
    def build(self):
        cache = self.a.cache
        t = time.time()
        run('bash', os.path.join(HERE, 'build-dom0.sh'), os.path.join(cache, 'xen'), timeout=1800)
        run('bash', os.path.join(ROOT, 'testbed', 'guest', 'build.sh'), cache,
            os.path.join(self.a.bin, 'vrfwd-agent'), timeout=900)
        log(f'images ready in {time.time() - t:.0f} s')
        shutil.rmtree(self.work, ignore_errors=True)
        for d in ('bin', 'hooks', 'guest', 'run'):
            os.makedirs(os.path.join(self.share, d))
        shutil.copy(os.path.join(self.a.bin, 'vrfwd'), os.path.join(self.share, 'bin'))
        for h in ('vif-vrfwd', 'vrfwd-migrate'):
            shutil.copy(os.path.join(ROOT, 'hooks', h), os.path.join(self.share, 'hooks'))
        for f in ('vmlinuz', 'initrd.gz'):
            shutil.copy(os.path.join(cache, f), os.path.join(self.share, 'guest'))
        self.write_configs()

    def write_configs(self):
        vrfwd = self.a.mode == 'vrfwd'
        vifs = [f"'mac={MACS[i]},bridge=lan{i + 1},script=vif-vrfwd'" if vrfwd
                else f"'mac={MACS[i]},bridge=xenbr{i + 1}'" for i in range(2)]
        vifs.append(f"'mac={MACS[2]},bridge=vrctl'")
        with open(os.path.join(self.share, 'router.cfg'), 'w') as f:
            f.write(f'''name = "{DOMAIN}"
type = "pv"
kernel = "/vrfwd/guest/vmlinuz"
ramdisk = "/vrfwd/guest/initrd.gz"
extra = "console=hvc0 quiet"
memory = 256
vcpus = 1
vif = [ {", ".join(vifs)} ]
on_crash = "preserve"
''')
        # vrfwd in the Dom0 of each nested Xen host: uplinks eth1 (lan1) and eth2
        # (lan2); the router DomU's vifs have no device here: vif-vrfwd attaches them
        # when xl creates the domain or migrates it in.
        for h in HOSTS:
            args = [os.path.join(self.a.bin, 'vrfwd-config'),
                    '--core', '1', '--prefix', 'vrfwd', '--socket', '/run/vrfwd.sock',
                    '--set', f'control.listen="0.0.0.0:{CONTROL_PORT}"',
                    '--set', 'control.host_credential="host-secret-for-testbeds"',
                    '--set', f'control.peers=["{HOSTS["A"]}", "{HOSTS["B"]}"]',
                    '--set', 'control.drain_ms=2000',
                    '--set', 'control.keepalive_s=2', '--set', 'control.idle_timeout_s=10',
                    '--set', 'idle.spin_polls=64', '--set', 'idle.max_sleep_us=200',
                    '--port', 'up1=net_af_packet_up1,iface=eth1,framecnt=2048',
                    '--port', 'up2=net_af_packet_up2,iface=eth2,framecnt=2048',
                    '--port', 'vif0', '--port', 'vif1',
                    '--segment', 'lan1=up1', '--segment', 'lan2=up2',
                    '--vr', f'1,name={DOMAIN},credential=vr1-secret-for-testbeds,'
                            f'standby={"false" if h == "A" else "true"}']
            for i in range(2):
                args += ['--interface', f'1,eth{i},{MACS[i]},{GUEST_ADDR[i]},lan{i + 1},vif{i}']
            run(*args, '-o', os.path.join(self.share, f'vrfwd-{h}.toml'))

    # ---- the outer network ----------------------------------------------------
    def up(self):
        self.down()
        ns = self.ns
        run('sysctl', '-qw', 'net.core.rmem_max=67108864')
        for n in ns.values():
            run('ip', 'netns', 'add', n)
            run('ip', '-n', n, 'link', 'set', 'lo', 'up')
            run('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', ns=n)
        sw = ns['sw']
        bridge(sw, 'lan1')
        bridge(sw, 'lan2')
        bridge(sw, 'mgmt', addr='10.99.0.1/24')
        veth(ns['snd'], 'eth0', sw, 'snd')
        run('ip', '-n', sw, 'link', 'set', 'snd', 'master', 'lan1')
        run('ip', '-n', ns['snd'], 'addr', 'add', '10.1.0.2/24', 'dev', 'eth0')
        run('ip', '-n', ns['snd'], 'route', 'add', 'default', 'via', '10.1.0.1')
        veth(ns['b'], 'eth0', sw, 'nbr', addr='10.2.0.3/24')
        run('ip', '-n', sw, 'link', 'set', 'nbr', 'master', 'lan2')
        veth(ns['b'], 'nbr0', ns['rcv'], 'eth0', addr='10.20.0.1/24')
        run('ip', '-n', ns['rcv'], 'addr', 'add', '10.20.0.2/24', 'dev', 'eth0')
        run('ip', '-n', ns['rcv'], 'route', 'add', 'default', 'via', '10.20.0.1')
        run('sysctl', '-qw', 'net.ipv4.ip_forward=1', ns=ns['b'])
        d = os.path.join(self.work, 'bird-b')
        os.makedirs(d, exist_ok=True)
        self.procs['bird-b'] = spawn('bird', '-f', '-c', os.path.join(ROOT, 'testbed', 'neighbor.conf'),
                                     '-s', os.path.join(d, 'ctl'), ns=ns['b'])
        for h in HOSTS:
            for i, br in enumerate(('mgmt', 'lan1', 'lan2')):
                tap = f'{self.p}{h}{i}'
                run('ip', '-n', sw, 'tuntap', 'add', 'dev', tap, 'mode', 'tap')
                run('ip', '-n', sw, 'link', 'set', tap, 'master', br)
                # The switch's queue towards a nested host. Under TCG a host's Dom0
                # can stop taking frames from its NIC for over a second while xl
                # migrate copies memory (measured: the tap dropped exactly the lost
                # packets, 836 and 1 552 at 1 kpps, with the default 1 000 frames);
                # a NIC's ring on hardware has no such stall. 30 s at 1 kpps, and
                # the taps' drops are in every report.
                run('ip', '-n', sw, 'link', 'set', tap, 'txqueuelen', '30000')
                run('ip', '-n', sw, 'link', 'set', tap, 'up')

    def down(self):
        for e in self.evidence:
            e.stop() if isinstance(e, FdbMonitor) else e.remove()
        self.evidence.clear()
        for p in list(self.procs.values()):
            stop(p, wait=10)
        self.procs.clear()
        for n in self.ns.values():
            kill_netns(n)

    # ---- the nested hosts -------------------------------------------------------
    def serial(self, h):
        return os.path.join(self.work, f'{h}.serial')

    def boot(self):
        xen = os.path.join(self.a.cache, 'xen')
        for h, ip in HOSTS.items():
            nics = []
            for i in range(3):
                nics += ['-netdev', f'tap,id=n{i},ifname={self.p}{h}{i},script=no,downscript=no',
                         '-device', f'virtio-net-pci,netdev=n{i},mac=52:54:00:99:{i:02x}:{ip.split(".")[-1]}']
            self.procs[f'xen-{h}'] = spawn(
                'qemu-system-x86_64', '-accel', 'tcg,thread=multi',
                '-cpu', self.a.cpu, '-m', '2048', '-smp', '2',
                '-display', 'none', '-monitor', 'none', '-serial', f'file:{self.serial(h)}', '-no-reboot',
                '-kernel', os.path.join(xen, 'xen.elf'),
                '-append', 'dom0_mem=1024M,max:1024M smap=0 smep=0 console=com1 com1=115200,8n1 noreboot',
                '-initrd', f'{xen}/dom0-vmlinuz root=/dev/vda rw init=/vrfwd-testbed-init console=hvc0 net.ifnames=0 '
                           f'vrfwd_host={h} vrfwd_ip={ip} vrfwd_mode={self.a.mode},{xen}/dom0-initrd.img',
                # Both hosts boot the one image; what a Dom0 writes goes to a
                # temporary overlay (snapshot=on).
                '-drive', f'file={xen}/dom0.raw,if=virtio,format=raw,snapshot=on', *nics,
                '-fsdev', f'local,id=vrfwd,path={self.share},security_model=none',
                '-device', 'virtio-9p-pci,fsdev=vrfwd,mount_tag=vrfwd', ns=self.ns['sw'])
        t = time.time()
        for h in HOSTS:
            wait_for(f'Dom0 of host {h}', lambda h=h: self.check_serial(h, 'TESTBED: DOM0-READY'), 600, 1)
            # Its shell is started just before that line: wait until it answers.
            wait_for(f'the shell of Dom0 {h}', lambda h=h: self.dom0(h, 'echo up', timeout=10, check=False).strip() == 'up',
                     60, 1)
            # The Dom0's queue towards its NIC, as the switch's towards the host
            # (above): under TCG QEMU can stop draining a Dom0's virtio TX ring for
            # over a second (measured: host A's vrfwd forwarded 122 more frames than
            # its eth2 sent, in a 1 s silence at the cut-over), and a 1 000-frame
            # qdisc then drops what the LAN's NIC ring on hardware would hold. The
            # qdiscs' drops are in every report.
            self.dom0(h, 'for n in eth1 eth2; do ip link set "$n" txqueuelen 30000; done')
        return round(time.time() - t, 1)

    def check_serial(self, h, marker):
        """True once `marker` is on host h's console; raises on an emulation failure."""
        text = ''
        for path in (self.serial(h), *self.guest_consoles(h)):
            try:
                with open(path, errors='replace') as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        bad = [s for s in EMULATION_FAILURES if s in text]
        if bad:
            raise EmulationFailure(f'host {h}: {bad[0]!r} on its console')
        if self.procs[f'xen-{h}'].poll() is not None:
            raise EmulationFailure(f'host {h}: QEMU exited')
        return marker in text

    def guest_consoles(self, h):
        d = os.path.join(self.share, 'run', f'console-{h}')
        return [os.path.join(d, f) for f in os.listdir(d)] if os.path.isdir(d) else []

    def dom0(self, h, script, timeout=120, check=True):
        """Runs a shell script in host h's Dom0 (its command shell on mgmt); returns
        its output. The connection stays open until the script's end marker comes
        back (daemons the script starts inherit the shell's socket, so the end of
        the connection would not tell)."""
        p = subprocess.Popen(['ip', 'netns', 'exec', self.ns['sw'], 'socat', f'-T{timeout}', '-',
                              f'TCP:{HOSTS[h]}:2323'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, bufsize=0)
        p.stdin.write(f'{{\n{script}\n}} 2>&1 < /dev/null\necho "__rc=$?"\n'.encode())
        got, m, end = b'', None, time.time() + timeout
        while m is None and time.time() < end:
            if not select.select([p.stdout], [], [], max(0.0, end - time.time()))[0]:
                break
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            got += chunk
            m = re.search(rb'__rc=(\d+)\n', got)
        rc = int(m.group(1)) if m else -1
        out = got[:m.start()] if m else got
        p.stdin.close()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        out = out.decode(errors='replace')
        if check and rc != 0:
            raise RuntimeError(f'Dom0 {h}: {script!r}: exit {rc}: {out.strip()[-2000:]}')
        return out

    def ctl(self, h, *args, check=True):
        return self.dom0(h, 'vrfwd ctl ' + ' '.join(args), timeout=90, check=check)

    def start_vrfwd(self, h):
        self.dom0(h, f'setsid vrfwd run -c /vrfwd/vrfwd-{h}.toml > /vrfwd/run/vrfwd-{h}.log 2>&1 < /dev/null &')
        wait_for(f'vrfwd in Dom0 {h}', lambda: self.ctl(h, 'vrs', check=False).startswith('vr '), 120, 2)

    def vr_line(self, h):
        lines = [l.split() for l in self.ctl(h, 'vrs').splitlines() if l.startswith('1 ')]
        return lines[0] if lines else None

    def route_prefixes(self, h):
        """The prefixes in host h's table of VR 1, sorted."""
        words = [l.split() for l in self.ctl(h, 'routes', '1').splitlines()]
        return sorted(w[0] for w in words if w and '/' in w[0])

    # ---- the run ------------------------------------------------------------------
    def create_router(self):
        t = time.time()
        self.dom0('A', 'xl create /vrfwd/router.cfg > /vrfwd/run/xl-create.log 2>&1 < /dev/null; rc=$?; '
                        'cat /vrfwd/run/xl-create.log; [ $rc = 0 ]', timeout=300)
        created = time.time() - t
        wait_for('the router DomU to boot', lambda: self.check_serial('A', 'TESTBED: BOOT-DONE'), 300, 1)
        booted = time.time() - t
        wait_for('the OSPF route to the receiver through the router',
                 lambda: run('ping', '-c1', '-W1', '10.20.0.2', ns=self.ns['snd'], check=False) == 0, 300, 1)
        if self.a.mode == 'vrfwd':
            wait_for("10.20.0.0/24 in A's vrfwd table",
                     lambda: '10.20.0.0/24 ' in self.ctl('A', 'routes', '1'), 120, 2)
        return {'xl_create_s': round(created, 1), 'guest_boot_s': round(booted, 1),
                'forwarding_after_s': round(time.time() - t, 1)}

    def counters(self, h):
        """On host h: vrfwd's counts for the VR, the packets each vif carried to
        the guest (Dom0's vif TX), and where a packet can be lost below vrfwd: the
        Dom0 NICs' counts and drops (rx_dropped, rx_missed, tx_dropped) and their
        qdiscs' drops, the Dom0 kernel's backlog drops (softnet_stat column 2), and
        the outer switch's taps to and from this host."""
        out = self.dom0(h, 'for v in /sys/class/net/vif*; do [ -e "$v" ] && '
                           'echo "$(basename $v) $(cat $v/statistics/tx_packets)"; done; '
                           'for n in eth1 eth2; do s=/sys/class/net/$n/statistics; echo "$n $(cat $s/rx_dropped) '
                           '$(cat $s/rx_missed_errors) $(cat $s/tx_dropped) $(cat $s/tx_packets)"; done; '
                           'while read a b rest; do echo "softnet $((0x$b))"; done < /proc/net/softnet_stat; '
                           'for n in eth1 eth2; do echo "qdisc $n $(tc -s qdisc show dev $n | '
                           'awk \'match($0, /dropped [0-9]+/) {s += substr($0, RSTART + 8, RLENGTH - 8)} END {print s + 0}\')"; done')
        lines = [l.split() for l in out.splitlines() if l.strip()]
        c = {'vif_tx_packets': {l[0]: int(l[1]) for l in lines if l[0].startswith('vif')},
             'nic_drops': {l[0]: [int(x) for x in l[1:4]] for l in lines if l[0].startswith('eth')},
             'nic_tx_packets': {l[0]: int(l[4]) for l in lines if l[0].startswith('eth')},
             'softnet_dropped': sum(int(l[1]) for l in lines if l[0] == 'softnet'),
             'qdisc_dropped': {l[1]: int(l[2]) for l in lines if l[0] == 'qdisc'}}
        taps = [l for l in link_stats(self.ns['sw']) if l['ifname'].startswith(f'{self.p}{h}')]
        c['switch_tap_tx_dropped'] = {l['ifname']: l['stats64']['tx']['dropped'] for l in taps}
        c['switch_tap_rx'] = {l['ifname']: (l['stats64']['rx']['packets'], l['stats64']['rx']['dropped'])
                              for l in taps}
        if self.a.mode == 'vrfwd':
            stats = json.loads(self.ctl(h, 'stats-json'))
            vr = [v for v in stats['vrs'] if v['id'] == 1][0]
            c['vrfwd_forwarded'] = vr['forwarded']
            c['vrfwd_punted'] = {k: v for k, v in vr['punted'].items() if v}
            c['vrfwd_arp_answered'] = vr.get('arp_answered', 0)
            # Drops at the ports: what vrfwd forwarded but could not send, what the
            # PMD could not take in.
            c['port_drops'] = {p['name']: (p['tx_dropped'], (p.get('pmd') or {}).get('rx_missed', 0))
                               for p in stats['ports']}
        return c

    def path_drops(self):
        """Drops around the hosts: the outer machine's backlog, the neighbour's and
        the receiver's links, the receiver's UDP counters (RcvbufErrors)."""
        def links(ns):
            return {l['ifname']: (l['stats64']['rx']['dropped'], l['stats64']['tx']['dropped'])
                    for l in link_stats(ns)}
        with open('/proc/net/softnet_stat') as f:
            backlog = sum(int(l.split()[1], 16) for l in f)
        snmp = subprocess.run(['ip', 'netns', 'exec', self.ns['rcv'], 'cat', '/proc/net/snmp'],
                              capture_output=True, text=True).stdout.splitlines()
        udp = [l.split()[1:] for l in snmp if l.startswith('Udp:')]
        return {'outer_backlog_dropped': backlog, 'neighbor_links': links(self.ns['b']),
                'receiver_links': links(self.ns['rcv']), 'receiver_udp': dict(zip(*udp)) if len(udp) == 2 else {}}

    def mac(self, n, ifname):
        out = subprocess.run(['ip', '-n', self.ns[n], '-j', 'link', 'show', ifname], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)[0]['address']

    def hop_summary(self, d):
        """The stream's path hop by hop over the migration (with the few frames of
        OSPF and ARP that share it), then every other counter that moved."""
        p = self.p
        path = {'lan2_from_hosts': d.get(f'sw:{p}A2.rx_packets', 0) + d.get(f'sw:{p}B2.rx_packets', 0),
                'lan2_to_neighbor': d.get('sw:nbr.tx_packets', 0),
                'neighbor_eth0_rx': d.get('b:eth0.rx_packets', 0),
                'neighbor_ip_in': d.get('b:Ip.InReceives', 0),
                'neighbor_forwarded': d.get('b:Ip.ForwDatagrams', 0),
                'neighbor_to_receiver': d.get('b:nbr0.tx_packets', 0),
                'receiver_rx': d.get('rcv:eth0.rx_packets', 0),
                'receiver_udp': d.get('rcv:Udp.InDatagrams', 0)}
        return {'path': path, 'moved': d}

    def migrate(self):
        a = self.a
        vrfwd = a.mode == 'vrfwd'
        rec = {'mode': a.mode, 'pps': a.pps}
        self.dom0('B', f'setsid socat TCP-LISTEN:{MIGRATE_PORT},reuseaddr EXEC:"xl migrate-receive" '
                       f'> /vrfwd/run/migrate-receive.log 2>&1 < /dev/null &')
        before = {h: self.counters(h) for h in HOSTS}
        before['path'] = self.path_drops()
        if vrfwd:
            rec['routes_A_before'] = self.route_prefixes('A')
        # What each host sends into LAN 1 from the VR's MAC, and every ARP and RARP
        # there: where the switch believes the VR is, over time.
        lan1 = os.path.join(self.work, 'lan1-{}.pcap')
        captures = [spawn('tcpdump', '-i', f'{self.p}{h}1', '-Q', 'in', '-n', '-s', '96', '-w', lan1.format(h),
                          f'ether src {MACS[0]} or arp or ether proto 0x8035', ns=self.ns['sw']) for h in HOSTS]
        # Every hop after the hosts: counters, the switch's beliefs, the kernel's drops.
        hops = HopCounters(self.ns)
        hops_before = hops.read()
        fdb = FdbMonitor(self.ns['sw'], MACS[:2] + [self.mac('b', 'eth0'), self.mac('snd', 'eth0')])
        trace = DropTrace(f'vrfwd-xen-{self.p}')
        self.evidence += [fdb, trace]
        seconds = a.seconds
        receiver = spawn(a.stream, 'receive', '--port', '5001', '--seconds', seconds + 5, '--silence-s', 60,
                         ns=self.ns['rcv'], out=subprocess.PIPE)
        time.sleep(0.5)
        sender = spawn(a.stream, 'send', '--to', '10.20.0.2:5001', '--pps', a.pps, '--seconds', seconds,
                       ns=self.ns['snd'], out=subprocess.PIPE)
        time.sleep(a.migrate_at)
        transport = f'socat - TCP:{HOSTS["B"]}:{MIGRATE_PORT}'
        if vrfwd:
            cmd = (f'vrfwd-migrate --hypervisor xen --vr {DOMAIN} --port {CONTROL_PORT} '
                   f'--xl-transport "{transport}" {DOMAIN} {HOSTS["B"]}')
        else:
            cmd = f'xl migrate -s "" {DOMAIN} "{transport}"'
        t, t_mono = time.time(), time.monotonic()
        rec['migrate_output'] = self.dom0('A', cmd, timeout=900).strip().splitlines()[-5:]
        rec['migration_s'] = round(time.time() - t, 1)
        rec['migration_unix'] = (t, time.time())
        log(f'migrated in {rec["migration_s"]} s')
        # The stream goes on for a while after the migration, then both ends stop
        # (SIGINT) and report.
        time.sleep(a.after)
        os.killpg(sender.pid, signal.SIGINT)
        out, _ = sender.communicate(timeout=30)
        rec['sender'] = out.strip()
        sent = int(re.search(r'sent=(\d+)', out).group(1))
        time.sleep(2)
        os.killpg(receiver.pid, signal.SIGINT)
        out, _ = receiver.communicate(timeout=30)
        r = json.loads(out)
        for c in captures:
            stop(c, sig=signal.SIGINT)
        first = r['first_unix_s']
        rec.update({'sent': sent, 'received': r['received'], 'lost': sent - r['unique'],
                    'duplicates': r['duplicates'], 'reordered': r['reordered'],
                    'longest_gap_ms': round(r['longest_gap_ms'], 1),
                    'longest_gap_at_s': round(first + r['gap_start_ms'] / 1000 - t, 1),
                    # The longest silences, (start s after the migration began, ms).
                    'gaps': [(round(first + g[0] / 1000 - t, 1), round(g[1], 1))
                             for g in sorted(r['gaps'], key=lambda g: -g[1])[:5]]})
        after = {h: self.counters(h) for h in HOSTS}
        after['path'] = self.path_drops()
        rec['hops'] = self.hop_summary(HopCounters.delta(hops_before, hops.read()))
        rec['fdb'] = [(round(ts - t, 3), line) for ts, line in fdb.stop()]
        # The longest gap first (the receiver lists only its first silences).
        gaps = [(rec['longest_gap_at_s'], rec['longest_gap_ms'])] + rec['gaps']
        rec['kernel_drops'] = trace.stop(t_mono, [(s - 0.2, s + ms / 1000 + 0.2) for s, ms in gaps])
        self.evidence.clear()
        rec['counters'] = {'before': before, 'after': after}
        rec['domain_on_B'] = DOMAIN in self.dom0('B', 'xl list')
        rec['domain_on_A'] = DOMAIN in self.dom0('A', 'xl list')
        if vrfwd:
            time.sleep(3)  # the source's drain (drain_ms 2000)
            rec['vr_A'] = self.vr_line('A')
            rec['vr_B'] = self.vr_line('B')
            rec['routes_B'] = self.route_prefixes('B')
            rec['ports_A'] = self.ctl('A', 'ports').splitlines()
            rec['ports_B'] = self.ctl('B', 'ports').splitlines()
        return rec

    def run(self):
        res = {'mode': self.a.mode, 'attempts': []}
        for attempt in range(1 + self.a.retries):
            try:
                self.up()
                rec = {'dom0_boot_s': self.boot()}
                log(f'both Dom0s up in {rec["dom0_boot_s"]} s')
                if self.a.mode == 'vrfwd':
                    for h in HOSTS:
                        self.start_vrfwd(h)
                rec.update(self.create_router())
                log(f'router forwarding {rec["forwarding_after_s"]} s after xl create')
                rec.update(self.migrate())
                res.update(rec)
                return res
            except EmulationFailure as e:
                log(f'attempt {attempt + 1}: emulation failure: {e}')
                res['attempts'].append(str(e))
                self.save_logs(attempt)
            finally:
                self.down()
        raise RuntimeError(f'every attempt failed: {res["attempts"]}')

    def save_logs(self, attempt):
        for h in HOSTS:
            for src in (self.serial(h), os.path.join(self.share, 'run', f'vrfwd-{h}.log')):
                if os.path.exists(src):
                    shutil.copy(src, f'{src}.attempt{attempt + 1}')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--mode', choices=('vrfwd', 'stock'), required=True)
    ap.add_argument('--pps', type=int, default=1000)
    ap.add_argument('--seconds', type=float, default=1800, help='longest stream (it stops --after s after the migration)')
    ap.add_argument('--after', type=float, default=20.0, help='stream seconds after the migration')
    ap.add_argument('--migrate-at', type=float, default=5.0)
    ap.add_argument('--retries', type=int, default=1, help='on an emulation failure')
    ap.add_argument('--cpu', default=CPU, help="the nested hosts' QEMU -cpu")
    ap.add_argument('--prefix', default='xt')
    ap.add_argument('--work', default='/tmp/vrfwd-xen-testbed')
    ap.add_argument('--cache', default=os.environ.get('VRFWD_GUEST_CACHE', '/var/cache/vrfwd-testbed'))
    ap.add_argument('--bin', default=os.path.join(ROOT, 'target', 'release'))
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    a.stream = os.path.join(a.bin, 'vrfwd-stream')
    tb = XenTestbed(a)
    tb.build()
    res = tb.run()
    with open(a.out, 'w') as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: res.get(k) for k in ('mode', 'sent', 'lost', 'duplicates', 'longest_gap_ms',
                                              'migration_s')}))


if __name__ == '__main__':
    main()
