#!/usr/bin/env python3
"""Per-address packet delay through a TUN device (pure Python, stdlib only).

Used by the DNS lab (``tests/lab/dnslab.py``) because the kernel here has no
``netem`` qdisc.  The lab's router namespace sends the packets that must be
delayed into a TUN device with policy routing (``ip rule add iif <veth> ...
lookup <table>`` whose table has ``default dev <tun>``).  This process reads
each packet from the TUN, keeps it in a heap keyed by its release time and
writes it back into the TUN when that time has come; the kernel then routes
the re-injected packet with the main table (the ``ip rule`` only matches the
veth/bridge input interfaces, so there is no loop).

The delay of a packet is looked up first by its destination address, then by
its source address (so one ``--delay ADDR=MS`` entry delays both the query to a
server and the server's answer: the round trip grows by 2*MS).  Packets to or
from different addresses are delayed independently and concurrently.

Run inside the router namespace::

    ip netns exec ROUTER python3 tundelay.py --tun tund \
        --delay 192.0.2.16=100 --delay 2001:db8:53::16=100 --parent-pid 1234

It prints ``READY <tun>`` on stdout once the TUN is attached.  It stops on
SIGTERM/SIGINT, when ``--parent-pid`` is gone, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import fcntl
import heapq
import ipaddress
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

MAX_QUEUE = 20000  # packets held at once; beyond this new packets are dropped
MAX_READ_BATCH = 512  # packets read per wake-up before servicing the heap again


def open_tun(name: str) -> int:
    """Attach to the (persistent) TUN device *name*; returns a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError:
        os.close(fd)
        raise
    return fd


def parse_delays(items: list[str]) -> dict[bytes, float]:
    """``["192.0.2.16=100", ...]`` -> {packed address: seconds}."""
    out: dict[bytes, float] = {}
    for item in items:
        addr, _, ms = item.partition("=")
        if not ms:
            raise SystemExit(f"bad --delay {item!r}: expected ADDR=MS")
        delay_ms = float(ms)
        if not 0 <= delay_ms <= 60_000:
            raise SystemExit(f"bad --delay {item!r}: MS must be 0..60000")
        out[ipaddress.ip_address(addr).packed] = delay_ms / 1000.0
    return out


def packet_delay(pkt: bytes, delays: dict[bytes, float], default: float) -> float:
    if not pkt:
        return default
    version = pkt[0] >> 4
    if version == 4 and len(pkt) >= 20:
        src, dst = pkt[12:16], pkt[16:20]
    elif version == 6 and len(pkt) >= 40:
        src, dst = pkt[8:24], pkt[24:40]
    else:
        return default
    d = delays.get(dst)
    if d is None:
        d = delays.get(src)
    return default if d is None else d


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(
    tun: str,
    delays: dict[bytes, float],
    default: float,
    parent_pid: int | None,
    max_seconds: float,
) -> int:
    fd = open_tun(tun)
    stop = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    print(f"READY {tun}", flush=True)
    heap: list[tuple[float, int, bytes]] = []
    seq = 0
    stats = {"in": 0, "out": 0, "dropped": 0}
    start = time.monotonic()
    end = start + max_seconds
    next_parent_check = start + 1.0

    while not stop:
        now = time.monotonic()
        if now >= end:
            print("tundelay: --max-seconds reached, exiting", file=sys.stderr)
            break
        if parent_pid is not None and now >= next_parent_check:
            next_parent_check = now + 1.0
            if not _alive(parent_pid):
                print("tundelay: parent gone, exiting", file=sys.stderr)
                break
        timeout = 0.5
        if heap:
            timeout = min(timeout, max(0.0, heap[0][0] - now))
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            continue
        if readable:
            for _ in range(MAX_READ_BATCH):
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as exc:  # e.g. EBADFD when the device goes away
                    print(f"tundelay: read error {exc}", file=sys.stderr)
                    stop = True
                    break
                stats["in"] += 1
                d = packet_delay(pkt, delays, default)
                if d <= 0:
                    _write(fd, pkt, stats)
                elif len(heap) >= MAX_QUEUE:
                    stats["dropped"] += 1
                else:
                    seq += 1
                    heapq.heappush(heap, (time.monotonic() + d, seq, pkt))
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, pkt = heapq.heappop(heap)
            _write(fd, pkt, stats)
    os.close(fd)
    print(f"tundelay: stats {stats}", file=sys.stderr)
    return 0


def _write(fd: int, pkt: bytes, stats: dict[str, int]) -> None:
    try:
        os.write(fd, pkt)
        stats["out"] += 1
    except OSError:
        stats["dropped"] += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tun", required=True, help="name of an existing TUN device (no PI)")
    ap.add_argument(
        "--delay",
        action="append",
        default=[],
        metavar="ADDR=MS",
        help="one-way delay for packets to/from ADDR (repeatable)",
    )
    ap.add_argument("--default-ms", type=float, default=0.0, help="delay for other packets")
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this pid is gone")
    ap.add_argument("--max-seconds", type=float, default=6 * 3600, help="hard lifetime limit")
    args = ap.parse_args(argv)
    return run(
        args.tun,
        parse_delays(args.delay),
        max(0.0, args.default_ms) / 1000.0,
        args.parent_pid,
        args.max_seconds,
    )


if __name__ == "__main__":
    sys.exit(main())
