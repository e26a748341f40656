"""The Prometheus exporter: GET /metrics over the latest aggregates, GET /api/v1/events.

``mount(app, store, settings)`` adds both routes and a background task (``cleanup_ctx``) that
recomputes the aggregates every ``[serve] aggregate_interval_seconds`` in a thread. Nothing is
computed per scrape:

- the aggregate families (``SnapshotCollector``, one fresh ``GaugeMetricFamily`` per metric built
  from the snapshot) are rendered to the text format once per refresh, right after the snapshot
  is computed, in the same background thread — with 250 countries that is ~70 000 samples, too
  many to render within a scrape budget of 100 ms;
- each scrape appends the small live part, rendered from the registry passed in: freshness ages,
  the regulatory events and the ingest counters (``LiveCollector``, fresh families per scrape).

Metric names, labels, units and definitions: docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from publiccore.collectors.aggregate import Aggregator
from publiccore.exporters.catalogue import METRICS, Exposition

from publiccore import events as ev
from publiccore.clock import Clock, parse_when, utc_now
from publiccore.config import Settings
from publiccore.errors import PubliccoreError
from publiccore.records import KINDS
from publiccore.store import Store

log = logging.getLogger(__name__)

# The classic text format, which generate_latest writes for these (legacy-valid) names.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# records accepted by kind, records rejected by reason
IngestCounts = Callable[[], tuple[Mapping[str, float], Mapping[str, float]]]


class _IngestStats(Protocol):
    @property
    def accepted_by_kind(self) -> Mapping[str, int]: ...

    @property
    def rejected_by_reason(self) -> Mapping[str, int]: ...


def ingest_counts_from(stats: _IngestStats) -> IngestCounts:
    """Adapt the ingest service's counters (``collectors.ingest.IngestStats``) for ``mount``."""
    return lambda: (
        {k: float(v) for k, v in stats.accepted_by_kind.items()},
        {k: float(v) for k, v in stats.rejected_by_reason.items()},
    )


LIVE_HELP: dict[str, str] = {
    "publiccore_newest_record_age_seconds": (
        "Seconds since the start of the newest stored record of this kind"
    ),
    "publiccore_bgp_newest_dump_age_seconds": "Seconds since the newest stored BGP observation",
    "publiccore_aggregate_age_seconds": "Seconds since the aggregates were computed",
    "publiccore_aggregate_duration_seconds": "Seconds the last aggregate refresh took",
    "publiccore_aggregate_errors": (
        "Aggregate refreshes that failed (the previous snapshot is kept and its age grows)"
    ),
    "publiccore_regulatory_event_timestamp_seconds": (
        "Date of a regulatory event (00:00 UTC) as a Unix time"
    ),
    "publiccore_regulatory_event_end_timestamp_seconds": (
        "End date of a regulatory event (00:00 UTC) as a Unix time, where sourced"
    ),
    "publiccore_ingest_records": "Records accepted by the ingest service, by kind",
    "publiccore_ingest_rejected_records": "Records rejected by the ingest service, by reason",
}


def snapshot_families(snapshot: Exposition, *, timestamp: float | None = None) -> list[Metric]:
    """One fresh gauge family per aggregate metric, from ``snapshot`` (samples sorted)."""
    out: list[Metric] = []
    for spec in METRICS:
        family = GaugeMetricFamily(
            spec.name, f"{spec.help} ({spec.unit}; {spec.definition})", labels=list(spec.labels)
        )
        for labels, value in sorted(snapshot.series.get(spec.name, {}).items()):
            family.add_metric(list(labels), value, timestamp)
        out.append(family)
    return out


def event_families(events: Sequence[ev.Event], *, timestamp: float | None = None) -> list[Metric]:
    """The regulatory events as two gauges (start and, where sourced, end date)."""
    labels = ["country", "event", "kind"]
    start = GaugeMetricFamily(
        "publiccore_regulatory_event_timestamp_seconds",
        LIVE_HELP["publiccore_regulatory_event_timestamp_seconds"],
        labels=labels,
    )
    end = GaugeMetricFamily(
        "publiccore_regulatory_event_end_timestamp_seconds",
        LIVE_HELP["publiccore_regulatory_event_end_timestamp_seconds"],
        labels=labels,
    )
    for event in events:
        values = [event.country, event.id, event.kind]
        start.add_metric(values, event.timestamp, timestamp)
        if event.end_timestamp is not None:
            end.add_metric(values, event.end_timestamp, timestamp)
    return [start, end]


