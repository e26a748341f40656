"""Event impact (definition M-impact): what changed around a date, how sure, how unusual.

For an event (or any date) and a daily series (``collectors.series``):

- **window comparison**: median of the valid days in the N days before the guard band vs the N
  days after it; the difference, the relative change, a 95 % interval by moving-block bootstrap
  over days (numpy, fixed seed) and the sample sizes on both sides; fewer than ``min_days``
  valid days on a side → "insufficient data";
- **placebo calibration**: the same statistic at up to K dates of the same series away from
  every event (fixed seed), computed in one vectorised pass; the change is *notable* only when
  it lies outside the central 95 % of those placebo changes (empirical percentile and p-value);
- **change points**: PELT (``ruptures.KernelCPD``, linear kernel = L2 cost) over the whole
  series with the penalty
  ``change_point_penalty × σ² × ln n`` (σ from the median absolute first difference); change
  points within ±D days of an event are listed with it, the others as unexplained changes.

Wording: a change is *associated with* / *changed around* an event, never caused by it.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import ruptures
from publiccore.collectors.series import CountrySeries, DailySeries, sample_totals

from publiccore import events as ev
from publiccore.config import ImpactSettings

INSUFFICIENT = "insufficient data"
MIN_PLACEBOS = 20  # fewer usable placebo dates: the change is not calibrated (notable unknown)


@dataclasses.dataclass(slots=True)
class Timings:
    """Seconds spent per phase (filled when passed in; for the benchmark)."""

    bootstrap: float = 0.0
    placebo: float = 0.0
    change_points: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Windows:
    """The days compared around ``at`` (all bounds inclusive)."""

    at: dt.date
    precision: str
    band: tuple[dt.date, dt.date]  # excluded: the guard band (the whole month for month dates)
    before: tuple[dt.date, dt.date]
    after: tuple[dt.date, dt.date]

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.at.isoformat(),
            "date_precision": self.precision,
            "excluded": [d.isoformat() for d in self.band],
            "before": [d.isoformat() for d in self.before],
            "after": [d.isoformat() for d in self.after],
        }


def windows(
    at: dt.date, *, precision: str = "day", before_days: int, after_days: int, guard_days: int
) -> Windows:
    """The before/after windows of M-impact around ``at``.

    The guard band is ``at`` ± ``guard_days``; with ``precision`` "month" it is the whole month
    of ``at`` ± ``guard_days``. The before window is the ``before_days`` days ending the day
    before the band, the after window the ``after_days`` days starting the day after it.
    """
    guard = dt.timedelta(days=guard_days)
    if precision == "month":
        last = calendar.monthrange(at.year, at.month)[1]
        start, end = at.replace(day=1) - guard, at.replace(day=last) + guard
    else:
        start, end = at - guard, at + guard
    one = dt.timedelta(days=1)
    return Windows(
        at=at,
        precision=precision,
        band=(start, end),
        before=(start - dt.timedelta(days=before_days), start - one),
        after=(end + one, end + dt.timedelta(days=after_days)),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Placebo:
    """Where the change falls among the changes at placebo dates."""

    dates: int  # usable placebo dates
    low: float | None  # 2.5th percentile of the placebo changes
    high: float | None  # 97.5th percentile
    percentile: float | None  # of the event's change among them (mid-rank, 0–100)
    p_value: float | None  # two-sided empirical p-value, (1 + count) / (1 + dates)


@dataclasses.dataclass(frozen=True, slots=True)
class MetricImpact:
    """M-impact for one dimension around one date."""

    metric: str
    definition: str
    unit: str
    status: str  # "ok" or INSUFFICIENT
    note: str
    n_before: int
    n_after: int
    sample_before: Mapping[str, Any]
    sample_after: Mapping[str, Any]
    before: float | None = None
    after: float | None = None
    change: float | None = None
    relative_change: float | None = None
    interval: tuple[float, float] | None = None
    placebo: Placebo | None = None
    notable: bool | None = None
    change_points: tuple[dt.date, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        out["change_points"] = [d.isoformat() for d in self.change_points]
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class EventImpact:
    """M-impact of every requested dimension around one event or date of one country."""

    country: str
    event_id: str | None
    title: str
    windows: Windows
    metrics: tuple[MetricImpact, ...]
    seed: int
    settings: Mapping[str, Any]
    # change points of the country's series read farther than D days from every event date
    unexplained: tuple[tuple[str, dt.date], ...] = ()

    @property
    def has_data(self) -> bool:
        return any(m.status == "ok" for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "event": self.event_id,
            "title": self.title,
            "windows": self.windows.to_json(),
            "definition": "M-impact",
            "seed": self.seed,
            "settings": dict(self.settings),
            "metrics": [m.to_json() for m in self.metrics],
            "unexplained_change_points": [
                {"metric": name, "date": day.isoformat()} for name, day in self.unexplained
            ],
            "wording": "changes are associated with the date, not attributed to it",
        }


# --- dense arrays -------------------------------------------------------------------------------


def _dense(series: DailySeries) -> tuple[int, np.ndarray]:
    """(ordinal of the first day, values per day with NaN for gaps and missing days)."""
    if not series.points:
        return 0, np.empty(0)
    first = series.points[0].day.toordinal()
    last = series.points[-1].day.toordinal()
    arr = np.full(last - first + 1, np.nan)
    idx = np.fromiter((p.day.toordinal() - first for p in series.points), dtype=np.int64)
    arr[idx] = np.fromiter((p.value for p in series.points), dtype=float)
    return first, arr


def _window_values(first: int, arr: np.ndarray, start: dt.date, end: dt.date) -> np.ndarray:
    lo, hi = start.toordinal() - first, end.toordinal() - first + 1
    lo, hi = max(lo, 0), min(hi, arr.size)
    if hi <= lo:
        return np.empty(0)
    chunk = arr[lo:hi]
    return chunk[~np.isnan(chunk)]


# --- bootstrap ----------------------------------------------------------------------------------


def block_bootstrap_medians(
    values: np.ndarray, *, resamples: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of ``resamples`` moving-block bootstrap resamples of ``values`` (day order).

    Each resample joins ceil(n / L) blocks of L consecutive values (L = min(block, n)) with
    uniformly drawn starts and is cut to n values. One vectorised draw, no Python loop.
    """
    n = values.size
    length = max(1, min(block, n))
    blocks = math.ceil(n / length)
    starts = rng.integers(0, n - length + 1, size=(resamples, blocks))
    idx = (starts[:, :, None] + np.arange(length)).reshape(resamples, -1)[:, :n]
    return np.median(values[idx], axis=1)


