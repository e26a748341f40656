"""Windowed per-country aggregates that the exporters and reports read.

``Aggregator.refresh`` reads the store (root-dns records of the last root window, the newest BGP
and path observations, the probe registry) and returns a ``Snapshot``: every exported series by
metric name (see ``METRICS``) plus the newest data times behind the freshness gauges. The
computation itself is pure (``compute_root``, ``latest_observations``), so history
(``exporters.openmetrics``) and tests run exactly the same code over chosen windows.

Bias control (definition M-sampling in docs/methodology.md): within a country, each
probe ASN's records are **down-weighted** so that no ASN carries more than ``max_asn_share`` of
the country's total weight (water-filling: capped ASNs get exactly the cap, the others share the
rest in proportion to their record counts). With fewer than 1 / ``max_asn_share`` ASNs the cap
cannot be met and every ASN gets an equal share. Every ratio and quantile below is weighted;
sample sizes are raw counts and ``publiccore_aggregate_top_asn_share`` shows the unweighted share
of the largest ASN, so thin or lopsided data stays visible.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime as dt
import itertools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from publiccore.clock import Clock, utc_now
from publiccore.config import AggregateSettings
from publiccore.records import KINDS
from publiccore.sites import SiteTable, load_sites
from publiccore.store import Observation, Store

if TYPE_CHECKING:
    from publiccore.collectors.derive.state import LiveWindow

log = logging.getLogger(__name__)

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
AVAILABILITY_THRESHOLD = 0.96  # RSSAC047 per letter
RSS_K, RSS_N = 8, 13  # RSSAC047 k-of-n system view
ROUND_GAP_SECONDS = 120.0  # records of one probe further apart than this belong to another round
ACTIVE_SECONDS = 3600.0  # a probe is active when it sent a record this recently
BGP_DUMP_TOLERANCE_SECONDS = 3600.0  # series this much older than a metric's newest are stale
OBSERVATION_LOOKBACKS: tuple[float | None, ...] = (6 * 3600.0, 2 * 86400.0, 30 * 86400.0, None)
SITE_OUTCOMES: tuple[str, ...] = ("in_country", "abroad", "unknown")
TRANSPORTS: tuple[str, ...] = ("udp", "tcp")


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported gauge: its help text, unit, label names and methodology definition id."""

    name: str
    help: str
    unit: str
    labels: tuple[str, ...]
    definition: str


def _spec(name: str, help_: str, unit: str, labels: str, definition: str) -> MetricSpec:
    return MetricSpec(name, help_, unit, tuple(labels.split()) if labels else (), definition)


