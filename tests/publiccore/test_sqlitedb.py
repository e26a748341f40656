"""The shared SQLite helper: WAL pragmas, and one transaction under the caller's lock."""

from __future__ import annotations

import pathlib
import sqlite3
import threading

import pytest

from publiccore import sqlitedb


def test_connect_sets_the_pragmas(tmp_path: pathlib.Path) -> None:
    db = sqlitedb.connect(
        tmp_path / "new" / "a.sqlite", synchronous="FULL", auto_vacuum="INCREMENTAL"
    )
    pragma = lambda name: db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL
    assert pragma("auto_vacuum") == 2  # INCREMENTAL
    assert pragma("foreign_keys") == 0
    assert pragma("busy_timeout") == sqlitedb.BUSY_TIMEOUT_MS
    db.close()
    db = sqlitedb.connect(tmp_path / "b.sqlite", synchronous="NORMAL", foreign_keys=True)
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    db.close()


def test_transaction_commits_or_rolls_back_under_the_lock(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.sqlite"
    db = sqlitedb.connect(path, synchronous="NORMAL")
    db.execute("CREATE TABLE t (x INTEGER)")
    lock = threading.Lock()
    with sqlitedb.transaction(db, lock):
        assert lock.locked()
        db.execute("INSERT INTO t VALUES (1)")
    assert not lock.locked()
    with pytest.raises(ZeroDivisionError), sqlitedb.transaction(db, lock):
        db.execute("INSERT INTO t VALUES (2)")
        _ = 1 / 0
    assert not lock.locked()
    assert not db.in_transaction
    other = sqlite3.connect(path)
    assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    # IMMEDIATE holds the write lock from the start: another writer cannot begin meanwhile.
    other.execute("PRAGMA busy_timeout=0")
    with sqlitedb.transaction(db, lock), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    with sqlitedb.transaction(db, lock, mode="DEFERRED"):
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)
    other.close()
    db.close()
