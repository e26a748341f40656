"""The routing table as the collectors' peers see it, and who counts as a full-feed peer.

``Rib`` keeps, per prefix, each peer's AS path. RIB entries (``R``) and announcements (``A``) set a
route, withdrawals (``W``) remove one, and a state change out of Established (``S``) removes every
route of that peer session. A peer is a session: (collector, peer ASN, peer address).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from publiccore.collectors.bgp.elements import ESTABLISHED, Element

Family = Literal["ipv4", "ipv6"]
FAMILIES: tuple[Family, Family] = ("ipv4", "ipv6")


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """One collector peering session."""

    collector: str
    peer_asn: int
    peer_address: str


@dataclasses.dataclass(frozen=True, slots=True)
class PeerRow:
    """A line of the peer table: prefixes per family and whether the peer is full-feed."""

    index: int
    peer: Peer
    prefixes: Mapping[Family, int]
    full_feed: Mapping[Family, bool]

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {
            "collector": self.peer.collector,
            "peer_asn": self.peer.peer_asn,
            "peer_address": self.peer.peer_address,
            "prefixes": dict(self.prefixes),
            "full_feed": dict(self.full_feed),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class FullFeedRule:
    """Full-feed peer: ≥ ``ratio`` of the largest peer's count for the family at its collector,
    and ≥ the absolute minimum for the family (0 = none). ``ratio`` 0 leaves the minimum alone."""

    ratio: float = 0.75
    min_ipv4: int = 0
    min_ipv6: int = 0

    def minimum(self, family: Family) -> int:
        """The absolute minimum prefix count for a family."""
        return self.min_ipv4 if family == "ipv4" else self.min_ipv6


def family_of(prefix: str) -> Family:
    """``ipv6`` for a prefix with a colon, else ``ipv4``."""
    return "ipv6" if ":" in prefix else "ipv4"


class Rib:
    """Per prefix, each peer's AS path (see module doc)."""

    def __init__(self) -> None:
        self.peers: list[Peer] = []
        self._peer_index: dict[tuple[str, int, str], int] = {}
        self.routes: dict[str, dict[int, str]] = {}
        self.elements = 0

    def peer_index(self, collector: str, peer_asn: int, peer_address: str) -> int:
        """The index of a peer session, added when new."""
        key = (collector, peer_asn, peer_address)
        index = self._peer_index.get(key)
        if index is None:
            index = len(self.peers)
            self._peer_index[key] = index
            self.peers.append(Peer(collector, peer_asn, peer_address))
        return index

    def known_peer(self, collector: str, peer_asn: int, peer_address: str) -> int | None:
        """The index of a peer session already seen, or None."""
        return self._peer_index.get((collector, peer_asn, peer_address))

    def apply(
        self, elements: Iterable[Element], on_new_prefix: Callable[[str], object] | None = None
    ) -> int:
        """Apply elements in order; return how many were applied. The hot loop of a RIB load.

        ``on_new_prefix`` is called with each prefix the table did not hold: per-prefix work
        (country attribution) done there overlaps with the reader's subprocess. A reader's
        result that can fold itself into a table (``fold_into(rib, on_new_prefix)``, as the
        bgpdump reader's can) does, with the same outcome and without an Element per entry.
        """
        fold = getattr(elements, "fold_into", None)
        if fold is not None:
            return int(fold(self, on_new_prefix))
        routes = self.routes
        known = self._peer_index
        count = 0
        for element in elements:
            count += 1
            kind = element[0]
            key = (element[2], element[3], element[4])
            index = known.get(key)
            if index is None:
                if kind == "S" or kind == "W":
                    continue  # a session with no route yet: nothing to change
                index = self.peer_index(*key)
            if kind == "R" or kind == "A":
                per_peer = routes.get(element[5])
                if per_peer is None:
                    routes[element[5]] = {index: element[6]}
                    if on_new_prefix is not None:
                        on_new_prefix(element[5])
                else:
                    per_peer[index] = element[6]
            elif kind == "W":
                per_peer = routes.get(element[5])
                if per_peer is not None:
                    per_peer.pop(index, None)
                    if not per_peer:
                        del routes[element[5]]
            elif element.new_state != ESTABLISHED:
                self.drop_peer_routes(index)
        self.elements += count
        return count

    def drop_peer_routes(self, index: int) -> list[str]:
        """Remove every route of a peer session (its session went down); return the prefixes."""
        dropped = [prefix for prefix, per_peer in self.routes.items() if index in per_peer]
        for prefix in dropped:
            per_peer = self.routes[prefix]
            del per_peer[index]
            if not per_peer:
                del self.routes[prefix]
        return dropped

    def prefix_counts(self) -> list[dict[Family, int]]:
        """Prefixes per peer and family, indexed like ``peers``."""
        counts: list[dict[Family, int]] = [{"ipv4": 0, "ipv6": 0} for _ in self.peers]
        for prefix, per_peer in self.routes.items():
            family: Family = "ipv6" if ":" in prefix else "ipv4"
            for index in per_peer:
                counts[index][family] += 1
        return counts

    def peer_table(self, rule: FullFeedRule) -> list[PeerRow]:
        """The peer table with each session's full-feed status per family."""
        counts = self.prefix_counts()
        largest: dict[tuple[str, Family], int] = {}
        for peer, count in zip(self.peers, counts, strict=True):
            for family in FAMILIES:
                key = (peer.collector, family)
                largest[key] = max(largest.get(key, 0), count[family])
        rows = []
        for index, (peer, count) in enumerate(zip(self.peers, counts, strict=True)):
            full = {
                family: is_full_feed(count[family], largest[(peer.collector, family)], rule, family)
                for family in FAMILIES
            }
            rows.append(PeerRow(index=index, peer=peer, prefixes=count, full_feed=full))
        return rows


def is_full_feed(count: int, largest: int, rule: FullFeedRule, family: Family) -> bool:
    """Whether a peer with ``count`` prefixes is full-feed next to the collector's ``largest``."""
    if count <= 0:
        return False
    if count < rule.minimum(family):
        return False
    return count >= rule.ratio * largest


def full_feed_sets(rows: Iterable[PeerRow]) -> dict[Family, frozenset[int]]:
    """Indices of the full-feed sessions per family."""
    out: dict[Family, set[int]] = {"ipv4": set(), "ipv6": set()}
    for row in rows:
        for family in FAMILIES:
            if row.full_feed[family]:
                out[family].add(row.index)
    return {family: frozenset(indices) for family, indices in out.items()}
