"""Event impact (M-impact) over real stores: known steps are found, flat data is not notable."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from publiccore.collectors import impact
from publiccore.collectors import series as ser

from publiccore.config import AggregateSettings, ImpactSettings
from publiccore.store.sqlite import SqliteStore
from tests import impact_fixtures as fx

DAYS = 150
EVENT_DAY = 110
EVENT = fx.START + dt.timedelta(days=EVENT_DAY)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "store.sqlite")
    yield s
    s.close()


def _noise(seed: int, scale: float) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(0.0, scale) for _ in range(DAYS)]


def _series(store, country: str) -> ser.CountrySeries:
    return ser.country_series(
        store,
        country=country,
        since=fx.START,
        until=fx.START + dt.timedelta(days=DAYS),
        settings=AggregateSettings(),
    )


def test_step_at_known_date_is_found(store):
    noise = _noise(3, 400.0)
    fx.fill(
        store,
        fx.Plan(
            country="NL",
            days=DAYS,
            non_iana=lambda i: 0.05 if i < EVENT_DAY else 0.35,
            visible=lambda i: (52_000 if i < EVENT_DAY else 47_000) + noise[i],
        ),
    )
    series = _series(store, "NL")
    # the daily values are what the records say (independent count from the store)
    day = fx.START + dt.timedelta(days=5)
    recs = list(
        store.iter_records(since=fx.midnight(day), until=fx.midnight(day + ser.DAY), country="NL")
    )
    point = series["root_non_iana_share"].get(day)
    assert point is not None and point.sample.records == len(recs) == 26
    assert point.value == pytest.approx(
        sum(r.result.integrity.outcome != "iana" for r in recs) / len(recs)
    )
    assert point.sample.probes == 2 and point.sample.probe_asns == 2
    assert series["bgp_visible_slash24"].get(day).sample.full_feed_peers == 22

    result = impact.impact(
        series,
        country="NL",
        at=EVENT,
        settings=ImpactSettings(),
        metrics=["root_non_iana_share", "bgp_visible_slash24"],
    )
    share, visible = result.metrics
    assert share.status == "ok" and share.change > 0.2
    assert share.interval[0] > 0 and share.interval[1] > share.interval[0]
    assert share.placebo.percentile > 97.5 and share.notable is True
    assert share.n_before == 14 and share.n_after == 14
    assert share.sample_before["records"] == 14 * 26
    assert visible.change < -3000 and visible.interval[1] < 0
    assert visible.placebo.percentile < 2.5 and visible.notable is True
    assert visible.sample_after["full_feed_peers"] == 14 * 22
    # change points near the event are listed with it
    assert any(abs((d - EVENT).days) <= 3 for d in visible.change_points)
    assert any(abs((d - EVENT).days) <= 3 for d in share.change_points)
    # windows: 14 days either side of a 1-day guard band
    w = result.windows
    assert w.band == (EVENT - dt.timedelta(days=1), EVENT + dt.timedelta(days=1))
    assert w.before == (EVENT - dt.timedelta(days=15), EVENT - dt.timedelta(days=2))
    assert w.after == (EVENT + dt.timedelta(days=2), EVENT + dt.timedelta(days=15))
    # same input, same numbers (fixed seeds)
    again = impact.impact(
        series, country="NL", at=EVENT, settings=ImpactSettings(), metrics=["root_non_iana_share"]
    )
    assert again.metrics[0] == share


def test_flat_noisy_data_is_not_notable(store):
    noise = _noise(11, 400.0)
    fx.fill(
        store,
        fx.Plan(
            country="RU",
            days=DAYS,
            non_iana=lambda i: 0.1,
            visible=lambda i: 180_000 + noise[i],
        ),
        seed=4,
    )
    result = impact.impact(
        _series(store, "RU"),
        country="RU",
        at=EVENT,
        settings=ImpactSettings(),
        metrics=["root_non_iana_share", "bgp_visible_slash24", "root_availability"],
    )
    for m in result.metrics:
        assert m.status == "ok", m
        assert m.notable is False, m
        assert 2.5 <= m.placebo.percentile <= 97.5


def test_gap_ridden_series_is_insufficient_data(store):
    # records on one day in four only, and BGP observations with them: 3–4 valid days a side
    fx.fill(
        store,
        fx.Plan(
            country="DE",
            days=DAYS,
            non_iana=lambda i: 0.1,
            visible=lambda i: 30_000.0,
            skip_day=lambda i: i % 4 != 0,
        ),
    )
    series = _series(store, "DE")
    assert len(series["root_non_iana_share"].points) == DAYS // 4 + 1  # absent days: no zeros
    result = impact.impact(
        series,
        country="DE",
        at=EVENT,
        settings=ImpactSettings(),
        metrics=["root_non_iana_share", "bgp_visible_slash24", "path_border_effective_number"],
    )
    for m in result.metrics:
        assert m.status == impact.INSUFFICIENT and m.change is None and m.notable is None
        assert "insufficient data" in m.note


def test_thin_days_are_gaps_not_zeros(store):
    # two rounds on most days, none on some: a day under min_records is a gap, listed as such
    fx.fill(
        store,
        fx.Plan(country="NL", days=10, non_iana=lambda i: 0.0, visible=lambda i: 1.0),
    )
    series = ser.country_series(
        store,
        country="NL",
        since=fx.START,
        until=fx.START + dt.timedelta(days=10),
        settings=AggregateSettings(),
        thresholds=ser.SeriesThresholds(min_records=27),
    )
    s = series["root_non_iana_share"]
    assert s.points == () and len(s.gaps) == 10


def test_month_precision_widens_the_band():
    w = impact.windows(
        dt.date(2025, 3, 1), precision="month", before_days=14, after_days=14, guard_days=1
    )
    assert w.band == (dt.date(2025, 2, 28), dt.date(2025, 4, 1))
    assert w.before == (dt.date(2025, 2, 14), dt.date(2025, 2, 27))
    assert w.after == (dt.date(2025, 4, 2), dt.date(2025, 4, 15))


def _pure_series(values: np.ndarray) -> ser.CountrySeries:
    dim = ser.BY_NAME["root_non_iana_share"]
    points = tuple(
        ser.DayValue(fx.START + dt.timedelta(days=i), float(v), ser.DaySample(records=100))
        for i, v in enumerate(values)
    )
    return {dim.name: ser.DailySeries(country="XX", dimension=dim, points=points)}


def test_false_alarm_rate_near_five_percent():
    """On flat noise the event day is one more exchangeable date: about 5 % come out notable."""
    settings = ImpactSettings(resamples=200)
    seeds = 200
    notable = 0
    for seed in range(seeds):  # bounded: 200 series of 400 days
        values = np.random.default_rng(seed).normal(0.5, 0.05, 400)
        result = impact.impact(
            _pure_series(values),
            country="XX",
            at=fx.START + dt.timedelta(days=200),
            settings=settings,
            metrics=["root_non_iana_share"],
        )
        m = result.metrics[0]
        assert m.placebo.dates >= 150
        notable += bool(m.notable)
    # binomial(200, 0.05): mean 10, sd ≈ 3.1; a calibration failure gives far more or none
    assert 2 <= notable <= 22, notable


def test_placebo_is_vectorised_and_avoids_events():
    arr = np.arange(100, dtype=float)
    excluded = np.zeros(100, dtype=bool)
    excluded[40:60] = True
    out = impact.placebo_changes(
        arr, before=5, band=1, after=5, excluded=excluded, count=1000, min_days=5, seed=1
    )
    # eligible anchors: span [a-5, a+6) clear of 40..59 → a in 5..34 or 65..94
    assert out.size == 60 and np.all(out == 6.0)  # medians a+3 and a-3


def test_bootstrap_is_reproducible():
    values = np.arange(20, dtype=float)
    a = impact.block_bootstrap_medians(values, resamples=50, block=3, rng=np.random.default_rng(7))
    b = impact.block_bootstrap_medians(values, resamples=50, block=3, rng=np.random.default_rng(7))
    assert np.array_equal(a, b) and a.shape == (50,)
