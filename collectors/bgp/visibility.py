"""Prefix and country visibility.

A prefix is visible when more than ``threshold`` (IODA: 50%) of the full-feed peers of its family
carry a route to it. A country's routed space is the union of its prefixes (RIR delegated files
say whose) seen by any peer, in /24 or /48 equivalents with more-specifics counted once; its
visible space is the union of its visible prefixes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from publiccore.collectors.bgp.blocks import block, union_size, units
from publiccore.collectors.bgp.paths import clean_path, is_reserved_asn
from publiccore.collectors.bgp.rib import FAMILIES, Family, Rib

from publiccore.geo import Geo


@dataclasses.dataclass(frozen=True, slots=True)
class PrefixView:
    """What the full-feed peers see of one prefix."""

    prefix: str
    family: Family
    peers: int  # sessions with a route, full-feed or not
    full_feed_peers: int  # full-feed sessions (of the family) with a route
    ratio: float  # full_feed_peers / all full-feed sessions of the family
    visible: bool
    origins: tuple[int, ...]

    @property
    def multiple_origins(self) -> bool:
        """More than one origin AS (MOAS)."""
        return len(self.origins) > 1

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "prefix": self.prefix,
            "family": self.family,
            "peers": self.peers,
            "full_feed_peers": self.full_feed_peers,
            "visibility_ratio": self.ratio,
            "visible": self.visible,
            "origins": list(self.origins),
            "multiple_origins": self.multiple_origins,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class CountryVisibility:
    """One country and family: routed and visible space, and prefixes no full-feed peer sees."""

    country: str
    family: Family
    prefixes: int
    routed_units: float
    visible_units: float
    unseen_prefixes: int

    @property
    def visible_ratio(self) -> float:
        """Visible share of the routed space (0 when nothing is routed)."""
        return self.visible_units / self.routed_units if self.routed_units else 0.0

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "country": self.country,
            "family": self.family,
            "prefixes": self.prefixes,
            "routed_units": self.routed_units,
            "visible_units": self.visible_units,
            "visible_ratio": self.visible_ratio,
            "unseen_prefixes": self.unseen_prefixes,
        }


def fast_origin(as_path: str, *, keep_documentation: bool = False) -> int | None:
    """The origin AS of a path text; the common plain-number case without a full clean."""
    last = as_path.rpartition(" ")[2]
    if last.isdigit():
        asn = int(last)
        if not is_reserved_asn(asn, keep_documentation=keep_documentation):
            return asn
    cleaned = clean_path(as_path, keep_documentation=keep_documentation)
    return cleaned[-1] if cleaned else None


def prefix_view(
    rib: Rib,
    prefix: str,
    full_feed: Mapping[Family, frozenset[int]],
    *,
    threshold: float = 0.5,
    keep_documentation: bool = False,
) -> PrefixView:
    """The view of one prefix (not routed: no peers, ratio 0)."""
    family: Family = "ipv6" if ":" in prefix else "ipv4"
    per_peer = rib.routes.get(prefix, {})
    ff = full_feed[family]
    seen = sum(1 for index in per_peer if index in ff)
    ratio = seen / len(ff) if ff else 0.0
    origins = {
        fast_origin(path, keep_documentation=keep_documentation) for path in per_peer.values()
    }
    origins.discard(None)
    return PrefixView(
        prefix=prefix,
        family=family,
        peers=len(per_peer),
        full_feed_peers=seen,
        ratio=ratio,
        visible=ratio > threshold,
        origins=tuple(sorted(o for o in origins if o is not None)),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """Per family: prefixes seen by any peer, visible ones, and those with several origins."""

    prefixes_seen: Mapping[Family, int]
    prefixes_visible: Mapping[Family, int]
    multiple_origins: Mapping[Family, int]
    full_feed_peers: Mapping[Family, int]

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping, one object per family."""
        return {
            family: {
                "prefixes_seen": self.prefixes_seen[family],
                "prefixes_visible": self.prefixes_visible[family],
                "multiple_origin_prefixes": self.multiple_origins[family],
                "full_feed_peers": self.full_feed_peers[family],
            }
            for family in FAMILIES
        }


def full_feed_counts(rib: Rib, full_feed: Mapping[Family, frozenset[int]]) -> dict[str, int]:
    """Per prefix, how many full-feed sessions of its family carry it."""
    ff4 = full_feed["ipv4"]
    ff6 = full_feed["ipv6"]
    out: dict[str, int] = {}
    for prefix, per_peer in rib.routes.items():
        ff = ff6 if ":" in prefix else ff4
        out[prefix] = sum(1 for index in per_peer if index in ff)
    return out