def interval_of_change(
    before: np.ndarray,
    after: np.ndarray,
    *,
    resamples: int,
    block: int,
    seed: int,
) -> tuple[float, float]:
    """95 % percentile interval of median(after) − median(before) by block bootstrap."""
    rng = np.random.default_rng(seed)
    b = block_bootstrap_medians(before, resamples=resamples, block=block, rng=rng)
    a = block_bootstrap_medians(after, resamples=resamples, block=block, rng=rng)
    low, high = np.percentile(a - b, [2.5, 97.5])
    return float(low), float(high)


# --- placebo ------------------------------------------------------------------------------------


def placebo_changes(
    arr: np.ndarray,
    *,
    before: int,
    band: int,
    after: int,
    excluded: np.ndarray,
    count: int,
    min_days: int,
    seed: int,
) -> np.ndarray:
    """The M-impact statistic at up to ``count`` placebo anchors, vectorised.

    ``arr`` is the dense daily series (NaN = gap); an anchor a places the before window at
    [a − before, a), the band at [a, a + band) and the after window at [a + band, a + band +
    after). Anchors whose whole span touches an ``excluded`` day (a boolean array: days inside
    any event's span) are not eligible; ``count`` of the eligible ones are drawn without
    replacement (fixed ``seed``). Anchors with fewer than ``min_days`` valid days on a side are
    dropped. Returns the placebo changes (median after − median before).
    """
    span = before + band + after
    n = arr.size
    if n < span:
        return np.empty(0)
    bad = np.concatenate(([0], np.cumsum(excluded.astype(np.int64))))
    anchors = np.arange(before, n - band - after + 1)
    touched = bad[anchors + band + after] - bad[anchors - before]
    eligible = anchors[touched == 0]
    if eligible.size == 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=min(count, eligible.size), replace=False)
    chosen.sort()
    b = arr[chosen[:, None] + np.arange(-before, 0)]
    a = arr[chosen[:, None] + band + np.arange(after)]
    ok = (np.count_nonzero(~np.isnan(b), axis=1) >= min_days) & (
        np.count_nonzero(~np.isnan(a), axis=1) >= min_days
    )
    if not ok.any():
        return np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(a[ok], axis=1) - np.nanmedian(b[ok], axis=1)


