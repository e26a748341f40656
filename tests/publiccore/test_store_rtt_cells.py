"""``Store.rtt_cells``: a cell's RTT bin rows folded by the database equal the rows themselves."""

from __future__ import annotations

import collections
import datetime as dt
import pathlib

import pytest

from publiccore.store import Store, open_store
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import make_rounds

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _bins_by_rows(store: Store, since: float, until: float) -> dict[tuple[object, ...], dict]:
    out: dict[tuple[object, ...], dict[int, int]] = collections.defaultdict(dict)
    for *cell, index, n in store.fact_rows("agg_root_rtt_all", since=since, until=until):
        out[tuple(cell)][int(index)] = int(n)
    return dict(out)


def _bins_by_cells(store: Store, since: float, until: float) -> dict[tuple[object, ...], dict]:
    out: dict[tuple[object, ...], dict[int, int]] = {}
    for *cell, bins, counts in store.rtt_cells(since=since, until=until):
        assert tuple(cell) not in out  # one row per bucket and cell
        assert len(bins) == len(counts) > 0
        out[tuple(cell)] = dict(zip(bins.tolist(), counts.tolist(), strict=True))
    return out


def _check(store: Store) -> None:
    records = make_rounds(start=T0, rounds=6, seed=5)
    store.put_records(records)
    since = T0.timestamp() - 600
    by_rows = _bins_by_rows(store, since, since + 4000)
    assert len(by_rows) > 10 and any(len(b) > 1 for b in by_rows.values())  # several bins
    assert _bins_by_cells(store, since, since + 4000) == by_rows
    # a range that cuts the buckets: the same cut either way
    cut = since + 1500
    assert _bins_by_cells(store, since, cut) == _bins_by_rows(store, since, cut)
    assert _bins_by_cells(store, cut, cut + 60) == _bins_by_rows(store, cut, cut + 60)
    assert store.rtt_cells(since=since - 7200, until=since - 3600) == []


def test_rtt_cells_equal_the_bin_rows_sqlite(tmp_path: pathlib.Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        _check(store)


def test_rtt_cells_equal_the_bin_rows_postgres(postgres_url: str) -> None:
    store = open_store(url=postgres_url)
    try:
        _check(store)
    finally:
        store.close()


def test_integer_lists_parse_alike_short_and_long() -> None:
    from publiccore.errors import StoreError
    from publiccore.store import sql

    for values in ([-5], [-300, -2, 0, 7, 12], list(range(-400, 400, 3))):
        text = ",".join(map(str, values))
        assert sql._int_list(text).tolist() == values
    assert len(",".join(map(str, range(-400, 400, 3)))) > sql._SHORT_LIST  # numpy's parser
    with pytest.raises(StoreError, match="unreadable"):
        sql._int_list("1,x")
