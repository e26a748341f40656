"""The whole derivation: MRT files → RIB → peers, visibility, countries, roots, transit, bins.

Blocking from end to end (subprocess reads and CPU work): call ``analyze`` from a thread, or
``analyze_async`` from an event loop, which runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from publiccore.collectors.bgp import forked
from publiccore.collectors.bgp.elements import Element, FileReport, ProgressCallback, Reader
from publiccore.collectors.bgp.hegemony import Hegemony, country_hegemony
from publiccore.collectors.bgp.rib import (
    FAMILIES,
    Family,
    FullFeedRule,
    PeerRow,
    Rib,
    full_feed_sets,
)
from publiccore.collectors.bgp.roots import RootPrefix, root_prefixes
from publiccore.collectors.bgp.scope import Paths, country_scope
from publiccore.collectors.bgp.timeline import Bin, Timeline, merged
from publiccore.collectors.bgp.transit import Transit, country_transit, uncovered
from publiccore.collectors.bgp.visibility import (
    CountryIndex,
    CountryVisibility,
    Summary,
    all_country_visibility,
    tally,
)

from publiccore.errors import InputError
from publiccore.geo import Geo
from publiccore.roothints import DatedHints, RootServer


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
    hegemony: tuple[Hegemony, ...] = ()
    notes: tuple[str, ...] = ()  # what the input does not cover (no value stored for it) and
    # what the update timeline skipped or jumped over
    # per prefix, full-feed sessions of its family carrying it (``tally``), and the country
    # index the RIB was attributed with (None without RIR files): a Timeline starts from them
    ff_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    index: CountryIndex | None = None

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


# RIBs of one collector whose dump times differ by more than this are different dumps.
SAME_DUMP_SECONDS = 300.0


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_ribs(reports: Sequence[FileReport]) -> None:
    """Refuse RIBs of one collector from different dump times (InputError naming both).

    Files whose collector is ``unknown`` (the path does not name one and no ``--collector`` was
    given) cannot be checked and are let through.
    """
    first: dict[str, FileReport] = {}
    for report in reports:
        if report.collector == "unknown" or report.dump_time is None:
            continue
        seen = first.setdefault(report.collector, report)
        if seen.dump_time is not None and abs(report.dump_time - seen.dump_time) > (
            SAME_DUMP_SECONDS
        ):
            raise InputError(
                f"{report.file} ({report.collector}, {_utc(report.dump_time)}) and "
                f"{seen.file} ({_utc(seen.dump_time)}) are RIBs of one collector from different "
                "dump times; merged they would mix two states of the table: analyse each dump "
                "on its own"
            )


def check_updates(ribs: Sequence[FileReport], path: str | os.PathLike[str], collector: str) -> None:
    """Refuse an update file of another collector than the RIBs (InputError with the reason)."""
    known = {r.collector for r in ribs if r.collector != "unknown"}
    if collector != "unknown" and known and collector not in known:
        raise InputError(
            f"{os.fspath(path)}: updates of {collector} cannot be applied to RIBs of "
            f"{', '.join(sorted(known))} (another collector's peers and table)"
        )


def rib_time(ribs: Sequence[FileReport], collector: str) -> float | None:
    """The dump time updates of ``collector`` start from: its RIBs' latest (any RIB's if none)."""
    dated = [r for r in ribs if r.dump_time is not None]
    same = [r for r in dated if r.collector == collector]
    times = [r.dump_time for r in (same or dated) if r.dump_time is not None]
    return max(times) if times else None


def after_rib(
    elements: Iterable[Element], path: str | os.PathLike[str], since: float | None
) -> Iterator[Element]:
    """The elements at or after the RIB's dump time ``since`` (earlier ones are in the RIB).

    Raises InputError once the file is exhausted if every element was older than the RIB: an
    update file older than the RIB it would be applied to.
    """
    kept = 0
    last: float | None = None
    for element in elements:
        last = element.time
        if since is not None and element.time < since:
            continue
        kept += 1
        yield element
    if not kept and last is not None and since is not None:
        raise InputError(
            f"{os.fspath(path)}: updates end {_utc(last)}, before the RIB they would be "
            f"applied to ({_utc(since)}): use a RIB from before the updates"
        )


def _peek(elements: Iterable[Element]) -> tuple[Element | None, Iterator[Element]]:
    """The first element and an iterator that still yields it."""
    iterator = iter(elements)
    head = next(iterator, None)
    if head is None:
        return None, iterator
    return head, itertools.chain((head,), iterator)


def covered_families(full_feed: Mapping[Family, frozenset[int]]) -> tuple[Family, ...]:
    """The families the input covers: those with at least one full-feed peer."""
    return tuple(f for f in FAMILIES if full_feed[f])


@dataclasses.dataclass(frozen=True, slots=True)
class CountryFigures:
    """Transit and hegemony of (country, family) keys from one table (``analyze``'s part)."""

    rib: Rib
    index: CountryIndex | None
    full_feed: Mapping[Family, frozenset[int]]
    options: Options
    geo: Geo | None
    hegemony: bool

    def compute(
        self, keys: Sequence[tuple[str, Family]]
    ) -> dict[tuple[str, Family], tuple[Transit, Hegemony | None]]:
        """Each key's transit row and hegemony row (None without ``hegemony``)."""
        if not keys:
            return {}
        assert self.index is not None and self.geo is not None
        options = self.options
        paths = Paths(keep_documentation=options.keep_documentation)  # one cleaning per path
        out: dict[tuple[str, Family], tuple[Transit, Hegemony | None]] = {}
        for country, family in keys:
            scope = country_scope(
                self.rib,
                self.index,
                country,
                family,
                self.full_feed[family],
                keep_documentation=options.keep_documentation,
                paths=paths,
            )
            row = country_transit(scope, self.geo.country_of_asn, trim=options.trim)
            weight = country_hegemony(scope, trim=options.trim) if self.hegemony else None
            out[(country, family)] = (row, weight)
        return out

    def claimed(
        self, keys: Sequence[tuple[str, Family]], claims: forked.Claims
    ) -> dict[tuple[str, Family], tuple[Transit, Hegemony | None]]:
        """``compute`` of the keys this process takes from ``claims``, one at a time."""
        out: dict[tuple[str, Family], tuple[Transit, Hegemony | None]] = {}
        while (item := claims.take()) is not None:
            out.update(self.compute(keys[item : item + 1]))
        return out

    def largest_first(self, keys: Sequence[tuple[str, Family]]) -> list[tuple[str, Family]]:
        """The keys by the country's attributed prefixes, most first: shared out in this
        order, the last items taken are the small ones, and both processes end together."""
        assert self.index is not None
        sizes = {key: len(self.index.by_country.get(key, ())) for key in keys}
        return sorted(keys, key=lambda k: (-sizes[k], k))


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
    hegemony: bool = True,
    hints_as_of: Callable[[float | None], DatedHints] | None = None,
    expected_as_of: Callable[[float | None], Mapping[str, tuple[int, ...]]] | None = None,
    attributed: Mapping[str, list[tuple[str, Family, int, int]]] | None = None,
    split: bool = False,
) -> Analysis:
    """Run the derivation (see module doc); raise InputError on unusable input.

    Refused (InputError): RIBs of one collector from different dump times, update files of
    another collector than the RIBs or ending before them; update elements older than the RIB
    (already in it) are skipped. A family without a full-feed
    peer, and root addresses the input cannot speak for, get no figure and a note in
    ``Analysis.notes``. ``hegemony`` adds country AS hegemony next to each transit row.
    ``hints_as_of`` (when ``servers`` is empty) picks the root hints for the RIB's dump time
    (``publiccore.roothints.hints_as_of``), so that old RIBs are read with the letters' old
    addresses; the choice is noted. ``expected_as_of`` likewise gives the expected root origins
    for the dump time (``roots.load_expected_origins(as_of=…)``), replacing ``expected``.
    ``attributed``: prefixes' country pieces from an earlier analysis with the same ``geo``
    (``Analysis.index.pieces``), reused instead of attributing those prefixes again.
    ``split``: compute a share of the country transit and hegemony figures in a forked child
    process, on a spare core (``forked.start``; the results are the same either way).
    """
    if not ribs and broker is None:
        raise InputError("no RIB file given (--mrt FILE)")
    index: CountryIndex | None = None
    attribute: Callable[[str], object] | None = None
    if geo is not None and (countries or transit_countries or updates):
        index = CountryIndex(known=attributed if attributed is not None else {})
        attribute = functools.partial(index.add, geo=geo)
    rib, reports = load_rib(
        ribs, reader, collector=collector, progress=progress, on_new_prefix=attribute
    )
    if broker is not None:
        reports.append(load_broker_rib(broker, reader, rib, progress))
    if index is not None:
        index.known = {}  # the earlier analysis's table is not held on to
    if not rib.routes:
        raise InputError("the RIB files hold no routes")
    check_ribs(reports)
    if index is not None and geo is not None and broker is not None:
        for prefix in rib.routes:
            index.add(prefix, geo)
    if transit_countries and (geo is None or index is None):
        raise InputError("transit needs RIR delegated files (--delegated FILE)")
    rows = rib.peer_table(options.rule)
    ff = full_feed_sets(rows)
    notes: list[str] = []
    covered = covered_families(ff)
    routed_families = {("ipv6" if ":" in p else "ipv4") for p in rib.routes}
    for family in FAMILIES:
        if family not in covered:
            held = "routes but no full-feed peer" if family in routed_families else "no route"
            notes.append(f"{family}: the input has {held}; no {family} figure is given")
    every = "*" in transit_countries
    if every and index is not None:
        transit_countries = sorted({country for country, _family in index.by_country})
    wanted = [
        (country.upper(), family)
        for country in transit_countries
        for family in transit_families
        if not (every and index is not None and not index.by_country.get((country, family)))
    ]
    figures = CountryFigures(rib, index, ff, options, geo, hegemony)
    computed = [key for key in wanted if key[1] in covered]
    # the country figures are the bulk of the work after the read, and need only the table
    # and the full-feed sets: with ``split``, a forked child starts on them while this
    # process counts the rest, then both take the countries left in turn (forked.py)
    child = claims = None
    if split and index is not None and len(computed) > 1:
        computed = figures.largest_first(computed)
        claims = forked.Claims.shared(len(computed))
        child = None if claims is None else forked.start(figures.claimed, computed, claims)
    try:
        ff_counts, summary = tally(
            rib, ff, threshold=options.threshold, keep_documentation=options.keep_documentation
        )
        dump_times = [r.dump_time for r in reports if r.dump_time is not None]
        country_rows: list[CountryVisibility] = []
        if index is not None and geo is not None and countries:
            country_rows = [
                c
                for c in all_country_visibility(
                    index, rib, ff_counts, ff, threshold=options.threshold
                )
                if c.family in covered
            ]
        if not servers and hints_as_of is not None:
            dump = max((r.dump_time for r in reports if r.dump_time is not None), default=None)
            dated = hints_as_of(dump)
            servers = dated.servers
            notes.append(f"root hints as of {dated.valid_from} ({dated.file}) for this RIB")
            if dated.note:
                notes.append(dated.note)
        if expected_as_of is not None:
            dump = max((r.dump_time for r in reports if r.dump_time is not None), default=None)
            expected = expected_as_of(dump)
        root_rows = (
            root_prefixes(
                rib,
                servers,
                ff,
                expected or {},
                threshold=options.threshold,
                keep_documentation=options.keep_documentation,
                partial=any(r.partial for r in reports),
            )
            if servers
            else []
        )
        not_covered = [r for r in root_rows if not r.covered]
        if not_covered:
            notes.append(
                f"{len(not_covered)} root addresses not covered by the input (no figure stored): "
                + "; ".join(sorted({r.note for r in not_covered}))
            )
        if child is not None and claims is not None:
            results = figures.claimed(computed, claims)
            results.update(child.result())
            # a child that died has taken keys it did not give back: computed here
            results.update(figures.compute([k for k in computed if k not in results]))
        else:
            results = figures.compute(computed)
    finally:
        if child is not None:
            child.close()  # only when it failed before the child's result was taken
    transit_rows: list[Transit] = []
    hegemony_rows: list[Hegemony] = []
    for country, family in wanted:
        if family in covered:
            row, weight = results[(country, family)]
            if row.note and not every:
                notes.append(f"{country} {family}: {row.note}; no upstream figure")
        else:
            row = uncovered(country, family, f"the input has no {family} full-feed peer")
            weight = Hegemony.absent(country, family, row.note) if hegemony else None
            if not every:  # with every country, the family's note above says it once
                notes.append(f"{country} {family}: {row.note}; no upstream figure")
        transit_rows.append(row)
        if weight is not None:
            hegemony_rows.append(weight)
    bins: list[Bin] = []
    if updates:
        streams = []
        elements = []
        for path in updates:
            stream = reader.read(path, kind="updates", collector=collector, progress=progress)
            head, rest = _peek(stream)
            if head is not None:
                check_updates(reports, path, head.collector)
                rest = after_rib(rest, path, rib_time(reports, head.collector))
            streams.append(stream)
            elements.append(rest)
        watched = [(f"{r.letter}", r.address) for r in root_rows if r.family in covered]
        timeline = Timeline(
            rib,
            ff,
            dict(ff_counts),
            index,
            geo,
            watched=watched,
            bin_seconds=options.bin_seconds,
            threshold=options.threshold,
            known=country_rows,
        )
        bins = timeline.run(merged(elements))
        ff_counts = timeline.ff_counts  # the counts of the table as the updates left it
        notes.extend(timeline.notes)
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
        hegemony=tuple(hegemony_rows),
        notes=tuple(notes),
        ff_counts=ff_counts,
        index=index,
    )


