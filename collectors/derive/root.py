"""Root aggregates from merged buckets (definitions in docs/methodology.md).

``RootBuckets.load`` reads the bucket rows of a time range once; ``between`` cuts a window out of
them (bisect, no copy of the rows outside it); ``compute`` merges a window into every root
series. History moves the window from step to step over rows loaded once per chunk.

Equal to the exact computation over raw records (the reference in
tests/collectors/exact_root.py) for every count and ratio; RTT quantiles are read from
logarithmic bins, within ``facts.RTT_RELATIVE_ERROR`` (< 1%) of the exact weighted quantile.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from publiccore.collectors import aggregate as agg

from publiccore.records import INTEGRITY_OUTCOMES
from publiccore.store import Store, facts

Row = tuple[Any, ...]
Labels = tuple[str, ...]
TABLES: tuple[str, ...] = (
    "agg_root_cells_all",
    "agg_root_rtt_all",
    "agg_root_records",
    "agg_root_probes",
    "agg_root_sites_all",
    "agg_root_rounds",
)
# Where a facts table keeps its ``source`` column (the tables without an ASN column: one less).
SOURCE_COLUMN = {name: 2 if name.endswith("_all") else 3 for name in facts.AGG_TABLES}


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
        tables = {}
        for table in TABLES:
            rows = store.fact_rows(table, since=since, until=until, country=country)
            if sources is not None:
                column = SOURCE_COLUMN[table]
                rows = [r for r in rows if r[column] in sources]
            tables[table] = _Sorted.of(rows)
        legacy = []
        end = until + facts.BUCKET_SECONDS
        rows = store.fact_rows(
            "root_queries", since=since, until=end, country=country, without_round=True
        )
        for r in rows:
            # record_id, probe, time, bucket, country, asn, source, round, letter, …, answered
            if sources is None or r[6] in sources:
                legacy.append((r[2], r[0], r[1], r[4], r[5], r[8], r[11], r[3]))
        return cls(store=store, tables=tables, legacy=_Sorted.of(legacy), sources=sources)

    def window(self, since: float, until: float) -> Window:
        """The buckets with ``since`` ≤ bucket < ``until``."""
        return Window(
            tables={name: t.between(since, until) for name, t in self.tables.items()},
            legacy=[
                r for r in self.legacy.between(since, until + facts.BUCKET_SECONDS) if r[7] < until
            ]
            if self.legacy.rows
            else [],
            buckets=self,
            since=since,
            until=until,
        )

    def detail(
        self, country: str, asns: Collection[int], *, since: float, until: float
    ) -> dict[str, list[Row]]:
        """The per-ASN tables' rows of ``asns`` in ``country`` over [since, until)."""
        out = {}
        for table in facts.PER_ASN_TABLES:
            rows = self.store.fact_rows(table, since=since, until=until, country=country, asns=asns)
            if self.sources is not None:
                rows = [r for r in rows if r[3] in self.sources]
            out[table] = rows
        return out


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


def window_bounds(now: float, seconds: float) -> tuple[float, float]:
    """The buckets of a live window of ``seconds`` ending at ``now``: every bucket that overlaps
    it (the oldest one may start up to a bucket before ``now - seconds``)."""
    return facts.bucket_of(now - seconds), now


def _asn(value: int) -> int | None:
    return None if value == facts.NO_ASN else int(value)


def _stored_asn(value: int | None) -> int:
    return facts.NO_ASN if value is None else value


