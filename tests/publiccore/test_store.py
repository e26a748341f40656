"""The SQLite store: idempotent inserts, queries, migrations, probes and observations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import sqlite3
import uuid
from collections.abc import Iterator

import pytest

from publiccore import records
from publiccore.errors import StoreError
from publiccore.store import Observation, ProbeRegistration, Store, open_store, postgres
from publiccore.store.sqlite import SCHEMA_VERSION, SqliteStore

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _record(minute: int, *, probe: str = "p1", country: str = "NL") -> records.Record:
    started = T0 + dt.timedelta(minutes=minute)
    result = records.RootResult(
        queries=(
            records.DnsQuery(
                qname=".", qclass="IN", qtype="SOA", transport="udp", failure="dns_timeout"
            ),
        ),
        identity=records.SiteIdentity(),
        integrity=records.Integrity(outcome="no-answer"),
    )
    return records.make_record(
        kind="root-dns",
        probe=records.ProbeRef(id=probe, asn=64500, country=country),
        target=records.RootTarget(letter="a", name="a.", address="192.0.2.1", family="ipv4"),
        result=result,
        started=started,
        finished=started + dt.timedelta(seconds=4),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Store]:
    """The same behaviour from both implementations: SQLite file, real PostgreSQL server."""
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "store.sqlite")
    else:
        url = request.getfixturevalue("postgres_url")
        import psycopg

        with psycopg.connect(url, autocommit=True) as admin:  # a fresh database per test
            name = f"t{uuid.uuid4().hex[:12]}"
            admin.execute(f"CREATE DATABASE {name}")
        s = open_store(url=url.rsplit("/", 1)[0] + "/" + name)
    yield s
    s.close()


def test_same_record_twice_is_a_noop(store: Store) -> None:
    rec = _record(0)
    first = store.put_records([rec])
    assert (first.accepted, first.duplicates) == (1, 0)
    again = store.put_records([rec, _record(1)])
    assert (again.accepted, again.duplicates) == (1, 1)
    assert store.count_records() == 2
    assert store.get_record(rec.id) == rec


def test_a_batch_in_several_statements_counts_every_row(tmp_path: pathlib.Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    store._rows_per_insert = 3  # a batch of 8 takes three INSERT statements
    stored = _record(0)
    store.put_records([stored])
    batch = [_record(m) for m in range(1, 7)]
    result = store.put_records([*batch[:4], stored, batch[4], batch[0], batch[5]])
    assert (result.accepted, result.duplicates) == (6, 2)
    assert list(store.iter_records()) == [stored, *batch]
    store.close()


@pytest.mark.parametrize("rows_per_insert", [500, 2])  # one statement; three in a transaction
def test_a_batch_that_fails_stores_nothing(tmp_path: pathlib.Path, rows_per_insert: int) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    store._rows_per_insert = rows_per_insert
    batch = [_record(m) for m in range(5)]
    # the last record's insert fails inside SQLite (a trigger the test adds)
    store._db.execute(
        "CREATE TRIGGER fail_last BEFORE INSERT ON records "
        f"WHEN NEW.id = '{batch[4].id}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(sqlite3.Error):
        store.put_records(batch)
    assert store.count_records() == 0
    assert store.fact_rows("agg_root_records") == []  # the facts went with it
    store._db.execute("DROP TRIGGER fail_last")
    assert store.put_records(batch).accepted == 5
    store.close()


def test_put_with_bodies_already_serialised(store: Store) -> None:
    records_ = [_record(0), _record(1)]
    result = store.put_records(records_, bodies=[r.dumps() for r in records_])
    assert (result.accepted, result.duplicates) == (2, 0)
    assert [store.get_record(r.id) for r in records_] == records_
    with pytest.raises(ValueError, match="1 bodies for 2 records"):
        store.put_records([_record(2), _record(3)], bodies=[_record(2).dumps()])
    assert store.count_records() == 2


def test_queries_by_kind_window_probe_country(store: Store) -> None:
    store.put_records(
        [_record(m, probe=f"p{m % 2}", country="NL" if m < 5 else "DE") for m in range(10)]
    )
    window = list(
        store.iter_records(since=T0 + dt.timedelta(minutes=2), until=T0 + dt.timedelta(minutes=6))
    )
    assert [r.started.minute for r in window] == [2, 3, 4, 5]
    assert store.count_records(probe_id="p1") == 5
    assert store.count_records(country="DE") == 5
    assert store.count_records(kind="traceroute") == 0
    assert len(list(store.iter_records(kind="root-dns", limit=3))) == 3


def test_wal_and_schema_version(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.sqlite"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this software"):
        SqliteStore(path)


def test_migration_7_clusters_the_bucket_tables_and_keeps_their_rows(
    tmp_path: pathlib.Path,
) -> None:
    from publiccore.store import facts
    from publiccore.store import sqlite as sqlite_store
    from tests.exporters.conftest import make_rounds

    with SqliteStore(tmp_path / "now.sqlite") as store:  # today's schema, filled
        store.put_records(make_rounds(start=T0, rounds=3))
        rows = {t: sorted(store.fact_rows(t)) for t in facts.CLUSTERED_TABLES}
    assert all(rows[t] for t in ("agg_root_cells_all", "agg_root_rtt", "root_interval_serials"))
    old = tmp_path / "old.sqlite"  # the same rows in a store of schema 6 (rowid tables)
    db = sqlite3.connect(old, isolation_level=None)
    for migration in sqlite_store.MIGRATIONS[:6]:
        db.executescript(migration)
    db.execute(f"ATTACH '{tmp_path / 'now.sqlite'}' AS now")
    for table in facts.CLUSTERED_TABLES:
        db.execute(f"INSERT INTO {table} SELECT * FROM now.{table}")
    db.execute("PRAGMA user_version=6")
    db.close()
    with SqliteStore(old) as store:
        assert store.schema_version() == SCHEMA_VERSION == 7
        assert {t: sorted(store.fact_rows(t)) for t in facts.CLUSTERED_TABLES} == rows
    db = sqlite3.connect(old)
    created = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert all(created[t].endswith("WITHOUT ROWID") for t in facts.CLUSTERED_TABLES)
    assert not [name for name in created if name.endswith("_clustered")]
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT bucket, serial FROM root_interval_serials "
        "WHERE country = 'NL' AND bucket >= 0 AND bucket < 1"
    ).fetchall()
    assert "COVERING INDEX root_interval_serials_country" in str(plan)


def test_reopening_keeps_data(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.sqlite"
    first = open_store(str(path))
    first.put_records([_record(0)])
    first.close()
    second = open_store(str(path))
    assert second.count_records() == 1
    second.close()


def test_a_store_closes_when_its_with_block_ends(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.sqlite"
    with open_store(str(path)) as store:
        store.put_records([_record(0)])
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.count_records()
    with pytest.raises(ZeroDivisionError), open_store(str(path)) as store:
        assert store.count_records() == 1
        _ = 1 / 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.count_records()


def test_both_stores_close_when_their_with_block_ends(store: Store) -> None:
    with store as same:
        assert same is store
        store.put_records([_record(0)])
    with pytest.raises(Exception, match="closed"):  # sqlite3 or psycopg: a closed connection
        store.count_records()


def test_probe_registry(store: Store) -> None:
    store.add_probe(ProbeRegistration(id="p1", country="NL", asn=64500, token_hash="h1"))
    with pytest.raises(StoreError):
        store.add_probe(ProbeRegistration(id="p2", country="NL", asn=64500, token_hash="h1"))
    found = store.probe_by_token_hash("h1")
    assert found is not None and found.id == "p1" and found.revoked is None
    assert store.revoke_probe("p1")
    assert not store.revoke_probe("p1")
    revoked = store.probe_by_token_hash("h1")
    assert revoked is not None and revoked.revoked is not None
    assert [p.id for p in store.list_probes()] == ["p1"]


def test_observations_with_sources(store: Store) -> None:
    source = store.add_source("bgp-rib", {"file": "bview.gz", "sha256": "ab"})
    store.put_observations(
        source,
        [
            Observation(
                time=T0,
                subject_kind="country",
                subject="NL",
                metric="bgp_country_visible_slash24",
                value=10.0,
            ),
            Observation(
                time=T0 + dt.timedelta(hours=1),
                subject_kind="country",
                subject="NL",
                metric="bgp_country_visible_slash24",
                value=12.0,
                labels={"family": "ipv4"},
            ),
        ],
    )
    values = [o.value for o in store.iter_observations(metric="bgp_country_visible_slash24")]
    assert values == [10.0, 12.0]
    later = list(store.iter_observations(subject="NL", since=T0 + dt.timedelta(minutes=1)))
    assert [dict(o.labels) for o in later] == [{"family": "ipv4"}]
    meta = store.get_source(source)
    assert meta is not None and meta.meta["file"] == "bview.gz"


def test_unopenable_store_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StoreError, match="cannot open store"):
        SqliteStore(tmp_path / "dir.sqlite")
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store(url="mysql://localhost/x")


def test_postgres_schema_version_and_concurrent_collectors(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE shared_by_two")
    url = postgres_url.rsplit("/", 1)[0] + "/shared_by_two"
    first, second = open_store(url=url), open_store(url=url)  # migrates once
    rec = _record(0)
    assert first.put_records([rec]).accepted == 1
    assert second.put_records([rec]).duplicates == 1
    assert second.get_record(rec.id) == rec
    first.close()
    second.close()
    with psycopg.connect(url) as db:
        versions = db.execute("SELECT count(*), max(version) FROM schema_version").fetchone()
    target = len(postgres.MIGRATIONS)
    assert versions == (target, target)  # each migration ran once


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open PostgreSQL store"):
        open_store(url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_raw_records_are_stored_packed_and_read_back_byte_for_byte(tmp_path: pathlib.Path) -> None:
    """Every fixture record (all schemas) reads back as the exact bytes written; each distinct
    wire answer is stored once however many records carry it."""
    fixtures = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "records"
    lines = [
        line for p in sorted(fixtures.glob("v*/*.jsonl")) for line in p.read_text().splitlines()
    ]
    parsed = [records.loads(line) for line in lines]
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.put_records(parsed)
        for record in parsed:
            assert store.get_body(record.id) == record.dumps()
        assert [r.dumps() for r in store.iter_records()] == sorted(
            (r.dumps() for r in parsed),
            key=lambda b: (records.loads(b).started, records.loads(b).id),
        )
        again = [dataclasses.replace(r, id=records.uuid7()) for r in parsed if r.kind == "root-dns"]
        store.put_records(again)  # the same answers once more: nothing new to keep
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        empty = db.execute("SELECT count(*) FROM records WHERE body != ''").fetchone()[0]
        answers = db.execute("SELECT count(*) FROM wire_answers").fetchone()[0]
    assert empty == 0  # nothing kept unpacked
    wires = {q.wire_b64 for r in parsed if r.root is not None for q in r.root.queries if q.wire_b64}
    assert 0 < answers <= len(wires)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_atlas_follow_positions(
    dialect: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "sqlite":
        store = open_store(str(tmp_path / "s.sqlite"))
    else:
        store = open_store(url=request.getfixturevalue("postgres_url"))
    try:
        assert store.get_atlas_position(10001) is None
        first = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        store.set_atlas_position(10001, first)
        store.set_atlas_position(10001, first + dt.timedelta(hours=1))
        store.set_atlas_position(5001, first)
        assert store.get_atlas_position(10001) == first + dt.timedelta(hours=1)
        assert store.get_atlas_position(5001) == first
    finally:
        store.close()
