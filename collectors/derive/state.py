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

import array
import collections
import dataclasses
import math
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


def _bump(counter: dict[Any, float], key: Any, delta: float) -> None:
    value = counter.get(key, 0) + delta
    if value:
        counter[key] = value
    else:
        counter.pop(key, None)


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

    def _round(self, key: tuple[str, str], sign: int) -> None:
        """Fold a round's contribution in (1) or out (-1)."""
        if sign < 0:
            contribution = self.contribution.pop(key, None)
            if contribution is None:
                return
        else:
            contribution = _contribution(self.rounds[key])
            self.contribution[key] = contribution
        asn, ok, per_family = contribution
        _bump(self.rounds_all, asn, sign)
        if ok:
            _bump(self.rounds_ok, asn, sign)
        for family, transport, letters, bins in per_family:
            cell = (asn, family, transport)
            _bump(self.rss_letters, cell, sign * letters)
            _bump(self.rss_rounds, cell, sign)
            if bins:
                pool = self.pool.get((family, transport))
                if pool is None:
                    pool = self.pool[(family, transport)] = {}
                for index in bins:  # _bump inlined: the hot loop of the rounds
                    value = pool.get(index, 0) + sign
                    if value:
                        pool[index] = value
                    else:
                        del pool[index]
                if not pool:
                    del self.pool[(family, transport)]

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
    per: dict[tuple[str, str], list[Any]] = {}
    for _bucket, family, transport, _asn, letters, rtts in parts:
        mask |= letters
        entry = per.get((family, transport))
        if entry is None:
            per[(family, transport)] = [letters, rtts]
        else:  # the round's rows of another bucket
            entry[0] |= letters
            entry[1] = f"{entry[1]} {rtts}".strip()
    per_family = tuple(
        (
            family,
            transport,
            min(k, facts.mask_letters(letters)),
            facts.rtt_bins(sorted(map(float, rtts.split()))[:k]) if rtts else (),
        )
        for (family, transport), (letters, rtts) in sorted(per.items())
    )
    return parts[-1][3], facts.mask_letters(mask) >= k, per_family


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

    def add(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """Fold in one or more buckets' rows (``TABLES`` and ``LEGACY`` → rows)."""
        self._fold(rows, 1)

    def remove(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """Fold out rows folded in before."""
        self._fold(rows, -1)

    def remove_kept(self, kept: _Kept) -> None:
        """Fold out a bucket kept compact (``_Kept``): its RTT bins straight from the arrays,
        then the rest of its rows."""
        country = self.country
        tables = [country(c).rtt.setdefault(cell, {}) for c, _s, cell in kept.cells]
        for k, index, n in zip(kept.cell, kept.index, kept.n, strict=True):
            bins = tables[k]
            value = bins.get(index, 0) - n
            if value:
                bins[index] = value
            else:
                del bins[index]
        for (c, _s, cell), bins in zip(kept.cells, tables, strict=True):
            if not bins:
                country(c).rtt.pop(cell, None)
        self._fold(kept.rest, -1)

    def _fold(self, rows: Mapping[str, Sequence[Row]], sign: int) -> None:
        country = self.country
        for _b, c, _s, letter, family, transport, sent, answered in rows.get(
            "agg_root_cells_all", ()
        ):
            state = country(c)
            _bump(state.sent, (letter, family, transport), sign * sent)
            _bump(state.answered, (letter, family, transport), sign * answered)
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
            _bump(country(c).records, (asn, outcome), sign * n)
        for _b, c, _a, _s, probe, _n in rows.get("agg_root_probes", ()):
            _bump(country(c).probes, probe, sign)
        for _b, c, _s, letter, site, location, n in rows.get("agg_root_sites_all", ()):
            _bump(country(c).sites, (letter, site, location), sign * n)
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
            touched[c].setdefault((probe, round_id), []).append(
                (bucket, family, transport, asn, letters, rtts)
            )
        for c, rounds in touched.items():
            state = self.country(c)
            for key, parts in rounds.items():
                state._round(key, -1)
                if sign > 0:
                    state.rounds.setdefault(key, []).extend(parts)
                else:
                    gone = set(parts)
                    kept = [p for p in state.rounds.get(key, ()) if p not in gone]
                    if kept:
                        state.rounds[key] = kept
                    else:
                        state.rounds.pop(key, None)
                if key in state.rounds:
                    state._round(key, 1)


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
) -> dict[str, list[Row]]:
    """The window tables' rows of buckets [since, until) (optionally of one country, of some
    sources), and the legacy rows among them (``LEGACY``)."""
    rows: dict[str, list[Row]] = {}
    for table in TABLES:
        rows[table] = store.fact_rows(table, since=since, until=until, country=country)
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


@dataclasses.dataclass(slots=True)
class LiveWindow:
    """The live window's state, moved from refresh to refresh (see the module docstring)."""

    store: Store
    sources: Collection[str] | None = None  # the sources the figures rest on (None: all)
    state: WindowState = dataclasses.field(default_factory=WindowState)
    folded: dict[float, tuple[int, _Kept | dict[str, list[Row]]]] = dataclasses.field(
        default_factory=dict
    )  # bucket → (its version when read, its rows: as read while it changes, then compact)
    generation: tuple[float, str] | None = None  # the facts generation the sums were read from
    reads: int = 0  # buckets read from the store, for tests and benchmarks

    def move(self, since: float, until: float) -> WindowState:
        """The state of buckets [since, until), reading only what changed."""
        generation = self.store.get_snapshot(facts.GENERATION)
        if generation != self.generation:  # a rederive rebuilt the facts: start again
            self.state, self.folded, self.generation = WindowState(), {}, generation
        versions = self.store.bucket_versions(since=since, until=until)
        for bucket in [b for b in self.folded if not since <= b < until]:
            self._drop(bucket)
        stale = [b for b, v in versions.items() if self.folded.get(b, (None,))[0] != v]
        stale += [b for b in self.folded if b not in versions]  # its records are gone
        for bucket in stale:
            self._drop(bucket)
        for bucket, (version, rows) in list(self.folded.items()):
            if isinstance(rows, dict):  # unchanged since the last move: settled, kept compact
                self.folded[bucket] = (version, _Kept.of(rows))
        open_from = sorted(versions)[-OPEN_BUCKETS:][0] if versions else math.inf
        for start, stop in _runs(sorted(set(stale) & set(versions))):
            for bucket, rows in group_by_bucket(
                read_rows(self.store, since=start, until=stop, sources=self.sources)
            ).items():
                if bucket in versions:
                    self.state.add(rows)
                    # the newest buckets (still filling) as read, the others compact
                    kept = rows if bucket >= open_from else _Kept.of(rows)
                    self.folded[bucket] = (versions[bucket], kept)
                    self.reads += 1
        return self.state

    def _drop(self, bucket: float) -> None:
        entry = self.folded.pop(bucket, None)
        if entry is None:
            return
        if isinstance(entry[1], _Kept):
            self.state.remove_kept(entry[1])
        else:
            self.state.remove(entry[1])


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    """A folded bucket's rows, kept to fold it out again: the RTT bin rows (most of a bucket)
    as three integer arrays and a table of their cells, the rest as read."""

    rest: Mapping[str, Sequence[Row]]
    cells: Sequence[tuple[str, str, Labels]]  # (country, source, (letter, family, transport))
    cell: array.array[int]
    index: array.array[int]
    n: array.array[int]

    @classmethod
    def of(cls, rows: Mapping[str, Sequence[Row]]) -> _Kept:
        rtt = rows.get("agg_root_rtt_all", ())
        keys: dict[tuple[Any, ...], int] = {}  # (country, source, letter, family, transport)
        cell = array.array("i", [keys.setdefault(r[1:6], len(keys)) for r in rtt])
        index = array.array("i", [r[6] for r in rtt])
        n = array.array("q", [r[7] for r in rtt])
        rest = {t: r for t, r in rows.items() if t != "agg_root_rtt_all"}
        return cls(rest, [(k[0], k[1], k[2:]) for k in keys], cell, index, n)


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


OPEN_BUCKETS = 2  # the newest buckets, likely to change again: kept as read, not compacted
RUN_BUCKETS = 4  # buckets read at once at most (what a deriver that starts holds in rows)


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