def compute(window: Window, *, max_asn_share: float) -> agg.Series:
    """Every root aggregate over one window, weighted per country (M-sampling)."""
    out: agg.Series = {
        spec.name: {}
        for spec in agg.METRICS
        if spec.name.startswith(("publiccore_root_", "publiccore_aggregate_"))
    }
    by_country: dict[str, dict[str, list[Row]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for table, rows in window.tables.items():
        for row in rows:
            by_country[row[1]][table].append(row)
    legacy_by_country: dict[str, list[Row]] = collections.defaultdict(list)
    for row in window.legacy:
        legacy_by_country[row[3]].append(row)
    for country in sorted(by_country):
        tables = by_country[country]
        if not tables.get("agg_root_records"):
            continue
        _country(country, tables, legacy_by_country.get(country, []), max_asn_share, out, window)
    return out


def _weighted(
    totals: Sequence[Row],
    detail: Sequence[Row],
    *,
    key: Callable[[Row], Labels],
    detail_key: Callable[[Row], Labels],
    common: float,
    extra: Mapping[int, float],
    value: int = -1,
) -> dict[Labels, float]:
    """Σ over ASNs of weight × count per key: ``common`` × the totals plus, for the ASNs whose
    weight differs, (their weight − ``common``) × their own counts."""
    out: dict[Labels, float] = collections.defaultdict(float)
    if common:
        for row in totals:
            out[key(row)] += common * row[value]
    in_detail = value + 1 if value >= 0 else value  # the detail rows have an ASN column more
    for row in detail:
        out[detail_key(row)] += extra[row[2]] * row[in_detail]
    return {k: v for k, v in out.items() if v > 1e-9}


def _country(
    country: str,
    tables: Mapping[str, list[Row]],
    legacy: list[Row],
    max_asn_share: float,
    out: agg.Series,
    window: Window,
) -> None:
    counts: collections.Counter[int | None] = collections.Counter()
    outcomes: collections.Counter[tuple[int | None, str]] = collections.Counter()
    for _b, _c, asn, _s, outcome, n in tables["agg_root_records"]:
        counts[_asn(asn)] += n
        outcomes[(_asn(asn), outcome)] += n
    common, special = agg.asn_weight_split(counts, max_asn_share)
    weights = {a: special.get(a, common) for a in counts}
    extra = {_stored_asn(a): w - common for a, w in special.items()}
    detail = window.detail(country, extra)
    total = sum(counts.values())
    sample = (country, "root-dns")
    out["publiccore_aggregate_records"][sample] = float(total)
    probes = {r[4] for r in tables.get("agg_root_probes", [])}
    out["publiccore_aggregate_probes"][sample] = float(len(probes))
    out["publiccore_aggregate_probe_asns"][sample] = float(
        len({a for a in counts if a is not None})
    )
    out["publiccore_aggregate_top_asn_share"][sample] = max(counts.values()) / total

    def cell(row: Row) -> Labels:
        return (row[3], row[4], row[5])  # totals: bucket country source letter family transport

    def asn_cell(row: Row) -> Labels:
        return (row[4], row[5], row[6])

    cells_all, cells = tables.get("agg_root_cells_all", []), detail["agg_root_cells"]
    sent = _weighted(
        cells_all, cells, key=cell, detail_key=asn_cell, common=common, extra=extra, value=6
    )
    answered = _weighted(
        cells_all, cells, key=cell, detail_key=asn_cell, common=common, extra=extra, value=7
    )
    bins_flat = _weighted(
        tables.get("agg_root_rtt_all", []),
        detail["agg_root_rtt"],
        key=lambda r: (r[3], r[4], r[5], r[6]),
        detail_key=lambda r: (r[4], r[5], r[6], r[7]),
        common=common,
        extra=extra,
    )
    bins: dict[Labels, dict[int, float]] = collections.defaultdict(dict)
    for (letter, family, transport, index), w in bins_flat.items():
        bins[(letter, family, transport)][int(index)] = w

    reach = out["publiccore_root_reachable_ratio"]
    rtt_out = out["publiccore_root_rtt_seconds"]
    for key, n in sent.items():
        reach[(country, *key)] = answered.get(key, 0.0) / n
        if bins.get(key):
            values = histogram_quantiles(bins[key], agg.QUANTILES)
            for q, value in zip(agg.QUANTILES, values, strict=True):
                rtt_out[(country, *key, repr(q))] = value

    site_names: dict[str, set[str]] = collections.defaultdict(set)
    for row in tables.get("agg_root_sites_all", []):
        if row[4] and row[6] > 0:
            site_names[row[3]].add(row[4])
    located = _weighted(
        tables.get("agg_root_sites_all", []),
        detail["agg_root_sites"],
        key=lambda r: (r[3], r[5]),
        detail_key=lambda r: (r[4], r[6]),
        common=common,
        extra=extra,
    )
    located_total: dict[str, float] = collections.defaultdict(float)
    for (letter, _location), w in located.items():
        located_total[letter] += w

    letters_ok = 0
    for letter in sorted({k[0] for k in sent}):
        keys = [k for k in sent if k[0] == letter]
        availability = sum(answered.get(k, 0.0) for k in keys) / sum(sent[k] for k in keys)
        out["publiccore_root_availability_ratio"][(country, letter)] = availability
        letters_ok += availability >= agg.AVAILABILITY_THRESHOLD
        for transport in agg.TRANSPORTS:
            merged: dict[int, float] = collections.defaultdict(float)
            for k in keys:
                if k[2] == transport:
                    for index, w in bins.get(k, {}).items():
                        merged[index] += w
            if merged:
                out["publiccore_root_median_latency_seconds"][(country, letter, transport)] = (
                    histogram_quantiles(merged, (0.5,))[0]
                )
        out["publiccore_root_sites"][(country, letter)] = float(len(site_names[letter]))
        if located_total[letter] > 0:
            for outcome in agg.SITE_OUTCOMES:
                out["publiccore_root_site_location_ratio"][(country, letter, outcome)] = (
                    located.get((letter, outcome), 0.0) / located_total[letter]
                )
    out["publiccore_root_letters_available"][(country,)] = float(letters_ok)

    # Rounds: by round id where the measurer set one, else by the 120-second gap rule.
    masks: dict[tuple[str, str], int] = collections.defaultdict(int)
    per_family: dict[tuple[str, str, str, str], int] = collections.defaultdict(int)
    round_asn: dict[tuple[str, str], int | None] = {}
    round_rtts: dict[tuple[str, str, str, str], list[float]] = collections.defaultdict(list)
    for row in tables.get("agg_root_rounds", []):
        _b, _c, asn, _s, probe, round_id, family, transport, letters, rtts = row
        masks[(probe, round_id)] |= letters
        per_family[(probe, round_id, family, transport)] |= letters
        round_asn[(probe, round_id)] = _asn(asn)
        if rtts:
            round_rtts[(probe, round_id, family, transport)].extend(map(float, rtts.split()))
    rounds_ok = rounds_all = 0.0
    for key, mask in masks.items():
        w = weights[round_asn[key]]
        rounds_all += w
        rounds_ok += w * (facts.mask_letters(mask) >= agg.RSS_K)
    for _probe, asn, ok in _legacy_rounds(legacy):
        w = weights[asn]
        rounds_all += w
        rounds_ok += w * ok
    if rounds_all:
        out["publiccore_root_system_available_ratio"][(country,)] = rounds_ok / rounds_all
    rss = out.setdefault("publiccore_root_rss_availability_ratio", {})
    numer: dict[Labels, float] = collections.defaultdict(float)
    denom: dict[Labels, float] = collections.defaultdict(float)
    for (probe, round_id, family, transport), mask in per_family.items():
        w = weights[round_asn[(probe, round_id)]]
        numer[(family, transport)] += w * min(agg.RSS_K, facts.mask_letters(mask))
        denom[(family, transport)] += w * agg.RSS_K
    for key, d in denom.items():
        rss[(country, *key)] = numer[key] / d
    # RSSAC047 6.2: per vantage point and interval, its k lowest letter latencies, pooled; the
    # median of the pool (weighted per M-sampling; read from log bins like every RTT quantile).
    pools: dict[Labels, dict[int, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float)
    )
    for (probe, round_id, family, transport), values in round_rtts.items():
        w = weights[round_asn[(probe, round_id)]]
        pool = pools[(family, transport)]
        for value in sorted(values)[: agg.RSS_K]:
            pool[facts.rtt_bin(value)] += w
    latency = out.setdefault("publiccore_root_rss_latency_seconds", {})
    for key, pool in pools.items():
        latency[(country, *key)] = histogram_quantiles(pool, (0.5,))[0]

    # ``not_measured`` (an import that did not ask for DNSKEY) claims nothing: not in the shares.
    measured = {k: n for k, n in outcomes.items() if k[1] != "not_measured"}
    weight_total = sum(weights[a] * n for (a, _o), n in measured.items())
    by_outcome: dict[str, float] = collections.defaultdict(float)
    for (a, outcome), n in measured.items():
        by_outcome[outcome] += weights[a] * n
    for outcome in INTEGRITY_OUTCOMES:
        if weight_total and outcome != "not_measured":
            out["publiccore_root_integrity_ratio"][(country, outcome)] = (
                by_outcome.get(outcome, 0.0) / weight_total
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
    of the total: ``weighted_quantiles``' rule (the one rule), over (bin, weight) pairs."""
    indices = agg.weighted_quantiles(list(bins.items()), qs)
    return [facts.bin_value(int(index)) for index in indices]


def probes_active(
    store: Store, *, now: float, registered: Mapping[str, str]
) -> dict[Labels, float]:
    """M-sampling's "probes active": per country, the probes with a root-dns record in the
    hour before ``now`` (by the buckets, so to the minute), and every country of a registered,
    unrevoked probe (``registered``: probe id → country) with 0 when its probes are silent."""
    since, until = window_bounds(now, agg.ACTIVE_SECONDS)
    active: dict[str, set[str]] = {country: set() for country in registered.values()}
    for country, probe in store.active_probes(since=since, until=until):
        active.setdefault(registered.get(probe, country), set()).add(probe)
    return {(c,): float(len(p)) for c, p in sorted(active.items())}


def publication_latency(store: Store, *, now: float) -> dict[Labels, float]:
    """RSSAC047 publication latency of the newest serial, per (country, letter), from the first
    and last sightings kept in the store (so a collector restart loses nothing): the same rule
    as history's ``PublicationTracker``, fed with every stored sighting."""
    tracker = agg.PublicationTracker()
    tracker.update(
        agg.Sighting(when, country, letter, serial)
        for serial, country, letter, first, last in store.fact_rows("root_serials")
        for when in (first, last)
    )
    return tracker.latency(now)
