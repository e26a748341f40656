"""Root-server prefixes: the routed prefix covering each root address, its visibility, and its
origin AS(es) against the expected ones (bundled ``publiccore/data/root_origins.toml``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import pathlib
import socket
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources

from publiccore.collectors.bgp.rib import Family, Rib
from publiccore.collectors.bgp.visibility import MIN_COUNTRY_PREFIX, prefix_view

from publiccore.errors import InputError
from publiccore.roothints import RootServer


@dataclasses.dataclass(frozen=True, slots=True)
class RootPrefix:
    """One root address and what the routing table says about it."""

    letter: str
    address: str
    family: Family
    prefix: str | None  # None: no route covers the address
    visibility_ratio: float
    visible: bool
    origins: tuple[int, ...]
    expected_origins: tuple[int, ...]
    covered: bool = True  # False: the input cannot speak for this address (nothing stored)
    note: str = ""  # why it is not covered

    @property
    def unexpected(self) -> bool:
        """An origin outside the expected list (possible hijack)."""
        return any(origin not in self.expected_origins for origin in self.origins)

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "letter": self.letter,
            "address": self.address,
            "family": self.family,
            "prefix": self.prefix,
            "visibility_ratio": self.visibility_ratio,
            "visible": self.visible,
            "origins": list(self.origins),
            "expected_origins": list(self.expected_origins),
            "unexpected": self.unexpected,
            "covered": self.covered,
            "note": self.note,
        }


def bundled_origins_path() -> pathlib.Path:
    """The expected-origins table shipped with publiccore."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "root_origins.toml"))


def load_expected_origins(
    path: str | os.PathLike[str] | None = None,
    *,
    as_of: dt.datetime | float | None = None,
) -> dict[str, tuple[int, ...]]:
    """Letter → expected origin ASNs from a TOML table (bundled when None); raise InputError.

    A letter's optional ``last_seen`` table (ASN → ISO date) marks historic origins: with
    ``as_of`` (a datetime or Unix seconds, the data's date) an origin whose last-seen date is
    before that day is left out, so a later RIB showing it is flagged. Without ``as_of`` every
    listed origin is expected.
    """
    file = pathlib.Path(path) if path else bundled_origins_path()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read root origins {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"root origins {file} are not valid TOML: {exc}") from None
    letters = data.get("letters")
    if not isinstance(letters, dict):
        raise InputError(f"root origins {file}: no [letters.<x>] tables")
    day: dt.date | None = None
    if isinstance(as_of, dt.datetime):
        day = as_of.astimezone(dt.UTC).date()
    elif as_of is not None:
        day = dt.datetime.fromtimestamp(as_of, dt.UTC).date()
    out: dict[str, tuple[int, ...]] = {}
    for letter, entry in letters.items():
        origins = entry.get("origins") if isinstance(entry, dict) else None
        if not isinstance(origins, list) or not all(
            isinstance(o, int) and not isinstance(o, bool) for o in origins
        ):
            raise InputError(f"root origins {file}: letters.{letter}.origins must list ASNs")
        last_seen = _last_seen(file, letter, entry.get("last_seen", {}))
        if day is not None:
            origins = [o for o in origins if o not in last_seen or last_seen[o] >= day]
        out[letter.lower()] = tuple(origins)
    return out


def _last_seen(file: pathlib.Path, letter: str, table: object) -> dict[int, dt.date]:
    """The ``last_seen`` table of a letter as ASN → date; raise InputError when malformed."""
    if not isinstance(table, dict):
        raise InputError(f"root origins {file}: letters.{letter}.last_seen must be a table")
    out: dict[int, dt.date] = {}
    for asn, when in table.items():
        try:
            out[int(asn)] = when if isinstance(when, dt.date) else dt.date.fromisoformat(when)
        except (TypeError, ValueError):
            raise InputError(
                f"root origins {file}: letters.{letter}.last_seen: {asn} = {when!r} is not "
                "ASN = YYYY-MM-DD"
            ) from None
    return out


def covering_prefix(rib: Rib, address: str) -> str | None:
    """The longest routed prefix that covers ``address``, or None.

    Only prefixes of at least /8 (IPv4) or /16 (IPv6) count, as for countries
    (``MIN_COUNTRY_PREFIX``): a default route or a /0–/7 aggregate says nothing about the root
    server's own route, and taking it would flag its origin as unexpected (a false hijack).
    Candidates are written with ``inet_ntop``, as bgpdump and libbgpstream write prefixes.
    """
    ip = ipaddress.ip_address(address)
    width = ip.max_prefixlen
    value = int(ip)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    shortest = MIN_COUNTRY_PREFIX["ipv6" if ip.version == 6 else "ipv4"]
    routes = rib.routes
    for length in range(width, shortest - 1, -1):
        network = value & ~((1 << (width - length)) - 1)
        text = socket.inet_ntop(family, network.to_bytes(width // 8, "big"))
        candidate = f"{text}/{length}"
        if candidate in routes:
            return candidate
    return None


def root_prefixes(
    rib: Rib,
    servers: Sequence[RootServer],
    full_feed: Mapping[Family, frozenset[int]],
    expected: Mapping[str, tuple[int, ...]],
    *,
    threshold: float = 0.5,
    keep_documentation: bool = False,
    partial: bool = False,
) -> list[RootPrefix]:
    """Every root address (IPv4 first per letter) with its covering prefix's view.

    An address of a family without full-feed peers is not covered (the input says nothing about
    it), nor is an address without a covering route when the input is ``partial`` (a truncated
    file may stop before its prefix): such rows have ``covered`` False and a ``note``.
    """
    out: list[RootPrefix] = []
    for server in servers:
        addresses: list[tuple[Family, str]] = [("ipv4", a) for a in server.ipv4]
        addresses += [("ipv6", a) for a in server.ipv6]
        for family, address in addresses:
            prefix = covering_prefix(rib, address)
            note = ""
            if not full_feed[family]:
                note = f"no {family} full-feed peer in the input"
            elif prefix is None and partial:
                note = "no route in a partial (truncated) input, which may stop before it"
            if prefix is None or note:
                out.append(
                    RootPrefix(
                        letter=server.letter,
                        address=address,
                        family=family,
                        prefix=prefix,
                        visibility_ratio=0.0,
                        visible=False,
                        origins=(),
                        expected_origins=expected.get(server.letter, ()),
                        covered=not note,
                        note=note,
                    )
                )
                continue
            view = prefix_view(
                rib, prefix, full_feed, threshold=threshold, keep_documentation=keep_documentation
            )
            out.append(
                RootPrefix(
                    letter=server.letter,
                    address=address,
                    family=family,
                    prefix=prefix,
                    visibility_ratio=view.ratio,
                    visible=view.visible,
                    origins=view.origins,
                    expected_origins=expected.get(server.letter, ()),
                )
            )
    return out
