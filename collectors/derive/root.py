"""Root aggregates from merged buckets (definitions in docs/methodology.md).

``RootBuckets.load`` reads the bucket rows of a time range once; ``between`` cuts a window out of
them (bisect, no copy of the rows outside it); ``compute`` merges a window into the typed root
figures (``derive.figures.RootFigures``). History moves the window from step to step over rows
loaded once per chunk.

Equal to the exact computation over raw records (the reference in
tests/collectors/exact_root.py) for every count and ratio; RTT quantiles are read from
logarithmic bins, within ``facts.RTT_RELATIVE_ERROR`` (< 1%) of the exact weighted quantile.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import dataclasses
import itertools
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import figures as fig
from publiccore.collectors.derive import state

from publiccore.records import INTEGRITY_OUTCOMES
from publiccore.store import Store, facts

Row = tuple[Any, ...]
Labels = tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Sorted:
    rows: Sequence[Row]
    keys: Sequence[float]  # rows[i][0] (bucket or time), ascending

    @classmethod
    def of(cls, rows: list[Row]) -> _Sorted:
        rows.sort(key=lambda r: r[0])
        return cls(rows, [r[0] for r in rows])

    def between(self, since: float, until: float) -> Sequence[Row]:
        low = bisect.bisect_left(self.keys, since)
        return self.rows[low : bisect.bisect_left(self.keys, until)]


@dataclasses.dataclass(frozen=True, slots=True)
class RootBuckets:
    """Bucket rows of one time range: the tables without a probe-ASN dimension, the per-ASN
    record counts behind the weights, probes and rounds, plus the schema 1 query rows (no round
    id: their rounds come from the 120-second gap rule, which needs the rows themselves).

    Per-ASN detail (cells, RTT bins, sites) is read only for the few ASNs whose weight differs
    from the common one (``asn_weight_split``), per window, from the store.
    """

    store: Store
    tables: Mapping[str, _Sorted]
    legacy: _Sorted  # root_queries rows with round NULL: (time, record_id, probe, asn, …)
    sources: Collection[str] | None = None

    @classmethod
    def load(
        cls,
        store: Store,
        *,
        since: float,
        until: float,
        sources: Collection[str] | None = None,
        country: str | None = None,
    ) -> RootBuckets:
        """Read every bucket with ``since`` ≤ bucket < ``until`` (optionally of some sources,
        or of one country)."""
        rows = state.read_rows(store, since=since, until=until, country=country, sources=sources)
        legacy = rows.pop(state.LEGACY)
        tables = {table: _Sorted.of(table_rows) for table, table_rows in rows.items()}
        return cls(store=store, tables=tables, legacy=_Sorted.of(legacy), sources=sources)

    def rows(self, since: float, until: float) -> dict[str, Sequence[Row]]:
        """The rows of buckets ``since`` ≤ bucket < ``until`` per table (``state.LEGACY``: the
        schema 1 query rows of those buckets)."""
        out: dict[str, Sequence[Row]] = {
            name: t.between(since, until) for name, t in self.tables.items()
        }
        out[state.LEGACY] = (
            [
                r
                for r in self.legacy.between(since, until + facts.BUCKET_SECONDS)
                if since <= r[7] < until
            ]
            if self.legacy.rows
            else []
        )
        return out

    def sliding(self) -> state.SlidingWindow:
        """A window moved forward over these rows (history from step to step)."""
        return state.SlidingWindow(self.rows)

    def window(self, since: float, until: float) -> Window:
        """The buckets with ``since`` ≤ bucket < ``until``."""
        rows = self.rows(since, until)
        legacy = rows.pop(state.LEGACY)
        return Window(tables=rows, legacy=legacy, buckets=self, since=since, until=until)

    def detail(
        self, country: str, asns: Collection[int], *, since: float, until: float
    ) -> dict[str, list[Row]]:
        """The per-ASN tables' rows of ``asns`` in ``country`` over [since, until)."""
        return read_detail(
            self.store, country, asns, since=since, until=until, sources=self.sources
        )


def read_detail(
    store: Store,
    country: str,
    asns: Collection[int],
    *,
    since: float,
    until: float,
    sources: Collection[str] | None = None,
) -> dict[str, list[Row]]:
    """The per-ASN tables' rows of ``asns`` (stored ASN values) in ``country`` over buckets
    [since, until), optionally of some sources only."""
    out = {}
    for table in facts.PER_ASN_TABLES:
        rows = store.fact_rows(table, since=since, until=until, country=country, asns=asns)
        if sources is not None:
            rows = [r for r in rows if r[3] in sources]
        out[table] = rows
    return out


