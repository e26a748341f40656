"""The exact root computation over raw records: the reference the derive stage is checked
against (written before parse-once; it reads every record of a window, which the product no
longer does)."""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from publiccore.collectors.aggregate import (
    AVAILABILITY_THRESHOLD,
    QUANTILES,
    ROUND_GAP_SECONDS,
    RSS_K,
    SITE_OUTCOMES,
    TRANSPORTS,
    Labels,
    asn_weights,
    weighted_quantile,
    weighted_quantiles,
)
from publiccore.exporters.catalogue import METRICS, Series

from publiccore.records import INTEGRITY_OUTCOMES, Record, RootResult, RootTarget
from publiccore.sites import SiteTable


@dataclasses.dataclass(frozen=True, slots=True)
class SoaProbe:
    """The outcome of one ``. SOA`` query: answered, RTT and serial."""

    answered: bool
    rtt_seconds: float | None
    serial: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RootRow:
    """What the aggregates need from one root-dns record."""

    time: float  # started, POSIX seconds
    probe: str
    asn: int | None
    country: str
    letter: str
    family: str
    soa: Mapping[str, SoaProbe]  # transport → outcome
    identities: tuple[str | None, ...]  # NSID, hostname.bind, id.server
    outcome: str

    @property
    def answered(self) -> bool:
        return any(s.answered for s in self.soa.values())

    @property
    def serial(self) -> int | None:
        return next((s.serial for s in self.soa.values() if s.serial is not None), None)


def root_row(record: Record) -> RootRow | None:
    """Extract a ``RootRow``; None for other kinds and for records without a country."""
    if not isinstance(record.result, RootResult) or not isinstance(record.target, RootTarget):
        return None
    if not record.probe.country:
        return None
    soa: dict[str, SoaProbe] = {}
    for query in record.result.queries:
        if query.qtype == "SOA" and query.qname == "." and query.transport not in soa:
            soa[query.transport] = SoaProbe(query.answered, query.rtt_seconds, query.serial)
    identity = record.result.identity
    return RootRow(
        time=record.started.timestamp(),
        probe=record.probe.id,
        asn=record.probe.asn,
        country=record.probe.country,
        letter=record.target.letter.lower(),
        family=record.target.family,
        soa=soa,
        identities=(identity.nsid, identity.hostname_bind, identity.id_server),
        outcome=record.result.integrity.outcome,
    )


def _rounds_available(rows: Sequence[RootRow]) -> list[bool]:
    """Per probe round (records of one probe closer than ROUND_GAP_SECONDS): ≥ k letters?"""
    out: list[bool] = []
    letters: set[str] = set()
    start = -math.inf
    for row in sorted(rows, key=lambda r: r.time):
        if row.time - start > ROUND_GAP_SECONDS:
            if start > -math.inf:
                out.append(len(letters) >= RSS_K)
            letters, start = set(), row.time
        if row.answered:
            letters.add(row.letter)
    if start > -math.inf:
        out.append(len(letters) >= RSS_K)
    return out


def compute_root(
    rows: Iterable[RootRow],
    *,
    max_asn_share: float,
    sites: SiteTable,
) -> Series:
    """Every root aggregate over ``rows`` (one window), weighted per country (module doc)."""
    by_country: dict[str, list[RootRow]] = collections.defaultdict(list)
    for row in rows:
        by_country[row.country].append(row)
    out: Series = {
        spec.name: {}
        for spec in METRICS
        if spec.name.startswith(("publiccore_root_", "publiccore_aggregate_"))
    }
    for country, crows in sorted(by_country.items()):
        _country_root(country, crows, max_asn_share, sites, out)
    return out