def session_counter(full_feed: frozenset[int], sessions: int) -> Callable[[Mapping[int, str]], int]:
    """A function giving how many of a prefix's sessions (``per_peer`` keys) are full-feed.

    It probes the smaller side: the full-feed set, or the other sessions of the table (indices
    ``0 … sessions-1``) counted off the prefix's session total.
    """
    others = tuple(i for i in range(sessions) if i not in full_feed)
    if not full_feed:
        return lambda per_peer: 0
    if not others:
        return len
    if len(full_feed) == 1:
        (only,) = full_feed
        return lambda per_peer: 1 if only in per_peer else 0
    if len(full_feed) <= len(others):
        members = tuple(sorted(full_feed))
        return lambda per_peer: len([1 for i in members if i in per_peer])
    return lambda per_peer: len(per_peer) - len([1 for i in others if i in per_peer])


def tally(
    rib: Rib,
    full_feed: Mapping[Family, frozenset[int]],
    *,
    threshold: float = 0.5,
    keep_documentation: bool = False,
) -> tuple[dict[str, int], Summary]:
    """One pass over the table: full-feed sessions per prefix, and the summary counts."""
    totals = {family: len(full_feed[family]) for family in FAMILIES}
    need4 = threshold * totals["ipv4"]
    need6 = threshold * totals["ipv6"]
    count4 = session_counter(full_feed["ipv4"], len(rib.peers))
    count6 = session_counter(full_feed["ipv6"], len(rib.peers))
    any4 = totals["ipv4"] > 0
    any6 = totals["ipv6"] > 0
    counts: dict[str, int] = {}
    seen4 = seen6 = visible4 = visible6 = moas4 = moas6 = 0
    for prefix, per_peer in rib.routes.items():
        if ":" in prefix:
            count = count6(per_peer)
            seen6 += 1
            if count > need6 and any6:
                visible6 += 1
            if len(per_peer) > 1 and _multiple_origins(
                per_peer, keep_documentation=keep_documentation
            ):
                moas6 += 1
        else:
            count = count4(per_peer)
            seen4 += 1
            if count > need4 and any4:
                visible4 += 1
            if len(per_peer) > 1 and _multiple_origins(
                per_peer, keep_documentation=keep_documentation
            ):
                moas4 += 1
        counts[prefix] = count
    summary = Summary(
        prefixes_seen={"ipv4": seen4, "ipv6": seen6},
        prefixes_visible={"ipv4": visible4, "ipv6": visible6},
        multiple_origins={"ipv4": moas4, "ipv6": moas6},
        full_feed_peers=totals,
    )
    return counts, summary


def _multiple_origins(per_peer: Mapping[int, str], *, keep_documentation: bool) -> bool:
    """Whether the peers' AS paths for one prefix end in more than one origin AS (MOAS)."""
    if len(per_peer) < 2:
        return False
    paths = set(per_peer.values())
    if len(paths) < 2:
        return False
    last = {p.rpartition(" ")[2] for p in paths}
    if len(last) == 1:
        # one last token on every path: one origin, unless the token is not a plain usable
        # ASN (an AS_SET, a reserved ASN), when each path's origin comes from its cleaning
        (token,) = last
        if token.isdigit() and not is_reserved_asn(
            int(token), keep_documentation=keep_documentation
        ):
            return False
    origins = {fast_origin(p, keep_documentation=keep_documentation) for p in paths}
    origins.discard(None)
    return len(origins) > 1


def summarize(
    rib: Rib,
    full_feed: Mapping[Family, frozenset[int]],
    ff_counts: Mapping[str, int],
    *,
    threshold: float = 0.5,
    keep_documentation: bool = False,
) -> Summary:
    """Counts over the whole table (origins computed for every prefix)."""
    seen: dict[Family, int] = {"ipv4": 0, "ipv6": 0}
    visible: dict[Family, int] = {"ipv4": 0, "ipv6": 0}
    moas: dict[Family, int] = {"ipv4": 0, "ipv6": 0}
    totals = {family: len(full_feed[family]) for family in FAMILIES}
    for prefix, per_peer in rib.routes.items():
        family: Family = "ipv6" if ":" in prefix else "ipv4"
        seen[family] += 1
        total = totals[family]
        if total and ff_counts[prefix] / total > threshold:
            visible[family] += 1
        if _multiple_origins(per_peer, keep_documentation=keep_documentation):
            moas[family] += 1
    return Summary(
        prefixes_seen=seen, prefixes_visible=visible, multiple_origins=moas, full_feed_peers=totals
    )


