"""A window's merged buckets as running sums: add a bucket's rows, take them out again.

``WindowState`` holds, per country, every sum the root figures are read from (records per
ASN and outcome, sent / answered per cell, RTT bins, sites, probes, and the RSSAC047 round
figures). A bucket's rows are folded in with ``add`` and out with ``remove``; a window that
moves (the live ``/metrics`` window every 30 s, history from step to step) only folds the
buckets that entered, left or changed, so its cost grows with the rows of those buckets, not
with the rows of the whole window.

A round (probe, round id) may span two buckets: its parts are kept per bucket and its
contribution (letters answered, per family and transport the k lowest latencies) is taken out
and recomputed whenever one of its buckets comes or goes, so the sums always equal a fold of
the window's rows from scratch.

``LiveWindow`` keeps one state for the live window: on each refresh it reads the per-bucket
record counts of the window (``Store.bucket_versions``), folds out the buckets that left the
window, re-reads the buckets whose count changed (late records) and folds in the new ones. A
``store rederive`` (in any process) renews the store's facts generation; the next refresh then
reads the whole window again.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from publiccore.collectors import aggregate as agg

from publiccore.store import Store, facts

Row = tuple[Any, ...]
Labels = tuple[str, ...]
# The window's tables (no probe-ASN dimension where a total exists) and the legacy rows.
TABLES: tuple[str, ...] = (
    "agg_root_cells_all",
    "agg_root_rtt_all",
    "agg_root_records",
    "agg_root_probes",
    "agg_root_sites_all",
    "agg_root_rounds",
)
LEGACY = "legacy"  # root_queries rows of schema 1 records: (time, record_id, probe, country, …)
Part = tuple[float, str, str, int, int, str]  # bucket family transport asn letters rtts
# bucket country source letter family transport, bins and their counts (``Store.rtt_cells``:
# int64 arrays, numpy's or array.array's)
RttCell = tuple[float, str, str, str, str, str, Any, Any]


def _bump(counter: dict[Any, float], key: Any, delta: float) -> None:
    value = counter.get(key, 0) + delta
    if value:
        counter[key] = value
    else:
        counter.pop(key, None)


def _add_counts(counter: dict[Any, Any], other: Mapping[Any, Any]) -> None:
    """``counter`` += ``other``, key by key (a key whose sum is 0 taken out)."""
    for key, n in other.items():
        _bump(counter, key, n)


@dataclasses.dataclass(slots=True)
class CountryState:
    """The running sums of one country (stored ASN values: ``facts.NO_ASN`` for none)."""

    records: dict[tuple[int, str], int] = dataclasses.field(default_factory=dict)
    probes: dict[str, int] = dataclasses.field(default_factory=dict)
    sent: dict[Labels, int] = dataclasses.field(default_factory=dict)
    answered: dict[Labels, int] = dataclasses.field(default_factory=dict)
    rtt: dict[Labels, dict[int, int]] = dataclasses.field(default_factory=dict)
    sites: dict[tuple[str, str, str], int] = dataclasses.field(default_factory=dict)
    legacy: dict[float, list[Row]] = dataclasses.field(default_factory=dict)
    # rounds: parts per (probe, round id), and each round's current contribution
    rounds: dict[tuple[str, str], list[Part]] = dataclasses.field(default_factory=dict)
    contribution: dict[tuple[str, str], tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    rounds_all: dict[int, int] = dataclasses.field(default_factory=dict)
    rounds_ok: dict[int, int] = dataclasses.field(default_factory=dict)
    rss_letters: dict[tuple[int, str, str], int] = dataclasses.field(default_factory=dict)
    rss_rounds: dict[tuple[int, str, str], int] = dataclasses.field(default_factory=dict)
    pool: dict[tuple[str, str], dict[int, int]] = dataclasses.field(default_factory=dict)

    def legacy_rows(self) -> list[Row]:
        """The schema 1 query rows of the window."""
        return [row for rows in self.legacy.values() for row in rows]

    def _apply(self, contributions: Sequence[tuple[Any, ...]], sign: int) -> None:
        """Fold rounds' contributions (``_contribution``) in (1) or out (-1); the latency bins
        of all of them counted first (in C), then one bump per bin."""
        if not contributions:
            return
        rounds_all, rounds_ok = self.rounds_all, self.rounds_ok
        rss_letters, rss_rounds = self.rss_letters, self.rss_rounds
        pools: dict[tuple[str, str], list[tuple[int, ...]]] = {}
        for asn, ok, per_family in contributions:
            _bump(rounds_all, asn, sign)
            if ok:
                _bump(rounds_ok, asn, sign)
            for family, transport, n, bins in per_family:
                cell = (asn, family, transport)
                if n:
                    value = rss_letters.get(cell, 0) + sign * n  # _bump inlined (hot loop)
                    if value:
                        rss_letters[cell] = value
                    else:
                        del rss_letters[cell]
                value = rss_rounds.get(cell, 0) + sign
                if value:
                    rss_rounds[cell] = value
                else:
                    del rss_rounds[cell]
                if bins:
                    found = pools.get((family, transport))
                    if found is None:
                        pools[(family, transport)] = [bins]
                    else:
                        found.append(bins)
        for key, bins_of_rounds in pools.items():
            pool = self.pool.get(key)
            if pool is None:
                pool = self.pool[key] = {}
            counted = collections.Counter(itertools.chain.from_iterable(bins_of_rounds))
            for index, n in counted.items():
                value = pool.get(index, 0) + sign * n
                if value:
                    pool[index] = value
                else:
                    del pool[index]
            if not pool:
                del self.pool[key]

    def merge(self, other: CountryState) -> None:
        """Fold in the sums of ``other``, a state of buckets disjoint from (and later than)
        this one's: the result equals a fold of both states' rows. Nothing of ``other`` is
        shared (its dicts and lists are copied), so either may be folded further. A round with
        parts in both has its contribution taken out and recomputed from all its parts."""
        for mine, theirs in (
            (self.records, other.records),
            (self.probes, other.probes),
            (self.sent, other.sent),
            (self.answered, other.answered),
            (self.sites, other.sites),
            (self.rounds_all, other.rounds_all),
            (self.rounds_ok, other.rounds_ok),
            (self.rss_letters, other.rss_letters),
            (self.rss_rounds, other.rss_rounds),
        ):
            _add_counts(mine, theirs)
        for table, other_table in ((self.rtt, other.rtt), (self.pool, other.pool)):
            for key, bins in other_table.items():
                found = table.get(key)
                if found is None:
                    table[key] = dict(bins)
                else:
                    _add_counts(found, bins)
        for bucket, rows in other.legacy.items():
            self.legacy.setdefault(bucket, []).extend(rows)
        taken_out: list[tuple[Any, ...]] = []
        put_in: list[tuple[Any, ...]] = []
        for key, parts in other.rounds.items():
            kept = self.rounds.get(key)
            if kept is None:
                self.rounds[key] = list(parts)
                self.contribution[key] = other.contribution[key]
                continue
            taken_out += [self.contribution[key], other.contribution[key]]  # counted above
            kept.extend(parts)
            self.contribution[key] = _contribution(kept)
            put_in.append(self.contribution[key])
        self._apply(taken_out, -1)
        self._apply(put_in, 1)

    def pool_of(self, asns: Collection[int]) -> dict[tuple[int, str, str], dict[int, int]]:
        """The RSS latency pools of the rounds of some ASNs only (the few whose M-sampling
        weight differs from the common one), per (ASN, family, transport)."""
        out: dict[tuple[int, str, str], dict[int, int]] = {}
        for asn, _ok, per_family in self.contribution.values():
            if asn in asns:
                for family, transport, _letters, bins in per_family:
                    pool = out.setdefault((asn, family, transport), {})
                    for index in bins:
                        pool[index] = pool.get(index, 0) + 1
        return out


def _contribution(parts: Sequence[Part]) -> tuple[Any, ...]:
    """(ASN, ≥ k letters answered, per (family, transport): (family, transport, min(k, letters
    answered), the k lowest latencies' bins)) of one round, from its parts (one per family and
    transport, more when the round spans buckets)."""
    k = agg.RSS_K
    mask = 0
    per: dict[tuple[str, str], tuple[int, str]] = {}
    for _bucket, family, transport, _asn, letters, rtts in parts:
        mask |= letters
        entry = per.get((family, transport))
        if entry is None:
            per[(family, transport)] = (letters, rtts)
        else:  # the round's rows of another bucket
            per[(family, transport)] = (entry[0] | letters, f"{entry[1]} {rtts}".strip())
    rtt_bins = facts.rtt_bins
    per_family = tuple(
        [
            (
                family,
                transport,
                min(k, int(letters).bit_count()),  # facts.mask_letters, inlined
                rtt_bins(sorted(map(float, rtts.split()))[:k]) if rtts else (),
            )
            for (family, transport), (letters, rtts) in sorted(per.items())
        ]
    )
    return parts[-1][3], int(mask).bit_count() >= k, per_family


@dataclasses.dataclass(slots=True)
class WindowState:
    """Running sums per country over the buckets folded in."""

    countries: dict[str, CountryState] = dataclasses.field(default_factory=dict)

    def country(self, name: str) -> CountryState:
        """The state of one country (created empty)."""
        state = self.countries.get(name)
        if state is None:
            state = self.countries[name] = CountryState()
        return state

    @classmethod
    def merged(cls, states: Iterable[WindowState]) -> WindowState:
        """One state equal to a fold of the rows of ``states`` (of disjoint buckets, oldest
        first), sharing nothing with them."""
        out = cls()
        for other in states:
            for name, theirs in other.countries.items():
                out.country(name).merge(theirs)
        return out

    def add(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """Fold in one or more buckets' rows (``TABLES`` and ``LEGACY`` → rows)."""
        self._fold(rows, 1)

    def remove(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """Fold out rows folded in before."""
        self._fold(rows, -1)

    def add_cells(self, cells: Iterable[RttCell]) -> None:
        """Fold in RTT bins read a cell at a time (``Store.rtt_cells`` rows), as ``add`` folds
        the same bins read a row at a time (``agg_root_rtt_all`` rows)."""
        country = self.country
        for _b, c, _s, letter, family, transport, indices, counts in cells:
            table = country(c).rtt
            key = (letter, family, transport)
            bins = table.get(key)
            if bins is None:
                table[key] = dict(zip(indices.tolist(), counts.tolist(), strict=True))
                continue
            get = bins.get
            for index, n in zip(indices.tolist(), counts.tolist(), strict=True):
                bins[index] = get(index, 0) + n  # counts are positive: never 0 here

    def remove_cells(self, cells: Iterable[RttCell]) -> None:
        """Fold out cells folded in before (``add_cells``)."""
        country = self.country
        for _b, c, _s, letter, family, transport, indices, counts in cells:
            table = country(c).rtt
            key = (letter, family, transport)
            bins = table[key]
            for index, n in zip(indices.tolist(), counts.tolist(), strict=True):
                value = bins[index] - n
                if value:
                    bins[index] = value
                else:
                    del bins[index]
            if not bins:
                del table[key]

    def _fold(self, rows: Mapping[str, Sequence[Row]], sign: int) -> None:
        country = self.country
        # the per-row loops: ``_bump`` inlined (a call per row is a third of a report's fold)
        for _b, c, _s, letter, family, transport, sent, answered in rows.get(
            "agg_root_cells_all", ()
        ):
            state = country(c)
            key = (letter, family, transport)
            value = state.sent.get(key, 0) + sign * sent
            if value:
                state.sent[key] = value
            else:
                state.sent.pop(key, None)
            value = state.answered.get(key, 0) + sign * answered
            if value:
                state.answered[key] = value
            else:
                state.answered.pop(key, None)
        cell_bins: dict[tuple[Any, ...], dict[int, int]] = {}
        for row in rows.get("agg_root_rtt_all", ()):
            # the hot loop (a row per cell and RTT bin: bucket country source letter family
            # transport bin n): _bump inlined, one slice as the key
            key = row[1:6]
            bins = cell_bins.get(key)
            if bins is None:
                bins = cell_bins[key] = country(row[1]).rtt.setdefault(row[3:6], {})
            index = row[6]
            value = bins.get(index, 0) + sign * row[7]
            if value:
                bins[index] = value
            else:
                del bins[index]
        for key, bins in cell_bins.items():
            if not bins:
                country(key[0]).rtt.pop(key[2:], None)
        for _b, c, asn, _s, outcome, n in rows.get("agg_root_records", ()):
            counter = country(c).records
            value = counter.get((asn, outcome), 0) + sign * n
            if value:
                counter[(asn, outcome)] = value
            else:
                counter.pop((asn, outcome), None)
        for _b, c, _a, _s, probe, _n in rows.get("agg_root_probes", ()):
            probes = country(c).probes
            value = probes.get(probe, 0) + sign
            if value:
                probes[probe] = value
            else:
                probes.pop(probe, None)
        for _b, c, _s, letter, site, location, n in rows.get("agg_root_sites_all", ()):
            counter = country(c).sites
            value = counter.get((letter, site, location), 0) + sign * n
            if value:
                counter[(letter, site, location)] = value
            else:
                counter.pop((letter, site, location), None)
        for row in rows.get(LEGACY, ()):
            legacy = country(row[3]).legacy
            if sign > 0:
                legacy.setdefault(row[7], []).append(row)
            else:
                legacy.pop(row[7], None)
        self._fold_rounds(rows.get("agg_root_rounds", ()), sign)
        for name in [n for n, s in self.countries.items() if not s.records and not s.rounds]:
            del self.countries[name]

    def _fold_rounds(self, rows: Iterable[Row], sign: int) -> None:
        touched: dict[str, dict[tuple[str, str], list[Part]]] = collections.defaultdict(dict)
        for bucket, c, asn, _s, probe, round_id, family, transport, letters, rtts in rows:
            rounds = touched[c]
            part = (bucket, family, transport, asn, letters, rtts)
            found = rounds.get((probe, round_id))
            if found is None:
                rounds[(probe, round_id)] = [part]
            else:
                found.append(part)
        for c, rounds in touched.items():
            state = self.country(c)
            taken_out: list[tuple[Any, ...]] = []
            put_in: list[tuple[Any, ...]] = []
            for key, parts in rounds.items():
                old = state.contribution.pop(key, None)
                if old is not None:
                    taken_out.append(old)
                if sign > 0:
                    kept = state.rounds.get(key)
                    if kept is None:
                        kept = state.rounds[key] = parts
                    else:
                        kept.extend(parts)
                else:
                    gone = set(parts)
                    kept = [p for p in state.rounds.get(key, ()) if p not in gone]
                    if kept:
                        state.rounds[key] = kept
                    else:
                        state.rounds.pop(key, None)
                if kept:
                    contribution = state.contribution[key] = _contribution(kept)
                    put_in.append(contribution)
            state._apply(taken_out, -1)
            state._apply(put_in, 1)


def group_by_bucket(rows: Mapping[str, Sequence[Row]]) -> dict[float, dict[str, list[Row]]]:
    """Rows of several buckets, per bucket (the legacy rows by their bucket column)."""
    out: dict[float, dict[str, list[Row]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for table, table_rows in rows.items():
        column = 7 if table == LEGACY else 0
        for row in table_rows:
            out[row[column]][table].append(row)
    return out


def source_column(table: str) -> int:
    """Where a facts table keeps its ``source`` column (the totals have no ASN column)."""
    return 2 if table.endswith("_all") else 3


def read_rows(
    store: Store,
    *,
    since: float,
    until: float,
    country: str | None = None,
    sources: Collection[str] | None = None,
    rtt: bool = True,
) -> dict[str, list[Row]]:
    """The window tables' rows of buckets [since, until) (optionally of one country, of some
    sources; without ``rtt`` no RTT bin rows, which ``read_cells`` reads a cell at a time), and
    the legacy rows among them (``LEGACY``)."""
    rows: dict[str, list[Row]] = {}
    buckets: list[float] | None = None
    for table in sorted(TABLES, key=lambda t: t != "agg_root_records"):
        if not rtt and table == "agg_root_rtt_all":
            continue
        rows[table] = store.fact_rows(
            table, since=since, until=until, country=country, buckets=buckets
        )
        if country is not None and table == "agg_root_records":
            # every bucket row of a record goes with its records row: the country's other
            # rows are sought in these buckets only, not along the whole grid
            buckets = sorted({r[0] for r in rows[table]})
        if sources is not None:
            column = source_column(table)
            rows[table] = [r for r in rows[table] if r[column] in sources]
    rows[LEGACY] = [
        # record_id, probe, time, bucket, country, asn, source, round, letter, …, answered
        (r[2], r[0], r[1], r[4], r[5], r[8], r[11], r[3])
        for r in store.fact_rows(
            "root_queries",
            since=since,
            until=until + facts.BUCKET_SECONDS,  # by time: the last bucket's later rows too
            country=country,
            without_round=True,
        )
        if r[3] < until and (sources is None or r[6] in sources)
    ]
    return rows


def read_cells(
    store: Store, *, since: float, until: float, sources: Collection[str] | None = None
) -> list[RttCell]:
    """The RTT bins of buckets [since, until) a cell at a time (``Store.rtt_cells``),
    optionally of some sources only."""
    cells = store.rtt_cells(since=since, until=until)
    if sources is not None:
        cells = [c for c in cells if c[2] in sources]
    return cells


@dataclasses.dataclass(slots=True)
class LiveWindow:
    """The live window's state, moved from refresh to refresh (see the module docstring)."""

    store: Store
    sources: Collection[str] | None = None  # the sources the figures rest on (None: all)
    state: WindowState = dataclasses.field(default_factory=WindowState)
    folded: dict[float, tuple[int, _Kept]] = dataclasses.field(
        default_factory=dict
    )  # bucket → (its version when read, what was folded in of it)
    generation: tuple[float, str] | None = None  # the facts generation the sums were read from
    reads: int = 0  # buckets read from the store, for tests and benchmarks

    def move(self, since: float, until: float) -> WindowState:
        """The state of buckets [since, until), reading only what changed."""
        generation = self.store.get_snapshot(facts.GENERATION)
        if generation != self.generation:  # a rederive rebuilt the facts: start again
            self.state, self.folded, self.generation = WindowState(), {}, generation
        versions = self.store.bucket_versions(since=since, until=until)
        gone = [b for b in self.folded if not since <= b < until]  # left the window
        gone += [b for b, v in versions.items() if b in self.folded and self.folded[b][0] != v]
        gone += [b for b in self.folded if b not in versions and since <= b < until]  # emptied
        runs = _runs(sorted(b for b, v in versions.items() if self.folded.get(b, (None,))[0] != v))
        if not runs or not READ_AHEAD:
            for bucket in gone:
                self._drop(bucket)
            for start, stop in runs:
                self._fold_in(self._read(start, stop), versions)
            return self.state
        # The database reads without the GIL: the next run is read in a thread while the main
        # one folds out the buckets that left or changed, and then folds in the run read before.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
            ahead = reader.submit(self._read, *runs[0])
            for bucket in gone:
                self._drop(bucket)
            for i in range(len(runs)):
                read = ahead.result()
                if i + 1 < len(runs):
                    ahead = reader.submit(self._read, *runs[i + 1])
                self._fold_in(read, versions)
        return self.state

    def _read(
        self, start: float, stop: float
    ) -> tuple[dict[float, dict[str, list[Row]]], dict[float, list[RttCell]]]:
        """The rows of buckets [start, stop) per bucket, and their RTT cells per bucket."""
        rows = group_by_bucket(
            read_rows(self.store, since=start, until=stop, sources=self.sources, rtt=False)
        )
        cells: dict[float, list[RttCell]] = collections.defaultdict(list)
        for cell in read_cells(self.store, since=start, until=stop, sources=self.sources):
            cells[cell[0]].append(cell)
        return rows, cells

    def _fold_in(
        self,
        read: tuple[dict[float, dict[str, list[Row]]], dict[float, list[RttCell]]],
        versions: Mapping[float, int],
    ) -> None:
        rows, cells = read
        for bucket in sorted(set(rows) | set(cells)):
            if bucket in versions:
                kept = _Kept(rows.get(bucket, {}), cells.get(bucket, []))
                self.state.add(kept.rows)
                self.state.add_cells(kept.cells)
                self.folded[bucket] = (versions[bucket], kept)
                self.reads += 1

    def _drop(self, bucket: float) -> None:
        entry = self.folded.pop(bucket, None)
        if entry is not None:
            self.state.remove_cells(entry[1].cells)
            self.state.remove(entry[1].rows)


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    """What was folded in of a bucket, kept to fold it out again: its RTT bins a cell at a time
    (integer arrays, compact) and the rest of its rows as read."""

    rows: Mapping[str, Sequence[Row]]
    cells: Sequence[RttCell]


@dataclasses.dataclass(slots=True)
class SlidingWindow:
    """A window moved forward over rows held in memory (``rows(since, until)`` gives the rows
    of buckets [since, until)): each move folds out the buckets that left and folds in the ones
    that entered; a move backwards or past the old window starts again from scratch."""

    rows: Callable[[float, float], Mapping[str, Sequence[Row]]]
    state: WindowState = dataclasses.field(default_factory=WindowState)
    since: float | None = None
    until: float | None = None

    def move(self, since: float, until: float) -> WindowState:
        """The state of buckets [since, until)."""
        if (
            self.since is None
            or self.until is None
            or since < self.since
            or until < self.until
            or since >= self.until
        ):
            self.state = WindowState()
            self.state.add(self.rows(since, until))
        else:
            self.state.remove(self.rows(self.since, since))
            self.state.add(self.rows(self.until, until))
        self.since, self.until = since, until
        return self.state


RUN_BUCKETS = 4  # buckets read at once at most (what a deriver that starts holds in rows)
READ_AHEAD = True  # read the next run in a thread while folding (False: one thread)


def _runs(buckets: Sequence[float]) -> list[tuple[float, float]]:
    """Consecutive buckets as [start, stop) ranges of at most ``RUN_BUCKETS`` buckets."""
    out: list[tuple[float, float]] = []
    for bucket in buckets:
        if (
            out
            and out[-1][1] == bucket
            and out[-1][1] - out[-1][0] < RUN_BUCKETS * facts.BUCKET_SECONDS
        ):
            out[-1] = (out[-1][0], bucket + facts.BUCKET_SECONDS)
        else:
            out.append((bucket, bucket + facts.BUCKET_SECONDS))
    return out
