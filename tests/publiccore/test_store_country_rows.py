"""``Store.fact_rows`` of one country over a bucket range (sought along the bucket grid, or in
listed buckets) equal the rows of every country filtered to it, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib

from publiccore.store import Store, facts, open_store
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import make_rounds

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _check(store: Store) -> None:
    records = make_rounds(start=T0, rounds=6, seed=7)
    elsewhere = [
        dataclasses.replace(r, probe=dataclasses.replace(r.probe, country="DE"))
        for r in make_rounds(start=T0, rounds=6, seed=8)
    ]
    store.put_records(records + elsewhere)
    countries = {r.probe.country for r in records + elsewhere}
    assert len(countries) >= 2
    since = T0.timestamp() - 600
    # bounds on the grid, off it, cutting a bucket, empty
    ranges = [(since, since + 4000), (since + 7.5, since + 1530.2), (since + 61, since + 62)]
    compared = 0
    for table in facts.AGG_TABLES:
        if not table.startswith("agg_root_"):  # the buckets: (bucket, country, …)
            continue
        for low, high in ranges:
            every = store.fact_rows(table, since=low, until=high)
            for country in countries:
                mine = store.fact_rows(table, since=low, until=high, country=country)
                assert sorted(mine) == sorted(r for r in every if r[1] == country), table
                compared += len(mine)
                # sought in the country's buckets with records only (``derive.state.read_rows``)
                buckets = sorted(
                    {r[0] for r in store.fact_rows("agg_root_records", country=country)}
                )
                listed = store.fact_rows(
                    table, since=low, until=high, country=country, buckets=buckets
                )
                assert sorted(listed) == sorted(mine), table
                if table not in facts.PER_ASN_TABLES:  # keys that lead with the bucket
                    assert [r[0] for r in listed] == sorted(r[0] for r in listed), table
                some = buckets[::2]
                assert sorted(
                    store.fact_rows(table, since=low, until=high, country=country, buckets=some)
                ) == sorted(r for r in mine if r[0] in some)
        asns = sorted({r.probe.asn for r in records if r.probe.asn is not None})[:1]
        if table in facts.PER_ASN_TABLES and asns:
            every = store.fact_rows(table, since=since, until=since + 4000, asns=asns)
            mine = store.fact_rows(
                table, since=since, until=since + 4000, country=records[0].probe.country, asns=asns
            )
            assert sorted(mine) == sorted(r for r in every if r[1] == records[0].probe.country)
    assert compared > 100  # the comparison saw rows


def test_country_rows_sqlite(tmp_path: pathlib.Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        _check(store)


def test_country_rows_postgres(postgres_url: str) -> None:
    store = open_store(url=postgres_url)
    try:
        _check(store)
    finally:
        store.close()
