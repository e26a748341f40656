"""Root hints (IANA ``named.root``): which root servers exist and at which addresses."""

from __future__ import annotations

import dataclasses
import datetime as dt
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


# The IANA root hints history shipped in publiccore/data (provenance: PROVENANCE.md there):
# (date from which the file was IANA's current one, file name). The dates are the files' "last
# update"; renumberings between two files happened on dates the files do not give.
HINTS_HISTORY: tuple[tuple[dt.date, str], ...] = (
    (dt.date(2011, 6, 8), "named.root.2011060800"),
    (dt.date(2014, 6, 2), "named.root.2014060201"),
    (dt.date(2024, 8, 14), "named.root.2024081401"),
    (dt.date(2026, 5, 21), "named.root"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class DatedHints:
    """The root hints chosen for data of one date, and what the choice cannot vouch for."""

    servers: tuple[RootServer, ...]
    file: str  # the bundled file's name
    valid_from: dt.date
    note: str  # what the chosen file may get wrong for that date ("" when nothing)


def _addresses(servers: list[RootServer]) -> dict[str, set[str]]:
    return {s.letter: set(s.ipv4) | set(s.ipv6) for s in servers}


def hints_as_of(when: dt.datetime | float | None) -> DatedHints:
    """The bundled root hints in force at ``when`` (a datetime or Unix seconds; None: today).

    The latest file of ``HINTS_HISTORY`` dated at or before ``when``; the earliest one for older
    data. ``note`` names the letters whose addresses the next file changes (renumbered at some
    point between the two files, so possibly already at ``when``) and says when the data is
    older than the history. Raises InputError if a bundled file cannot be read.
    """
    if when is None:
        day = dt.datetime.now(dt.UTC).date()
    elif isinstance(when, dt.datetime):
        day = when.astimezone(dt.UTC).date()
    else:
        day = dt.datetime.fromtimestamp(when, dt.UTC).date()
    folder = bundled_hints_path().parent
    position = 0
    for i, (start, _name) in enumerate(HINTS_HISTORY):
        if start <= day:
            position = i
    start, name = HINTS_HISTORY[position]
    servers = load_hints(folder / name)
    notes = []
    if day < start:
        notes.append(
            f"the data ({day}) is older than the shipped root hints history (from {start}); "
            "letters renumbered before then (L-root in 2007) may read 'not routed'"
        )
    if position + 1 < len(HINTS_HISTORY):
        next_start, next_name = HINTS_HISTORY[position + 1]
        now, later = _addresses(servers), _addresses(load_hints(folder / next_name))
        changed = sorted(letter for letter in now if now[letter] - later.get(letter, set()))
        if changed:
            notes.append(
                f"root hints of {start} used; letters {', '.join(changed)} have other addresses "
                f"in the next shipped file ({next_start}): if renumbered before {day}, their rows "
                "may read 'not routed'"
            )
    return DatedHints(servers=tuple(servers), file=name, valid_from=start, note="; ".join(notes))


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
