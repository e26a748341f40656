"""Event impact over a store: pick the events, read the daily series, compare (M-impact).

The one entry point shared by ``publiccore impact`` and ``GET /api/v1/impact``: it reads the
series through ``collectors.series`` and hands only the typed series to ``collectors.impact``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from publiccore.collectors import impact as imp
from publiccore.collectors import series as ser

from publiccore import events as ev
from publiccore.config import Settings
from publiccore.errors import InputError
from publiccore.store import Store


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """What to compare: a country and an event id or a date (or every event of the country)."""

    country: str | None = None
    event_id: str | None = None
    date: dt.date | None = None
    metrics: tuple[str, ...] = ()
    before_days: int | None = None
    after_days: int | None = None
    all_events: bool = False


def check_metrics(metrics: Sequence[str]) -> None:
    """Raise InputError for a metric name that is not a daily dimension."""
    for name in metrics:
        if name not in ser.BY_NAME:
            raise InputError(
                f"unknown metric {name!r} (one of: {', '.join(d.name for d in ser.DIMENSIONS)})"
            )


def run(
    store: Store,
    settings: Settings,
    events: Sequence[ev.Event],
    query: Query,
    *,
    timings: imp.Timings | None = None,
) -> list[imp.EventImpact]:
    """Every EventImpact the query asks for; raise InputError for an unknown event or metric."""
    check_metrics(query.metrics)
    s = dataclasses.replace(
        settings.impact,
        before_days=query.before_days or settings.impact.before_days,
        after_days=query.after_days or settings.impact.after_days,
    )
    country = query.country.upper() if query.country else None
    targets: list[tuple[str, ev.Event | None, dt.date]] = []
    if query.event_id:
        found = [e for e in events if e.id == query.event_id]
        if not found:
            raise InputError(f"no event {query.event_id!r} in the events dataset")
        named = found[0]
        where = country or named.country
        if where in ev.SPECIAL_COUNTRIES:
            raise InputError(f"event {named.id} is {where}-wide: give --country XX")
        targets.append((where, named, named.date))
    elif query.date:
        if not country:
            raise InputError("--date needs --country")
        targets.append((country, None, query.date))
    else:
        chosen = [
            e
            for e in events
            if e.country not in ev.SPECIAL_COUNTRIES and (country is None or e.country == country)
        ]
        if country is None and not query.all_events:
            raise InputError("give --country XX (with --event ID or --date D) or --all")
        targets += [(e.country, e, e.date) for e in chosen]
    out: list[imp.EventImpact] = []
    by_country: dict[str, list[tuple[ev.Event | None, dt.date]]] = {}
    for where, maybe, day in targets:
        by_country.setdefault(where, []).append((maybe, day))
    thresholds = ser.thresholds_from(settings.impact)
    for where, items in sorted(by_country.items()):
        series = ser.series_around(
            store,
            country=where,
            dates=[day for _, day in items],
            span_days=s.placebo_span_days,
            settings=settings.aggregate,
            thresholds=thresholds,
        )
        if not series and query.all_events:
            continue  # --all: only events with data
        breaks = imp.all_breaks(series, s, timings)
        dates = [e.date for e in events if e.country in (where, "INT")]
        dates += [day for maybe, day in items if maybe is None]
        away = tuple(imp.unexplained(breaks, dates, window_days=s.change_point_window_days))
        for event, day in items:
            if event is not None:
                result = imp.event_impact(
                    series,
                    event,
                    settings=s,
                    metrics=query.metrics or None,
                    events=events,
                    breaks=breaks,
                    timings=timings,
                )
                out.append(dataclasses.replace(result, country=where, unexplained=away))
            else:
                result = imp.impact(
                    series,
                    country=where,
                    at=day,
                    settings=s,
                    metrics=query.metrics or None,
                    events=events,
                    breaks=breaks,
                    timings=timings,
                )
                out.append(dataclasses.replace(result, unexplained=away))
    if query.all_events:
        out = [r for r in out if r.has_data]
    return out
