"""What a benchmark sends, in one JSON document that every generator reads: TRex
(the profiles beside this file), the in-tree vrfwd-trafgen, and bench/compare,
which also configures the devices under test from it.

    {"size": "64" | "78" | "imix", "src_mac": "...", "src_ip": "...", "seed": N,
     "vrs": [{"mac": "<the VR interface's MAC on the input segment>",
              "prefixes": ["a.b.c.d/len" or "2001:db8::/48", ...]}]}

One family per plan: the source address's, which every prefix shares. Destinations
are drawn at random inside the VR's prefixes; frames for VR v are addressed to its
MAC (vrfwd tells VRs apart by destination MAC). The smallest UDP frame is 64 bytes
on the wire for IPv4 and 78 for IPv6 (RFC 5180): size "78", and IPv6's IMIX puts
78 where IPv4's has 64.
"""
import ipaddress
import json
import random

# TRex's IMIX: 7:4:1 of 64, 594 and 1518 bytes on the wire (FCS included).
SIZES = {'64': [(64, 1)], '78': [(78, 1)], 'imix': [(64, 7), (594, 4), (1518, 1)]}
SRC_MAC = '02:00:00:00:aa:02'
SRC_IP = {4: '10.0.0.2', 6: '2001:db8::2'}
# The smallest UDP frame of each family on the wire.
SMALLEST = {4: 64, 6: 78}


def family(plan):
    """4 or 6: the plan's source address's family."""
    return ipaddress.ip_address(plan['src_ip']).version


def sizes(plan):
    """The plan's (bytes on the wire, weight) mix, its smallest frame the family's."""
    smallest = SMALLEST[family(plan)]
    return [(smallest if size == 64 else size, weight) for size, weight in SIZES[plan['size']]]


def vr_mac(vr, iface=0):
    """The MAC of VR `vr`'s interface `iface` in the benchmarks (bench/rig.rs too)."""
    return f'02:00:{vr >> 8:02x}:{vr & 0xff:02x}:{iface:02x}:01'


def prefixes(rng, n):
    """n distinct prefixes inside 20.0.0.0-199.255.255.255 without 127.0.0.0/8 (a
    kernel drops packets to loopback addresses as martians), mostly /24 with a
    tail of /16-/23 and /25-/32 (the mix of bench/gen.rs)."""
    seen, out = set(), []
    while len(out) < n:
        r = rng.randrange(100)
        length = 24 if r < 70 else rng.randrange(16, 24) if r < 90 else rng.randrange(25, 33)
        first = rng.randrange(20, 199)
        addr = ((first + (first >= 127)) << 24) | rng.getrandbits(24)
        net = ipaddress.ip_network((addr, length), strict=False)
        if net not in seen:
            seen.add(net)
            out.append(net)
    return [str(p) for p in out]


def prefixes6(rng, n):
    """n distinct IPv6 prefixes shaped like the IPv6 Internet's (bench/gen.rs):
    half /48, a fifth /32-/40, a fifth /41-/47, a tenth /49-/64, inside 2000::/3."""
    seen, out = set(), []
    while len(out) < n:
        r = rng.randrange(100)
        length = (48 if r < 50 else rng.randrange(32, 41) if r < 70
                  else rng.randrange(41, 48) if r < 90 else rng.randrange(49, 65))
        addr = (0b001 << 125) | rng.getrandbits(125)
        net = ipaddress.ip_network((addr, length), strict=False)
        if net not in seen:
            seen.add(net)
            out.append(net)
    return [str(p) for p in out]


def make(vrs=1, routes=10_000, size='64', seed=1, version=4):
    if size not in SIZES:
        raise ValueError(f'size {size!r}: one of {sorted(SIZES)}')
    if (version, size) == (6, '64'):
        raise ValueError('an IPv6 UDP frame takes at least 78 bytes: size "78"')
    rng = random.Random(seed)
    draw = prefixes6 if version == 6 else prefixes
    return {'size': size, 'src_mac': SRC_MAC, 'src_ip': SRC_IP[version], 'seed': seed,
            'vrs': [{'mac': vr_mac(v), 'prefixes': draw(rng, routes)} for v in range(vrs)]}


def load(path):
    with open(path) as f:
        plan = json.load(f)
    if not plan.get('vrs') or any(not v.get('prefixes') for v in plan['vrs']):
        raise ValueError(f'{path}: the plan needs VRs, each with prefixes')
    if plan.get('size', '64') not in SIZES:
        raise ValueError(f'{path}: size {plan["size"]!r}: one of {sorted(SIZES)}')
    version = family(plan)
    if any(ipaddress.ip_network(p).version != version for v in plan['vrs'] for p in v['prefixes']):
        raise ValueError(f'{path}: every prefix must be of the source address\'s family (IPv{version})')
    if (version, plan.get('size', '64')) == (6, '64'):
        raise ValueError(f'{path}: an IPv6 UDP frame takes at least 78 bytes: size "78"')
    return plan


def destinations(vr, count, seed):
    """`count` random addresses inside VR `vr`'s prefixes (as integers)."""
    rng = random.Random(seed)
    nets = [ipaddress.ip_network(p) for p in vr['prefixes']]
    out = []
    for _ in range(count):
        n = nets[rng.randrange(len(nets))]
        out.append(int(n.network_address) + rng.randrange(n.num_addresses))
    return out