@dataclasses.dataclass(slots=True)
class CountryIndex:
    """The routed prefixes of each country: prefix → its (country, family, start, size) pieces."""

    pieces: dict[str, list[tuple[str, Family, int, int]]] = dataclasses.field(default_factory=dict)
    by_country: dict[tuple[str, Family], set[str]] = dataclasses.field(
        default_factory=lambda: defaultdict(set)
    )
    # pieces attributed before with the same RIR files (another index's ``pieces``, e.g. the
    # collector's previous RIB): taken as they are instead of asking the RIR tables again
    known: Mapping[str, list[tuple[str, Family, int, int]]] = dataclasses.field(
        default_factory=dict
    )

    def add(self, prefix: str, geo: Geo) -> list[tuple[str, Family, int, int]]:
        """Attribute a prefix (once) and return its pieces."""
        found = self.pieces.get(prefix)
        if found is not None:
            return found
        found = self.known.get(prefix)
        if found is not None:
            self.pieces[prefix] = found
            for country, family, _start, _size in found:
                self.by_country[(country, family)].add(prefix)
            return found
        out: list[tuple[str, Family, int, int]] = []
        if not attributable(prefix):
            self.pieces[prefix] = out
            return out
        for country, piece in geo.country_pieces(prefix):
            try:
                family, start, size = block(piece)
            except ValueError:
                continue
            out.append((country, family, start, size))
            self.by_country[(country, family)].add(prefix)
        self.pieces[prefix] = out
        return out


# Prefixes shorter than these (default routes, /0–/7 aggregates) say nothing about a country's
# reachability and would make every delegation "routed": they are not attributed.
MIN_COUNTRY_PREFIX: dict[Family, int] = {"ipv4": 8, "ipv6": 16}


def attributable(prefix: str) -> bool:
    """True when a prefix is long enough to be attributed to countries."""
    length = prefix.rpartition("/")[2]
    return (
        length.isdigit() and int(length) >= MIN_COUNTRY_PREFIX["ipv6" if ":" in prefix else "ipv4"]
    )


def country_index(prefixes: Iterable[str], geo: Geo) -> CountryIndex:
    """Attribute every (long enough) prefix to its countries."""
    index = CountryIndex()
    add = index.add
    for prefix in prefixes:
        add(prefix, geo)
    return index


def country_visibility(
    index: CountryIndex,
    key: tuple[str, Family],
    routes: Mapping[str, Mapping[int, str]],
    ff_counts: Mapping[str, int],
    ff_total: int,
    *,
    threshold: float = 0.5,
) -> CountryVisibility:
    """Visibility of one (country, family) from the prefixes currently routed."""
    country, family = key
    routed: list[tuple[int, int]] = []
    visible: list[tuple[int, int]] = []
    unseen = 0
    prefixes = 0
    for prefix in index.by_country.get(key, ()):
        if prefix not in routes:
            continue
        prefixes += 1
        count = ff_counts.get(prefix, 0)
        is_visible = bool(ff_total) and count / ff_total > threshold
        if count == 0:
            unseen += 1
        for piece_country, _family, start, size in index.pieces[prefix]:
            if piece_country != country:
                continue
            routed.append((start, size))
            if is_visible:
                visible.append((start, size))
    return CountryVisibility(
        country=country,
        family=family,
        prefixes=prefixes,
        routed_units=units(union_size(routed), family),
        visible_units=units(union_size(visible), family),
        unseen_prefixes=unseen,
    )


def all_country_visibility(
    index: CountryIndex,
    rib: Rib,
    ff_counts: Mapping[str, int],
    full_feed: Mapping[Family, frozenset[int]],
    *,
    threshold: float = 0.5,
) -> list[CountryVisibility]:
    """Visibility of every (country, family) with routed prefixes, sorted by country.

    One pass over the attributed prefixes (``country_visibility`` does one country)."""
    totals = {family: len(full_feed[family]) for family in FAMILIES}
    routed: dict[tuple[str, Family], list[tuple[int, int]]] = defaultdict(list)
    visible: dict[tuple[str, Family], list[tuple[int, int]]] = defaultdict(list)
    prefixes: dict[tuple[str, Family], int] = defaultdict(int)
    unseen: dict[tuple[str, Family], int] = defaultdict(int)
    routes = rib.routes
    for prefix, pieces in index.pieces.items():
        if not pieces or prefix not in routes:
            continue
        count = ff_counts.get(prefix, 0)
        total = totals[pieces[0][1]]
        is_visible = bool(total) and count / total > threshold
        keys = set()
        for country, family, start, size in pieces:
            key = (country, family)
            keys.add(key)
            routed[key].append((start, size))
            if is_visible:
                visible[key].append((start, size))
        for key in keys:
            prefixes[key] += 1
            if count == 0:
                unseen[key] += 1
    return [
        CountryVisibility(
            country=key[0],
            family=key[1],
            prefixes=prefixes[key],
            routed_units=units(union_size(routed[key]), key[1]),
            visible_units=units(union_size(visible.get(key, ())), key[1]),
            unseen_prefixes=unseen[key],
        )
        for key in sorted(routed)
    ]
