"""Figures rest on the sources ``[aggregate] sources`` lists, never on a silent mix."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib

import pytest
from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import root as derive_root
from publiccore.exporters import catalogue, openmetrics, report

from publiccore import records as rec
from publiccore.config import AggregateSettings
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import make_rounds

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
ATLAS = rec.RecordSource(name="ripe-atlas", measurement=10001, query="test")


def _stores(tmp_path: pathlib.Path) -> tuple[list[rec.Record], list[rec.Record]]:
    volunteer = make_rounds(start=T0, rounds=3)
    atlas = [
        dataclasses.replace(r, id=rec.uuid7(int(r.started.timestamp() * 1e9) + n), source=ATLAS)
        for n, r in enumerate(
            make_rounds(
                start=T0,
                rounds=3,
                seed=9,
                unreachable=lambda country, letter, family: letter in "abc",
            )
        )
    ]
    return volunteer, atlas


def _figures(path: pathlib.Path, records: list[rec.Record], until: float) -> catalogue.Series:
    with SqliteStore(path) as store:
        store.put_records(records)
        buckets = derive_root.RootBuckets.load(store, since=T0.timestamp(), until=until)
        return catalogue.root_series(
            derive_root.compute(buckets.window(T0.timestamp(), until), max_asn_share=0.25)
        )


@pytest.mark.parametrize("sources", [["volunteer"], ["ripe-atlas"], ["volunteer", "ripe-atlas"]])
def test_live_history_and_reports_rest_on_the_listed_sources(
    tmp_path: pathlib.Path, sources: list[str]
) -> None:
    volunteer, atlas = _stores(tmp_path)
    now = T0 + dt.timedelta(minutes=14)
    chosen = [r for r in volunteer + atlas if r.source_name in sources]
    alone = _figures(tmp_path / "alone.sqlite", chosen, now.timestamp())
    settings = AggregateSettings(root_window_seconds=900.0, sources=sources)
    with SqliteStore(tmp_path / "mixed.sqlite") as store:
        store.put_records(volunteer + atlas)
        live = catalogue.Exposition.of(agg.Aggregator(store, settings).refresh(now)).series
        for name, series in alone.items():
            if name == "publiccore_aggregate_sources":
                continue  # set by the aggregator, not by the derive stage
            assert live[name] == pytest.approx(series), name
        assert live["publiccore_aggregate_sources"] == {(s,): 1.0 for s in sources}
        # the history at the same instant gives the same figures
        families = openmetrics.history(
            store, settings, since=now, until=now + dt.timedelta(seconds=1), step_seconds=60
        )
        sample = {
            tuple(s.labels.values()): s.value
            for f in families
            for s in f.samples
            if f.name == "publiccore_aggregate_records"
        }
        assert sample == {
            (c, "root-dns"): v for (c, _k), v in alone["publiccore_aggregate_records"].items()
        }
        built = report.build(store, country="NL", since=T0, until=now, settings=settings)
        assert built.root["publiccore_aggregate_records"] == {
            k: v for k, v in alone["publiccore_aggregate_records"].items() if k[0] == "NL"
        }
        said = report.sources_note(settings)
        assert ("RIPE Atlas" in said) == ("ripe-atlas" in sources)
        assert ("volunteer" in said) == ("volunteer" in sources)
    # the Atlas probes miss a, b and c: each source its own figure, or a merge when listed
    a_root = alone["publiccore_root_availability_ratio"][("NL", "a")]
    if sources == ["ripe-atlas"]:
        assert a_root == 0.0
    elif sources == ["volunteer"]:
        assert a_root > 0.9
    else:
        assert 0.3 < a_root < 0.7
