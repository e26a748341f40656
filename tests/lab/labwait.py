#!/usr/bin/env python3
"""Wait until DNS servers answer ``. SOA`` over UDP (stdlib only).

Run by the DNS lab inside the probe namespace right after the servers were
started::

    python3 labwait.py --timeout 10 192.0.2.11=0 2001:db8:53::11=0 192.0.2.16=100

``ADDR=MS`` gives the server's one-way lab delay so the retry interval is
longer than its round trip.  Prints one JSON object on stdout:
``{"ADDR": {"ok": true, "serial": 2023051100, "seconds": 0.01}, ...}`` and
exits 0 when every server answered with an SOA record, 1 otherwise.
Bounded: at most ``--timeout`` seconds in all.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time


def soa_query(qid: int) -> bytes:
    # header: id, flags 0 (no RD), 1 question; question ". SOA IN"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 6, 1)


def _skip_name(msg: bytes, off: int) -> int:
    for _ in range(128):
        length = msg[off]
        if length == 0:
            return off + 1
        if length & 0xC0 == 0xC0:
            return off + 2
        off += 1 + length
    raise ValueError("name too long")


def soa_serial(msg: bytes, qid: int) -> int | None:
    """Serial of the first SOA in the answer section, or None."""
    if len(msg) < 12:
        return None
    rid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000 or flags & 0x000F:
        return None
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
        off += 10
        if rtype == 6:
            p = _skip_name(msg, off)
            p = _skip_name(msg, p)
            return int(struct.unpack(">I", msg[p : p + 4])[0])
        off += rdlen
    return None


def wait(targets: dict[str, float], timeout: float) -> dict[str, dict[str, object]]:
    start = time.monotonic()
    deadline = start + timeout
    state: dict[str, dict[str, object]] = {}
    socks: dict[int, tuple[str, socket.socket, int]] = {}
    last_sent: dict[str, float] = {}
    for addr in targets:
        fam = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setblocking(False)
        qid = int.from_bytes(os.urandom(2), "big")
        socks[s.fileno()] = (addr, s, qid)
        state[addr] = {"ok": False, "serial": None, "seconds": None, "error": "no answer"}
        last_sent[addr] = 0.0
    pending = set(targets)
    try:
        while pending and time.monotonic() < deadline:
            now = time.monotonic()
            for addr, s, qid in socks.values():
                if addr not in pending:
                    continue
                interval = max(0.15, 2 * targets[addr] / 1000.0 + 0.15)
                if now - last_sent[addr] >= interval:
                    last_sent[addr] = now
                    try:
                        s.sendto(soa_query(qid), (addr, 53))
                    except OSError as exc:
                        state[addr]["error"] = f"send: {exc}"
            fds = [f for f, (a, _, _) in socks.items() if a in pending]
            try:
                ready, _, _ = select.select(fds, [], [], 0.03)
            except InterruptedError:
                continue
            for fdno in ready:
                addr, s, qid = socks[fdno]
                try:
                    data = s.recv(65535)
                except OSError as exc:  # ICMP unreachable etc.: keep trying
                    state[addr]["error"] = f"recv: {exc}"
                    continue
                serial = soa_serial(data, qid)
                if serial is not None:
                    state[addr] = {
                        "ok": True,
                        "serial": serial,
                        "seconds": round(time.monotonic() - start, 4),
                    }
                    pending.discard(addr)
    finally:
        for _, s, _ in socks.values():
            s.close()
    return state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("targets", nargs="+", metavar="ADDR=MS")
    args = ap.parse_args(argv)
    targets: dict[str, float] = {}
    for t in args.targets:
        addr, _, ms = t.partition("=")
        targets[addr] = float(ms or 0)
    result = wait(targets, min(max(args.timeout, 0.1), 120.0))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if all(v["ok"] for v in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
