"""BGP4MP updates applied onto a RIB: visibility time series in fixed bins (IODA: 5 minutes).

Each bin is stamped with its start and holds the state at its end. The full-feed sessions are
those of the RIB the updates start from, kept fixed over the window; a bin without updates
repeats the previous bin's values. Bins are bounded by the data: a corrupt timestamp far ahead is
skipped, a real gap of more than a day is jumped over, and ``Timeline.notes`` says which. The last
bin is ``partial`` when the updates end before it does (its last element, plus the one-second
resolution of MRT times, falls short of the bin's end): its state is the state when the data
stops, not at the bin's end.

Country figures are kept per change: a country's first change counts it from the table once
(``country_visibility``'s count), and from then on each prefix that changes state (routed,
visible, seen by no full-feed session) adds or removes its pieces in a ``blocks.Coverage``, so
a bin costs what changed in it, not the size of the countries it touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from publiccore.collectors.bgp.blocks import Coverage, units
from publiccore.collectors.bgp.elements import ESTABLISHED, Element
from publiccore.collectors.bgp.rib import Family, Rib
from publiccore.collectors.bgp.roots import covering_prefix
from publiccore.collectors.bgp.visibility import CountryIndex, CountryVisibility, country_visibility

from publiccore.geo import Geo

# a prefix's state bits as country visibility counts it (``Timeline._flag``)
ROUTED, VISIBLE, UNSEEN = 1, 2, 4

MAX_GAP_SECONDS = 86_400.0  # a longer jump between consecutive updates is not filled with bins
JUMP_CONFIRM = 3  # updates in a row beyond such a jump that make it a real gap, not corruption


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


class _Running:
    """One country's figures kept up to date as its prefixes change."""

    __slots__ = ("prefixes", "routed", "unseen", "visible")

    def __init__(self, prefixes: int, unseen: int, routed: Coverage) -> None:
        self.prefixes = prefixes
        self.unseen = unseen
        self.routed = routed
        self.visible = Coverage()


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
        max_gap_seconds: float = MAX_GAP_SECONDS,
        known: Iterable[CountryVisibility] = (),
    ) -> None:
        """``known``: country rows already computed from this very table and these counts
        (``Analysis.countries``), taken as they are instead of computed again."""
        self.rib = rib
        self.full_feed = full_feed
        self.ff_counts = ff_counts
        self.index = index
        self.geo = geo
        self.watched = tuple(watched)
        self.bin_seconds = bin_seconds
        self.threshold = threshold
        self.max_gap_seconds = max_gap_seconds
        self.notes: list[str] = []  # gaps jumped and updates skipped (see ``run``)
        self.skipped = 0
        # prefixes changed since the last bin, and for each country changed since the timeline
        # began, its running figures; ``_flags`` holds each prefix's state as they count it
        self._changed: set[str] = set()
        self._running: dict[tuple[str, Family], _Running] = {}
        self._flags: dict[str, int] = {}
        self._totals = {family: len(full_feed[family]) for family in ("ipv4", "ipv6")}
        # sessions that went down once here: every route they hold since was set here, so
        # their prefixes are kept and a later down (sessions flap, often with no route at
        # all) drops them without another scan of the whole table
        self._tracked: dict[int, set[str]] = {}
        self._countries: dict[tuple[str, Family], CountryVisibility] = {}
        if index is not None:
            given = {(row.country, row.family): row for row in known}
            for key in index.by_country:
                row = given.get(key)
                self._countries[key] = row if row is not None else self._country(key)

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
        self.index.add(prefix, self.geo)  # attributed when first seen
        self._changed.add(prefix)

    def _flag(self, prefix: str) -> int:
        """A prefix's state as country visibility counts it: ROUTED, VISIBLE, UNSEEN bits."""
        if prefix not in self.rib.routes:
            return 0
        count = self.ff_counts.get(prefix, 0)
        total = self._totals["ipv6" if ":" in prefix else "ipv4"]
        flag = ROUTED
        if total and count / total > self.threshold:
            flag |= VISIBLE
        if count == 0:
            flag |= UNSEEN
        return flag

    def _start_running(self, key: tuple[str, Family]) -> _Running:
        """A country's running figures from the table as it is now (``country_visibility``'s
        count, kept from here on by ``_refresh``)."""
        assert self.index is not None
        routed: list[tuple[int, int]] = []
        visible: list[tuple[int, int]] = []
        prefixes = unseen = 0
        for prefix in self.index.by_country.get(key, ()):
            flag = self._flags[prefix] = self._flag(prefix)
            if not flag & ROUTED:
                continue
            prefixes += 1
            unseen += bool(flag & UNSEEN)
            for country, _family, start, size in self.index.pieces[prefix]:
                if country == key[0]:
                    routed.append((start, size))
                    if flag & VISIBLE:
                        visible.append((start, size))
        running = _Running(prefixes, unseen, Coverage.from_blocks(routed))
        running.visible = Coverage.from_blocks(visible)
        return running

    def _refresh(self) -> None:
        """Bring the countries of the prefixes changed since the last bin up to date."""
        assert self.index is not None
        touched: set[tuple[str, Family]] = set()
        start_anew: set[tuple[str, Family]] = set()
        for prefix in self._changed:
            recorded = self._flags.get(prefix)
            new = self._flag(prefix)
            if recorded == new:
                continue
            # not recorded: not counted by any running country (each records its prefixes when
            # it starts), but maybe in a row computed before, which must be counted anew
            old = recorded or 0
            self._flags[prefix] = new
            counted: set[tuple[str, Family]] = set()
            for country, family, start, size in self.index.pieces.get(prefix, ()):
                key = (country, family)
                running = self._running.get(key)
                if running is None:
                    start_anew.add(key)  # counted from the table below, this prefix included
                    continue
                touched.add(key)
                if (old ^ new) & ROUTED:
                    (running.routed.add if new & ROUTED else running.routed.remove)(start, size)
                if (old ^ new) & VISIBLE:
                    (running.visible.add if new & VISIBLE else running.visible.remove)(start, size)
                if key not in counted:
                    counted.add(key)
                    running.prefixes += (new & ROUTED) - (old & ROUTED)
                    running.unseen += bool(new & UNSEEN) - bool(old & UNSEEN)
        self._changed.clear()
        for key in start_anew:
            self._running[key] = self._start_running(key)
        for key in touched | start_anew:
            running = self._running[key]
            self._countries[key] = CountryVisibility(
                country=key[0],
                family=key[1],
                prefixes=running.prefixes,
                routed_units=units(running.routed.union, key[1]),
                visible_units=units(running.visible.union, key[1]),
                unseen_prefixes=running.unseen,
            )

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
        tracked = self._tracked.get(index)
        if tracked is not None:
            tracked.add(prefix)

    def _unset(self, index: int, prefix: str) -> None:
        per_peer = self.rib.routes.get(prefix)
        if per_peer is None or index not in per_peer:
            return
        del per_peer[index]
        tracked = self._tracked.get(index)
        if tracked is not None:
            tracked.discard(prefix)
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
            tracked = self._tracked.get(index)
            if tracked is not None:
                prefixes = list(tracked)
            else:
                prefixes = [p for p, per_peer in self.rib.routes.items() if index in per_peer]
            for prefix in prefixes:
                self._unset(index, prefix)
            self._tracked[index] = set()

    def snapshot(self, start: float, updates: int) -> Bin:
        """The state now, as the bin starting at ``start``."""
        if self._changed:
            self._refresh()
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
        """Apply time-ordered updates; return one bin per ``bin_seconds`` from first to last.

        Bins are bounded by the data: an element more than ``max_gap_seconds`` after the
        current bin is held back. If the data carries on from there (``JUMP_CONFIRM`` such
        elements in a row) it is a real gap: the bins jump over it without filling it with
        empty ones. If the data comes back instead, the held elements had corrupt timestamps
        and are skipped. Either way ``notes`` says so (one line each, for the command to show).
        """
        bins: list[Bin] = []
        width = self.bin_seconds
        state: dict[str, float | int | None] = {"current": None, "in_bin": 0, "last_time": None}
        held: list[Element] = []

        def emit(start: float, updates: int, *, last: bool = False) -> None:
            done = self.snapshot(start, updates)
            if last and float(state["last_time"] or 0.0) + 1.0 < start + width:
                done = dataclasses.replace(done, partial=True)  # the data stops inside it
            bins.append(done)
            if on_bin is not None:
                on_bin(done)

        def feed(element: Element) -> None:
            start = element.time - element.time % width
            current = state["current"]
            if current is None:
                current = start
            while start > current:
                emit(current, int(state["in_bin"] or 0))
                current += width
                state["in_bin"] = 0
            state["current"] = current
            state["last_time"] = element.time
            self.apply(element)
            state["in_bin"] = int(state["in_bin"] or 0) + 1

        for element in elements:
            current = state["current"]
            far = current is not None and element.time - current > self.max_gap_seconds + width
            if far:
                held.append(element)
                if len(held) < JUMP_CONFIRM:
                    continue
                assert current is not None
                emit(current, int(state["in_bin"] or 0))
                jump_to = held[0].time - held[0].time % width
                self.notes.append(
                    f"updates jump {jump_to - current:,.0f} s ahead after {_utc(current)} "
                    f"(to {_utc(jump_to)}): the gap has no bins"
                )
                state["current"], state["in_bin"] = jump_to, 0
                for item in held:
                    feed(item)
                held.clear()
                continue
            if held:
                self._skip(held)
            feed(element)
        if held:
            self._skip(held)
        if state["current"] is not None:
            emit(float(state["current"]), int(state["in_bin"] or 0), last=True)
        return bins

    def _skip(self, held: list[Element]) -> None:
        self.skipped += len(held)
        self.notes.append(
            f"skipped {len(held)} update(s) timestamped far ahead of the data "
            f"(first at {_utc(held[0].time)}): corrupt timestamps"
        )
        held.clear()


def _utc(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} (Unix seconds)"