# Every gauge computed from stored data, in exposition order. The live-only ones (freshness,
# ingest counters, events) are defined in exporters.prometheus.
METRICS: tuple[MetricSpec, ...] = (
    _spec(
        "publiccore_root_reachable_ratio",
        "Share of . SOA queries answered (NOERROR within the timeout) over the root window",
        "ratio",
        "country letter family transport",
        "M-root-reachability",
    ),
    _spec(
        "publiccore_root_rtt_seconds",
        "Quantiles of the RTT of answered . SOA queries over the root window",
        "seconds",
        "country letter family transport quantile",
        "M-root-latency",
    ),
    _spec(
        "publiccore_root_availability_ratio",
        "RSSAC047 availability per letter (all families and transports; threshold 0.96)",
        "ratio",
        "country letter",
        "M-root-reachability",
    ),
    _spec(
        "publiccore_root_median_latency_seconds",
        "RSSAC047 median latency per letter and transport (thresholds UDP 0.25 s, TCP 0.5 s)",
        "seconds",
        "country letter transport",
        "M-root-latency",
    ),
    _spec(
        "publiccore_root_publication_latency_seconds",
        "RSSAC047 publication latency of the newest SOA serial: time from its first sighting "
        "on any letter to its first sighting on this letter from this country (still "
        "growing while the letter serves an older serial; threshold 3900 s)",
        "seconds",
        "country letter",
        "M-root-publication",
    ),
    _spec(
        "publiccore_root_publication_latency_median_seconds",
        "RSSAC047 section 5.4 publication latency per letter: median over the serial changes of "
        "the publication period and every vantage point of the delay from a serial's first "
        "sighting to its sighting by the vantage point, in 5-minute intervals (threshold 3900 s)",
        "seconds",
        "letter",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_publication_latency_measurements",
        "Measurements (serial changes x vantage points) behind the per-letter publication "
        "latency median",
        "measurements",
        "letter",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_rss_publication_latency_seconds",
        "RSSAC047 section 6.4 RSS publication latency: median of every letter's measurements "
        "over the publication period (threshold 2100 s)",
        "seconds",
        "",
        "M-root-publication-median",
    ),
    _spec(
        "publiccore_root_letters_available",
        "Letters whose availability meets the RSSAC047 threshold (0.96)",
        "letters",
        "country",
        "M-root-rss",
    ),
    _spec(
        "publiccore_root_system_available_ratio",
        "Share of probe rounds in which at least k = 8 of n = 13 letters answered",
        "ratio",
        "country",
        "M-root-rss",
    ),
    _spec(
        "publiccore_root_rss_availability_ratio",
        "RSSAC047 section 6.1 RSS availability: sum over probe rounds of min(k, letters that "
        "answered) / sum of k, k = 8, per family and transport (threshold 0.99999)",
        "ratio",
        "country family transport",
        "M-root-rss-availability",
    ),
    _spec(
        "publiccore_root_rss_latency_seconds",
        "RSSAC047 section 6.2 RSS response latency: median of the k = 8 lowest letter latencies "
        "of every probe round, per family and transport (thresholds UDP 0.15 s, TCP 0.3 s)",
        "seconds",
        "country family transport",
        "M-root-rss-latency",
    ),
    _spec(
        "publiccore_root_correctness_ratio",
        "RSSAC047 section 5.3 correctness: correct / judged answers (matching a root zone of "
        "the 48 h before and validating with DNSSEC) over the root window (threshold 1)",
        "ratio",
        "country letter",
        "M-root-correctness",
    ),
    _spec(
        "publiccore_root_correctness_judged",
        "Answers judged for RSSAC047 correctness over the root window (the ratio's sample size)",
        "answers",
        "country letter",
        "M-root-correctness",
    ),
    _spec(
        "publiccore_root_integrity_ratio",
        "Share of root-dns records by root integrity outcome",
        "ratio",
        "country outcome",
        "M-root-integrity",
    ),
    _spec(
        "publiccore_root_sites",
        "Distinct anycast sites that answered from this country (by the location code the "
        "site table reads, else by the identity string)",
        "sites",
        "country letter",
        "M-root-site",
    ),
    _spec(
        "publiccore_root_site_location_ratio",
        "Share of answered records by the answering site's location: in_country, abroad, "
        "unknown (identity missing or not in the site table)",
        "ratio",
        "country letter outcome",
        "M-root-site",
    ),
    _spec(
        "publiccore_aggregate_records",
        "Records in the window behind this country's aggregates",
        "records",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_probes",
        "Distinct probes in the window behind this country's aggregates",
        "probes",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_probe_asns",
        "Distinct probe ASNs in the window behind this country's aggregates",
        "ASNs",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_top_asn_share",
        "Unweighted share of the country's records from its largest probe ASN (before "
        "down-weighting to max_asn_share)",
        "ratio",
        "country kind",
        "M-sampling",
    ),
    _spec(
        "publiccore_aggregate_sources",
        "1 for each record source the root figures rest on ([aggregate] sources: volunteer, "
        "ripe-atlas); figures never mix sources that are not listed",
        "",
        "source",
        "M-sampling",
    ),
    _spec(
        "publiccore_probes_active",
        "Probes of this country that sent a record in the last hour (registered probes "
        "count as 0 when silent)",
        "probes",
        "country",
        "M-sampling",
    ),
    _spec(
        "publiccore_bgp_country_visible_slash24",
        "Routed IPv4 address space of the country seen by > 50% of full-feed peers",
        "/24 equivalents",
        "country",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_visibility_ratio",
        "Visible share of the country's routed address space (visible / routed)",
        "ratio",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_routed_units",
        "Routed address space of the country (/24 for IPv4, /48 for IPv6)",
        "/24 or /48 equivalents",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_unseen_prefixes",
        "Prefixes of the country seen by no full-feed peer",
        "prefixes",
        "country family",
        "M-bgp-country-visibility",
    ),
    _spec(
        "publiccore_bgp_country_upstreams",
        "Foreign ASes adjacent to the country's ASes on observed AS paths",
        "ASes",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_upstream_effective_number",
        "Effective number of international upstreams (1 / sum of squared shares)",
        "ASes",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_top_upstream_share",
        "Share of the country's address space carried by its largest upstream",
        "ratio",
        "country family",
        "M-bgp-upstreams",
    ),
    _spec(
        "publiccore_bgp_country_dependency_ratio",
        "AS hegemony over the country's routed space (IHR; top 5 ASes per country and family)",
        "ratio",
        "country family asn",
        "M-bgp-hegemony",
    ),
    _spec(
        "publiccore_bgp_country_dependent_ases",
        "ASes with a hegemony above 0.1 over the country's routed space",
        "ASes",
        "country family",
        "M-bgp-hegemony",
    ),
    _spec(
        "publiccore_bgp_prefix_visibility_ratio",
        "Share of full-feed peers carrying a route to the prefix",
        "ratio",
        "prefix_set prefix letter family",
        "M-bgp-prefix-visibility",
    ),
    _spec(
        "publiccore_bgp_root_prefix_unexpected_origin",
        "1 when a root-server prefix is originated by an AS not in the expected table",
        "boolean",
        "prefix_set prefix letter family",
        "M-bgp-root-prefixes",
    ),
    _spec(
        "publiccore_path_border_crossings_distinct",
        "Distinct border crossings (exit AS, entry AS, entry country) on the country's "
        "traceroutes over the paths window",
        "crossings",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_border_crossings_effective_number",
        "Effective number of border crossings (1 / sum of squared shares)",
        "crossings",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_traces",
        "Traceroutes behind the country's border-crossing figures (sample size)",
        "traceroutes",
        "country",
        "M-path-border-crossings",
    ),
    _spec(
        "publiccore_path_traces_left_unmapped",
        "Traceroutes that crossed no border but left the probe's country through address space "
        "no delegated file maps (their own outcome, not 'never crossed')",
        "traceroutes",
        "country",
        "M-path-border-crossings",
    ),
)
SPECS: dict[str, MetricSpec] = {m.name: m for m in METRICS}

