"""The profile gauges (M-profile) the collector serves: values match the stored records."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, generate_latest
from publiccore.exporters import impact_api

from publiccore.config import Settings
from publiccore.store.sqlite import SqliteStore
from tests import impact_fixtures as fx


def test_profile_gauges_of_yesterday(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite")
    try:
        fx.fill(
            store,
            fx.Plan(country="NL", days=10, non_iana=lambda i: 0.3, visible=lambda i: 1000.0 + i),
        )
        today = fx.START + dt.timedelta(days=10)
        service = impact_api.ImpactService(
            store, Settings(), [], clock=lambda: fx.midnight(today) + dt.timedelta(hours=3)
        )
        service.refresh_profile()
        yesterday = today - dt.timedelta(days=1)
        recs = list(
            store.iter_records(since=fx.midnight(yesterday), until=fx.midnight(today), country="NL")
        )
    finally:
        store.close()
    share = sum(r.result.integrity.outcome != "iana" for r in recs) / len(recs)
    assert service.scores[("NL", "root_non_iana_share")] == share  # identity scale
    # the newest visible /24 count is the peak of the 30-day window: a drop of 0
    assert service.scores[("NL", "bgp_visible_slash24")] == 0.0
    assert service.days["NL"] == fx.midnight(yesterday).timestamp()
    registry = CollectorRegistry()
    registry.register(impact_api.ProfileCollector(service))
    text = generate_latest(registry).decode()
    assert f'publiccore_profile_score{{country="NL",dimension="root_non_iana_share"}} {share}' in (
        text
    )
    assert 'publiccore_profile_composite_score{country="NL"}' in text
    assert "publiccore_profile_day_timestamp_seconds" in text
