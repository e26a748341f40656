"""RSSAC047 publication latency (§5.4 per letter, §6.4 system) from the store, by hand."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
import sqlite3
import subprocess
import sys

from publiccore.collectors import aggregate as agg
from publiccore.collectors.derive import publication
from publiccore.exporters import catalogue

from publiccore import records as rec
from publiccore.config import AggregateSettings
from publiccore.store import Store, facts
from publiccore.store.sqlite import SqliteStore
from tests.exporters.conftest import root_record

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)  # on the 5-minute grid
TABLES = ("root_interval_serials", "root_serial_first")  # migration 5
OLD = 2026112000
SERIALS = (2026112001, 2026112002, 2026112003)
CHANGE_EVERY = 3 * 3600  # the three changes are published at T0, T0 + 3 h, T0 + 6 h
PROBES = (
    rec.ProbeRef(id="p1", asn=64500, country="NL"),
    rec.ProbeRef(id="p2", asn=64501, country="DE"),
)
# Minutes until each probe (p1, p2) sees change k on each letter. Change k is published when
# p1 sees it on a (delay 0): a at 0 from p1 defines the publication interval.
DELAYS = {
    "a": ((0, 0), (0, 5), (0, 0)),
    "b": ((10, 10), (5, 5), (20, 15)),
    "c": ((40, 40), (70, 70), (30, 30)),
}

MEDIAN = "publiccore_root_publication_latency_median_seconds"
COUNT = "publiccore_root_publication_latency_measurements"
RSS = "publiccore_root_rss_publication_latency_seconds"


def _series(snapshot: agg.Snapshot) -> catalogue.Series:
    """What /metrics exports of a snapshot, by metric name."""
    return catalogue.Exposition.of(snapshot).series


def _serial(letter: str, probe: int, minutes: int) -> int:
    """The serial ``probe`` gets from ``letter`` ``minutes`` after T0."""
    serial = OLD
    for k, new in enumerate(SERIALS):
        if minutes >= k * CHANGE_EVERY / 60 + DELAYS[letter][k][probe]:
            serial = new
    return serial


def _records(
    *, until_minutes: int = 8 * 60, skip: set[tuple[str, str, int]] | None = None
) -> list[rec.Record]:
    """Every probe measures every letter in every interval from T0 − 10 min, 10 s into it."""
    out = []
    for minutes in range(-10, until_minutes, 5):
        for i, probe in enumerate(PROBES):
            for letter in DELAYS:
                if skip and (probe.id, letter, minutes) in skip:
                    continue
                out.append(
                    root_record(
                        probe=probe,
                        letter=letter,
                        family="ipv4",
                        started=T0 + dt.timedelta(minutes=minutes, seconds=10),
                        udp_rtt=0.01,
                        tcp_rtt=0.02,
                        serial=_serial(letter, i, minutes),
                    )
                )
    return out


def _measure(store: Store, **kw: float) -> publication.PublicationLatency:
    since = kw.pop("since", T0.timestamp())
    until = kw.pop("until", T0.timestamp() + 8 * 3600)
    return publication.measure(store, since=since, until=until, **kw)


def test_three_changes_give_the_hand_computed_medians(tmp_path: pathlib.Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records())
        result = _measure(store)
    t0 = T0.timestamp()
    assert result.changes == tuple((s, t0 + k * CHANGE_EVERY + 10) for k, s in enumerate(SERIALS))
    # a: 0 0 | 0 300 | 0 0 → 0; b: 600 600 | 300 300 | 1200 900 → sorted 300 300 600 … → 600;
    # c: 2400 2400 | 4200 4200 | 1800 1800 → 1800 1800 2400 … → 2400 (inverted-CDF median:
    # the 3rd of 6)
    assert result.per_letter() == {"a": 0.0, "b": 600.0, "c": 2400.0}
    assert result.counts() == {"a": 6, "b": 6, "c": 6}
    # all 18 pooled: 0 ×5, 300 ×3, 600 (the 9th) … → 600 s, within the 35-minute threshold
    assert result.rss() == 600.0
    assert not any(m.pending for m in result.measurements)
    assert {m.country for m in result.measurements if m.probe == "p2"} == {"DE"}
    series = catalogue.publication_series(publication.figures(result))
    assert series[RSS] == {(): 600.0}
    assert series[MEDIAN][("c",)] == 2400.0


def test_a_country_filter_keeps_its_vantage_points_and_the_global_publication_moment(
    tmp_path: pathlib.Path,
) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records())
        de = _measure(store, country="DE")
    # p2 alone: a 0 | 300 | 0 → 0; b 600 | 300 | 900 → 600; c 2400 | 4200 | 1800 → 2400
    assert de.per_letter() == {"a": 0.0, "b": 600.0, "c": 2400.0}
    assert sorted(m.latency_seconds for m in de.measurements if m.letter == "a") == [0, 0, 300]


def test_the_period_chooses_the_changes(tmp_path: pathlib.Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records())
        second = _measure(
            store, since=T0.timestamp() + 3600, until=T0.timestamp() + CHANGE_EVERY + 60
        )
        first_serial_only = _measure(store, since=T0.timestamp() - 3600, until=T0.timestamp())
    assert [s for s, _ in second.changes] == [SERIALS[1]]
    assert second.per_letter() == {"a": 0.0, "b": 300.0, "c": 4200.0}
    # OLD is the first serial ever seen: its publication moment is unknown, no change
    assert first_serial_only.changes == () and first_serial_only.rss() is None


def test_the_lowest_serial_of_an_interval_counts(tmp_path: pathlib.Path) -> None:
    """§5.4 step 1: an interval where one family still answers the old serial has not seen
    the new one."""
    probe = PROBES[0]
    records = []
    for minutes in range(-10, 60, 5):
        for family in ("ipv4", "ipv6"):
            new = minutes >= 0 if family == "ipv4" else minutes >= 20
            records.append(
                root_record(
                    probe=probe,
                    letter="a",
                    family=family,
                    started=T0 + dt.timedelta(minutes=minutes, seconds=10),
                    udp_rtt=0.01,
                    tcp_rtt=0.02,
                    serial=SERIALS[0] if new else OLD,
                )
            )
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(records)
        result = _measure(store, until=T0.timestamp() + 3600)
    assert [m.latency_seconds for m in result.measurements] == [1200.0]


def test_bogus_alternate_and_timed_out_answers_carry_no_serial(tmp_path: pathlib.Path) -> None:
    """Only answers validated to the IANA anchors are sightings: an alternative root's serial
    makes no serial change (else every letter would look stuck behind it)."""
    probe = PROBES[0]
    records = [
        root_record(
            probe=probe,
            letter=letter,
            family="ipv4",
            started=T0 + dt.timedelta(minutes=minutes, seconds=10),
            udp_rtt=0.01,
            tcp_rtt=0.02,
            serial=serial,
            outcome=outcome,
        )
        for minutes, letter, serial, outcome in (
            (-5, "a", OLD, "iana"),
            (-5, "b", OLD, "iana"),
            (0, "a", SERIALS[0], "iana"),
            (0, "b", SERIALS[0], "bogus"),  # a bogus answer does not show the new serial
            (5, "b", OLD, "iana"),
            (10, "b", SERIALS[0], "iana"),
            (0, "d", 2099010100, "alternate"),  # an alternative root's own zone
            (5, "d", 2099010100, "unsigned"),
        )
    ]
    records.append(
        root_record(
            probe=probe,
            letter="c",
            family="ipv4",
            started=T0 + dt.timedelta(minutes=5, seconds=10),
            udp_rtt=None,
            tcp_rtt=None,
        )
    )
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(records)
        rows = store.fact_rows("root_interval_serials")
        result = _measure(store, until=T0.timestamp() + 3600)
        first = dict(store.fact_rows("root_serial_first"))
    assert not {"c", "d"} & {r[2] for r in rows} and len(rows) == 5
    assert first == {OLD: T0.timestamp() - 290, SERIALS[0]: T0.timestamp() + 10}
    assert [s for s, _ in result.changes] == [SERIALS[0]]
    assert result.per_letter() == {"a": 0.0, "b": 600.0}


def test_a_gap_before_the_observation_gives_no_value_and_a_stuck_letter_grows(
    tmp_path: pathlib.Path,
) -> None:
    # p1 does not measure b from 0 to 25 min: when it sees the change at 30 min the moment it
    # arrived is unknown (more than one interval missing), so p1 gives no value for b.
    skip = {("p1", "b", m) for m in range(0, 30, 5)}
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records(until_minutes=60, skip=skip))
        result = _measure(store, until=T0.timestamp() + 60, horizon=T0.timestamp() + 35 * 60)
    b = [(m.probe, m.latency_seconds, m.pending) for m in result.measurements if m.letter == "b"]
    assert b == [("p2", 600.0, False)]
    # c is seen at 40 min: at a horizon of 35 min both probes still got the old serial at
    # 30 min (the newest interval read): at least 35 minutes, and pending
    c = [(m.latency_seconds, m.pending) for m in result.measurements if m.letter == "c"]
    assert c == [(2100.0, True), (2100.0, True)]


def test_the_migration_fills_the_table_from_stored_queries(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.sqlite"
    with SqliteStore(path) as store:
        store.put_records(_records(until_minutes=60))
        before = {t: sorted(store.fact_rows(t)) for t in TABLES}
        version = store.schema_version()
    assert all(before.values())
    from publiccore.store import sqlite as sqlite_store

    at = next(i for i, m in enumerate(sqlite_store.MIGRATIONS) if "root_interval_serials" in m)
    later = [
        t for m in sqlite_store.MIGRATIONS[at + 1 :] for t in re.findall(r"CREATE TABLE (\w+)", m)
    ]
    with sqlite3.connect(path) as db:  # the store as it was before this migration
        for table in (*TABLES, *later):
            db.execute(f"DROP TABLE IF EXISTS {table}")  # (a rebuilt one is renamed)
        db.execute(f"PRAGMA user_version = {at}")
    with SqliteStore(path) as store:
        assert store.schema_version() == version
        assert {t: sorted(store.fact_rows(t)) for t in TABLES} == before


def test_rederive_rebuilds_the_tables(tmp_path: pathlib.Path) -> None:
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records(until_minutes=60))
        before = {t: sorted(store.fact_rows(t)) for t in TABLES}
        store.rederive(chunk=50)
        assert {t: sorted(store.fact_rows(t)) for t in TABLES} == before


_CHILD = """
import datetime as dt, json, sys
from publiccore.collectors.aggregate import Aggregator
from publiccore.exporters.catalogue import Exposition
from publiccore.store.sqlite import SqliteStore
with SqliteStore(sys.argv[1]) as store:
    snap = Aggregator(store).refresh(dt.datetime.fromtimestamp(float(sys.argv[2]), dt.UTC))