# Observations (stored by collectors/bgp and collectors/paths) → exported metric.
OBSERVED_METRICS: dict[str, str] = {
    "bgp_country_visible_slash24": "publiccore_bgp_country_visible_slash24",
    "bgp_country_visibility_ratio": "publiccore_bgp_country_visibility_ratio",
    "bgp_country_routed_units": "publiccore_bgp_country_routed_units",
    "bgp_country_unseen_prefixes": "publiccore_bgp_country_unseen_prefixes",
    "bgp_country_upstreams": "publiccore_bgp_country_upstreams",
    "bgp_country_upstream_effective_number": "publiccore_bgp_country_upstream_effective_number",
    "bgp_country_top_upstream_share": "publiccore_bgp_country_top_upstream_share",
    "bgp_country_dependency_ratio": "publiccore_bgp_country_dependency_ratio",
    "bgp_country_dependent_ases": "publiccore_bgp_country_dependent_ases",
    "bgp_prefix_visibility_ratio": "publiccore_bgp_prefix_visibility_ratio",
    "bgp_root_prefix_unexpected_origin": "publiccore_bgp_root_prefix_unexpected_origin",
    "path_border_crossings_distinct": "publiccore_path_border_crossings_distinct",
    "path_border_crossings_effective_number": "publiccore_path_border_crossings_effective_number",
    "path_traces": "publiccore_path_traces",
    "path_traces_left_unmapped": "publiccore_path_traces_left_unmapped",
}

Labels = tuple[str, ...]
Series = dict[str, dict[Labels, float]]


# --- publication-latency sightings ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Sighting:
    """A serial seen on a letter from a country at ``time`` (POSIX seconds)."""

    time: float
    country: str
    letter: str
    serial: int


# --- weighting and quantiles --------------------------------------------------------------------


def asn_weights(counts: Mapping[int | None, int], max_share: float) -> dict[int | None, float]:
    """Per-record weight for each ASN so that no ASN exceeds ``max_share`` of the total weight.

    Weights are scaled so the total weight equals the total record count. With fewer than
    1 / ``max_share`` ASNs every ASN gets an equal share of the total.
    """
    common, special = asn_weight_split(counts, max_share)
    return {asn: special.get(asn, common) for asn in counts}


