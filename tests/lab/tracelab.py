"""A routed lab for traceroutes: probe → r1 → r2 → r3 → target, optionally with two parallel
middle routers (ECMP) to show what Paris traceroute keeps constant.

Every link is a veth pair between two namespaces on documentation addresses; routes exist only
for the documentation ranges, so nothing can leave the lab. Namespaces follow the DNS lab's
naming (``pcl<pid>-<n>-<name>``, netns.py) so its stale-namespace cleanup covers them too.

Link plan (IPv4 /29s, IPv6 /64s):

    probe .2 ─ 198.51.100.0/29 ─ .1 r1 .9 ─ 198.51.100.8/29 ─ .10 r2 .1 ─ 203.0.113.0/29 ─
      .2 r3 .1 ─ 192.0.2.0/29 ─ .2 target

With ``ecmp=True`` r1 has a second path to r3 through r2b (198.51.100.16/29, 203.0.113.8/29),
and r1 hashes flows on layer 4 (``fib_multipath_hash_policy=1``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Iterator

from .netns import (
    LabUnavailable,
    Namespaces,
    address_lines,
    cleanup_stale_namespaces,
    exec_cmd,
    new_base,
    ns_sh,
    require_root,
    run,
    veth,
    which,
)

_WARM_UP = """
import socket, time
for family, address in ((socket.AF_INET, "192.0.2.2"), (socket.AF_INET6, "2001:db8:c001::2")):
    for port in range(40000, 40032):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind(("", port))
            s.sendto(b"warm-up", (address, 9))