def placebo_position(change: float, placebos: np.ndarray) -> Placebo:
    """Where ``change`` falls among ``placebos``: central 95 %, mid-rank percentile, p-value."""
    k = placebos.size
    if k < MIN_PLACEBOS:
        return Placebo(dates=k, low=None, high=None, percentile=None, p_value=None)
    low, high = np.percentile(placebos, [2.5, 97.5])
    below = np.count_nonzero(placebos < change)
    equal = np.count_nonzero(placebos == change)
    upper = (1 + np.count_nonzero(placebos >= change)) / (1 + k)
    lower = (1 + np.count_nonzero(placebos <= change)) / (1 + k)
    return Placebo(
        dates=k,
        low=float(low),
        high=float(high),
        percentile=float(100.0 * (below + 0.5 * equal) / k),
        p_value=float(min(1.0, 2 * min(upper, lower))),
    )


# --- change points ------------------------------------------------------------------------------


def change_points(series: DailySeries, *, penalty: float, min_days: int) -> tuple[dt.date, ...]:
    """PELT change points (L2 cost) over the valid days: the first day of each new segment.

    Penalty = ``penalty`` × σ² × ln n, σ = median |first difference| / (0.6745 √2) (a robust
    noise scale, or a tenth of the standard deviation when that is 0); a constant series
    gets no change point.
    """
    values = np.asarray(series.values, dtype=float)
    n = values.size
    if n < 2 * min_days + 1:
        return ()
    if float(np.ptp(values)) <= 1e-9 * max(1.0, float(np.max(np.abs(values)))):
        return ()  # constant: nothing changes
    sigma = float(np.median(np.abs(np.diff(values)))) / (0.6745 * math.sqrt(2))
    if sigma == 0.0:  # mostly flat with a few moves: scale by the spread instead
        sigma = float(np.std(values)) / 10
    # KernelCPD with the linear kernel is PELT with the L2 cost, in C (ruptures.Pelt is Python)
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_days).fit(values.reshape(-1, 1))
    ends = algo.predict(pen=penalty * sigma**2 * math.log(n))
    days = series.days
    return tuple(days[int(i)] for i in ends if int(i) < n)


# --- the whole comparison -----------------------------------------------------------------------


def excluded_days(first: int, size: int, spans: Iterable[tuple[dt.date, dt.date]]) -> np.ndarray:
    """Boolean mask over ``size`` days from ordinal ``first``: True inside any span."""
    mask = np.zeros(size, dtype=bool)
    for start, end in spans:
        lo = max(0, start.toordinal() - first)
        hi = min(size, end.toordinal() - first + 1)
        if hi > lo:
            mask[lo:hi] = True
    return mask


def _settings_json(s: ImpactSettings) -> dict[str, Any]:
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}


