"""GET /api/v1/impact (M-impact as JSON) and the daily profile gauges on the collector.

``mount(app, store, settings, registry=…)`` adds the route and a background task that
recomputes the fragmentation profile (M-profile) of the newest UTC day with data (yesterday,
else today so far) once an hour, in a thread; a custom collector registered in ``registry``
serves it as ``publiccore_profile_*`` (nothing is computed per scrape).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from publiccore.collectors import impact_query
from publiccore.collectors import profile as prof
from publiccore.collectors import series as ser
from publiccore.exporters.prometheus import profile_families

from publiccore import events as ev
from publiccore.clock import Clock, parse_when, utc_now
from publiccore.config import Settings
from publiccore.errors import PubliccoreError
from publiccore.store import Store

log = logging.getLogger(__name__)
PROFILE_INTERVAL_SECONDS = 3600.0
PROFILE_LOOKBACK_DAYS = 30  # the own-peak scaling looks this far back


class ImpactService:
    """Store, settings and events for the impact route; the latest daily profile."""

    def __init__(
        self, store: Store, settings: Settings, events: Sequence[ev.Event], clock: Clock
    ) -> None:
        self.store = store
        self.settings = settings
        self.events = tuple(events)
        self.clock = clock
        self.scores: dict[tuple[str, str], float] = {}
        self.composite: dict[str, float] = {}
        self.days: dict[str, float] = {}

    def refresh_profile(self) -> None:
        """Recompute every country's profile of its newest UTC day with data among yesterday
        and today so far (blocking)."""
        today = self.clock().astimezone(dt.UTC).date()
        by_country = ser.all_country_series(
            self.store,
            since=today - dt.timedelta(days=PROFILE_LOOKBACK_DAYS),
            until=today + ser.DAY,
            settings=self.settings.aggregate,
            thresholds=ser.thresholds_from(self.settings.impact),
        )
        scores: dict[tuple[str, str], float] = {}
        composite: dict[str, float] = {}
        days: dict[str, float] = {}
        for country, series in by_country.items():
            # a day counts when it has a score (just after midnight yesterday may hold a few
            # minutes of data and no dimension yet: then today so far)
            recent = [d for d in prof.profile(series) if d.day >= today - ser.DAY and d.scores]
            if not recent:
                continue
            newest = max(recent, key=lambda d: d.day)
            chosen = next((d for d in recent if d.day == today - ser.DAY), newest)
            for dim, value in chosen.scores.items():
                scores[(country, dim)] = value
            if chosen.composite is not None:
                composite[country] = chosen.composite
            days[country] = dt.datetime(
                chosen.day.year, chosen.day.month, chosen.day.day, tzinfo=dt.UTC
            ).timestamp()
        self.scores, self.composite, self.days = scores, composite, days


IMPACT_KEY = web.AppKey("publiccore_impact", ImpactService)


class ProfileCollector(Collector):
    """Serves the service's latest profile."""

    def __init__(self, service: ImpactService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        yield from profile_families(
            self._service.scores, self._service.composite, self._service.days
        )


async def impact_handler(request: web.Request) -> web.Response:
    """GET /api/v1/impact?country=XX&event=ID (or &date=D; &metric=NAME repeated)."""
    service = request.app[IMPACT_KEY]
    q = request.query
    try:
        day = parse_when(q["date"]).date() if q.get("date") else None
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"date: {exc}") from None
    query = impact_query.Query(
        country=q.get("country") or None,
        event_id=q.get("event") or None,
        date=day,
        metrics=tuple(q.getall("metric", [])),
    )
    try:
        results = await asyncio.to_thread(
            impact_query.run, service.store, service.settings, service.events, query
        )
    except PubliccoreError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"impacts": [r.to_json() for r in results]})


def mount(
    app: web.Application,
    store: Store,
    settings: Settings,
    *,
    registry: CollectorRegistry,
    events: Sequence[ev.Event] | None = None,
    clock: Clock = utc_now,
) -> ImpactService:
    """Add GET /api/v1/impact and the hourly profile refresh; register the profile gauges."""
    chosen = list(events) if events is not None else ev.load(settings.events.extra_files)
    service = ImpactService(store, settings, chosen, clock)
    app[IMPACT_KEY] = service
    app.router.add_get("/api/v1/impact", impact_handler)
    registry.register(ProfileCollector(service))

    async def refresh_forever() -> None:
        while True:
            try:
                await asyncio.to_thread(service.refresh_profile)
            except (PubliccoreError, sqlite3.Error, OSError) as exc:
                log.warning("profile refresh failed, keeping the previous one: %s", exc)
            await asyncio.sleep(PROFILE_INTERVAL_SECONDS)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(refresh_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifecycle)
    return service
