#!/usr/bin/python3
"""Packet helper for the integration tests (run inside a namespace with ip netns exec).

  pkt.py send IFACE DST_MAC DST_IP COUNT TTL [PAYLOAD_TAG [SIZE]]
      sends COUNT UDP packets (sport 4000, dport 5000) to DST_IP (IPv4 or IPv6;
      TTL is then the hop limit) via DST_MAC; with SIZE, each packet is SIZE
      bytes from its IP header on (IPv4: don't fragment).
  pkt.py sniff IFACE SECONDS BPF
      prints READY once capturing, then one JSON object per captured IP packet:
      macs, ttl (IPv6: the hop limit), checksum_ok (IPv4), proto (IPv6: the next
      header), icmp type (ICMPv6 too), src, dst, payload tag (ARP: macs, op,
      psrc, pdst; other frames: macs and ethertype).
  pkt.py rarp IFACE MAC COUNT
      sends COUNT RARP announcements of MAC from MAC, as QEMU does after a migration.
  pkt.py arp IFACE MAC IP COUNT
      sends COUNT gratuitous ARP replies and COUNT requests (for 10.0.1.77) from MAC
      claiming IP: what a guest poisoning others' neighbours sends.
  pkt.py sweep IFACE DST_IP TARGETS_FILE
      for each line "MAC IP" of TARGETS_FILE (a VR interface): one UDP packet to
      DST_IP via MAC, then one ARP reply to MAC for IP (which a VR punts to its
      guest).
  pkt.py spray IFACE DST_MAC ADDRESSES_FILE
      one UDP packet (sport 4000, dport 5000, TTL 64, from IFACE's address) to
      each address of ADDRESSES_FILE (one a line) via DST_MAC, tagged with its
      address.
  pkt.py blast IFACE COUNT SRC_MAC|random DST_MAC
      sends COUNT 60-byte frames of ethertype 0x88b5 as fast as a raw socket
      takes them (random: a different source MAC each frame); prints the seconds
      it took.
"""
import json
import os
import socket
import sys
import time

from scapy.all import ARP, ICMP, IP, UDP, Ether, IPv6, Raw, conf, get_if_addr, get_if_hwaddr, sendp, sniff

conf.verb = 0


def ip_header(dst_ip, ttl, i, df):
    if ":" in dst_ip:
        return IPv6(src=conf.route6.route(dst_ip)[1], dst=dst_ip, hlim=int(ttl))
    return IP(src=conf.route.route(dst_ip)[1], dst=dst_ip, ttl=int(ttl), id=i, flags="DF" if df else 0)


def send(iface, dst_mac, dst_ip, count, ttl, tag="vrfwd-test", size=None):
    src_mac = get_if_hwaddr(iface)
    frames = []
    for i in range(int(count)):
        packet = ip_header(dst_ip, ttl, i, size is not None) / UDP(sport=4000, dport=5000) / Raw(f"{tag}:{i}".encode())
        if size is not None:
            packet = packet / Raw(b"\0" * (int(size) - len(packet)))
        frames.append(Ether(src=src_mac, dst=dst_mac) / packet)
    sendp(frames, iface=iface, inter=0.001)


def rarp(iface, mac, count):
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff", type=0x8035) / ARP(
        op=3, hwsrc=mac, psrc="0.0.0.0", hwdst=mac, pdst="0.0.0.0"
    )
    sendp([frame] * int(count), iface=iface, inter=0.01)


def arp(iface, mac, ip, count):
    claim = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=mac, pdst=ip)
    ask = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=ip, pdst="10.0.1.77")
    sendp([claim, ask] * int(count), iface=iface, inter=0.005)


