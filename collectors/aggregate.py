"""Windowed per-country aggregates that the exporters and reports read.

``Aggregator.refresh`` reads the store (the merged buckets of the last root window, the newest BGP
and path observations, the probe registry) and returns a ``Snapshot``: the typed figures
(``derive.figures.Figures``) plus the newest data times behind the freshness gauges. Names, help
texts and labels of what is exported are the exporters' (``exporters.catalogue``). The
computation itself is pure (``derive.root.compute``, ``latest_observations``), so history
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
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from publiccore.collectors.derive import figures as fig

from publiccore.clock import Clock, utc_now
from publiccore.config import AggregateSettings
from publiccore.records import KINDS
from publiccore.sites import SiteTable, load_sites
from publiccore.store import Observation, Store

if TYPE_CHECKING:
    from publiccore.collectors.derive.state import LiveWindow

log = logging.getLogger(__name__)

QUANTILES: tuple[float, ...] = fig.QUANTILES
AVAILABILITY_THRESHOLD = 0.96  # RSSAC047 per letter
RSS_K, RSS_N = 8, 13  # RSSAC047 k-of-n system view
ROUND_GAP_SECONDS = 120.0  # records of one probe further apart than this belong to another round
ACTIVE_SECONDS = 3600.0  # a probe is active when it sent a record this recently
BGP_DUMP_TOLERANCE_SECONDS = 3600.0  # series this much older than a metric's newest are stale
OBSERVATION_LOOKBACKS: tuple[float | None, ...] = (6 * 3600.0, 2 * 86400.0, 30 * 86400.0, None)
SITE_OUTCOMES: tuple[str, ...] = ("in_country", "abroad", "unknown")
TRANSPORTS: tuple[str, ...] = ("udp", "tcp")


# Observations (stored by collectors/bgp and collectors/paths) read into the figures, with the
# kind of subject each is about; their exported names and labels: exporters.catalogue.
OBSERVATION_SUBJECTS: dict[str, str] = {
    "bgp_country_visible_slash24": "country",
    "bgp_country_visibility_ratio": "country",
    "bgp_country_routed_units": "country",
    "bgp_country_unseen_prefixes": "country",
    "bgp_country_upstreams": "country",
    "bgp_country_upstream_effective_number": "country",
    "bgp_country_top_upstream_share": "country",
    "bgp_country_dependency_ratio": "country",
    "bgp_country_dependent_ases": "country",
    "bgp_prefix_visibility_ratio": "prefix",
    "bgp_root_prefix_unexpected_origin": "prefix",
    "path_border_crossings_distinct": "country",
    "path_border_crossings_effective_number": "country",
    "path_traces": "country",
    "path_traces_left_unmapped": "country",
}

Labels = tuple[str, ...]


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

    def newest(self, now: float) -> tuple[fig.NewestSerialLatency, ...]:
        """``latency`` as typed figures, in (country, letter) order."""
        return tuple(
            fig.NewestSerialLatency(country, letter, seconds)
            for (country, letter), seconds in sorted(self.latency(now).items())
        )

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


def latest_observations(
    observations: Iterable[Observation], *, until: float | None = None
) -> tuple[tuple[Observation, ...], float | None]:
    """Newest observation per series (metric, subject, labels) at or before ``until``.

    Per metric, series older than the metric's newest time by more than
    BGP_DUMP_TOLERANCE_SECONDS are dropped (a country absent from the newest dump is not
    reported from an old one); observations of an unknown metric, or about another kind of
    subject than their metric's, are left out. Returns the observations in (metric, subject,
    labels) order and the newest time of a BGP observation (the newest dump).
    """
    latest: dict[str, dict[tuple[object, ...], tuple[float, Observation]]] = (
        collections.defaultdict(dict)
    )
    newest_time: float | None = None
    for obs in observations:
        if OBSERVATION_SUBJECTS.get(obs.metric) != obs.subject_kind:
            continue
        when = obs.time.timestamp()
        if until is not None and when > until:
            continue
        key = (obs.subject, tuple(sorted(obs.labels.items())))
        series = latest[obs.metric]
        if key not in series or series[key][0] <= when:
            series[key] = (when, obs)
        if obs.metric.startswith("bgp_"):
            newest_time = when if newest_time is None else max(newest_time, when)
    out: list[Observation] = []
    for metric in sorted(latest):
        series = latest[metric]
        newest = max(t for t, _ in series.values())
        out.extend(
            obs
            for _key, (t, obs) in sorted(series.items(), key=lambda item: item[0])
            if t >= newest - BGP_DUMP_TOLERANCE_SECONDS
        )
    return tuple(out), newest_time


# --- the snapshot -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the live exporter shows, computed at ``computed_at``."""

    computed_at: dt.datetime
    figures: fig.Figures
    newest_record: Mapping[str, dt.datetime]  # kind → newest record start time
    newest_bgp_dump: dt.datetime | None
    duration_seconds: float = 0.0

    @classmethod
    def empty(cls, when: dt.datetime) -> Snapshot:
        """A snapshot with no data (before the first refresh)."""
        return cls(computed_at=when, figures=fig.Figures(), newest_record={}, newest_bgp_dump=None)


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
    for metric in OBSERVATION_SUBJECTS:
        for lookback in OBSERVATION_LOOKBACKS:
            since = None if lookback is None else now - dt.timedelta(seconds=lookback)
            batch = list(store.iter_observations(metric=metric, since=since))
            if batch:
                found.extend(batch)
                break
    return found


def sources(settings: AggregateSettings) -> tuple[str, ...]:
    """The record sources the root figures rest on (``[aggregate] sources``), sorted."""
    return tuple(sorted(settings.sources))


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
        self.publication.figures(self.store, now=when)
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
        root = derive_root.live(
            self._live,
            now=now.timestamp(),
            seconds=self.settings.root_window_seconds,
            max_asn_share=self.settings.max_asn_share,
        )
        from publiccore.collectors.derive import correctness as derive_correctness

        since, until = derive_root.window_bounds(now.timestamp(), self.settings.root_window_seconds)
        registered = {
            p.id: p.country
            for p in self.store.list_probes()
            if p.revoked is None or p.revoked > now
        }
        observations, newest_obs = latest_observations(
            read_observations(self.store, now), until=now.timestamp()
        )
        figures = fig.Figures(
            root=root,
            newest_serial=derive_root.publication_latency(self.store, now=now.timestamp()),
            publication=self.publication.figures(
                self.store, now=now.timestamp(), keep=self.defer_slow
            ),
            correctness=derive_correctness.figures(
                self.store, since=since, until=until, judge=False
            ),
            probes_active=derive_root.probes_active(
                self.store, now=now.timestamp(), registered=registered
            ),
            sources=sources(self.settings),
            observations=observations,
        )
        newest: dict[str, dt.datetime] = {}
        for kind in KINDS:
            # probe clocks slightly ahead are tolerated, as in newest_record_time
            when = self.store.newest_started(kind, until=now + dt.timedelta(days=1))
            if when is not None:
                newest[kind] = when
        return Snapshot(
            computed_at=now,
            figures=figures,
            newest_record=newest,
            newest_bgp_dump=None if newest_obs is None else _from_ts(newest_obs),
            duration_seconds=(self.clock() - started).total_seconds(),
        )
