"""Root hints (IANA ``named.root``): which root servers exist and at which addresses."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import os
import pathlib
import re
import tomllib
from collections.abc import Sequence
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

    The latest file of the bundled history (``bundled_history``) dated at or before ``when``;
    the earliest one for older data. ``note`` names the letters whose addresses the next file
    changes (renumbered at some point between the two files, so possibly already at ``when``)
    and says when the data is older than the history. Raises InputError if a bundled file
    cannot be read.
    """
    if when is None:
        day = dt.datetime.now(dt.UTC).date()
    elif isinstance(when, dt.datetime):
        day = when.astimezone(dt.UTC).date()
    else:
        day = dt.datetime.fromtimestamp(when, dt.UTC).date()
    history = bundled_history()
    position = history._position(dt.datetime.combine(day, dt.time(0), dt.UTC))
    version = history.versions[position]
    start, name = version.valid_from.date(), pathlib.Path(version.path).name
    servers = list(version.servers)
    notes = []
    if day < start:
        notes.append(
            f"the data ({day}) is older than the shipped root hints history (from {start}); "
            "letters renumbered before then (L-root in 2007) may read 'not routed'"
        )
    if position + 1 < len(history.versions):
        following = history.versions[position + 1]
        now, later = _addresses(servers), _addresses(list(following.servers))
        changed = sorted(letter for letter in now if now[letter] - later.get(letter, set()))
        if changed:
            notes.append(
                f"root hints of {start} used; letters {', '.join(changed)} have other addresses "
                f"in the next shipped file ({following.valid_from.date()}): if renumbered before "
                f"{day}, their rows may read 'not routed'"
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


# --- hints in force at a time (imports of past results) ----------------------------------------

_ZONE_VERSION = re.compile(r"related version of root zone:\s*(\d{10})")


@dataclasses.dataclass(frozen=True, slots=True)
class HintsVersion:
    """One root hints file and the day it came into force (its root zone version's date)."""

    valid_from: dt.datetime
    zone_version: int
    servers: tuple[RootServer, ...]
    path: str


def bundled_history_paths() -> list[pathlib.Path]:
    """The hints history shipped with publiccore: ``named.root.<zone version>`` and the current."""
    data = pathlib.Path(str(resources.files("publiccore") / "data"))
    return [*sorted(data.glob("named.root.*")), bundled_hints_path()]


def load_version(path: str | os.PathLike[str]) -> HintsVersion:
    """Read one hints file with its ``related version of root zone`` header; raise InputError."""
    hints_path = pathlib.Path(path)
    servers = load_hints(hints_path)
    match = _ZONE_VERSION.search(hints_path.read_text(encoding="ascii", errors="replace"))
    if match is None:
        raise InputError(f"root hints {hints_path} do not say their root zone version")
    version = int(match.group(1))
    try:
        day = dt.datetime.strptime(match.group(1)[:8], "%Y%m%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InputError(f"root hints {hints_path}: bad root zone version {version}") from None
    return HintsVersion(
        valid_from=day, zone_version=version, servers=tuple(servers), path=str(hints_path)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AddressChange:
    """A documented change of one letter's address on a day between two bundled hints files."""

    letter: str
    family: Family
    old: str | None  # the address replaced; None when one was added
    new: str
    effective: dt.datetime
    old_until: dt.datetime | None  # the old address answered until then (None: not stated)
    source: str


def bundled_changes_path() -> pathlib.Path:
    """The address changes between the bundled hints files (provenance in data/PROVENANCE.md)."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "root_address_changes.toml"))


def _when(text: object, *, where: str) -> dt.datetime | None:
    if text == "":
        return None
    if not isinstance(text, str):
        raise InputError(f"{where}: a date must be a string")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: not an RFC 3339 date: {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _address(text: object, family: str, *, where: str) -> str:
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        raise InputError(f"{where}: not an address: {text!r}") from None
    if (address.version == 4) != (family == "ipv4"):
        raise InputError(f"{where}: {address} is not an {family} address")
    return str(address)


def load_changes(path: str | os.PathLike[str] | None = None) -> tuple[AddressChange, ...]:
    """Read a table of address changes (the bundled one when None), oldest first.

    Raises InputError naming the entry when the file or an entry is not valid.
    """
    table_path = pathlib.Path(path) if path else bundled_changes_path()
    try:
        data = tomllib.loads(table_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read root address changes {table_path}: {exc}") from None
    out: list[AddressChange] = []
    for number, entry in enumerate(data.get("change", []), 1):
        where = f"{table_path}: change {number}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not a table")
        family = entry.get("family")
        letter = entry.get("letter")
        if family not in ("ipv4", "ipv6"):
            raise InputError(f"{where}: family must be ipv4 or ipv6")
        if not (isinstance(letter, str) and re.fullmatch(r"[a-m]", letter)):
            raise InputError(f"{where}: letter must be one of a … m")
        effective = _when(entry.get("effective", ""), where=where)
        if effective is None:
            raise InputError(f"{where}: no effective date")
        old_text = entry.get("old", "")
        old = _address(old_text, family, where=where) if old_text != "" else None
        new = _address(entry.get("new"), family, where=where)
        old_until = _when(entry.get("old_until", ""), where=where)
        source = entry.get("source")
        if not (isinstance(source, str) and source.strip()):
            raise InputError(f"{where}: no source")
        out.append(
            AddressChange(
                letter=letter,
                family=family,
                old=old,
                new=new,
                effective=effective,
                old_until=old_until,
                source=source,
            )
        )
    return tuple(sorted(out, key=lambda c: c.effective))


@dataclasses.dataclass(frozen=True, slots=True)
class HintsHistory:
    """Root hints versions, oldest first, and the documented address changes between them:
    which root addresses were in force when.

    A time before the oldest version uses the oldest (the history cannot say more). A change
    makes its new address the letter's from its ``effective`` time on, and its old address no
    root address from then on (from ``old_until`` when the operator kept it answering until a
    stated day); a later change of the same address wins.
    """

    versions: tuple[HintsVersion, ...]
    changes: tuple[AddressChange, ...] = ()
    _index: tuple[dict[str, RootTarget], ...] = dataclasses.field(default=(), repr=False)
    _changed: dict[str, tuple[AddressChange, ...]] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("a hints history needs at least one version")
        index = tuple({t.address: t for t in targets(list(v.servers))} for v in self.versions)
        object.__setattr__(self, "_index", index)
        changed: dict[str, list[AddressChange]] = {}
        for change in sorted(self.changes, key=lambda c: c.effective):
            for address in (change.old, change.new):
                if address is not None:
                    changed.setdefault(address, []).append(change)
        object.__setattr__(self, "_changed", {a: tuple(c) for a, c in changed.items()})

    @classmethod
    def load(
        cls,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        changes: Sequence[AddressChange] | None = None,
    ) -> HintsHistory:
        """The history from hints files; raise InputError.

        Without ``paths``: the bundled history with the bundled address changes
        (``changes`` replaces those); with ``paths``: those files and ``changes`` (default none).
        """
        chosen = list(paths) if paths else bundled_history_paths()
        versions = sorted((load_version(p) for p in chosen), key=lambda v: v.zone_version)
        if changes is None:
            changes = () if paths else load_changes()
        return cls(versions=tuple(versions), changes=tuple(changes))

    def version_at(self, when: dt.datetime) -> HintsVersion:
        """The newest version in force at ``when`` (the oldest for earlier times)."""
        return self.versions[self._position(when)]

    def _position(self, when: dt.datetime) -> int:
        position = 0
        for i, version in enumerate(self.versions):
            if version.valid_from <= when:
                position = i
        return position

    def target_at(self, address: str, when: dt.datetime) -> RootTarget | None:
        """The root target at ``address`` by the hints in force at ``when``, or None."""
        try:
            text = str(ipaddress.ip_address(address))
        except ValueError:
            return None
        position = self._position(when)
        found = self._index[position].get(text)
        for change in self._changed.get(text, ()):
            if when < change.effective:
                continue
            if text == change.new:
                found = self._change_target(change, position)
            elif change.old_until is None or when >= change.old_until:
                found = None  # the old address: retired by the change
            elif found is None:
                found = self._change_target(change, position, address=text)
        return found

    def _change_target(
        self, change: AddressChange, position: int, *, address: str | None = None
    ) -> RootTarget:
        names = {s.letter: s.name for s in self.versions[position].servers}
        return RootTarget(
            letter=change.letter,
            name=names.get(change.letter, f"{change.letter}.root-servers.net."),
            address=address or change.new,
            family=change.family,
        )


@functools.lru_cache(maxsize=1)
def bundled_history() -> HintsHistory:
    """The hints history shipped in publiccore/data (read once; provenance in PROVENANCE.md
    there), dated by each file's root zone version."""
    return HintsHistory.load()