def compare(
    series: DailySeries,
    win: Windows,
    *,
    settings: ImpactSettings,
    event_spans: Sequence[tuple[dt.date, dt.date]] = (),
    breaks: Sequence[dt.date] | None = None,
    timings: Timings | None = None,
) -> MetricImpact:
    """M-impact of one series around ``win``.

    ``event_spans`` are the (first, last) days of every event's windows in this country; no
    placebo date's windows touch them (nor this comparison's own span). ``breaks`` are the
    series' change points (computed when None).
    """
    s = settings
    dim = series.dimension
    first, arr = _dense(series)
    before = _window_values(first, arr, *win.before)
    after = _window_values(first, arr, *win.after)
    in_before = [p for p in series.points if win.before[0] <= p.day <= win.before[1]]
    in_after = [p for p in series.points if win.after[0] <= p.day <= win.after[1]]
    base = {
        "metric": dim.name,
        "definition": dim.definition,
        "unit": dim.unit,
        "n_before": int(before.size),
        "n_after": int(after.size),
        "sample_before": sample_totals(in_before),
        "sample_after": sample_totals(in_after),
    }
    if before.size < s.min_days or after.size < s.min_days:
        return MetricImpact(
            status=INSUFFICIENT,
            note=(
                f"{INSUFFICIENT}: {before.size} valid days before and {after.size} after "
                f"(need {s.min_days} on each side)"
            ),
            **base,
        )
    med_b, med_a = float(np.median(before)), float(np.median(after))
    change = med_a - med_b
    started = time.perf_counter()
    interval = interval_of_change(
        before, after, resamples=s.resamples, block=s.block_days, seed=s.seed
    )
    if timings is not None:
        timings.bootstrap += time.perf_counter() - started
        started = time.perf_counter()
    spans = [*event_spans, (win.before[0], win.after[1])]
    placebos = placebo_changes(
        arr,
        before=s.before_days,
        band=(win.band[1] - win.band[0]).days + 1,
        after=s.after_days,
        excluded=excluded_days(first, arr.size, spans),
        count=s.placebo_count,
        min_days=s.min_days,
        seed=s.seed,
    )
    position = placebo_position(change, placebos)
    if timings is not None:
        timings.placebo += time.perf_counter() - started
        started = time.perf_counter()
    if breaks is None:
        breaks = change_points(
            series, penalty=s.change_point_penalty, min_days=s.change_point_min_days
        )
        if timings is not None:
            timings.change_points += time.perf_counter() - started
    near = dt.timedelta(days=s.change_point_window_days)
    notable = None
    if position.low is not None and position.high is not None:
        notable = change < position.low or change > position.high
    note = "changed around the date" if notable else "within the usual variation"
    if notable is None:
        note = f"not calibrated: {position.dates} usable placebo dates (need {MIN_PLACEBOS})"
    return MetricImpact(
        status="ok",
        note=note,
        before=med_b,
        after=med_a,
        change=change,
        relative_change=change / abs(med_b) if med_b != 0 else None,
        interval=interval,
        placebo=position,
        notable=notable,
        change_points=tuple(d for d in breaks if win.band[0] - near <= d <= win.band[1] + near),
        **base,
    )


def event_spans(
    events: Iterable[ev.Event], country: str, settings: ImpactSettings
) -> list[tuple[dt.date, dt.date]]:
    """(first, last) day of the windows of every event of ``country`` (and INT/EU ones)."""
    out = []
    for e in events:
        if e.country in (country, "INT") or (e.country == "EU" and country in _EU):
            w = windows(
                e.date,
                precision=e.date_precision,
                before_days=settings.before_days,
                after_days=settings.after_days,
                guard_days=settings.guard_days,
            )
            end = max(w.after[1], e.end_date or w.after[1])
            out.append((w.before[0], end))
    return out


_EU = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)


