"""BGP lab for tests: real BIRD 2 speakers in network namespaces feeding a route collector.

One collector namespace runs BIRD with ``mrtdump`` (BGP4MP messages and state changes) and
dumps its tables as TABLE_DUMP_V2 on request (``mrt dump table``). Each peer namespace runs
BIRD announcing static documentation prefixes with crafted AS paths (``bgp_path.prepend`` in
its export filter), over one veth to the collector: an IPv4 session and, when it announces
IPv6, an IPv6 session.

Safety: namespaces only, named ``pcl<pid>-<n>-<role>`` (netns.py); documentation addresses
(192.0.2.0/24 for links, 2001:db8:ffff::/48 for IPv6 links) and documentation ASNs only; no
link to the host namespace, no kernel protocol (nothing is installed into any routing table),
no default route. Every namespace and BIRD process is removed in ``close()``, which the
context manager always calls. Waits are bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import pathlib
import re
import subprocess
import time
from collections.abc import Iterator, Sequence

from .netns import (
    LabUnavailable,
    Namespaces,
    address_lines,
    cleanup_stale_namespaces,
    die_with_parent,
    exec_cmd,
    new_base,
    ns_sh,
    require_root,
    run,
    veth,
    which,
)

COLLECTOR_ASN = 64511
_LINK_V4 = ipaddress.ip_network("192.0.2.0/24")
_DOCUMENTATION_V4 = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
_DOCUMENTATION_V6 = ipaddress.ip_network("2001:db8::/32")
_DOCUMENTATION_ASNS = (range(64496, 64512), range(65536, 65552))


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """A prefix a peer announces; ``path`` is what follows the peer's own AS (origin last)."""

    prefix: str
    path: tuple[int, ...]
    withdrawable: bool = False  # in its own static protocol, so it can be withdrawn alone


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str  # short: p1, p2…
    asn: int
    routes: tuple[Route, ...]


def _check_safe(specs: Sequence[PeerSpec]) -> None:
    for spec in specs:
        for asn in (spec.asn, *[a for r in spec.routes for a in r.path]):
            if not any(asn in r for r in _DOCUMENTATION_ASNS):
                raise ValueError(f"AS{asn} is not a documentation ASN")
        for route in spec.routes:
            net = ipaddress.ip_network(route.prefix)
            inside = (
                any(net.subnet_of(d) for d in _DOCUMENTATION_V4)  # type: ignore[arg-type]
                if net.version == 4
                else net.subnet_of(_DOCUMENTATION_V6)
            )  # type: ignore[arg-type]
            if not inside:
                raise ValueError(f"{route.prefix} is not a documentation prefix")


def _static_name(prefix: str) -> str:
    """The static protocol holding one withdrawable prefix."""
    family = "6" if ":" in prefix else "4"
    return f"w{family}_" + re.sub(r"[.:/]", "_", prefix)


def _run(args: Sequence[str], *, timeout: float = 10.0) -> str:
    """Run ``args``; return its output, raise LabError when it fails."""
    return run(args, timeout=timeout).stdout


def check_available() -> None:
    """Raise LabUnavailable saying why the lab cannot run here."""
    require_root("network namespaces")
    for tool in ("ip", "bird", "birdc"):
        if which(tool) is None:
            raise LabUnavailable(f"{tool} not found (Debian packages iproute2, bird2)")
    probe = Namespaces()
    try:
        probe.add(f"{new_base()}-t")  # LabUnavailable when netns is not permitted
    finally:
        probe.teardown()