def _country_root(
    country: str, rows: list[RootRow], max_asn_share: float, sites: SiteTable, out: Series
) -> None:
    asn_counts = collections.Counter(r.asn for r in rows)
    weights = asn_weights(asn_counts, max_asn_share)
    total = len(rows)
    sample = ("root-dns",)
    out["publiccore_aggregate_records"][(country, *sample)] = float(total)
    out["publiccore_aggregate_probes"][(country, *sample)] = float(len({r.probe for r in rows}))
    out["publiccore_aggregate_probe_asns"][(country, *sample)] = float(
        len({r.asn for r in rows if r.asn is not None})
    )
    out["publiccore_aggregate_top_asn_share"][(country, *sample)] = max(asn_counts.values()) / total

    sent: dict[Labels, float] = collections.defaultdict(float)
    answered: dict[Labels, float] = collections.defaultdict(float)
    rtts: dict[Labels, list[tuple[float, float]]] = collections.defaultdict(list)
    outcomes: dict[str, float] = collections.defaultdict(float)
    site_names: dict[str, set[str]] = collections.defaultdict(set)
    located: dict[Labels, float] = collections.defaultdict(float)
    located_total: dict[str, float] = collections.defaultdict(float)
    per_probe: dict[str, list[RootRow]] = collections.defaultdict(list)
    probe_weight: dict[str, float] = {}
    for row in rows:
        w = weights[row.asn]
        if row.outcome != "not_measured":  # claims nothing: not in the integrity shares
            outcomes[row.outcome] += w
        per_probe[row.probe].append(row)
        probe_weight[row.probe] = w
        for transport, soa in row.soa.items():
            cell: Labels = (row.letter, row.family, transport)
            sent[cell] += w
            if soa.answered:
                answered[cell] += w
                if soa.rtt_seconds is not None:
                    rtts[cell].append((soa.rtt_seconds, w))
        if row.answered:
            site, where = sites.site(row.letter, row.identities)
            if site:
                site_names[row.letter].add(site)
            outcome = "unknown" if where is None else "in_country" if where == country else "abroad"
            located[(row.letter, outcome)] += w
            located_total[row.letter] += w

    reach = out["publiccore_root_reachable_ratio"]
    rtt_out = out["publiccore_root_rtt_seconds"]
    for key, n in sent.items():
        reach[(country, *key)] = answered[key] / n
        if rtts[key]:
            for q, value in zip(QUANTILES, weighted_quantiles(rtts[key], QUANTILES), strict=True):
                rtt_out[(country, *key, _qtext(q))] = value

    letters = sorted({k[0] for k in sent})
    letters_ok = 0
    for letter in letters:
        keys = [k for k in sent if k[0] == letter]
        availability = sum(answered[k] for k in keys) / sum(sent[k] for k in keys)
        out["publiccore_root_availability_ratio"][(country, letter)] = availability
        letters_ok += availability >= AVAILABILITY_THRESHOLD
        for transport in TRANSPORTS:
            pairs = [p for k in keys if k[2] == transport for p in rtts[k]]
            if pairs:
                out["publiccore_root_median_latency_seconds"][(country, letter, transport)] = (
                    weighted_quantile(pairs, 0.5)
                )
        out["publiccore_root_sites"][(country, letter)] = float(len(site_names[letter]))
        if located_total[letter] > 0:
            for outcome in SITE_OUTCOMES:
                out["publiccore_root_site_location_ratio"][(country, letter, outcome)] = (
                    located[(letter, outcome)] / located_total[letter]
                )
    out["publiccore_root_letters_available"][(country,)] = float(letters_ok)

    rounds_ok = rounds_all = 0.0
    for probe, prows in per_probe.items():
        for ok in _rounds_available(prows):
            rounds_all += probe_weight[probe]
            rounds_ok += probe_weight[probe] * ok
    if rounds_all:
        out["publiccore_root_system_available_ratio"][(country,)] = rounds_ok / rounds_all

    weight_total = sum(outcomes.values())
    for outcome in INTEGRITY_OUTCOMES:
        if weight_total and outcome != "not_measured":
            out["publiccore_root_integrity_ratio"][(country, outcome)] = (
                outcomes.get(outcome, 0.0) / weight_total
            )


def _qtext(q: float) -> str:
    return repr(q)
