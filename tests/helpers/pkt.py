#!/usr/bin/python3
"""Packet helper for the integration tests (run inside a namespace with ip netns exec).

  pkt.py send IFACE DST_MAC DST_IP COUNT TTL [PAYLOAD_TAG]
      sends COUNT UDP packets (sport 4000, dport 5000) to DST_IP via DST_MAC.
  pkt.py sniff IFACE SECONDS BPF
      prints READY once capturing, then one JSON object per captured IPv4 packet: macs, ttl, checksum_ok,
      proto, icmp type, src, dst, payload tag (other frames: macs and ethertype).
  pkt.py rarp IFACE MAC COUNT
      sends COUNT RARP announcements of MAC from MAC, as QEMU does after a migration.
"""
import json
import sys

from scapy.all import ARP, ICMP, IP, UDP, Ether, Raw, conf, get_if_hwaddr, sendp, sniff

conf.verb = 0


def send(iface, dst_mac, dst_ip, count, ttl, tag="vrfwd-test"):
    src_mac = get_if_hwaddr(iface)
    src_ip = conf.route.route(dst_ip)[1]
    frames = [
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip, ttl=int(ttl), id=i)
        / UDP(sport=4000, dport=5000)
        / Raw(f"{tag}:{i}".encode())
        for i in range(int(count))
    ]
    sendp(frames, iface=iface, inter=0.001)


def rarp(iface, mac, count):
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff", type=0x8035) / ARP(
        op=3, hwsrc=mac, psrc="0.0.0.0", hwdst=mac, pdst="0.0.0.0"
    )
    sendp([frame] * int(count), iface=iface, inter=0.01)


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
    else:
        sys.exit(f"unknown command {cmd}")