def rib_head(
    path: str | os.PathLike[str], reader: Reader, *, collector: str | None = None
) -> tuple[str, float] | None:
    """(collector, dump time) of a RIB file from its first element, or None when it has none.

    Only the first element is read (the reader's process is stopped there).
    """
    read = reader.read(path, kind="rib", collector=collector)
    elements = iter(read)
    try:
        head = next(elements, None)
    finally:
        close = getattr(elements, "close", None)
        if close is not None:
            close()
    return None if head is None else (head.collector, head.time)


def dump_groups(
    ribs: Sequence[str | os.PathLike[str]], reader: Reader, *, collector: str | None = None
) -> list[list[str | os.PathLike[str]]]:
    """The RIB files cut into dump times, when one collector has RIBs of several; else one group.

    Files are ordered by dump time and a group holds the files within ``SAME_DUMP_SECONDS`` of
    its first (every collector's RIBs of that dump). Without a collector of several dump times
    (``unknown`` collectors are not counted) the files stay one group, in the order given, as
    one table. A file without elements stays in the first group, where ``analyze`` says why.
    """
    if len(ribs) < 2:
        return [list(ribs)]
    heads = [(rib_head(path, reader, collector=collector), path) for path in ribs]
    times: dict[str, list[float]] = {}
    for head, _path in heads:
        if head is not None and head[0] != "unknown":
            times.setdefault(head[0], []).append(head[1])
    if all(max(t) - min(t) <= SAME_DUMP_SECONDS for t in times.values()):
        return [list(ribs)]
    empty = [path for head, path in heads if head is None]
    timed = sorted(
        ((head[1], index, path) for index, (head, path) in enumerate(heads) if head is not None),
        key=lambda item: (item[0], item[1]),
    )
    groups: list[list[str | os.PathLike[str]]] = []
    start: float | None = None
    for when, _index, path in timed:
        if start is None or when - start > SAME_DUMP_SECONDS:
            groups.append([])
            start = when
        groups[-1].append(path)
    groups[0][:0] = empty
    return groups


