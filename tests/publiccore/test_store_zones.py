"""The root zone and correctness tables (``SCHEMA_ROOT_ZONES``) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from publiccore.records import (
    Consistency,
    DnsQuery,
    Integrity,
    ProbeRef,
    RootResult,
    RootTarget,
    SiteIdentity,
    make_record,
)
from publiccore.store import open_store
from publiccore.store.sqlite import SqliteStore
from publiccore.store.zones import CorrectnessRow

T0 = dt.datetime(2023, 5, 11, 12, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = SqliteStore(tmp_path / "store.sqlite")
    else:
        url = request.getfixturevalue("postgres_url")
        import psycopg

        with psycopg.connect(url, autocommit=True) as admin:
            name = f"t{uuid.uuid4().hex[:12]}"
            admin.execute(f"CREATE DATABASE {name}")
        s = open_store(url=url.rsplit("/", 1)[0] + "/" + name)
    yield s
    s.close()


def _record(letter: str, serial: int, when: dt.datetime) -> Any:
    soa = DnsQuery(
        qname=".", qclass="IN", qtype="SOA", transport="udp", rcode="NOERROR", serial=serial
    )
    return make_record(
        kind="root-dns",
        probe=ProbeRef(id="p1", asn=64500, country="NL"),
        target=RootTarget(
            letter=letter, name=f"{letter}.root-servers.net.", address="192.0.2.1", family="ipv4"
        ),
        result=RootResult(
            queries=(soa,),
            identity=SiteIdentity(),
            integrity=Integrity(outcome="iana"),
            consistency=Consistency(),
        ),
        started=when,
        finished=when,
    )


def test_zones_by_serial_and_verdicts(store: Any) -> None:
    assert store.root_zones() == [] and store.root_zones_version() == 0.0
    assert store.put_root_zone(
        serial=2023051100, packed=b"\x00zone", source="f", sha256="ab", size=5, imported=10.0
    )
    assert not store.put_root_zone(
        serial=2023051100, packed=b"other", source="g", sha256="cd", size=5, imported=20.0
    )
    assert store.get_root_zone(2023051100) == b"\x00zone"
    assert store.get_root_zone(1) is None
    assert [(z.serial, z.source, z.size) for z in store.root_zones()] == [(2023051100, "f", 5)]
    assert store.root_zones_version() == 10.0

    a = _record("a", 2023051100, T0)
    b = _record("b", 2023051000, T0 + dt.timedelta(hours=1))
    store.put_records([a, b])
    spans = {serial: (first, last) for serial, first, last in store.serial_spans()}
    assert spans == {
        2023051000: (b.started.timestamp(),) * 2,
        2023051100: (a.started.timestamp(),) * 2,
    }
    since, until = T0.timestamp(), T0.timestamp() + 7200
    assert store.records_to_judge(since=since, until=until, zones_version=10.0, limit=10) == [
        a.id,
        b.id,
    ]
    rows = [
        CorrectnessRow(a.id, a.started.timestamp(), "NL", "a", 3, 3, 0, 10.0),
        CorrectnessRow(b.id, b.started.timestamp(), "NL", "b", 0, 0, 2, 10.0),
    ]
    assert store.put_correctness(rows) == 2
    assert store.records_to_judge(since=since, until=until, zones_version=10.0, limit=10) == []
    # a newer zone: the record left unjudged is due again, the judged one is not
    assert store.records_to_judge(since=since, until=until, zones_version=20.0, limit=10) == [b.id]
    store.put_correctness([CorrectnessRow(b.id, b.started.timestamp(), "NL", "b", 2, 1, 0, 20.0)])
    assert store.correctness_totals(since=since, until=until) == [
        ("NL", "a", 3, 3),
        ("NL", "b", 2, 1),
    ]
    assert store.correctness_totals(since=since, until=since + 60) == [("NL", "a", 3, 3)]
    assert [r.detail for r in store.iter_correctness(since=since, until=until)] == ["", ""]