class SnapshotCollector(Collector):
    """Custom collector over whatever snapshot ``current`` returns."""

    def __init__(self, current: Callable[[], Exposition]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_families(self._current())


class LiveCollector(Collector):
    """The per-scrape part: freshness ages, refresh age and duration, events, ingest counters."""

    def __init__(
        self,
        current: Callable[[], Exposition],
        *,
        events: Sequence[ev.Event] = (),
        ingest_counts: IngestCounts | None = None,
        clock: Clock = utc_now,
        errors: Callable[[], int] = lambda: 0,
    ) -> None:
        self._current = current
        self._events = tuple(events)
        self._ingest_counts = ingest_counts
        self._clock = clock
        self._errors = errors

    def collect(self) -> Iterator[Metric]:
        snapshot = self._current()
        now = self._clock()

        def age(when: dt.datetime) -> float:
            return max(0.0, (now - when).total_seconds())

        records = GaugeMetricFamily(
            "publiccore_newest_record_age_seconds",
            LIVE_HELP["publiccore_newest_record_age_seconds"],
            labels=["kind"],
        )
        for kind in KINDS:
            if kind in snapshot.newest_record:
                records.add_metric([kind], age(snapshot.newest_record[kind]))
        yield records
        dump = GaugeMetricFamily(
            "publiccore_bgp_newest_dump_age_seconds",
            LIVE_HELP["publiccore_bgp_newest_dump_age_seconds"],
        )
        if snapshot.newest_bgp_dump is not None:
            dump.add_metric([], age(snapshot.newest_bgp_dump))
        yield dump
        yield GaugeMetricFamily(
            "publiccore_aggregate_age_seconds",
            LIVE_HELP["publiccore_aggregate_age_seconds"],
            value=age(snapshot.computed_at),
        )
        yield GaugeMetricFamily(
            "publiccore_aggregate_duration_seconds",
            LIVE_HELP["publiccore_aggregate_duration_seconds"],
            value=snapshot.duration_seconds,
        )
        yield CounterMetricFamily(
            "publiccore_aggregate_errors",
            LIVE_HELP["publiccore_aggregate_errors"],
            value=self._errors(),
        )
        yield from event_families(self._events)
        if self._ingest_counts is not None:
            accepted, rejected = self._ingest_counts()
            family = CounterMetricFamily(
                "publiccore_ingest_records", LIVE_HELP["publiccore_ingest_records"], labels=["kind"]
            )
            for kind, value in sorted(accepted.items()):
                family.add_metric([kind], value)
            yield family
            family = CounterMetricFamily(
                "publiccore_ingest_rejected_records",
                LIVE_HELP["publiccore_ingest_rejected_records"],
                labels=["reason"],
            )
            for reason, value in sorted(rejected.items()):
                family.add_metric([reason], value)
            yield family


class BgpFollowCollector(Collector):
    """``bgp follow`` and ``bgp live`` from the store, per scrape (docs/metrics.md)."""

    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        from publiccore.collectors.bgp.follow_metrics import follow_metrics

        try:
            metrics = follow_metrics(self._store, now=self._clock().timestamp())
        except (PubliccoreError, sqlite3.Error) as exc:
            log.warning("bgp follow metrics unavailable: %s", exc)
            return
        labels = ["source", "collector"]
        lag = GaugeMetricFamily(
            "publiccore_bgp_follow_lag_seconds",
            "Now minus the start time of the newest archive file processed",
            labels=labels,
        )
        processed = CounterMetricFamily(
            "publiccore_bgp_follow_files_processed",
            "Archive files processed and stored",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "publiccore_bgp_follow_files_failed",
            "Failed attempts at archive files (download or processing)",
            labels=labels,
        )
        refused = CounterMetricFamily(
            "publiccore_bgp_follow_files_refused",
            "Archive files refused as inconsistent (older than their RIB, no RIB, …)",
            labels=labels,
        )
        missing = CounterMetricFamily(
            "publiccore_bgp_follow_missing_files",
            "Archive files not published past their slot and the grace period",
            labels=labels,
        )
        for c in metrics.collectors:
            key = [c.source, c.collector]
            if c.lag_seconds is not None:
                lag.add_metric(key, c.lag_seconds)
            processed.add_metric(key, c.processed)
            failed.add_metric(key, c.failed)
            refused.add_metric(key, c.refused)
            missing.add_metric(key, c.missing)
        yield from (lag, processed, failed, refused, missing)
        peers = GaugeMetricFamily(
            "publiccore_bgp_live_peers",
            "RIS Live peers with a route into the watched prefix",
            labels=["prefix"],
        )
        withdrawn = GaugeMetricFamily(
            "publiccore_bgp_live_prefix_withdrawn",
            "1 while enough RIS Live peers have withdrawn the watched prefix",
            labels=["prefix"],
        )
        for p in metrics.live:
            peers.add_metric([p.prefix], p.peers)
            withdrawn.add_metric([p.prefix], 1.0 if p.withdrawn else 0.0)
        yield peers
        yield withdrawn


@dataclasses.dataclass(frozen=True, slots=True)
class _Rendered:
    snapshot: Exposition
    text: bytes


SNAPSHOT_NAME = "aggregate"


class Exporter:
    """Holds the latest snapshot and its rendering; ``registry`` gets the live collector.

    One deriver per deployment: ``refresh`` computes a snapshot only while this exporter holds
    the store's ``aggregate`` lease (renewed at every refresh; another worker or collector takes
    it over once it lapses) and stores it; every exporter serves the newest stored snapshot, so
    ``/metrics`` is the same whichever worker answers.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        registry: CollectorRegistry,
        events: Sequence[ev.Event] = (),
        ingest_counts: IngestCounts | None = None,
        clock: Clock = utc_now,
        aggregator: Aggregator | None = None,
        lease_seconds: float = 120.0,
    ) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._shown_at = -math.inf  # computed_at of the newest snapshot published
        self.registry = registry
        self.events = tuple(events)
        self.aggregator = aggregator or Aggregator(store, settings.aggregate, clock=clock)
        self.aggregator.defer_slow = True  # slow figures are renewed after each publish
        self._render_registry = CollectorRegistry(auto_describe=False)
        self._render_registry.register(SnapshotCollector(lambda: self._pending))
        self._pending = Exposition.empty(clock())
        self._current = _Rendered(self._pending, generate_latest(self._render_registry))
        self._refresh_lock = threading.RLock()
        self.errors = 0  # failed refreshes (publiccore_aggregate_errors_total)
        registry.register(
            LiveCollector(
                lambda: self._current.snapshot,
                events=self.events,
                ingest_counts=ingest_counts,
                clock=clock,
                errors=lambda: self.errors,
            )
        )

    @property
    def snapshot(self) -> Exposition:
        """The snapshot the next scrape shows."""
        return self._current.snapshot

    def publish(self, snapshot: Exposition) -> None:
        """Render ``snapshot`` and make it the one scrapes show (blocking, thread-safe)."""
        with self._refresh_lock:
            self._pending = snapshot
            try:
                text = generate_latest(self._render_registry)
            finally:
                self._pending = self._current.snapshot
            self._current = _Rendered(snapshot, text)  # one reference swap: scrapes never wait
            self._shown_at = max(self._shown_at, snapshot.computed_at.timestamp())

    def refresh(self, now: dt.datetime | None = None) -> Exposition:
        """As the deriver (holding the lease): recompute the aggregates, store and publish
        their exposition; otherwise publish the newest stored one (blocking)."""
        with self._refresh_lock:
            when = (now or self.clock()).timestamp()
            if self.store.claim_lease(
                SNAPSHOT_NAME, owner=self.owner, now=when, seconds=self.lease_seconds
            ):
                snapshot = Exposition.of(self.aggregator.refresh(now))
                self.store.put_snapshot(
                    SNAPSHOT_NAME,
                    computed_at=snapshot.computed_at.timestamp(),
                    body=snapshot.dumps(),
                )
                self.publish(snapshot)
                # bounded background work of the deriver, after the snapshot is out: the
                # correctness verdicts the next refresh shows
                self.aggregator.background(now)
                return snapshot
            self.follow()
            return self.snapshot

    def follow(self) -> None:
        """Publish the stored snapshot if it is newer than the one shown (blocking, cheap when
        it is not: one indexed look-up)."""
        stored_at = self.store.snapshot_time(SNAPSHOT_NAME)
        if stored_at is None or stored_at <= self._shown_at:
            return
        with self._refresh_lock:
            stored = self.store.get_snapshot(SNAPSHOT_NAME)
            if stored is not None and stored[0] > self._shown_at:
                self.publish(Exposition.loads(stored[1]))

    def render(self) -> bytes:
        """The /metrics body: the pre-rendered aggregates, then the live registry."""
        return self._current.text + generate_latest(self.registry)


EXPORTER_KEY = web.AppKey("publiccore_exporter", Exporter)


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics: the pre-rendered aggregates plus the live registry (text format 0.0.4)."""
    exporter = request.app[EXPORTER_KEY]
    try:
        await asyncio.to_thread(exporter.follow)  # the deriver may be another worker
    except (PubliccoreError, sqlite3.Error, OSError) as exc:
        log.warning("reading the stored snapshot failed, serving the previous one: %s", exc)
    return web.Response(body=exporter.render(), headers={"Content-Type": CONTENT_TYPE})


async def events_handler(request: web.Request) -> web.Response:
    """GET /api/v1/events[?country=XX&since=DATE&until=DATE]: ``{"events": [...]}``."""
    exporter = request.app[EXPORTER_KEY]
    country = request.query.get("country") or None
    since = request.query.get("since")
    until = request.query.get("until")
    try:
        chosen = ev.select(
            exporter.events,
            country=country,
            since=parse_when(since).date() if since else None,
            until=parse_when(until).date() if until else None,
        )
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"events": [e.to_json() for e in chosen]})


