"""Daily series: root days from real records, pooled world days, observation days, gaps."""

from __future__ import annotations

import datetime as dt

import pytest
from publiccore.collectors import series as ser

from publiccore.config import AggregateSettings
from publiccore.store import Observation
from publiccore.store.sqlite import SqliteStore
from tests import impact_fixtures as fx


def test_root_daily_per_country_and_pooled(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        fx.fill(store, fx.Plan("NL", 3, non_iana=lambda i: 0.0, visible=lambda i: 1.0))
        fx.fill(store, fx.Plan("RU", 3, non_iana=lambda i: 1.0, visible=lambda i: 1.0, rounds=2))
        until = fx.START + dt.timedelta(days=3)
        kw = {"since": fx.START, "until": until, "settings": AggregateSettings()}
        nl = ser.root_daily(store, country="NL", **kw)
        ru = ser.root_daily(store, country="ru", **kw)
        world = ser.root_daily(store, country=None, **kw)
    finally:
        store.close()
    assert sorted(nl) == [fx.START + dt.timedelta(days=i) for i in range(3)]
    day = fx.START
    assert nl[day].records == 26 and ru[day].records == 52
    assert nl[day].non_iana_share == 0.0 and ru[day].non_iana_share == 1.0
    assert nl[day].availability_overall == 1.0 and set(nl[day].availability) == set(fx.LETTERS)
    # world: record-weighted mean of the countries, sample sizes summed
    assert world[day].records == 78 and world[day].probes == 4
    assert world[day].non_iana_share == pytest.approx(52 / 78)


def test_observation_days_median_slash48_and_path_gaps():
    t = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    obs = [
        Observation(t, "country", "NL", "bgp_country_visible_slash24", 100.0),
        Observation(t.replace(hour=9), "country", "NL", "bgp_country_visible_slash24", 300.0),
        Observation(t.replace(hour=10), "country", "NL", "bgp_country_visible_slash24", 200.0),
        Observation(t, "country", "NL", "bgp_country_routed_units", 1000.0, {"family": "ipv6"}),
        Observation(t, "country", "NL", "bgp_country_visibility_ratio", 0.5, {"family": "ipv6"}),
        Observation(t, "country", "NL", "path_border_crossings_effective_number", 3.0),
        Observation(t, "country", "NL", "path_traces", 4.0),
    ]
    days = ser.observation_daily(obs, full_feed={t.date(): 7})
    d = days["NL"][t.date()]
    assert d.values["bgp_visible_slash24"] == 200.0  # the median of the day
    assert d.values["bgp_visible_slash48"] == 500.0
    assert d.full_feed_peers == 7 and d.traces == 4
    series = ser.build_series("NL", root={}, observed=days["NL"])
    assert series["bgp_visible_slash24"].points[0].sample.full_feed_peers == 7
    # 4 traces < 10: the path day is a gap, not a value
    path = series["path_border_effective_number"]
    assert path.points == () and path.gaps == (t.date(),)