class BgpLab:
    """The running lab: a collector and its peers (see module doc)."""

    def __init__(self, specs: Sequence[PeerSpec], workdir: pathlib.Path) -> None:
        _check_safe(specs)
        self.specs = tuple(specs)
        self.workdir = workdir
        self.prefix = new_base()
        self._lab = Namespaces()
        self.namespaces = self._lab.namespaces
        self.processes = self._lab.procs
        self.updates_path = workdir / "collector-updates.mrt"

    # --- topology -----------------------------------------------------------------------

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def _link(self, n: int) -> tuple[str, str, str, str]:
        """(collector v4, peer v4, collector v6, peer v6) of link ``n`` (1-based)."""
        base = int(_LINK_V4.network_address) + 4 * n
        v4c = str(ipaddress.IPv4Address(base + 1))
        v4p = str(ipaddress.IPv4Address(base + 2))
        return v4c, v4p, f"2001:db8:ffff:{n:x}::1", f"2001:db8:ffff:{n:x}::2"

    def start(self, *, timeout: float = 30.0) -> None:
        """Build the namespaces, start BIRD everywhere, wait for every session; bounded."""
        with contextlib.suppress(Exception):
            cleanup_stale_namespaces()
        collector = self.ns("c")
        self._add_ns(collector)
        for n, spec in enumerate(self.specs, 1):
            peer = self.ns(spec.name)
            self._add_ns(peer)
            v4c, v4p, v6c, v6p = self._link(n)
            veth(collector, f"v{spec.name}", peer, "e0")
            run(ns_sh(collector, address_lines(f"v{spec.name}", f"{v4c}/30", f"{v6c}/64")))
            run(ns_sh(peer, address_lines("e0", f"{v4p}/30", f"{v6p}/64")))
        self._start_bird("c", self._collector_conf())
        for n, spec in enumerate(self.specs, 1):
            self._start_bird(spec.name, self._peer_conf(n, spec))
        self.wait_established(timeout=timeout)

    def _add_ns(self, name: str) -> None:
        self._lab.add(name)
        _run(exec_cmd(name, "ip", "link", "set", "lo", "up"))

    def _families(self, spec: PeerSpec) -> tuple[bool, bool]:
        v6 = any(":" in r.prefix for r in spec.routes)
        v4 = any(":" not in r.prefix for r in spec.routes)
        return v4, v6

    def _collector_conf(self) -> str:
        lines = [
            f"router id {self._link(1)[0]};",
            f'mrtdump "{self.updates_path}";',
            "mrtdump protocols { messages, states };",
            "protocol device {}",
        ]
        for n, spec in enumerate(self.specs, 1):
            v4c, v4p, v6c, v6p = self._link(n)
            v4, v6 = self._families(spec)
            timers = "connect delay time 1; connect retry time 2; error wait time 1, 2;"
            if v4:
                lines.append(
                    f"protocol bgp {spec.name} {{ local {v4c} as {COLLECTOR_ASN}; "
                    f"neighbor {v4p} as {spec.asn}; {timers} "
                    "ipv4 { import all; export none; }; }"
                )
            if v6:
                lines.append(
                    f"protocol bgp {spec.name}v6 {{ local {v6c} as {COLLECTOR_ASN}; "
                    f"neighbor {v6p} as {spec.asn}; {timers} "
                    "ipv6 { import all; export none; }; }"
                )
        return "\n".join(lines) + "\n"

    def _peer_conf(self, n: int, spec: PeerSpec) -> str:
        v4c, v4p, v6c, v6p = self._link(n)
        v4, v6 = self._families(spec)
        lines = [f"router id {v4p};", "protocol device {}"]
        groups: dict[str, list[Route]] = {}
        for route in spec.routes:
            family = "6" if ":" in route.prefix else "4"
            name = _static_name(route.prefix) if route.withdrawable else f"s{family}"
            groups.setdefault(name, []).append(route)
        for name, routes in groups.items():
            channel = "ipv6" if name[1] == "6" else "ipv4"
            body = " ".join(f"route {r.prefix} blackhole;" for r in routes)
            lines.append(f"protocol static {name} {{ {channel}; {body} }}")
        lines.append("filter lab_export {")
        for route in spec.routes:
            prepends = " ".join(f"bgp_path.prepend({asn});" for asn in reversed(route.path))
            lines.append(f"  if net = {route.prefix} then {{ {prepends} }}")
        lines.append("  accept;\n}")
        timers = "connect delay time 1; connect retry time 2; error wait time 1, 2;"
        if v4:
            lines.append(
                f"protocol bgp c4 {{ local {v4p} as {spec.asn}; neighbor {v4c} as "
                f"{COLLECTOR_ASN}; {timers} "
                "ipv4 { import none; export filter lab_export; }; }"
            )
        if v6:
            lines.append(
                f"protocol bgp c6 {{ local {v6p} as {spec.asn}; neighbor {v6c} as "
                f"{COLLECTOR_ASN}; {timers} "
                "ipv6 { import none; export filter lab_export; }; }"
            )
        return "\n".join(lines) + "\n"

    def withdraw(self, peer: str, prefix: str) -> None:
        """Withdraw one withdrawable route of a peer (disables its static protocol)."""
        name = _static_name(prefix)
        out = self.birdc(peer, "disable", name)
        if "disabled" not in out:
            raise RuntimeError(f"cannot withdraw {prefix} at {peer}: {out.strip()}")

    # --- BIRD processes -------------------------------------------------------------------

    def socket(self, role: str) -> pathlib.Path:
        return self.workdir / f"{role}.ctl"

    def _start_bird(self, role: str, conf: str) -> None:
        conf_path = self.workdir / f"{role}.conf"
        conf_path.write_text(conf, encoding="ascii")
        _run(["bird", "-p", "-c", str(conf_path)])  # parse check: a clear error early
        log = (self.workdir / f"{role}.log").open("wb")
        # setpriv: BIRD dies with the test process even if teardown never runs
        process = subprocess.Popen(
            [
                *die_with_parent("KILL"),
                *exec_cmd(self.ns(role)),
                "bird",
                "-f",
                "-c",
                str(conf_path),
                "-s",
                str(self.socket(role)),
                "-P",
                str(self.workdir / f"{role}.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.processes[role] = process
        deadline = time.monotonic() + 5
        while not self.socket(role).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"bird for {role} did not start: "
                    f"{(self.workdir / f'{role}.log').read_text()[-500:]}"
                )
            time.sleep(0.05)

    def birdc(self, role: str, *command: str) -> str:
        """Run a BIRD CLI command against ``role``'s daemon and return its output."""
        return _run(["birdc", "-s", str(self.socket(role)), *command])

    def wait_established(self, *, timeout: float = 30.0) -> None:
        """Wait until every collector BGP session is Established (bounded)."""
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.birdc("c", "show", "protocols")
            sessions = [line for line in out.splitlines() if " BGP " in line]
            if sessions and all("Established" in line for line in sessions):
                return
            time.sleep(0.2)
        raise TimeoutError(f"BGP sessions not established in {timeout}s:\n{out}")

    def route_count(self, table: str) -> int:
        """Routes (all peers' paths) in a collector table."""
        out = self.birdc("c", "show", "route", "table", table, "count")
        found = re.search(r"(\d+) of (\d+) routes", out)
        return int(found.group(2)) if found else 0

    def wait_routes(self, table: str, count: int, *, timeout: float = 20.0) -> None:
        """Wait until the collector table holds exactly ``count`` routes (bounded)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            seen = self.route_count(table)
            if seen == count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{table}: {seen} routes, expected {count}, after {timeout}s")

    def dump_table(self, table: str, path: pathlib.Path) -> pathlib.Path:
        """Write the collector's table as a TABLE_DUMP_V2 RIB (BIRD's ``mrt dump``)."""
        self.birdc("c", "mrt", "dump", "table", f'"{table}"', "to", f'"{path}"')
        deadline = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size > 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"BIRD did not write {path}")
            time.sleep(0.05)
        time.sleep(0.2)  # the dump is written in one go; let it finish
        return path

    # --- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every BIRD and delete every namespace (safe to call twice)."""
        self._lab.teardown(grace_seconds=5.0)


@contextlib.contextmanager
def build_lab(
    specs: Sequence[PeerSpec], workdir: pathlib.Path, *, timeout: float = 30.0
) -> Iterator[BgpLab]:
    """Start a lab and always tear it down; raise LabUnavailable when it cannot run here."""
    check_available()
    lab = BgpLab(specs, workdir)
    try:
        lab.start(timeout=timeout)
        yield lab
    finally:
        lab.close()