def impact(
    series: CountrySeries,
    *,
    country: str,
    at: dt.date,
    settings: ImpactSettings,
    precision: str = "day",
    event_id: str | None = None,
    title: str = "",
    metrics: Sequence[str] | None = None,
    events: Sequence[ev.Event] = (),
    breaks: Mapping[str, Sequence[dt.date]] | None = None,
    timings: Timings | None = None,
) -> EventImpact:
    """M-impact of every dimension of ``series`` (or ``metrics``) around ``at``.

    ``events`` (the dataset) keep placebo dates away from every event of the country.
    """
    win = windows(
        at,
        precision=precision,
        before_days=settings.before_days,
        after_days=settings.after_days,
        guard_days=settings.guard_days,
    )
    spans = event_spans(events, country, settings)
    names = list(metrics) if metrics else list(series)
    results = []
    for name in names:
        s = series.get(name)
        if s is None or not s.points:
            results.append(
                MetricImpact(
                    metric=name,
                    definition=s.dimension.definition if s else "",
                    unit=s.dimension.unit if s else "",
                    status=INSUFFICIENT,
                    note=f"{INSUFFICIENT}: no valid days in the series",
                    n_before=0,
                    n_after=0,
                    sample_before={},
                    sample_after={},
                )
            )
            continue
        results.append(
            compare(
                s,
                win,
                settings=settings,
                event_spans=spans,
                breaks=None if breaks is None else breaks.get(name, ()),
                timings=timings,
            )
        )
    return EventImpact(
        country=country,
        event_id=event_id,
        title=title,
        windows=win,
        metrics=tuple(results),
        seed=settings.seed,
        settings=_settings_json(settings),
    )


def event_impact(
    series: CountrySeries,
    event: ev.Event,
    *,
    settings: ImpactSettings,
    metrics: Sequence[str] | None = None,
    events: Sequence[ev.Event] = (),
    breaks: Mapping[str, Sequence[dt.date]] | None = None,
    timings: Timings | None = None,
) -> EventImpact:
    """``impact`` around a dataset event (its date precision widens the guard band)."""
    return impact(
        series,
        country=series_country(series) or event.country,
        at=event.date,
        precision=event.date_precision,
        event_id=event.id,
        title=event.title,
        settings=settings,
        metrics=metrics,
        events=events,
        breaks=breaks,
        timings=timings,
    )


def series_country(series: CountrySeries) -> str | None:
    """The country of a CountrySeries (None when empty)."""
    return next((s.country for s in series.values()), None)


def all_breaks(
    series: CountrySeries, settings: ImpactSettings, timings: Timings | None = None
) -> dict[str, tuple[dt.date, ...]]:
    """Change points of every series of a country (computed once, shared by its events)."""
    started = time.perf_counter()
    out = {
        name: change_points(
            s, penalty=settings.change_point_penalty, min_days=settings.change_point_min_days
        )
        for name, s in series.items()
    }
    if timings is not None:
        timings.change_points += time.perf_counter() - started
    return out


def unexplained(
    breaks: Mapping[str, Sequence[dt.date]],
    dates: Sequence[dt.date],
    *,
    window_days: int,
) -> list[tuple[str, dt.date]]:
    """(dimension, day) of the change points farther than ``window_days`` from every date."""
    near = dt.timedelta(days=window_days)
    return [
        (name, day)
        for name, days in sorted(breaks.items())
        for day in days
        if not any(abs(day - a) <= near for a in dates)
    ]


def impact_all(
    by_country: Mapping[str, CountrySeries],
    events: Sequence[ev.Event],
    *,
    settings: ImpactSettings,
    metrics: Sequence[str] | None = None,
    timings: Timings | None = None,
) -> list[EventImpact]:
    """M-impact of every event whose country has series (INT/EU events are skipped)."""
    out = []
    for country, series in sorted(by_country.items()):
        chosen = [e for e in events if e.country == country]
        if not chosen or not series:
            continue
        breaks = all_breaks(series, settings, timings)
        for event in chosen:
            out.append(
                event_impact(
                    series,
                    event,
                    settings=settings,
                    metrics=metrics,
                    events=events,
                    breaks=breaks,
                    timings=timings,
                )
            )
    return out
