"""International upstream diversity of a country.

On each full-feed peer's path to each of the country's prefixes (cleaned: prepending collapsed,
AS_SETs and private/reserved ASNs dropped), walk from the origin towards the peer while the ASes
are registered to the country; the next AS is the international upstream. Paths whose origin is
not registered to the country, and paths that never leave it, name none. A path whose only foreign
AS is the collector peer itself (the first AS of the path is the peer's ASN) names none either:
that AS is where the collector peers, not a choice of the country's networks (counted as
``paths_peer_upstream``). Each upstream is weighted
by the address space the peer forwards along that route (longest match: space under a
more-specific route of the same peer counts for the more-specific). Shares are averaged per peer
AS, then across peer ASes with a trimmed mean (10% each side, as IHR does), and renormalised.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from publiccore.collectors.bgp.rib import Family
from publiccore.collectors.bgp.scope import Scope


@dataclasses.dataclass(frozen=True, slots=True)
class Upstream:
    asn: int
    share: float


@dataclasses.dataclass(frozen=True, slots=True)
class Transit:
    """A country's international upstreams for one family."""

    country: str
    family: Family
    upstreams: tuple[Upstream, ...]  # largest share first
    peer_asns_used: int
    paths_used: int
    paths_skipped: int
    paths_peer_upstream: int = 0  # paths whose only foreign AS was the collector peer's
    note: str = ""  # non-empty: the input does not cover this (no figure, nothing stored)

    @property
    def covered(self) -> bool:
        """True when the figure says something (a path to one of the country's prefixes used)."""
        return not self.note

    @property
    def count(self) -> int:
        """Number of upstreams with a non-zero share."""
        return len(self.upstreams)

    @property
    def effective_number(self) -> float:
        """1 / Σ share² (0 when there is no upstream)."""
        return effective_number(u.share for u in self.upstreams)

    @property
    def top_share(self) -> float:
        """The largest upstream's share (0 when there is none)."""
        return self.upstreams[0].share if self.upstreams else 0.0

    def to_json(self, top: int = 10) -> dict[str, object]:
        """JSON-ready mapping with the ``top`` upstreams."""
        return {
            "country": self.country,
            "family": self.family,
            "upstreams": [{"asn": u.asn, "share": u.share} for u in self.upstreams[:top]],
            "count": self.count,
            "effective_number": self.effective_number,
            "top_share": self.top_share,
            "peer_asns_used": self.peer_asns_used,
            "paths_used": self.paths_used,
            "paths_skipped": self.paths_skipped,
            "paths_peer_upstream": self.paths_peer_upstream,
            "covered": self.covered,
            "note": self.note,
        }


def uncovered(country: str, family: Family, note: str) -> Transit:
    """A transit row for input that does not cover the country and family: no figure."""
    return Transit(
        country=country,
        family=family,
        upstreams=(),
        peer_asns_used=0,
        paths_used=0,
        paths_skipped=0,
        note=note,
    )


def effective_number(shares: Iterable[float]) -> float:
    """1 / Σ s² of shares summing to 1 (the inverse Herfindahl index); 0 for none."""
    total = sum(s * s for s in shares)
    return 1.0 / total if total > 0 else 0.0


def trimmed_mean(values: Sequence[float], trim: float = 0.1) -> float:
    """Mean after dropping ``floor(trim × n)`` values at each end (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    cut = int(trim * len(ordered))
    kept = ordered[cut : len(ordered) - cut] if cut else ordered
    return sum(kept) / len(kept)


def upstream_of(
    path: Sequence[int], country: str, country_of_asn: Callable[[int], str | None]
) -> int | None:
    """The foreign AS next to the origin's domestic run on a cleaned path (peer first)."""
    if not path or country_of_asn(path[-1]) != country:
        return None
    i = len(path) - 1
    while i >= 0 and country_of_asn(path[i]) == country:
        i -= 1
    return path[i] if i >= 0 else None


def combine(per_peer_as: Mapping[int, Mapping[int, float]], *, trim: float = 0.1) -> list[Upstream]:
    """Trimmed mean across peer ASes of each upstream's share (0 where a peer AS lacks it),
    renormalised to sum to 1, largest first."""
    upstreams = {asn for shares in per_peer_as.values() for asn in shares}
    means = {
        asn: trimmed_mean([shares.get(asn, 0.0) for shares in per_peer_as.values()], trim)
        for asn in upstreams
    }
    total = sum(v for v in means.values() if v > 0)
    if total <= 0:
        return []
    out = [Upstream(asn=asn, share=value / total) for asn, value in means.items() if value > 0]
    out.sort(key=lambda u: (-u.share, u.asn))
    return out


def country_transit(
    scope: Scope, country_of_asn: Callable[[int], str | None], *, trim: float = 0.1
) -> Transit:
    """The international upstreams of the scope's country and family (see module doc)."""
    country, family = scope.country, scope.family
    used = skipped = peer_only = 0
    upstreams: dict[tuple[int, ...], int | None] = {}  # per cleaned path (paths repeat)
    per_peer_as: dict[int, list[dict[int, float]]] = defaultdict(list)
    for session, routes in scope.sessions.items():
        peer_asn = scope.peer_asns[session]
        weights: dict[int, float] = defaultdict(float)
        for (path, first), weight in zip(routes, scope.exclusive(session), strict=True):
            if path in upstreams:
                upstream = upstreams[path]
            else:
                upstream = upstreams[path] = upstream_of(path, country, country_of_asn)
            if upstream is not None and upstream == path[0] == peer_asn:
                upstream = None  # only the collector peer's own AS: says where it peers
                peer_only += first
            elif upstream is None:
                skipped += first
            else:
                used += first
            if upstream is not None and weight > 0:
                weights[upstream] += weight
        total = sum(weights.values())
        if total > 0:
            per_peer_as[peer_asn].append({asn: w / total for asn, w in weights.items()})
    averaged: dict[int, dict[int, float]] = {}
    for peer_asn, sessions in per_peer_as.items():
        merged: dict[int, float] = defaultdict(float)
        for shares in sessions:
            for asn, share in shares.items():
                merged[asn] += share / len(sessions)
        averaged[peer_asn] = dict(merged)
    note = ""
    if not scope.routed:
        note = f"no routed {family} prefix of {country} in the input"
    elif not used:
        note = f"no full-feed path to a {country}-originated {family} prefix leaves {country}"
    return Transit(
        country=country,
        family=family,
        upstreams=tuple(combine(averaged, trim=trim)),
        peer_asns_used=len(averaged),
        paths_used=used,
        paths_skipped=skipped,
        paths_peer_upstream=peer_only,
        note=note,
    )