names = sys.argv[3:]
series = Exposition.of(snap).series
print(json.dumps({n: sorted([list(k), v] for k, v in series[n].items()) for n in names}))
"""


def test_a_collector_restart_loses_nothing(tmp_path: pathlib.Path) -> None:
    """The live figures after a restart (a new Aggregator, a new process) equal those of the
    collector that saw the records arrive, interval by interval."""
    path = tmp_path / "s.sqlite"
    records = _records()
    now = T0 + dt.timedelta(hours=8)
    settings = AggregateSettings(publication_period_seconds=9 * 3600)
    names = [MEDIAN, COUNT, RSS]
    with SqliteStore(path) as store:
        seen = agg.Aggregator(store, settings)
        for start in range(0, len(records), 120):  # records arrive in batches, refreshes between
            store.put_records(records[start : start + 120])
            batch_end = records[min(start + 119, len(records) - 1)].started
            seen.refresh(batch_end + dt.timedelta(seconds=publication.CACHE_SECONDS + 1))
        live = seen.refresh(now + dt.timedelta(seconds=publication.CACHE_SECONDS + 1))
        restarted = agg.Aggregator(store, settings).refresh(
            now + dt.timedelta(seconds=publication.CACHE_SECONDS + 1)
        )
    for name in names:
        assert _series(live)[name] == _series(restarted)[name], name
    assert _series(live)[MEDIAN] == {("a",): 0.0, ("b",): 600.0, ("c",): 2400.0}
    assert _series(live)[RSS] == {(): 600.0}
    # a new process with the default period (48 h covers the three changes)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(path),
            str(now.timestamp() + publication.CACHE_SECONDS + 1),
            *names,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    child = json.loads(done.stdout)
    for name in names:
        assert {tuple(k): v for k, v in child[name]} == _series(live)[name], name


def test_the_deriver_renews_publication_figures_after_it_publishes(tmp_path: pathlib.Path) -> None:
    """With ``defer_slow`` (the exporter's deriver) a refresh keeps the publication figures it
    has; ``background`` (run after each published snapshot) renews them when due."""
    records = _records()
    later = T0 + dt.timedelta(hours=8, seconds=publication.CACHE_SECONDS + 1)
    settings = AggregateSettings(publication_period_seconds=9 * 3600)
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records([r for r in records if r.started < T0 + dt.timedelta(hours=2)])
        deriver = agg.Aggregator(store, settings)
        deriver.defer_slow = True
        first = deriver.refresh(T0 + dt.timedelta(hours=2))
        store.put_records(records)
        kept = deriver.refresh(later)
        assert _series(kept)[COUNT] == _series(first)[COUNT]
        deriver.background(later)
        renewed = deriver.refresh(later)
    assert _series(renewed)[MEDIAN] == {("a",): 0.0, ("b",): 600.0, ("c",): 2400.0}
    # the first figures rest on the first change alone, the renewed ones on all three
    assert _series(renewed)[COUNT] == {k: 3 * v for k, v in _series(first)[COUNT].items()}


def test_the_first_refresh_with_one_serial_reports_nothing(tmp_path: pathlib.Path) -> None:
    """Absent is not zero: no serial change seen, no publication latency value at all."""
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records(until_minutes=-5))
        snap = agg.Aggregator(store).refresh(T0)
    assert _series(snap)[MEDIAN] == {}
    assert _series(snap)[RSS] == {}
    assert facts.interval_of(T0.timestamp() + 299) == T0.timestamp()


def test_history_gives_the_live_figures_at_each_step(tmp_path: pathlib.Path) -> None:
    """The OpenMetrics history (chunked) computes what a live refresh at that time shows."""
    from publiccore.exporters import openmetrics

    settings = AggregateSettings()
    steps = [T0 + dt.timedelta(minutes=m) for m in (20, 45, 200, 230, 400)]
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(_records())
        got: dict[tuple[float, str, tuple[str, ...]], float] = {}
        for families in openmetrics.history_chunks(
            store,
            settings,
            since=steps[0],
            until=steps[-1] + dt.timedelta(seconds=1),
            step_seconds=60,
            chunk_seconds=3600,
        ):
            for family in families:
                for s in family.samples:
                    if s.name.startswith(("publiccore_root_publication_latency_m", RSS)):
                        got[(s.timestamp, s.name, tuple(sorted(s.labels.values())))] = s.value
        compared = 0
        for when in steps:
            live = agg.Aggregator(store, settings).refresh(when)
            for name in (MEDIAN, COUNT, RSS):
                for labels, value in _series(live)[name].items():
                    assert got[(when.timestamp(), name, labels)] == value, (when, name, labels)
                    compared += 1
            shown = {k for k in got if k[0] == when.timestamp()}
            assert len(shown) == sum(len(_series(live)[n]) for n in (MEDIAN, COUNT, RSS))
    assert compared > 10


def test_postgres_stores_and_migrates_the_same_intervals(
    tmp_path: pathlib.Path, postgres_url: str
) -> None:
    """The PostgreSQL dialect: the same rows from the write path and from the migration, the
    same figures."""
    import uuid

    import psycopg

    from publiccore.store import open_store

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        name = f"t{uuid.uuid4().hex[:12]}"
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    records = _records()
    with SqliteStore(tmp_path / "s.sqlite") as lite:
        lite.put_records(records)
        expected = {t: sorted(lite.fact_rows(t)) for t in TABLES}
        figures = _measure(lite)
    with open_store(url=url) as pg:
        pg.put_records(records)
        assert {t: sorted(pg.fact_rows(t)) for t in TABLES} == expected
        version = pg.schema_version()
    from publiccore.store import postgres as postgres_store

    at = next(i for i, m in enumerate(postgres_store.MIGRATIONS) if "root_interval_serials" in m)
    later = [
        t for m in postgres_store.MIGRATIONS[at + 1 :] for t in re.findall(r"CREATE TABLE (\w+)", m)
    ]
    with psycopg.connect(url, autocommit=True) as db:  # back to the schema before migration 5
        for table in (*TABLES, *later):
            db.execute(f"DROP TABLE IF EXISTS {table}")  # (a rebuilt one is renamed)
        db.execute("DELETE FROM schema_version WHERE version > %s", (at,))
    assert version > at
    with open_store(url=url) as pg:
        assert {t: sorted(pg.fact_rows(t)) for t in TABLES} == expected
        again = _measure(pg)
    assert again.per_letter() == figures.per_letter() and again.rss() == figures.rss()
    assert again.measurements == figures.measurements
