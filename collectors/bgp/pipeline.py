"""The whole derivation: MRT files → RIB → peers, visibility, countries, roots, transit, bins.

Blocking from end to end (subprocess reads and CPU work): call ``analyze`` from a thread, or
``analyze_async`` from an event loop, which runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from publiccore.collectors.bgp.elements import FileReport, ProgressCallback, Reader
from publiccore.collectors.bgp.rib import (
    FAMILIES,
    Family,
    FullFeedRule,
    PeerRow,
    Rib,
    full_feed_sets,
)
from publiccore.collectors.bgp.roots import RootPrefix, root_prefixes
from publiccore.collectors.bgp.timeline import Bin, Timeline, merged
from publiccore.collectors.bgp.transit import Transit, country_transit
from publiccore.collectors.bgp.visibility import (
    CountryIndex,
    CountryVisibility,
    Summary,
    all_country_visibility,
    tally,
)

from publiccore.errors import InputError
from publiccore.geo import Geo
from publiccore.roothints import RootServer


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """How the derivation counts (defaults: the definitions in ARCHITECTURE.md)."""

    rule: FullFeedRule = dataclasses.field(default_factory=FullFeedRule)
    threshold: float = 0.5
    bin_seconds: int = 300
    trim: float = 0.1
    keep_documentation: bool = False  # keep RFC 5398 ASNs on paths (labs)


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """Everything derived from one set of RIB (and update) files."""

    sources: tuple[FileReport, ...]
    rib: Rib
    peers: tuple[PeerRow, ...]
    full_feed: Mapping[Family, frozenset[int]]
    summary: Summary
    dump_time: float | None
    countries: tuple[CountryVisibility, ...] = ()
    roots: tuple[RootPrefix, ...] = ()
    transit: tuple[Transit, ...] = ()
    bins: tuple[Bin, ...] = ()
    notes: tuple[str, ...] = ()  # what the update timeline skipped or jumped over

    @property
    def partial(self) -> bool:
        """True when any input file was corrupt or truncated."""
        return any(s.partial for s in self.sources)


def load_rib(
    paths: Sequence[str | os.PathLike[str]],
    reader: Reader,
    *,
    collector: str | None = None,
    progress: ProgressCallback | None = None,
    rib: Rib | None = None,
    on_new_prefix: Callable[[str], object] | None = None,
) -> tuple[Rib, list[FileReport]]:
    """Read RIB files into one table; raise InputError for a file that gives nothing."""
    table = rib if rib is not None else Rib()
    reports = []
    for path in paths:
        read = reader.read(path, kind="rib", collector=collector, progress=progress)
        table.apply(read, on_new_prefix)
        reports.append(read.report)
    return table, reports


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerWindow:
    """RIB dumps of a time window from the BGPStream broker (pybgpstream only)."""

    start: float
    end: float
    collectors: tuple[str, ...]


def load_broker_rib(
    window: BrokerWindow, reader: Reader, rib: Rib, progress: ProgressCallback | None = None
) -> FileReport:
    """Apply a broker window's RIB elements to ``rib``; raise InputError without pybgpstream."""
    fetch = getattr(reader, "window", None)
    if fetch is None:
        raise InputError("broker windows need the bgpstream reader (--reader bgpstream)")
    count = rib.apply(
        fetch(
            start=window.start,
            end=window.end,
            collectors=window.collectors,
            kind="rib",
            progress=progress,
        )
    )
    if count == 0:
        raise InputError("the broker window gave no RIB elements")
    name = f"broker:{','.join(window.collectors)}:{int(window.start)}-{int(window.end)}"
    return FileReport(
        file=name,
        sha256="",
        collector=",".join(window.collectors),
        dump_time=window.start,
        elements=count,
        partial=False,
        reader=reader.name,
        kind="rib",
    )