def live(
    window: state.LiveWindow, *, now: float, seconds: float, max_asn_share: float
) -> fig.RootFigures:
    """Every root figure of the live window of ``seconds`` ending at ``now``, moving
    ``window``'s running sums (only the buckets that changed are read)."""
    since, until = window_bounds(now, seconds)
    folded = window.move(since, until)
    return compute_state(
        folded,
        detail=lambda country, asns: read_detail(
            window.store, country, asns, since=since, until=until, sources=window.sources
        ),
        max_asn_share=max_asn_share,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    tables: Mapping[str, Sequence[Row]]
    legacy: Sequence[Row]
    buckets: RootBuckets
    since: float
    until: float

    def probes(self) -> dict[str, set[str]]:
        """Country → probes with a record in the window."""
        out: dict[str, set[str]] = collections.defaultdict(set)
        for _b, country, _asn, _source, probe, _n in self.tables["agg_root_probes"]:
            out[country].add(probe)
        return out

    def detail(self, country: str, asns: Collection[int]) -> dict[str, list[Row]]:
        """Per-ASN rows of ``asns`` (stored ASN values) in ``country`` over the window."""
        if not asns:
            return {table: [] for table in facts.PER_ASN_TABLES}
        return self.buckets.detail(country, asns, since=self.since, until=self.until)


def read_parts(
    store: Store,
    bounds: Sequence[float],
    *,
    country: str | None = None,
    sources: Collection[str] | None = None,
) -> Iterator[state.WindowState]:
    """The state of each [bounds[i], bounds[i + 1]) in turn (optionally of one country, of
    some sources), its rows read and folded as they come: the next part is read in a thread
    while one is folded (the database reads without the GIL), and no more than two parts'
    rows are held."""

    def rows(since: float, until: float) -> dict[str, list[Row]]:
        return state.read_rows(store, since=since, until=until, country=country, sources=sources)

    ranges = list(itertools.pairwise(bounds))
    if not ranges:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(rows, *ranges[0])
        for i in range(len(ranges)):
            read = ahead.result()
            if i + 1 < len(ranges):
                ahead = reader.submit(rows, *ranges[i + 1])
            folded = state.WindowState()
            folded.add(read)
            del read
            yield folded


@dataclasses.dataclass(frozen=True, slots=True)
class Partition:
    """A period cut at ``bounds`` (ascending), each part's rows read and folded once: the state
    of a run of consecutive parts is the merge of theirs (``WindowState.merged``), equal to a
    fold of the run's rows. A report's days, months and whole period so read and fold each row
    once, and merge running sums (a few per cell and bin a day) instead of folding the rows
    again; no more than two parts' rows are held at a time. Runs merged before are reused:
    after the months, the period merges months, not days."""

    store: Store
    bounds: tuple[float, ...]
    parts: tuple[state.WindowState, ...]
    sources: Collection[str] | None = None
    _runs: dict[tuple[int, int], state.WindowState] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def read(
        cls,
        store: Store,
        bounds: Sequence[float],
        *,
        country: str | None = None,
        sources: Collection[str] | None = None,
    ) -> Partition:
        """Read and fold the buckets of each [bounds[i], bounds[i + 1]) (``read_parts``)."""
        parts = read_parts(store, bounds, country=country, sources=sources)
        return cls(store, tuple(bounds), tuple(parts), sources)

    def folded(self, since: float, until: float) -> state.WindowState:
        """The state of [since, until), two of the bounds (ValueError otherwise); not to be
        folded further (it may be a part's own)."""
        first, last = self.bounds.index(since), self.bounds.index(until)
        if last <= first:
            raise ValueError(f"not a run of parts: [{since}, {until})")
        if last == first + 1:
            return self.parts[first]
        if (first, last) not in self._runs:
            pieces, at = [], first
            while at < last:  # the longest run merged before from here, else one part
                end = max((j for i, j in self._runs if i == at and j <= last), default=at + 1)
                pieces.append(self._runs[(at, end)] if end > at + 1 else self.parts[at])
                at = end
            self._runs[(first, last)] = state.WindowState.merged(pieces)
        return self._runs[(first, last)]

    def compute(self, since: float, until: float, *, max_asn_share: float) -> fig.RootFigures:
        """Every root figure over [since, until) (two of the bounds), as ``compute`` over the
        same window gives them."""
        return compute_stored(
            self.store,
            self.folded(since, until),
            since=since,
            until=until,
            max_asn_share=max_asn_share,
            sources=self.sources,
        )


def compute_stored(
    store: Store,
    folded: state.WindowState,
    *,
    since: float,
    until: float,
    max_asn_share: float,
    sources: Collection[str] | None = None,
) -> fig.RootFigures:
    """Every root figure from the state of ``store``'s buckets [since, until) (the per-ASN
    rows of the ASNs whose weight differs are read from the store for that range)."""

    def detail(country: str, asns: Collection[int]) -> Mapping[str, Sequence[Row]]:
        return read_detail(store, country, asns, since=since, until=until, sources=sources)

    return compute_state(folded, detail=detail, max_asn_share=max_asn_share)


def window_bounds(now: float, seconds: float) -> tuple[float, float]:
    """The buckets of a live window of ``seconds`` ending at ``now``: every bucket that overlaps
    it (the oldest one may start up to a bucket before ``now - seconds``)."""
    return facts.bucket_of(now - seconds), now


def _asn(value: int) -> int | None:
    return None if value == facts.NO_ASN else int(value)


def _stored_asn(value: int | None) -> int:
    return facts.NO_ASN if value is None else value


def compute(window: Window, *, max_asn_share: float) -> fig.RootFigures:
    """Every root figure over one window, weighted per country (M-sampling)."""
    folded = state.WindowState()
    folded.add({**window.tables, state.LEGACY: window.legacy})
    return compute_state(folded, detail=window.detail, max_asn_share=max_asn_share)


Detail = Callable[[str, Collection[int]], Mapping[str, Sequence[Row]]]


def compute_state(
    folded: state.WindowState, *, detail: Detail, max_asn_share: float
) -> fig.RootFigures:
    """Every root figure from a window's running sums; ``detail(country, asns)`` reads the
    per-ASN rows of the few ASNs whose weight differs from the common one."""
    return fig.RootFigures(
        tuple(
            _country(country, sums, detail, max_asn_share)
            for country, sums in sorted(folded.countries.items())
            if sums.records
        )
    )


def _weighted(
    totals: Mapping[Labels, float],
    detail: Sequence[Row],
    *,
    detail_key: Callable[[Row], Labels],
    common: float,
    extra: Mapping[int, float],
    value: int = -1,
) -> dict[Labels, float]:
    """Σ over ASNs of weight × count per key: ``common`` × the totals plus, for the ASNs whose
    weight differs, (their weight − ``common``) × their own counts (``detail`` rows)."""
    out: dict[Labels, float] = collections.defaultdict(float)
    if common:
        for key, n in totals.items():
            out[key] += common * n
    for row in detail:
        out[detail_key(row)] += extra[row[2]] * row[value]
    return {k: v for k, v in out.items() if v > 1e-9}


def _scaled_bins(
    totals: Mapping[int, float],
    extra_bins: Mapping[int, float] | None,
    *,
    common: float,
    weighted: bool,
) -> Mapping[int, float]:
    """RTT bins weighted per M-sampling. Unless ``weighted`` (some ASN of the country has a
    weight other than ``common``), the totals as they are: a quantile, and a merge of cells,
    does not change when every weight is scaled by the same ``common``."""
    if not weighted:
        return totals
    out: dict[int, float] = collections.defaultdict(float)
    if common:
        for index, n in totals.items():
            out[index] += common * n
    for index, w in (extra_bins or {}).items():
        out[index] += w
    return {k: v for k, v in out.items() if v > 1e-9}


def _country(
    country: str,
    sums: state.CountryState,
    read_detail: Detail,
    max_asn_share: float,
) -> fig.CountryRoot:
    counts: collections.Counter[int | None] = collections.Counter()
    outcomes: collections.Counter[tuple[int | None, str]] = collections.Counter()
    for (asn, outcome), n in sums.records.items():
        counts[_asn(asn)] += n
        outcomes[(_asn(asn), outcome)] += n
    common, special = agg.asn_weight_split(counts, max_asn_share)
    weights = {a: special.get(a, common) for a in counts}
    extra = {_stored_asn(a): w - common for a, w in special.items()}
    detail = read_detail(country, extra) if extra else {t: [] for t in facts.PER_ASN_TABLES}
    total = sum(counts.values())
    sample = fig.Sample(
        records=total,
        probes=len(sums.probes),
        probe_asns=len({a for a in counts if a is not None}),
        top_asn_share=max(counts.values()) / total,
    )

    def asn_cell(row: Row) -> Labels:
        return (row[4], row[5], row[6])

    cell_rows = detail["agg_root_cells"]
    sent = _weighted(sums.sent, cell_rows, detail_key=asn_cell, common=common, extra=extra, value=7)
    answered = _weighted(
        sums.answered, cell_rows, detail_key=asn_cell, common=common, extra=extra, value=8
    )
    extra_bins: dict[Labels, dict[int, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float)
    )
    for row in detail["agg_root_rtt"]:
        extra_bins[(row[4], row[5], row[6])][int(row[7])] += extra[row[2]] * row[8]
    bins = {
        key: weighted
        for key, cell_bins in sums.rtt.items()
        if (
            weighted := _scaled_bins(
                cell_bins, extra_bins.get(key), common=common, weighted=bool(extra)
            )
        )
    }

    cells = tuple(
        fig.Cell(
            *key,
            reachable_ratio=answered.get(key, 0.0) / n,
            rtt_seconds=(
                tuple(histogram_quantiles(bins[key], fig.QUANTILES)) if bins.get(key) else ()
            ),
        )
        for key, n in sorted(sent.items())
    )

    site_names: dict[str, set[str]] = collections.defaultdict(set)
    located_totals: dict[Labels, float] = collections.defaultdict(float)
    for (letter, site, location), n in sums.sites.items():
        if site and n > 0:
            site_names[letter].add(site)
        located_totals[(letter, location)] += n
    located = _weighted(
        located_totals,
        detail["agg_root_sites"],
        detail_key=lambda r: (r[4], r[6]),
        common=common,
        extra=extra,
    )
    located_total: dict[str, float] = collections.defaultdict(float)
    for (letter, _location), w in located.items():
        located_total[letter] += w

    per_letter: list[fig.Letter] = []
    for letter in sorted({k[0] for k in sent}):
        keys = [k for k in sent if k[0] == letter]
        medians: dict[str, float] = {}
        for transport in agg.TRANSPORTS:
            merged: dict[int, float] | None = None  # the letter's cells of this transport
            for k in keys:
                if k[2] != transport or k not in bins:
                    continue
                if merged is None:
                    merged = dict(bins[k])  # copied in C; the same sums in the same order
                else:
                    get = merged.get
                    for index, w in bins[k].items():
                        merged[index] = get(index, 0) + w
            if merged:
                medians[transport] = histogram_quantiles(merged, (0.5,))[0]
        per_letter.append(
            fig.Letter(
                letter,
                availability_ratio=(
                    sum(answered.get(k, 0.0) for k in keys) / sum(sent[k] for k in keys)
                ),
                median_latency_seconds=medians,
                sites=len(site_names[letter]),
                site_location=(
                    {
                        outcome: located.get((letter, outcome), 0.0) / located_total[letter]
                        for outcome in agg.SITE_OUTCOMES
                    }
                    if located_total[letter] > 0
                    else {}
                ),
            )
        )

    # Rounds: by round id where the measurer set one (the running sums), else by the
    # 120-second gap rule over the schema 1 rows.
    stored_weights = {_stored_asn(a): w for a, w in weights.items()}
    rounds_all = sum(stored_weights[asn] * n for asn, n in sums.rounds_all.items())
    rounds_ok = sum(stored_weights[asn] * n for asn, n in sums.rounds_ok.items())
    for _probe, asn, ok in _legacy_rounds(sums.legacy_rows()):
        w = weights[asn]
        rounds_all += w
        rounds_ok += w * ok
    rss: dict[Labels, float] = {}
    numer: dict[Labels, float] = collections.defaultdict(float)
    denom: dict[Labels, float] = collections.defaultdict(float)
    for (asn, family, transport), letters in sums.rss_letters.items():
        numer[(family, transport)] += stored_weights[asn] * letters
    for (asn, family, transport), n in sums.rss_rounds.items():
        denom[(family, transport)] += stored_weights[asn] * n * agg.RSS_K
    for key, d in denom.items():
        if d:
            rss[key] = numer[key] / d
    # RSSAC047 6.2: per vantage point and interval, its k lowest letter latencies, pooled; the
    # median of the pool (weighted per M-sampling; read from log bins like every RTT quantile).
    extra_pool: dict[Labels, dict[int, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float)
    )
    for (asn, family, transport), pool_bins in sums.pool_of(extra).items():
        w = extra[asn]
        for index, n in pool_bins.items():
            extra_pool[(family, transport)][index] += w * n
    latency: dict[Labels, float] = {}
    for key, pool in sums.pool.items():
        weighted = _scaled_bins(pool, extra_pool.get(key), common=common, weighted=bool(extra))
        if weighted:
            latency[key] = histogram_quantiles(weighted, (0.5,))[0]

    # ``not_measured`` (an import that did not ask for DNSKEY) claims nothing: not in the shares.
    measured = {k: n for k, n in outcomes.items() if k[1] != "not_measured"}
    weight_total = sum(weights[a] * n for (a, _o), n in measured.items())
    by_outcome: dict[str, float] = collections.defaultdict(float)
    for (a, outcome), n in measured.items():
        by_outcome[outcome] += weights[a] * n
    return fig.CountryRoot(
        country,
        sample=sample,
        cells=cells,
        letters=tuple(per_letter),
        letters_available=sum(
            x.availability_ratio >= agg.AVAILABILITY_THRESHOLD for x in per_letter
        ),
        system_available_ratio=rounds_ok / rounds_all if rounds_all else None,
        rss=tuple(
            fig.Rss(*key, availability_ratio=rss.get(key), latency_seconds=latency.get(key))
            for key in sorted(rss.keys() | latency.keys())
        ),
        integrity={
            outcome: by_outcome.get(outcome, 0.0) / weight_total
            for outcome in INTEGRITY_OUTCOMES
            if weight_total and outcome != "not_measured"
        },
    )


def _legacy_rounds(rows: list[Row]) -> list[tuple[str, int | None, bool]]:
    """(probe, ASN, ≥ k letters answered) per round of schema 1 records (120-second gap rule)."""
    records: dict[str, tuple[float, str, int | None, str, bool]] = {}
    for time, record_id, probe, _country, asn, letter, answered, _bucket in rows:
        seen = records.get(record_id)
        records[record_id] = (
            time,
            probe,
            _asn(asn),
            letter,
            bool(answered) or (seen is not None and seen[4]),
        )
    per_probe: dict[str, list[tuple[float, str, int | None, str, bool]]] = collections.defaultdict(
        list
    )
    for item in records.values():
        per_probe[item[1]].append(item)
    out = []
    for probe, items in per_probe.items():
        items.sort()
        letters: set[str] = set()
        start = -math.inf
        asn = items[0][2]
        for time, _p, _a, letter, answered in items:
            if time - start > agg.ROUND_GAP_SECONDS:
                if start > -math.inf:
                    out.append((probe, asn, len(letters) >= agg.RSS_K))
                letters, start = set(), time
            if answered:
                letters.add(letter)
        if start > -math.inf:
            out.append((probe, asn, len(letters) >= agg.RSS_K))
    return out


def histogram_quantiles(bins: Mapping[int, float], qs: Sequence[float]) -> list[float]:
    """For each q, the representative value of the first bin whose cumulative weight reaches q
    of the total: ``weighted_quantiles``' rule (``quantile_positions``), over the bins."""
    indices = sorted(bins)
    cumulative = list(itertools.accumulate(map(bins.__getitem__, indices)))
    return [facts.bin_value(indices[at]) for at in agg.quantile_positions(cumulative, qs)]


def probes_active(store: Store, *, now: float, registered: Mapping[str, str]) -> dict[str, int]:
    """M-sampling's "probes active": per country, the probes with a root-dns record in the
    hour before ``now`` (by the buckets, so to the minute), and every country of a registered,
    unrevoked probe (``registered``: probe id → country) with 0 when its probes are silent."""
    since, until = window_bounds(now, agg.ACTIVE_SECONDS)
    active: dict[str, set[str]] = {country: set() for country in registered.values()}
    for country, probe in store.active_probes(since=since, until=until):
        active.setdefault(registered.get(probe, country), set()).add(probe)
    return {c: len(p) for c, p in sorted(active.items())}


def publication_latency(store: Store, *, now: float) -> tuple[fig.NewestSerialLatency, ...]:
    """RSSAC047 publication latency of the newest serial, per (country, letter), from the first
    and last sightings kept in the store (so a collector restart loses nothing): the same rule
    as history's ``PublicationTracker``, fed with every stored sighting."""
    tracker = agg.PublicationTracker()
    tracker.update(
        agg.Sighting(when, country, letter, serial)
        for serial, country, letter, first, last in store.fact_rows("root_serials")
        for when in (first, last)
    )
    return tracker.newest(now)
