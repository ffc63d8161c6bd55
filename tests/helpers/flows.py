#!/usr/bin/python3
"""Many sequence-numbered UDP flows, and a receiver that tells which interface
each arrived on (the multipath tests; run inside a namespace with ip netns exec).

  flows.py send DST_IP DST_PORT FLOWS ROUNDS_PER_S SECONDS
      FLOWS flows (source ports 20000 up), each sending one packet per round,
      ROUNDS_PER_S rounds a second for SECONDS; payload: the flow's sequence
      number (8 bytes). Prints {"sent": per-flow count} as JSON.
  flows.py receive PORT SECONDS
      prints READY, then receives for SECONDS (or until 2 s of silence after
      the first packet) and prints one JSON object: per flow (source port),
      packets received, duplicates, reordered (a sequence number below one
      seen before), and its runs of packets by ingress interface:
      [[interface, first seq, last seq, packets], ...].
"""
import json
import socket
import struct
import sys
import time

BASE_PORT = 20000
# Linux's value; Python 3.11's socket module lacks the name.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def send(dst, port, flows, rounds_per_s, seconds):
    socks = []
    for i in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", BASE_PORT + i))
        socks.append(s)
    seq = 0
    start = time.monotonic()
    interval = 1.0 / rounds_per_s
    while time.monotonic() - start < seconds:
        for s in socks:
            s.sendto(struct.pack("!Q", seq) + bytes(56), (dst, port))
        seq += 1
        next_round = start + seq * interval
        pause = next_round - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    print(json.dumps({"sent": seq}))


def receive(port, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("0.0.0.0", port))
    s.settimeout(0.2)
    print("READY", flush=True)
    flows = {}
    names = {}
    start = time.monotonic()
    last = None
    while time.monotonic() - start < seconds:
        if last is not None and time.monotonic() - last > 2.0:
            break
        try:
            data, anc, _, addr = s.recvmsg(2048, socket.CMSG_SPACE(12))
        except socket.timeout:
            continue
        last = time.monotonic()
        ifindex = None
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                ifindex = struct.unpack("I", value[:4])[0]
        if ifindex not in names:
            names[ifindex] = socket.if_indextoname(ifindex) if ifindex else "?"
        iface = names[ifindex]
        (seq,) = struct.unpack("!Q", data[:8])
        f = flows.setdefault(
            addr[1],
            {"received": 0, "duplicates": 0, "reordered": 0, "seen": set(), "top": -1, "runs": []},
        )
        if seq in f["seen"]:
            f["duplicates"] += 1
            continue
        f["seen"].add(seq)
        f["received"] += 1
        if seq < f["top"]:
            f["reordered"] += 1
        f["top"] = max(f["top"], seq)
        runs = f["runs"]
        if runs and runs[-1][0] == iface:
            runs[-1][2] = seq
            runs[-1][3] += 1
        else:
            runs.append([iface, seq, seq, 1])
    for f in flows.values():
        del f["seen"]
    print(json.dumps({str(k): v for k, v in flows.items()}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
    elif cmd == "receive":
        receive(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(__doc__)