def asn_weight_split(
    counts: Mapping[int | None, int], max_share: float
) -> tuple[float, dict[int | None, float]]:
    """``asn_weights`` as (the weight every uncapped ASN shares, {ASN: weight} of the others).

    Water-filling gives every uncapped ASN the same per-record weight, so a weighted sum is
    that weight times the plain sum plus corrections for the few capped ASNs: what lets the
    derive stage merge buckets without a probe-ASN dimension. With fewer than 1 / ``max_share``
    ASNs every ASN is "special" (equal shares, common weight 0).
    """
    total = sum(counts.values())
    if not counts or total == 0:
        return 0.0, {}
    n = len(counts)
    if max_share >= 1.0:
        return 1.0, {}
    if n * max_share < 1.0:
        return 0.0, {asn: (total / n) / c for asn, c in counts.items()}
    capped: set[int | None] = set()
    while True:
        free = 1.0 - len(capped) * max_share
        rest = sum(c for asn, c in counts.items() if asn not in capped)
        if rest == 0:
            break
        over = {
            asn
            for asn, c in counts.items()
            if asn not in capped and free * c / rest > max_share + 1e-12
        }
        if not over:
            break
        capped |= over
    special = {asn: max_share * total / counts[asn] for asn in capped}
    if rest == 0:  # every ASN capped (n = 1 / max_share): equal shares
        return 0.0, special
    return free * total / rest, special


def weighted_quantiles(pairs: Sequence[tuple[float, float]], qs: Sequence[float]) -> list[float]:
    """For each q, the smallest value whose cumulative weight reaches q of the total.

    ``pairs`` are (value, weight). With equal weights this is the "inverted CDF" quantile: the
    median of 4 values is the 2nd. One sort for all quantiles.
    """
    ordered = sorted(pairs)
    cumulative = list(itertools.accumulate(w for _, w in ordered))
    return [ordered[at][0] for at in quantile_positions(cumulative, qs)]


def quantile_positions(cumulative: Sequence[float], qs: Sequence[float]) -> list[int]:
    """The quantile rule over ascending values' running weight sums: for each q, the position
    of the first value whose cumulative weight reaches q of the total (the last if none)."""
    total = cumulative[-1]
    last = len(cumulative) - 1
    return [min(bisect.bisect_left(cumulative, q * total - 1e-9 * total), last) for q in qs]


def weighted_quantile(pairs: Sequence[tuple[float, float]], q: float) -> float:
    """``weighted_quantiles`` for one q."""
    return weighted_quantiles(pairs, (q,))[0]


# --- publication latency -------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PublicationTracker:
    """First sightings of SOA serials, kept across refreshes (RSSAC047 publication latency).

    Feed it rows in any order (``update`` keeps minima, so overlapping windows are harmless);
    ``latency`` reports, for the newest serial, per country × letter, the time from its first
    sighting on any letter anywhere to its first sighting on that letter from that country.
    Nothing is reported until a change of serial has been seen (an older serial first seen
    before the newest one), since only then is the publication moment known.
    """

    first_any: dict[int, float] = dataclasses.field(default_factory=dict)
    first_seen: dict[tuple[str, str, int], float] = dataclasses.field(default_factory=dict)
    last_answer: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    keep_serials: int = 8

    def update(self, rows: Iterable[Sighting]) -> None:
        """Record the serials the sightings saw."""
        for row in rows:
            serial = row.serial
            if serial is None:
                continue
            if row.time < self.first_any.get(serial, math.inf):
                self.first_any[serial] = row.time
            key = (row.country, row.letter, serial)
            if row.time < self.first_seen.get(key, math.inf):
                self.first_seen[key] = row.time
            pair = (row.country, row.letter)
            if row.time > self.last_answer.get(pair, -math.inf):
                self.last_answer[pair] = row.time
        if len(self.first_any) > self.keep_serials:
            keep = set(sorted(self.first_any)[-self.keep_serials :])
            self.first_any = {s: t for s, t in self.first_any.items() if s in keep}
            self.first_seen = {k: t for k, t in self.first_seen.items() if k[2] in keep}

    def latency(self, now: float) -> dict[Labels, float]:
        """(country, letter) → seconds for the newest serial (see class doc)."""
        if not self.first_any:
            return {}
        newest = max(self.first_any)
        published = self.first_any[newest]
        if not any(t < published for s, t in self.first_any.items() if s != newest):
            return {}  # no change of serial seen yet: the publication moment is unknown
        out: dict[Labels, float] = {}
        for (country, letter), last in self.last_answer.items():
            seen = self.first_seen.get((country, letter, newest))
            if seen is not None:
                out[(country, letter)] = max(0.0, seen - published)
            elif last >= published:  # answering, but still with an older serial
                out[(country, letter)] = max(0.0, now - published)
        return out


