"""BGP4MP updates applied onto a RIB: visibility time series in fixed bins (IODA: 5 minutes).

Each bin is stamped with its start and holds the state at its end. The full-feed sessions are
those of the RIB the updates start from, kept fixed over the window; a bin without updates
repeats the previous bin's values. The last bin is ``partial`` when the updates end before it
does (its last element, plus the one-second resolution of MRT times, falls short of the bin's
end): its state is the state when the data stops, not at the bin's end.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from publiccore.collectors.bgp.elements import ESTABLISHED, Element
from publiccore.collectors.bgp.rib import Family, Rib
from publiccore.collectors.bgp.roots import covering_prefix
from publiccore.collectors.bgp.visibility import CountryIndex, CountryVisibility, country_visibility

from publiccore.geo import Geo


@dataclasses.dataclass(frozen=True, slots=True)
class PrefixPoint:
    """A watched address's covering prefix and its visibility at the end of a bin."""

    name: str  # e.g. the root letter
    address: str
    prefix: str | None
    ratio: float


@dataclasses.dataclass(frozen=True, slots=True)
class Bin:
    """The state at the end of one bin (``start`` = bin start, Unix seconds)."""

    start: float
    updates: int
    countries: tuple[CountryVisibility, ...]
    prefixes: tuple[PrefixPoint, ...]
    partial: bool = False  # the data ends before the bin does (the last bin of a window)


def merged(streams: Sequence[Iterable[Element]]) -> Iterable[Element]:
    """Elements of several time-ordered files, in time order."""
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda e: e.time)


class Timeline:
    """Applies updates to a RIB while keeping per-prefix full-feed counts and dirty countries."""

    def __init__(
        self,
        rib: Rib,
        full_feed: Mapping[Family, frozenset[int]],
        ff_counts: dict[str, int],
        index: CountryIndex | None,
        geo: Geo | None,
        *,
        watched: Sequence[tuple[str, str]] = (),
        bin_seconds: int = 300,
        threshold: float = 0.5,
    ) -> None:
        self.rib = rib
        self.full_feed = full_feed
        self.ff_counts = ff_counts
        self.index = index
        self.geo = geo
        self.watched = tuple(watched)
        self.bin_seconds = bin_seconds
        self.threshold = threshold
        self._dirty: set[tuple[str, Family]] = set()
        self._countries: dict[tuple[str, Family], CountryVisibility] = {}
        if index is not None:
            for key in index.by_country:
                self._countries[key] = self._country(key)

    def _country(self, key: tuple[str, Family]) -> CountryVisibility:
        assert self.index is not None
        return country_visibility(
            self.index,
            key,
            self.rib.routes,
            self.ff_counts,
            len(self.full_feed[key[1]]),
            threshold=self.threshold,
        )

    def _touch(self, prefix: str) -> None:
        if self.index is None or self.geo is None:
            return
        for country, family, _start, _size in self.index.add(prefix, self.geo):
            self._dirty.add((country, family))

    def _set(self, index: int, prefix: str, path: str) -> None:
        per_peer = self.rib.routes.get(prefix)
        if per_peer is None:
            per_peer = self.rib.routes[prefix] = {}
            self.ff_counts[prefix] = 0
            self._touch(prefix)
        if index not in per_peer and index in self.full_feed["ipv6" if ":" in prefix else "ipv4"]:
            self.ff_counts[prefix] += 1
            self._touch(prefix)
        per_peer[index] = path

    def _unset(self, index: int, prefix: str) -> None:
        per_peer = self.rib.routes.get(prefix)
        if per_peer is None or index not in per_peer:
            return
        del per_peer[index]
        if index in self.full_feed["ipv6" if ":" in prefix else "ipv4"]:
            self.ff_counts[prefix] -= 1
            self._touch(prefix)
        if not per_peer:
            del self.rib.routes[prefix]
            del self.ff_counts[prefix]
            self._touch(prefix)

    def apply(self, element: Element) -> None:
        """Apply one update element."""
        self.rib.elements += 1
        if element.type in ("S", "W"):
            index = self.rib.known_peer(element.collector, element.peer_asn, element.peer_address)
            if index is None:
                return  # a session with no route: nothing to change
        else:
            index = self.rib.peer_index(element.collector, element.peer_asn, element.peer_address)
        if element.type in ("A", "R"):
            self._set(index, element.prefix, element.as_path)
        elif element.type == "W":
            self._unset(index, element.prefix)
        elif element.new_state != ESTABLISHED:
            for prefix in [p for p, per_peer in self.rib.routes.items() if index in per_peer]:
                self._unset(index, prefix)

    def snapshot(self, start: float, updates: int) -> Bin:
        """The state now, as the bin starting at ``start``."""
        for key in self._dirty:
            self._countries[key] = self._country(key)
        self._dirty.clear()
        points = []
        for name, address in self.watched:
            prefix = covering_prefix(self.rib, address)
            ratio = 0.0
            if prefix is not None:
                family: Family = "ipv6" if ":" in prefix else "ipv4"
                total = len(self.full_feed[family])
                ratio = self.ff_counts.get(prefix, 0) / total if total else 0.0
            points.append(PrefixPoint(name=name, address=address, prefix=prefix, ratio=ratio))
        countries = tuple(v for _k, v in sorted(self._countries.items()) if v.prefixes)
        return Bin(start=start, updates=updates, countries=countries, prefixes=tuple(points))

    def run(
        self, elements: Iterable[Element], on_bin: Callable[[Bin], None] | None = None
    ) -> list[Bin]:
        """Apply time-ordered updates; return one bin per ``bin_seconds`` from first to last."""
        bins: list[Bin] = []
        width = self.bin_seconds
        current: float | None = None
        in_bin = 0
        last_time = 0.0
        for element in elements:
            last_time = element.time
            start = element.time - element.time % width
            if current is None:
                current = start
            while start > current:
                done = self.snapshot(current, in_bin)
                bins.append(done)
                if on_bin is not None:
                    on_bin(done)
                current += width
                in_bin = 0
            self.apply(element)
            in_bin += 1
        if current is not None:
            done = self.snapshot(current, in_bin)
            if last_time + 1.0 < current + width:
                done = dataclasses.replace(done, partial=True)
            bins.append(done)
            if on_bin is not None:
                on_bin(done)
        return bins