def analyze(
    *,
    ribs: Sequence[str | os.PathLike[str]],
    reader: Reader,
    broker: BrokerWindow | None = None,
    updates: Sequence[str | os.PathLike[str]] = (),
    geo: Geo | None = None,
    servers: Sequence[RootServer] = (),
    expected: Mapping[str, tuple[int, ...]] | None = None,
    transit_countries: Sequence[str] = (),  # "*": every country
    transit_families: Sequence[Family] = FAMILIES,
    collector: str | None = None,
    options: Options = Options(),
    progress: ProgressCallback | None = None,
    countries: bool = True,
) -> Analysis:
    """Run the derivation (see module doc); raise InputError on unusable input."""
    if not ribs and broker is None:
        raise InputError("no RIB file given (--mrt FILE)")
    index: CountryIndex | None = None
    attribute: Callable[[str], object] | None = None
    if geo is not None and (countries or transit_countries or updates):
        index = CountryIndex()
        attribute = functools.partial(index.add, geo=geo)
    rib, reports = load_rib(
        ribs, reader, collector=collector, progress=progress, on_new_prefix=attribute
    )
    if broker is not None:
        reports.append(load_broker_rib(broker, reader, rib, progress))
    if not rib.routes:
        raise InputError("the RIB files hold no routes")
    rows = rib.peer_table(options.rule)
    ff = full_feed_sets(rows)
    ff_counts, summary = tally(
        rib, ff, threshold=options.threshold, keep_documentation=options.keep_documentation
    )
    dump_times = [r.dump_time for r in reports if r.dump_time is not None]
    country_rows: list[CountryVisibility] = []
    if index is not None and geo is not None:
        if broker is not None:
            for prefix in rib.routes:
                index.add(prefix, geo)
        if countries:
            country_rows = all_country_visibility(
                index, rib, ff_counts, ff, threshold=options.threshold
            )
    root_rows = (
        root_prefixes(
            rib,
            servers,
            ff,
            expected or {},
            threshold=options.threshold,
            keep_documentation=options.keep_documentation,
        )
        if servers
        else []
    )
    transit_rows: list[Transit] = []
    every = "*" in transit_countries
    if every and index is not None:
        transit_countries = sorted({country for country, _family in index.by_country})
    for country in transit_countries:
        if geo is None or index is None:
            raise InputError("transit needs RIR delegated files (--delegated FILE)")
        for family in transit_families:
            if every and not index.by_country.get((country, family)):
                continue
            transit_rows.append(
                country_transit(
                    rib,
                    index,
                    country.upper(),
                    family,
                    ff[family],
                    geo.country_of_asn,
                    keep_documentation=options.keep_documentation,
                    trim=options.trim,
                )
            )
    bins: list[Bin] = []
    notes: list[str] = []
    if updates:
        streams = [
            reader.read(path, kind="updates", collector=collector, progress=progress)
            for path in updates
        ]
        watched = [(f"{r.letter}", r.address) for r in root_rows]
        timeline = Timeline(
            rib,
            ff,
            dict(ff_counts),
            index,
            geo,
            watched=watched,
            bin_seconds=options.bin_seconds,
            threshold=options.threshold,
        )
        bins = timeline.run(merged(streams))
        notes = timeline.notes
        reports.extend(s.report for s in streams)
    return Analysis(
        sources=tuple(reports),
        rib=rib,
        peers=tuple(rows),
        full_feed=ff,
        summary=summary,
        dump_time=max(dump_times) if dump_times else None,
        countries=tuple(country_rows),
        roots=tuple(root_rows),
        transit=tuple(transit_rows),
        bins=tuple(bins),
        notes=tuple(notes),
    )


async def analyze_async(**kwargs: object) -> Analysis:
    """``analyze`` in a worker thread, for callers on an event loop."""
    return await asyncio.to_thread(analyze, **kwargs)  # type: ignore[arg-type]


def analysis_kind(path: str) -> Literal["rib", "updates"]:
    """Guess from a file name whether it is a RIB dump or an updates file."""
    name = os.path.basename(path).lower()
    return "updates" if "update" in name else "rib"
