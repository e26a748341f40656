"""A country's routed space as each full-feed session reaches it: what transit and hegemony walk.

Both figures go over the same routes: the country's routed prefixes of one family (sorted), each
full-feed session's cleaned path to each, and the pieces of each prefix that belong to the
country. ``country_scope`` gathers them once (``transit.country_transit`` and
``hegemony.country_hegemony`` take the scope); ``Scope.exclusive`` gives a session's exclusive
address space per piece (longest match), computed once for both. A ``Paths`` memo shared by all
countries of one table cleans each distinct AS path text once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from publiccore.collectors.bgp.blocks import exclusive_sizes
from publiccore.collectors.bgp.paths import clean_path
from publiccore.collectors.bgp.rib import Family, Rib
from publiccore.collectors.bgp.visibility import CountryIndex

# One route piece: (cleaned path peer first, whether it is its prefix's first piece); its
# (start, size) block is at the same place in ``Scope.blocks``
Piece = tuple[tuple[int, ...], bool]


class Paths(dict[str, tuple[int, ...]]):
    """AS path text → cleaned path, filled as texts are met (one table's paths)."""

    def __init__(self, *, keep_documentation: bool = False) -> None:
        super().__init__()
        self.keep_documentation = keep_documentation

    def __missing__(self, text: str) -> tuple[int, ...]:
        path = self[text] = clean_path(text, keep_documentation=self.keep_documentation)
        return path


@dataclasses.dataclass(slots=True)
class Scope:
    """One country's routed ``family`` space, per full-feed session (see module doc)."""

    country: str
    family: Family
    routed: int  # the country's prefixes with at least one route (any session)
    # per full-feed session, in the order the sessions are first met: its route pieces, by
    # prefix in sorted order, then by piece
    sessions: Mapping[int, list[Piece]]
    # per session, its pieces' (start, size) blocks, in the same order
    blocks: Mapping[int, list[tuple[int, int]]]
    peer_asns: Mapping[int, int]  # per session, the collector peer's ASN
    # exclusive sizes per distinct list of blocks: sessions that carry the same prefixes of
    # the country (most full feeds) share one computation
    _exclusive: dict[tuple[tuple[int, int], ...], list[int]] = dataclasses.field(
        default_factory=dict
    )

    def exclusive(self, session: int) -> list[int]:
        """Per piece of ``session``, the addresses not under a more-specific piece of it."""
        key = tuple(self.blocks[session])
        found = self._exclusive.get(key)
        if found is None:
            found = self._exclusive[key] = exclusive_sizes(key)
        return found


def country_scope(
    rib: Rib,
    index: CountryIndex,
    country: str,
    family: Family,
    full_feed: frozenset[int],
    *,
    keep_documentation: bool = False,
    paths: Paths | None = None,
) -> Scope:
    """Gather ``country``'s routed ``family`` space per full-feed session (see module doc).

    ``paths`` (optional) is a memo shared across calls on one table; its ``keep_documentation``
    must be the one given here.
    """
    memo = paths if paths is not None else Paths(keep_documentation=keep_documentation)
    routes = rib.routes
    sessions: dict[int, list[Piece]] = {}
    blocks: dict[int, list[tuple[int, int]]] = {}
    peer_asns: dict[int, int] = {}
    routed = 0
    for prefix in sorted(index.by_country.get((country, family), ())):
        per_peer = routes.get(prefix)
        if not per_peer:
            continue
        routed += 1
        pieces = [(s, z) for c, _f, s, z in index.pieces[prefix] if c == country]
        for session, text in per_peer.items():
            if session not in full_feed:
                continue
            path = memo[text]
            held = sessions.get(session)
            if held is None:
                held = sessions[session] = []
                blocks[session] = []
                peer_asns[session] = rib.peers[session].peer_asn
            blocks[session] += pieces
            held.append((path, True))
            held += [(path, False)] * (len(pieces) - 1)
    return Scope(
        country=country,
        family=family,
        routed=routed,
        sessions=sessions,
        blocks=blocks,
        peer_asns=peer_asns,
    )
