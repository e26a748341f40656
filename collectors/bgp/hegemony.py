"""Country AS hegemony (IHR's AS Hegemony with a country as the scope, M-bgp-hegemony).

How much of a country's address space hangs on one network, domestic or foreign. As IHR
describes it (InternetHealthReport/as-hegemony, ``docs/AS_HEGEMONY.md``):

- Scope: the country's routed prefixes (RIR delegations, as for country visibility) and the
  space of each that belongs to the country. IPv4 weights are addresses, with the space under a
  more-specific route of the same peer counted for the more-specific only; IPv6 prefixes weigh
  1 each, whatever their length.
- Per peer session (one full-feed collector peer): every AS on the cleaned path to a prefix,
  except the origin, gets the prefix's weight; divided by the session's total weight for the
  country, that is the AS's score in this view (the share of the country's space the peer
  reaches through it).
- Per peer AS: the average of its sessions' scores (0 where a session lacks the AS).
- Hegemony: the mean over peer ASes, trimmed by floor(10 %) of the peer ASes at each end, an AS
  absent from a peer AS's view scoring 0 there.

Where publiccore's path cleaning differs from IHR: AS_SETs are dropped (IHR splits the weight
among the set's members) and private or reserved ASNs are dropped.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Mapping

from publiccore.collectors.bgp.blocks import exclusive_sizes
from publiccore.collectors.bgp.rib import Family
from publiccore.collectors.bgp.scope import Scope
from publiccore.collectors.bgp.transit import trimmed_mean

# An AS with a hegemony above this counts as one the country depends on
# (``bgp_country_dependent_ases``).
DEPENDENT_THRESHOLD = 0.1
# How many ASes per country and family are stored as ``bgp_country_dependency_ratio``.
TOP_STORED = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Dependency:
    """One AS and its hegemony over a country's space (0–1)."""

    asn: int
    hegemony: float


@dataclasses.dataclass(frozen=True, slots=True)
class Hegemony:
    """The ASes a country's routed space depends on, for one family."""

    country: str
    family: Family
    dependencies: tuple[Dependency, ...]  # largest hegemony first, only those above 0
    peer_asns_used: int
    sessions_used: int
    note: str = ""  # non-empty: the input does not cover it (no figure, nothing stored)

    @classmethod
    def absent(cls, country: str, family: Family, note: str) -> Hegemony:
        """A row for input that does not cover the country and family."""
        return cls(
            country=country,
            family=family,
            dependencies=(),
            peer_asns_used=0,
            sessions_used=0,
            note=note,
        )

    @property
    def covered(self) -> bool:
        """True when at least one full-feed session reached the country's space."""
        return not self.note

    def dependent_ases(self, threshold: float = DEPENDENT_THRESHOLD) -> int:
        """How many ASes have a hegemony above ``threshold``."""
        return sum(1 for d in self.dependencies if d.hegemony > threshold)

    def to_json(self, top: int = 10) -> dict[str, object]:
        """JSON-ready mapping with the ``top`` ASes."""
        return {
            "country": self.country,
            "family": self.family,
            "dependencies": [
                {"asn": d.asn, "hegemony": d.hegemony} for d in self.dependencies[:top]
            ],
            "dependent_ases": self.dependent_ases(),
            "threshold": DEPENDENT_THRESHOLD,
            "peer_asns_used": self.peer_asns_used,
            "sessions_used": self.sessions_used,
            "covered": self.covered,
            "note": self.note,
        }


def view_scores(routes: list[tuple[int, int, tuple[int, ...]]], family: Family) -> dict[int, float]:
    """One session's scores: ``routes`` are its (start, size, cleaned path) pieces of the scope.

    Every AS on a path except the origin gets the piece's weight (exclusive address space for
    IPv4, 1 per route for IPv6), divided by the session's total weight. Empty when the session
    has no weight in the scope.
    """
    if family == "ipv6":
        weights = [1.0 if size > 0 else 0.0 for _start, size, _path in routes]
    else:
        weights = [float(w) for w in exclusive_sizes([(s, z) for s, z, _p in routes])]
    return _scores([path for _s, _z, path in routes], weights)


def _scores(paths: list[tuple[int, ...]], weights: list[float]) -> dict[int, float]:
    total = 0.0
    scores: dict[int, float] = defaultdict(float)
    for path, weight in zip(paths, weights, strict=True):
        if weight <= 0 or not path:
            continue
        total += weight
        for asn in _on_path(path):
            scores[asn] += weight
    if total <= 0:
        return {}
    return {asn: value / total for asn, value in scores.items()}


@functools.lru_cache(maxsize=1 << 16)
def _on_path(path: tuple[int, ...]) -> frozenset[int]:
    """The ASes of a cleaned path that score: all but the origin."""
    return frozenset(path[:-1]) - {path[-1]}


def _session_scores(scope: Scope, session: int) -> dict[int, float]:
    """``view_scores`` of one session of a scope (IPv6: the first piece of each prefix only)."""
    routes = scope.sessions[session]
    if scope.family == "ipv6":  # IHR: one weight per IPv6 prefix
        kept = [
            (size, path)
            for (_start, size), (path, first) in zip(scope.blocks[session], routes, strict=True)
            if first
        ]
        return _scores([p for _z, p in kept], [1.0 if z > 0 else 0.0 for z, _p in kept])
    weights = [float(w) for w in scope.exclusive(session)]
    return _scores([path for path, _first in routes], weights)


def combine_views(
    per_peer_as: Mapping[int, list[Mapping[int, float]]], *, trim: float = 0.1
) -> list[Dependency]:
    """Average each peer AS's sessions, then the trimmed mean across peer ASes (0 if absent)."""
    averaged: list[dict[int, float]] = []
    for sessions in per_peer_as.values():
        merged: dict[int, float] = defaultdict(float)
        for scores in sessions:
            for asn, score in scores.items():
                merged[asn] += score / len(sessions)
        averaged.append(dict(merged))
    asns = {asn for view in averaged for asn in view}
    out = []
    for asn in asns:
        value = trimmed_mean([view.get(asn, 0.0) for view in averaged], trim)
        if value > 0:
            out.append(Dependency(asn=asn, hegemony=value))
    out.sort(key=lambda d: (-d.hegemony, d.asn))
    return out


def country_hegemony(scope: Scope, *, trim: float = 0.1) -> Hegemony:
    """The AS hegemony over the scope's country's routed space, one family (see module doc)."""
    country, family = scope.country, scope.family
    per_peer_as: dict[int, list[Mapping[int, float]]] = defaultdict(list)
    for session in scope.sessions:
        per_peer_as[scope.peer_asns[session]].append(_session_scores(scope, session))
    if not per_peer_as:
        return Hegemony.absent(
            country, family, f"no full-feed route to a {family} prefix of {country}"
        )
    return Hegemony(
        country=country,
        family=family,
        dependencies=tuple(combine_views(per_peer_as, trim=trim)),
        peer_asns_used=len(per_peer_as),
        sessions_used=len(scope.sessions),
    )