# --- observations (BGP, paths) ------------------------------------------------------------------


def observation_labels(metric: str, obs: Observation) -> Labels | None:
    """Label values of an observation in the order of its exported metric; None if unusable."""
    spec = SPECS[OBSERVED_METRICS[metric]]
    values = []
    for name in spec.labels:
        if name == obs.subject_kind:
            values.append(obs.subject)
        else:
            values.append(str(obs.labels.get(name, "")))
    if obs.subject_kind not in spec.labels:
        return None
    return tuple(values)


def latest_observations(
    observations: Iterable[Observation], *, until: float | None = None
) -> tuple[Series, float | None]:
    """Newest value per series among observations at or before ``until``.

    Per metric, series older than the metric's newest time by more than
    BGP_DUMP_TOLERANCE_SECONDS are dropped (a country absent from the newest dump is not
    reported from an old one). Returns the series by exported name and the newest time of a
    BGP observation (the newest dump).
    """
    latest: dict[str, dict[Labels, tuple[float, float]]] = collections.defaultdict(dict)
    newest_time: float | None = None
    for obs in observations:
        if obs.metric not in OBSERVED_METRICS:
            continue
        when = obs.time.timestamp()
        if until is not None and when > until:
            continue
        labels = observation_labels(obs.metric, obs)
        if labels is None:
            continue
        series = latest[obs.metric]
        if labels not in series or series[labels][0] <= when:
            series[labels] = (when, float(obs.value))
        if obs.metric.startswith("bgp_"):
            newest_time = when if newest_time is None else max(newest_time, when)
    out: Series = {}
    for metric, series in latest.items():
        newest = max(t for t, _ in series.values())
        out[OBSERVED_METRICS[metric]] = {
            labels: value
            for labels, (t, value) in series.items()
            if t >= newest - BGP_DUMP_TOLERANCE_SECONDS
        }
    return out, newest_time


