"""Country attribution of addresses, prefixes and ASNs from RIR delegated statistics files.

The files are the RIRs' ``delegated-<rir>-latest`` and ``delegated-<rir>-extended-latest``
(``registry|cc|type|start|value|date|status[|opaque-id]``). Only ``allocated`` and ``assigned``
rows with a country code count; ``available`` / ``reserved`` rows and the ``ZZ`` placeholder do
not, nor do the ``EU`` and ``AP`` registrations (RIPE NCC's and APNIC's region-wide codes, which
are not countries): their space and ASNs belong to no country ("unknown country"). Address
blocks go into a pytricia tree per family for longest-prefix match.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import Literal

import pytricia

from publiccore.errors import InputError

Family = Literal["ipv4", "ipv6"]
_COUNTED_STATUS = frozenset({"allocated", "assigned"})
# Region codes used in delegated files that are not ISO 3166 countries.
NOT_COUNTRIES = frozenset({"ZZ", "EU", "AP"})


@dataclasses.dataclass(frozen=True, slots=True)
class Delegation:
    """One row of a delegated statistics file."""

    registry: str
    country: str
    type: Literal["asn", "ipv4", "ipv6"]
    start: str
    value: int
    date: str
    status: str
    opaque_id: str = ""


def parse_delegated(path: str | os.PathLike[str]) -> Iterator[Delegation]:
    """Rows of a delegated(-extended) file that name a country; raise InputError if unreadable.

    Header, summary and comment lines are skipped, as are rows whose status is not
    ``allocated``/``assigned`` or whose country is empty or not a country (``ZZ``, ``EU``,
    ``AP``).
    """
    file = pathlib.Path(path)
    try:
        handle = file.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read delegated file {file}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line or line[0] == "#" or line[0].isdigit():
                continue
            parts = line.rstrip("\n").split("|")
            if len(parts) < 7 or parts[1] == "*" or parts[5] == "summary":
                continue
            registry, cc, kind, start, value, date, status = parts[:7]
            if status not in _COUNTED_STATUS or not cc or cc.upper() in NOT_COUNTRIES:
                continue
            if kind not in ("asn", "ipv4", "ipv6"):
                continue
            try:
                count = int(value)
            except ValueError:
                raise InputError(f"{file}:{number}: bad value {value!r}") from None
            yield Delegation(
                registry=registry,
                country=cc.upper(),
                type=kind,  # type: ignore[arg-type]
                start=start,
                value=count,
                date=date,
                status=status,
                opaque_id=parts[7] if len(parts) > 7 else "",
            )


def file_date(path: str | os.PathLike[str]) -> str:
    """The date a delegated file describes (its version line's end date), or "" if unreadable.

    The version line is ``version|registry|serial|records|startdate|enddate|UTCoffset``.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.split("|")
                if parts[0][:1].isdigit() and len(parts) >= 6:
                    return parts[5].strip() or parts[2].strip()
                return ""
    except OSError:
        return ""
    return ""


def _ipv4_cidrs(start: str, count: int) -> list[str]:
    """CIDR blocks covering ``count`` IPv4 addresses from ``start`` (counts need not be 2^n)."""
    if count > 0 and count & (count - 1) == 0:
        first = int(ipaddress.IPv4Address(start))
        length = 32 - (count.bit_length() - 1)
        if first % count == 0:
            return [f"{start}/{length}"]
    first_address = ipaddress.IPv4Address(start)
    last_address = first_address + (count - 1)
    return [str(net) for net in ipaddress.summarize_address_range(first_address, last_address)]


def family_of(prefix: str) -> Family:
    """``ipv6`` when the prefix or address contains a colon, else ``ipv4``."""
    return "ipv6" if ":" in prefix else "ipv4"


class Geo:
    """Address blocks and ASNs → ISO country codes, from delegated files."""

    def __init__(self) -> None:
        self._trees: dict[Family, pytricia.PyTricia] = {
            "ipv4": pytricia.PyTricia(32),
            "ipv6": pytricia.PyTricia(128),
        }
        self._asns: dict[int, str] = {}
        self._longest: dict[Family, int] = {"ipv4": 0, "ipv6": 0}  # longest delegated prefix
        self.files: list[str] = []
        self.warnings: list[str] = []  # e.g. files of different dates that overlap
        self._owner: dict[Family, dict[str, int]] = {"ipv4": {}, "ipv6": {}}  # block → file
        self._overlaps: dict[tuple[int, int], list[str]] = {}

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> Geo:
        """Load every delegated file; raise InputError if one is unreadable or names nothing.

        Address blocks delegated in two files of different dates (e.g. an old RIR file next to
        a newer one, or a block transferred between RIRs) give one warning per pair of files in
        ``warnings``, naming both files, their dates and the blocks; the file read last wins.
        Files of the same date (a RIR's plain and extended file) may overlap without a warning.
        """
        geo = cls()
        dates: list[str] = []
        for number, path in enumerate(paths):
            rows = geo.add_delegations(parse_delegated(path), source=number)
            if rows == 0:
                raise InputError(f"delegated file {path} has no allocated/assigned rows")
            geo.files.append(os.fspath(path))
            dates.append(file_date(path))
        geo._find_overlaps()
        for (a, b), blocks in sorted(geo._overlaps.items()):
            if dates[a] == dates[b]:
                continue
            geo.warnings.append(
                f"delegated files of different dates overlap: {geo.files[a]} "
                f"({dates[a] or 'no date'}) and {geo.files[b]} ({dates[b] or 'no date'}): "
                f"{len(blocks)} address blocks in both, e.g. {', '.join(blocks[:3])}; "
                f"the file read last ({geo.files[b]}) is used for them"
            )
        return geo

    def add_delegations(self, rows: Iterable[Delegation], *, source: int = 0) -> int:
        """Add rows (``source`` numbers the file they come from); return how many were added."""
        added = 0
        for row in rows:
            added += 1
            if row.type == "asn":
                for asn in range(int(row.start), int(row.start) + row.value):
                    self._asns[asn] = row.country
            elif row.type == "ipv4":
                for cidr in _ipv4_cidrs(row.start, row.value):
                    self._insert("ipv4", cidr, row.country, source)
                    length = int(cidr.rpartition("/")[2])
                    self._longest["ipv4"] = max(self._longest["ipv4"], length)
            else:
                self._insert("ipv6", f"{row.start}/{row.value}", row.country, source)
                self._longest["ipv6"] = max(self._longest["ipv6"], row.value)
        return added

    def _insert(self, family: Family, cidr: str, country: str, source: int) -> None:
        owners = self._owner[family]
        before = owners.get(cidr)
        if before is not None and before != source:
            self._overlaps.setdefault((min(before, source), max(before, source)), []).append(cidr)
        self._trees[family][cidr] = country
        owners[cidr] = source

    def _find_overlaps(self) -> None:
        """Record blocks inside a block of another file (exact repeats are caught on insert)."""
        for family, owners in self._owner.items():
            tree = self._trees[family]
            for cidr, source in owners.items():
                parent = tree.parent(cidr)
                if parent is None:
                    continue
                other = owners.get(parent)
                if other is not None and other != source:
                    key = (min(other, source), max(other, source))
                    self._overlaps.setdefault(key, []).append(cidr)

    def __len__(self) -> int:
        return len(self._asns) + len(self._trees["ipv4"]) + len(self._trees["ipv6"])

    def country_of_asn(self, asn: int) -> str | None:
        """The country an ASN is registered to, or None."""
        return self._asns.get(asn)

    def country_of_address(self, address: str) -> str | None:
        """The country of the delegation holding ``address`` (or a prefix), or None."""
        tree = self._trees[family_of(address)]
        try:
            found: str | None = tree.get(address)
            return found
        except ValueError:
            return None

    def country_pieces(self, prefix: str) -> list[tuple[str, str]]:
        """(country, block) pieces of a routed prefix.

        A prefix inside one delegation is one piece, the prefix itself. A prefix that is larger
        than the delegations it covers (an aggregate) is split into the top-level delegations
        inside it; space inside it that no row delegates is left out.
        """
        tree = self._trees[family_of(prefix)]
        try:
            country = tree.get(prefix)
        except ValueError:
            return []
        if country is not None:
            return [(country, prefix)]
        length = prefix.rpartition("/")[2]
        if length.isdigit() and int(length) >= self._longest[family_of(prefix)]:
            return []  # nothing covers it, and no delegation is small enough to be inside
        # pytricia only lists the children of a key in the tree: add the prefix for a moment.
        try:
            tree[prefix] = ""
        except ValueError:
            return []
        try:
            children = tree.children(prefix)
        finally:
            del tree[prefix]
        if not children:
            return []
        pieces: list[tuple[str, str]] = []
        for child in children:
            parent = tree.parent(child)
            if parent is None or not _within(parent, prefix):
                pieces.append((tree[child], child))
        return pieces


def _within(inner: str, outer: str) -> bool:
    a = ipaddress.ip_network(inner)
    b = ipaddress.ip_network(outer)
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]