async def refresh_forever(exporter: Exporter, interval_seconds: float) -> None:
    """Refresh now, then every ``interval_seconds`` until cancelled; errors are logged."""
    while True:
        await _refresh_once(exporter)
        await asyncio.sleep(interval_seconds)


async def _refresh_once(exporter: Exporter) -> None:
    """One refresh; whatever it raises is logged and counted, and the last snapshot stays.

    Deliberately broad: one bad stored row (say, a string no encoder takes) must not end the
    refresh task, which would freeze /metrics for good without a word.
    """
    try:
        await asyncio.to_thread(exporter.refresh)
    except (PubliccoreError, sqlite3.Error, OSError) as exc:
        exporter.errors += 1
        log.warning("aggregate refresh failed, keeping the previous snapshot: %s", exc)
    except Exception as exc:  # see the docstring; CancelledError is not an Exception
        exporter.errors += 1
        log.error(
            "aggregate refresh failed (%s), keeping the previous snapshot: %s",
            type(exc).__name__,
            str(exc)[:200],
        )


def mount(
    app: web.Application,
    store: Store,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    ingest_counts: IngestCounts | None = None,
    events: Iterable[ev.Event] | None = None,
    clock: Clock = utc_now,
) -> Exporter:
    """Add GET /metrics, GET /api/v1/events and the aggregate refresh task to ``app``.

    ``registry`` (a new one by default, never the global one) receives the live collector; other
    collectors registered in it are served too. ``events`` defaults to the bundled dataset plus
    ``[events] extra_files``. The first refresh starts with the application, in the background
    (start-up, and so the ingest API, never waits for it; until it ends /metrics has only the
    live part). Returns the exporter (also at ``app[EXPORTER_KEY]``). Raises InputError for a
    bad events file.
    """
    chosen = list(events) if events is not None else ev.load(settings.events.extra_files)
    exporter = Exporter(
        store,
        settings,
        registry=registry or CollectorRegistry(),
        events=chosen,
        ingest_counts=ingest_counts,
        clock=clock,
        lease_seconds=max(60.0, 3 * settings.serve.aggregate_interval_seconds),
    )
    exporter.registry.register(BgpFollowCollector(store, clock=clock))
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/v1/events", events_handler)
    interval = settings.serve.aggregate_interval_seconds

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(refresh_forever(exporter, interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifecycle)
    return exporter


def profile_families(
    scores: Mapping[tuple[str, str], float],
    composite: Mapping[str, float],
    days: Mapping[str, float] | None = None,
    *,
    timestamp: float | None = None,
) -> list[Metric]:
    """The daily fragmentation profile (M-profile) as gauges, per country of its newest day.

    ``scores`` are (country, dimension) → 0–1 (1 = more fragmented); ``composite`` country →
    the equal-weight composite (a convenience; the dimensions are the product); ``days``
    country → the profiled UTC day (00:00) as a Unix time.
    """
    score = GaugeMetricFamily(
        "publiccore_profile_score",
        "Fragmentation profile score of one dimension, 0-1, 1 = more fragmented, of the newest "
        "UTC day with data: yesterday, else today so far (score; M-profile)",
        labels=["country", "dimension"],
    )
    for (country, dimension), value in sorted(scores.items()):
        score.add_metric([country, dimension], value, timestamp)
    total = GaugeMetricFamily(
        "publiccore_profile_composite_score",
        "Equal-weight mean of the profile scores a country has, a convenience only (score; "
        "M-profile)",
        labels=["country"],
    )
    for country, value in sorted(composite.items()):
        total.add_metric([country], value, timestamp)
    day = GaugeMetricFamily(
        "publiccore_profile_day_timestamp_seconds",
        "The UTC day (00:00) the country's profile describes, as a Unix time (M-profile)",
        labels=["country"],
    )
    for country, value in sorted((days or {}).items()):
        day.add_metric([country], value, timestamp)
    return [score, total, day]