# --- the snapshot -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the live exporter shows, computed at ``computed_at``."""

    computed_at: dt.datetime
    series: Series
    newest_record: Mapping[str, dt.datetime]  # kind → newest record start time
    newest_bgp_dump: dt.datetime | None
    duration_seconds: float = 0.0

    @classmethod
    def empty(cls, when: dt.datetime) -> Snapshot:
        """A snapshot with no data (before the first refresh)."""
        return cls(computed_at=when, series={}, newest_record={}, newest_bgp_dump=None)

    def dumps(self) -> str:
        """The snapshot as JSON (what the deriver stores for every HTTP worker to serve)."""
        return json.dumps(
            {
                "computed_at": self.computed_at.timestamp(),
                "series": {
                    name: [[list(labels), value] for labels, value in sorted(values.items())]
                    for name, values in self.series.items()
                },
                "newest_record": {k: v.timestamp() for k, v in self.newest_record.items()},
                "newest_bgp_dump": (
                    None if self.newest_bgp_dump is None else self.newest_bgp_dump.timestamp()
                ),
                "duration_seconds": self.duration_seconds,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Snapshot:
        """The snapshot ``dumps`` wrote."""
        obj = json.loads(text)
        dump = obj["newest_bgp_dump"]
        return cls(
            computed_at=_from_ts(obj["computed_at"]),
            series={
                name: {tuple(labels): float(value) for labels, value in values}
                for name, values in obj["series"].items()
            },
            newest_record={k: _from_ts(v) for k, v in obj["newest_record"].items()},
            newest_bgp_dump=None if dump is None else _from_ts(dump),
            duration_seconds=float(obj["duration_seconds"]),
        )


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def newest_record_time(store: Store, kind: str, now: dt.datetime) -> dt.datetime | None:
    """Start time of the newest record of ``kind`` (to the second), by counting, not reading.

    Uses only ``count_records`` (indexed): widening look-backs, then bisection. A store method
    returning the maximum directly would be cheaper.
    """
    upper = now + dt.timedelta(days=1)  # tolerate probe clocks slightly ahead
    lower = None
    for days in (1 / 24, 1, 30, 365, 3650):
        since = now - dt.timedelta(days=days)
        if store.count_records(kind=kind, since=since, until=upper):
            lower = since
            break
    if lower is None:
        return None
    lo, hi = lower.timestamp(), upper.timestamp()  # invariant: a record in [lo, hi)
    for _ in range(64):
        if hi - lo <= 1.0:
            break
        mid = (lo + hi) / 2
        if store.count_records(kind=kind, since=_from_ts(mid), until=upper):
            lo = mid
        else:
            hi = mid
    return _from_ts(lo)


def read_observations(store: Store, now: dt.datetime) -> list[Observation]:
    """The observations of every known metric, from the shortest look-back that has any."""
    found: list[Observation] = []
    for metric in OBSERVED_METRICS:
        for lookback in OBSERVATION_LOOKBACKS:
            since = None if lookback is None else now - dt.timedelta(seconds=lookback)
            batch = list(store.iter_observations(metric=metric, since=since))
            if batch:
                found.extend(batch)
                break
    return found


def source_series(settings: AggregateSettings) -> dict[tuple[str, ...], float]:
    """``publiccore_aggregate_sources``: the sources the root figures rest on."""
    return {(source,): 1.0 for source in sorted(settings.sources)}


class Aggregator:
    """Computes snapshots from a store; keeps publication-latency state between refreshes.

    ``refresh`` does blocking store work: run it in a thread (``asyncio.to_thread``).
    """

    def __init__(
        self,
        store: Store,
        settings: AggregateSettings | None = None,
        *,
        sites: SiteTable | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings or AggregateSettings()
        self.sites = sites or load_sites(self.settings.sites or None)
        self.clock = clock
        self.tracker = PublicationTracker()
        self._live: LiveWindow | None = None  # the live window's running sums
        from publiccore.collectors.derive import publication

        self.publication = publication.Live(self.settings.publication_period_seconds)
        # True (the exporter's deriver): refresh keeps the slow figures it has (publication
        # latency over its period) and ``background`` renews them after a snapshot is out
        self.defer_slow = False

    def background(self, now: dt.datetime | None = None) -> int:
        """The deriver's bounded work after it published a snapshot, shown by the next
        refresh: RSSAC047 correctness (judge the live window's records without a verdict,
        ``derive.correctness.judge_pending``) and the publication-latency figures when due.
        Return how many records were judged."""
        from publiccore.collectors.derive import correctness as derive_correctness
        from publiccore.collectors.derive import root as derive_root

        when = (now or self.clock()).timestamp()
        since, until = derive_root.window_bounds(when, self.settings.root_window_seconds)
        judged = derive_correctness.judge_window(self.store, since=since, until=until)
        self.publication.series(self.store, now=when)
        return judged

    def refresh(self, now: dt.datetime | None = None) -> Snapshot:
        """Compute a fresh snapshot as of ``now`` (default: the clock), from merged buckets;
        only the buckets that changed since the last refresh are read."""
        from publiccore.collectors.derive import root as derive_root
        from publiccore.collectors.derive import state as derive_state

        started = self.clock()
        now = now or started
        if self._live is None:
            self._live = derive_state.LiveWindow(self.store, sources=self.settings.sources)
        series = derive_root.live(
            self._live,
            now=now.timestamp(),
            seconds=self.settings.root_window_seconds,
            max_asn_share=self.settings.max_asn_share,
        )
        series["publiccore_root_publication_latency_seconds"] = derive_root.publication_latency(
            self.store, now=now.timestamp()
        )
        series["publiccore_aggregate_sources"] = source_series(self.settings)
        series.update(
            self.publication.series(self.store, now=now.timestamp(), keep=self.defer_slow)
        )
        from publiccore.collectors.derive import correctness as derive_correctness

        since, until = derive_root.window_bounds(now.timestamp(), self.settings.root_window_seconds)
        series.update(derive_correctness.series(self.store, since=since, until=until, judge=False))
        registered = {
            p.id: p.country
            for p in self.store.list_probes()
            if p.revoked is None or p.revoked > now
        }
        series["publiccore_probes_active"] = derive_root.probes_active(
            self.store, now=now.timestamp(), registered=registered
        )
        observations, newest_obs = latest_observations(
            read_observations(self.store, now), until=now.timestamp()
        )
        series.update(observations)
        newest: dict[str, dt.datetime] = {}
        for kind in KINDS:
            # probe clocks slightly ahead are tolerated, as in newest_record_time
            when = self.store.newest_started(kind, until=now + dt.timedelta(days=1))
            if when is not None:
                newest[kind] = when
        return Snapshot(
            computed_at=now,
            series=series,
            newest_record=newest,
            newest_bgp_dump=None if newest_obs is None else _from_ts(newest_obs),
            duration_seconds=(self.clock() - started).total_seconds(),
        )
