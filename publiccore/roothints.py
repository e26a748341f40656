"""Root hints (IANA ``named.root``): which root servers exist and at which addresses."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
from importlib import resources

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from publiccore.errors import InputError
from publiccore.records import Family, RootTarget


@dataclasses.dataclass(frozen=True, slots=True)
class RootServer:
    letter: str
    name: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def bundled_hints_path() -> pathlib.Path:
    """The IANA root hints shipped with publiccore."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "named.root"))


def load_hints(path: str | os.PathLike[str] | None = None) -> list[RootServer]:
    """Parse a root hints file (the bundled one when ``path`` is None); raise InputError.

    Every NS of the root becomes a server; its letter is the first label of its name.
    """
    hints_path = pathlib.Path(path) if path else bundled_hints_path()
    try:
        text = hints_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read root hints {hints_path}: {exc}") from None
    try:
        zone = dns.zone.from_text(text, origin=dns.name.root, relativize=False, check_origin=False)
    except dns.exception.DNSException as exc:
        raise InputError(f"root hints {hints_path} are not valid zone syntax: {exc}") from None
    ns = zone.get_rdataset(dns.name.root, dns.rdatatype.NS)
    if ns is None or len(ns) == 0:
        raise InputError(f"root hints {hints_path} list no NS records for the root")
    servers: list[RootServer] = []
    for rdata in sorted(ns, key=lambda r: r.target.to_text().lower()):
        name: dns.name.Name = rdata.target
        addresses: dict[str, list[str]] = {"A": [], "AAAA": []}
        for rdtype in addresses:
            rdataset = zone.get_rdataset(name, rdtype)
            for address in rdataset or ():
                addresses[rdtype].append(str(ipaddress.ip_address(address.address)))
        letter = name.labels[0].decode("ascii").lower() if name.labels else "?"
        servers.append(
            RootServer(
                letter=letter,
                name=name.to_text().lower(),
                ipv4=tuple(addresses["A"]),
                ipv6=tuple(addresses["AAAA"]),
            )
        )
    if not any(s.ipv4 or s.ipv6 for s in servers):
        raise InputError(f"root hints {hints_path} give no addresses")
    return servers


def targets(servers: list[RootServer]) -> list[RootTarget]:
    """Every address of every server, as measurement targets (IPv4 first per letter)."""
    out: list[RootTarget] = []
    for server in servers:
        families: tuple[tuple[Family, tuple[str, ...]], ...] = (
            ("ipv4", server.ipv4),
            ("ipv6", server.ipv6),
        )
        for family, addresses in families:
            out.extend(
                RootTarget(letter=server.letter, name=server.name, address=a, family=family)
                for a in addresses
            )
    return out