time.sleep(0.5)
"""

# Documentation space only. 198.51.100.0/28 plays "NL", 203.0.113.0/24 and 192.0.2.0/24 "DE".
DELEGATED = """2|ripencc|20260101|4|19700101|20260101|+0000
ripencc|*|ipv4|*|4|summary
ripencc|NL|ipv4|198.51.100.0|32|20200101|allocated|lab-nl
ripencc|DE|ipv4|203.0.113.0|256|20200101|allocated|lab-de
ripencc|DE|ipv4|192.0.2.0|256|20200101|allocated|lab-de
ripencc|NL|ipv6|2001:db8:a000::|36|20200101|allocated|lab-nl
ripencc|DE|ipv6|2001:db8:b000::|36|20200101|allocated|lab-de
ripencc|DE|ipv6|2001:db8:c000::|36|20200101|allocated|lab-de
ripencc|NL|asn|64500|2|20200101|allocated|lab-nl
ripencc|DE|asn|64502|2|20200101|allocated|lab-de
"""
# prefix → origin AS, pyasn "ipasn" format (tab-separated)
ASN_TABLE = """198.51.100.0/29\t64500
198.51.100.8/29\t64501
198.51.100.16/29\t64504
203.0.113.0/24\t64502
192.0.2.0/24\t64503
2001:db8:a001::/48\t64500
2001:db8:a002::/48\t64501
2001:db8:a003::/48\t64504
2001:db8:b001::/48\t64502
2001:db8:b002::/48\t64502
2001:db8:c001::/48\t64503
"""


@dataclasses.dataclass
class TraceLab:
    probe_ns: str
    target_ipv4: str
    target_ipv6: str
    hop_ipv4: list[str]  # addresses the routers answer from, in order (r1, r2, r3, target)
    hop_ipv6: list[str]
    ecmp: bool

    def probe_cmd(self, *argv: str) -> list[str]:
        return exec_cmd(self.probe_ns, *argv)

    def run_in_probe(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.probe_cmd(*argv), capture_output=True, text=True, timeout=timeout
        )


@contextlib.contextmanager
def build_trace_lab(*, ecmp: bool = False) -> Iterator[TraceLab]:
    """Build the routed lab and always tear it down; raise LabUnavailable where impossible."""
    require_root("network namespaces")
    if not which("ip"):
        raise LabUnavailable("missing tool ip (apt package iproute2)")
    with contextlib.suppress(Exception):
        cleanup_stale_namespaces()
    base = new_base(900)
    names = ["probe", "r1", "r2", "r3", "target"] + (["r2b"] if ecmp else [])
    ns = {n: f"{base}-{n.replace('target', 'tgt')}" for n in names}
    made = Namespaces()
    # (a, b, a's v4, b's v4, a's v6, b's v6): a /29 and a /64 per link
    links = [
        ("probe", "r1", "198.51.100.2", "198.51.100.1", "2001:db8:a001::2", "2001:db8:a001::1"),
        ("r1", "r2", "198.51.100.9", "198.51.100.10", "2001:db8:a002::9", "2001:db8:a002::10"),
        ("r2", "r3", "203.0.113.1", "203.0.113.2", "2001:db8:b001::1", "2001:db8:b001::2"),
        ("r3", "target", "192.0.2.1", "192.0.2.2", "2001:db8:c001::1", "2001:db8:c001::2"),
    ]
    if ecmp:
        links += [
            (
                "r1",
                "r2b",
                "198.51.100.17",
                "198.51.100.18",
                "2001:db8:a003::17",
                "2001:db8:a003::18",
            ),
            ("r2b", "r3", "203.0.113.9", "203.0.113.10", "2001:db8:b002::9", "2001:db8:b002::10"),
        ]
    try:
        for name in names:
            made.add(ns[name])
        setup: dict[str, list[str]] = {n: ["ip link set lo up"] for n in names}
        for i, (a, b, a4, b4, a6, b6) in enumerate(links):
            va, vb = f"t{i}a", f"t{i}b"
            veth(ns[a], va, ns[b], vb)
            setup[a] += address_lines(va, f"{a4}/29", f"{a6}/64")
            setup[b] += address_lines(vb, f"{b4}/29", f"{b6}/64")
        for router in ("r1", "r2", "r3") + (("r2b",) if ecmp else ()):
            setup[router] += [
                "sysctl -qw net.ipv4.ip_forward=1",
                "sysctl -qw net.ipv6.conf.all.forwarding=1",
            ]
        for host in names:  # every probe gets its ICMP answer: no rate limits in the lab
            setup[host] += [
                "sysctl -qw net.ipv4.icmp_ratelimit=0",
                "sysctl -qw net.ipv4.icmp_msgs_per_sec=100000",
                "sysctl -qw net.ipv6.icmp.ratelimit=0",
            ]
        # Routes for documentation space only: nothing leads out of the lab.
        v4 = ("192.0.2.0/24", "203.0.113.0/24", "198.51.100.0/24")
        setup["probe"] += [f"ip route add {p} via 198.51.100.1" for p in v4[:2]]
        setup["probe"] += ["ip -6 route add 2001:db8::/32 via 2001:db8:a001::1"]
        if ecmp:
            setup["r1"] += [
                "sysctl -qw net.ipv4.fib_multipath_hash_policy=1",
                "sysctl -qw net.ipv6.fib_multipath_hash_policy=1",
                *(
                    f"ip route add {p} nexthop via 198.51.100.10 nexthop via 198.51.100.18"
                    for p in v4[:2]
                ),
                *(
                    f"ip -6 route add {p} nexthop via 2001:db8:a002::10 "
                    "nexthop via 2001:db8:a003::18"
                    for p in ("2001:db8:b000::/36", "2001:db8:c000::/36")
                ),
            ]
            setup["r2b"] += [
                "ip route add 192.0.2.0/24 via 203.0.113.10",
                "ip route add 198.51.100.0/24 via 198.51.100.17",
                "ip -6 route add 2001:db8:c000::/36 via 2001:db8:b002::10",
                "ip -6 route add 2001:db8:a000::/36 via 2001:db8:a003::17",
            ]
            setup["r3"] += [
                "ip route add 198.51.100.16/29 via 203.0.113.9",
                "ip -6 route add 2001:db8:a003::/48 via 2001:db8:b002::9",
            ]
        else:
            setup["r1"] += [f"ip route add {p} via 198.51.100.10" for p in v4[:2]]
            setup["r1"] += [
                "ip -6 route add 2001:db8:b000::/36 via 2001:db8:a002::10",
                "ip -6 route add 2001:db8:c000::/36 via 2001:db8:a002::10",
            ]
        setup["r2"] += [
            "ip route add 192.0.2.0/24 via 203.0.113.2",
            "ip route add 198.51.100.0/29 via 198.51.100.9",
            "ip -6 route add 2001:db8:c000::/36 via 2001:db8:b001::2",
            "ip -6 route add 2001:db8:a001::/48 via 2001:db8:a002::9",
        ]
        setup["r3"] += [
            "ip route add 198.51.100.0/24 via 203.0.113.1",
            "ip -6 route add 2001:db8:a000::/36 via 2001:db8:b001::1",
        ]
        setup["target"] += [
            "ip route add 198.51.100.0/24 via 192.0.2.1",
            "ip route add 203.0.113.0/24 via 192.0.2.1",
            "ip -6 route add 2001:db8::/32 via 2001:db8:c001::1",
        ]
        for name in names:
            run(ns_sh(ns[name], setup[name]))
        # Warm neighbour caches on every link (both ECMP branches: many flows), so that the
        # first probes of a test do not wait for ARP/NDP resolution.
        run(exec_cmd(ns["probe"], sys.executable, "-c", _WARM_UP), timeout=20)
        yield TraceLab(
            probe_ns=ns["probe"],
            target_ipv4="192.0.2.2",
            target_ipv6="2001:db8:c001::2",
            hop_ipv4=["198.51.100.1", "198.51.100.10", "203.0.113.2", "192.0.2.2"],
            hop_ipv6=[
                "2001:db8:a001::1",
                "2001:db8:a002::10",
                "2001:db8:b001::2",
                "2001:db8:c001::2",
            ],
            ecmp=ecmp,
        )
    finally:
        made.teardown()
