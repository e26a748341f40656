"""The archive file-state table (bgp follow / backfill) on SQLite and PostgreSQL: atomic
claims, leases, dead owners, finishing with observations in one transaction."""

from __future__ import annotations

import datetime as dt
import pathlib
import threading

import pytest

from publiccore.store import Observation, open_store

FILE = {"source": "ris", "collector": "rrc00", "name": "updates.20261201.0800.gz"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path):
    if request.param == "sqlite":
        opened = open_store(str(tmp_path / "s.sqlite"))
    else:
        import psycopg

        url = request.getfixturevalue("postgres_url")
        name = f"archive_{tmp_path.name.replace('-', '_').lower()}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        opened = open_store(url=url.rsplit("/", 1)[0] + "/" + name)
    yield opened
    opened.close()


def _claim(store, owner: str, *, now: float = 100.0, lease: float = 60.0, stale=None) -> bool:
    return bool(
        store.claim_archive_file(
            **FILE,
            kind="updates",
            file_time=1.0,
            size=10,
            owner=owner,
            lease_until=now + lease,
            max_attempts=2,
            now=now,
            stale=stale,
        )
    )


def test_claims_leases_and_finish(store) -> None:
    assert _claim(store, "a")
    assert not _claim(store, "b")  # held, lease running
    assert _claim(store, "b", stale=lambda owner: owner == "a")  # a is gone
    assert store.renew_archive_claims("b", 170.0) == 1
    assert not _claim(store, "x", now=165.0)  # b renewed its lease to 170
    assert _claim(store, "b", now=165.0)  # the holder may claim again (a restart of the poll)
    assert not store.finish_archive_file(**FILE, owner="a", status="done", now=5, meta={})
    assert _claim(store, "c", now=1000.0)  # b's lease ran out: taken over
    assert not store.finish_archive_file(**FILE, owner="b", status="done", now=5, meta={})
    assert _claim(store, "b", now=2000.0)  # and back (c's lease ran out too)
    when = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    obs = [Observation(when, "country", "NL", "bgp_country_visible_slash24", 3.0, {})]
    assert store.finish_archive_file(
        **FILE,
        owner="b",
        status="done",
        now=5,
        sha256="ab",
        elements=7,
        source_kind="bgp",
        meta={"m": 1},
        observations=obs,
    )
    assert not _claim(store, "c", now=1e9)  # done: never again
    (row,) = store.archive_files()
    assert (row.status, row.sha256, row.elements, row.observations) == ("done", "ab", 7, 1)
    assert store.get_source(row.source_id).meta == {"m": 1}
    assert [o.value for o in store.iter_observations()] == [3.0]
    (summary,) = store.archive_summary()
    assert (summary.status, summary.files, summary.newest_name) == ("done", 1, FILE["name"])


def test_failures_are_retried_up_to_max_attempts(store) -> None:
    for attempt in range(2):
        assert _claim(store, f"o{attempt}")
        assert store.finish_archive_file(
            **FILE, owner=f"o{attempt}", status="failed", now=1, error="http_500: x"
        )
    assert not _claim(store, "late")
    (row,) = store.archive_files(status="failed")
    assert (row.attempts, row.error) == (2, "http_500: x")
    assert store.renew_archive_claims("late", 1e9) == 0
    assert store.add_missing_files(
        source="ris", collector="rrc00", kind="updates", missing=2, checked_until=10
    )
    assert store.add_missing_files(
        source="ris", collector="rrc00", kind="updates", missing=1, checked_until=20, previous=10
    )
    assert not store.add_missing_files(  # another follower counted (10, 20] already
        source="ris", collector="rrc00", kind="updates", missing=1, checked_until=25, previous=10
    )
    (schedule,) = store.follow_schedules()
    assert (schedule.missing_total, schedule.checked_until) == (3, 20.0)


def test_concurrent_claims_give_one_owner(store) -> None:
    wins: list[str] = []

    def attempt(owner: str) -> None:
        if _claim(store, owner):
            wins.append(owner)

    threads = [threading.Thread(target=attempt, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1