def analyze_dumps(
    *, ribs: Sequence[str | os.PathLike[str]], reader: Reader, **kwargs: Any
) -> list[Analysis]:
    """``analyze`` once per dump time (``dump_groups``): RIBs of one collector from different
    dump times are analysed apart, never merged into one table; one analysis when they are not.

    Takes ``analyze``'s arguments. Raises InputError for update files with RIBs of several
    dump times (which dump they apply to would be a guess), and as ``analyze`` does.
    """
    if kwargs.get("broker") is not None:
        return [analyze(ribs=ribs, reader=reader, **kwargs)]
    groups = dump_groups(ribs, reader, collector=kwargs.get("collector"))
    if len(groups) > 1 and kwargs.get("updates"):
        raise InputError(
            f"update files with RIBs of {len(groups)} dump times: give the RIBs of the one dump "
            "the updates follow"
        )
    return [analyze(ribs=group, reader=reader, **kwargs) for group in groups]


async def analyze_async(**kwargs: object) -> Analysis:
    """``analyze`` in a worker thread, for callers on an event loop."""
    return await asyncio.to_thread(analyze, **kwargs)  # type: ignore[arg-type]


def analysis_kind(path: str) -> Literal["rib", "updates"]:
    """Guess from a file name whether it is a RIB dump or an updates file."""
    name = os.path.basename(path).lower()
    return "updates" if "update" in name else "rib"