def sweep(iface, dst_ip, targets_file):
    src_mac = get_if_hwaddr(iface)
    src_ip = conf.route.route(dst_ip)[1]
    frames = []
    for line in open(targets_file):
        mac, ip = line.split()
        frames.append(Ether(src=src_mac, dst=mac) / IP(src=src_ip, dst=dst_ip) / UDP(sport=4000, dport=5000))
        frames.append(Ether(src=src_mac, dst=mac) / ARP(op=2, hwsrc=src_mac, psrc=src_ip, hwdst=mac, pdst=ip))
    sendp(frames, iface=iface, inter=0.0005)


def spray(iface, dst_mac, addresses_file):
    src_mac, src_ip = get_if_hwaddr(iface), get_if_addr(iface)
    frames = [
        Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=a, ttl=64) / UDP(sport=4000, dport=5000) / Raw(f"spray:{a}".encode())
        for a in (line.strip() for line in open(addresses_file))
        if a
    ]
    sendp(frames, iface=iface, inter=0.001)


def blast(iface, count, src, dst):
    def mac(text):
        return bytes.fromhex(text.replace(":", ""))

    def frame(source):
        return mac(dst) + source + (0x88B5).to_bytes(2, "big") + b"vrfwd-attack".ljust(46, b"\0")

    if src == "random":
        # Locally administered unicast: what a MAC-table flood uses.
        frames = [frame(bytes([0x02]) + os.urandom(5)) for _ in range(4096)]
    else:
        frames = [frame(mac(src))]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    start = time.monotonic()
    for i in range(int(count)):
        s.send(frames[i % len(frames)])
    print(f"{time.monotonic() - start:.3f}", flush=True)


def describe6(p):
    ip = p[IPv6]
    d = {
        "src_mac": p[Ether].src,
        "dst_mac": p[Ether].dst,
        "src": ip.src,
        "dst": ip.dst,
        "ttl": ip.hlim,
        "proto": ip.nh,
    }
    if ip.nh == 58:
        d["icmp_type"] = bytes(ip.payload)[0]
    if Raw in p and UDP in p:
        d["tag"] = bytes(p[Raw].load).decode(errors="replace")
    return d


def describe(p):
    ip = p[IP]
    raw_sum = ip.chksum
    recomputed = IP(bytes(ip)[: ip.ihl * 4])
    del recomputed.chksum
    ok = IP(bytes(recomputed))[IP].chksum == raw_sum
    d = {
        "src_mac": p[Ether].src,
        "dst_mac": p[Ether].dst,
        "src": ip.src,
        "dst": ip.dst,
        "ttl": ip.ttl,
        "proto": ip.proto,
        "checksum_ok": ok,
    }
    if ICMP in p:
        d["icmp_type"] = p[ICMP].type
    if Raw in p and UDP in p:
        d["tag"] = bytes(p[Raw].load).decode(errors="replace")
    return d


def sniff_cmd(iface, seconds, bpf):
    ready = lambda: print("READY", flush=True)  # noqa: E731
    pkts = sniff(iface=iface, timeout=float(seconds), filter=bpf, started_callback=ready)
    for p in pkts:
        if IP in p:
            print(json.dumps(describe(p)), flush=True)
        elif IPv6 in p:
            print(json.dumps(describe6(p)), flush=True)
        elif ARP in p:
            a = p[ARP]
            d = {"src_mac": p[Ether].src, "dst_mac": p[Ether].dst, "ethertype": p[Ether].type}
            print(json.dumps(d | {"op": a.op, "psrc": a.psrc, "pdst": a.pdst}), flush=True)
        elif Ether in p:
            print(json.dumps({"src_mac": p[Ether].src, "dst_mac": p[Ether].dst, "ethertype": p[Ether].type}), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "send":
        send(*args)
    elif cmd == "sniff":
        sniff_cmd(*args)
    elif cmd == "rarp":
        rarp(*args)
    elif cmd == "arp":
        arp(*args)
    elif cmd == "sweep":
        sweep(*args)
    elif cmd == "spray":
        spray(*args)
    elif cmd == "blast":
        blast(*args)
    else:
        sys.exit(f"unknown command {cmd}")
