"""The live window's running sums, read a cell at a time and ahead in a thread, equal the sums
of the same buckets folded from scratch row by row."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import pathlib

import pytest
from publiccore.collectors.derive import root as derive_root
from publiccore.collectors.derive import state as derive_state

from publiccore import records as rec
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import make_rounds

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
SUMS = (
    "records",
    "probes",
    "sent",
    "answered",
    "rtt",
    "sites",
    "rounds_all",
    "rounds_ok",
    "rss_letters",
    "rss_rounds",
    "pool",
)


def _records() -> list[rec.Record]:
    """Rounds with round ids (some spanning two buckets) and schema 1 records."""
    out = []
    for r in make_rounds(start=T0, rounds=8, seed=21):
        if r.probe.id.endswith("-1"):
            out.append(dataclasses.replace(r, round=None))
            continue
        round_id = f"{r.probe.id}-{int(r.started.timestamp() - T0.timestamp()) // 300}"
        r = dataclasses.replace(r, round=round_id)
        if r.root_target is not None and r.root_target.letter in "abcd":
            later = r.started + dt.timedelta(seconds=50)
            r = dataclasses.replace(r, started=later, finished=later)
        out.append(r)
    return out


def _sums(window: derive_state.WindowState) -> dict[str, dict[str, object]]:
    return {
        country: {name: getattr(sums, name) for name in SUMS}
        for country, sums in sorted(window.countries.items())
    }


@pytest.mark.parametrize("read_ahead", [False, True])
def test_moved_sums_equal_sums_from_scratch(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, read_ahead: bool
) -> None:
    monkeypatch.setattr(derive_state, "READ_AHEAD", read_ahead)
    monkeypatch.setattr(derive_state, "RUN_BUCKETS", 2)  # several runs per first read
    records = _records()
    late = {r.id for r in records[::13]}  # these arrive eight minutes after their time
    with SqliteStore(tmp_path / "s.sqlite") as store:
        live = derive_state.LiveWindow(store)
        compared = 0
        for minute in range(0, 48, 4):
            now = T0.timestamp() + 60 * minute

            def arrival(r: rec.Record) -> float:
                return r.started.timestamp() + (480 if r.id in late else 0)

            store.put_records([r for r in records if now - 240 < arrival(r) <= now])
            since, until = derive_root.window_bounds(now, 900)
            moved = live.move(since, until)
            scratch = derive_state.WindowState()
            scratch.add(derive_state.read_rows(store, since=since, until=until))
            assert _sums(moved) == _sums(scratch), minute
            compared += bool(scratch.countries)
        assert compared >= 8
        assert any(s.rtt and s.pool for s in moved.countries.values())


def test_merged_parts_equal_their_rows_folded_from_scratch(tmp_path: pathlib.Path) -> None:
    records = _records()  # rounds that span two buckets, so two parts too; schema 1 records
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(records)
        start = T0.timestamp()
        bounds = [start + 120 * i for i in range(21)]  # two-minute parts over 40 minutes
        buckets = derive_root.RootBuckets.load(store, since=bounds[0], until=bounds[-1])
        partition = derive_root.Partition.read(store, bounds)

        def scratch(since: float, until: float) -> derive_state.WindowState:
            out = derive_state.WindowState()
            out.add(derive_state.read_rows(store, since=since, until=until))
            return out

        # a run after runs inside it (merged from them), the whole, then single parts again
        runs = [(0, 5), (5, 12), (0, 12), (3, 9), (12, 20), (0, 20), (4, 5), (0, 1)]
        spanning = 0
        for first, last in runs:
            since, until = bounds[first], bounds[last]
            merged, folded = partition.folded(since, until), scratch(since, until)
            assert _sums(merged) == _sums(folded), (first, last)
            for name, sums in folded.countries.items():
                assert merged.countries[name].contribution == sums.contribution
                assert sorted(merged.countries[name].legacy_rows()) == sorted(sums.legacy_rows())
                spanning += sum(  # rounds with parts in two parts of the partition
                    len({bisect.bisect(bounds, p[0]) for p in parts}) > 1
                    for parts in sums.rounds.values()
                )
            window = buckets.window(since, until)
            assert partition.compute(since, until, max_asn_share=0.25) == derive_root.compute(
                window, max_asn_share=0.25
            )
        assert spanning  # some merged run had a round with parts in two of its parts
        for i, part in enumerate(partition.parts):  # merging shared nothing with the parts
            assert _sums(part) == _sums(scratch(bounds[i], bounds[i + 1])), i
        with pytest.raises(ValueError, match="not a run"):
            partition.folded(bounds[3], bounds[3])
        with pytest.raises(ValueError):
            partition.folded(bounds[0] + 1, bounds[2])
