"""The embedded default store: one SQLite file in WAL mode (schema in ``PRAGMA user_version``)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import pathlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from publiccore import sqlitedb
from publiccore.errors import StoreError
from publiccore.store.facts import (
    CLUSTERED_TABLES,
    SCHEMA_INTERVAL_SERIALS,
    SCHEMA_SERIALS_BY_COUNTRY,
    SCHEMA_V2,
    without_rowid,
)
from publiccore.store.sql import SCHEMA_ATLAS_POSITIONS, SCHEMA_BGP_FOLLOW, SCHEMA_V1, SqlStore
from publiccore.store.zones import SCHEMA_ROOT_ZONES

MIGRATIONS: tuple[str, ...] = (
    SCHEMA_V1.format(
        real="REAL", bigint="INTEGER", serial="INTEGER PRIMARY KEY", records_options="WITHOUT ROWID"
    ),
    SCHEMA_V2.format(real="REAL", bigint="INTEGER", blob="BLOB"),
    SCHEMA_BGP_FOLLOW.format(real="REAL", bigint="INTEGER"),
    SCHEMA_ATLAS_POSITIONS.format(real="REAL", bigint="INTEGER"),
    SCHEMA_INTERVAL_SERIALS.format(
        real="REAL", bigint="INTEGER", interval="CAST(time / 300 AS INTEGER) * 300"
    ),
    SCHEMA_ROOT_ZONES.format(real="REAL", bigint="INTEGER", blob="BLOB"),
)
MIGRATIONS += (without_rowid(MIGRATIONS[1:], CLUSTERED_TABLES) + ";\n" + SCHEMA_SERIALS_BY_COUNTRY,)
SCHEMA_VERSION = len(MIGRATIONS)
_flat = itertools.chain.from_iterable  # rows → their values, one after the other
# WAL pages between automatic checkpoints (SQLite's default: 1000): a write of a batch touches
# many pages of the facts tables again and again, and each checkpoint copies (and syncs) them.
# A connection setting only; the file format does not change.
WAL_AUTOCHECKPOINT_PAGES = 10_000
MAX_ROWS_PER_INSERT = 500  # records per INSERT statement (fewer when SQLite allows fewer "?")
_RECORD_COLUMNS = (
    "id",
    "kind",
    "probe_id",
    "country",
    "asn",
    "started",
    "finished",
    "received",
    "body",
    "packed",
)


@functools.lru_cache(maxsize=256)
def _multi_row_sql(sql: str, rows: int) -> str:
    """A one-row ``INSERT … VALUES (?, …) …`` statement made to insert ``rows`` rows: its
    VALUES group repeated (SQLite inserts them in order, each with the statement's ``ON
    CONFLICT`` clause, as ``rows`` one-row statements would)."""
    start = sql.index("VALUES (") + len("VALUES ")
    end = sql.index(")", start) + 1
    return sql[:start] + ", ".join([sql[start:end]] * rows) + sql[end:]


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """``INSERT OR IGNORE`` of ``rows`` records in one statement."""
    values = "(" + ", ".join("?" * len(_RECORD_COLUMNS)) + ")"
    return f"INSERT OR IGNORE INTO records ({', '.join(_RECORD_COLUMNS)}) VALUES " + ", ".join(
        [values] * rows
    )


class SqliteStore(SqlStore):
    """Store over one SQLite file (WAL); safe to share between threads."""

    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = pathlib.Path(path)
        self.label = f"store {self.path}"
        try:
            self._db = sqlitedb.connect(self.path, synchronous="NORMAL", foreign_keys=True)
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            self._variables = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows_per_insert = max(
                1, min(MAX_ROWS_PER_INSERT, self._variables // len(_RECORD_COLUMNS))
            )
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction; commit on success, roll back otherwise."""
        with sqlitedb.transaction(self._db, self._lock):
            yield

    def _upsert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # Multi-row statements, as _insert_rows, rather than executemany; of a few sizes only
        # (the full one, then powers of four), so that SQLite's statement cache keeps them.
        if not rows:
            return
        full = max(1, min(MAX_ROWS_PER_INSERT, self._variables // len(rows[0])))
        start = 0
        while start < len(rows):
            left = len(rows) - start
            size = full if left >= full else 1 << (2 * ((left.bit_length() - 1) // 2))
            chunk = rows[start : start + size]
            if size == 1:
                self._db.execute(sql, chunk[0])
            else:
                self._db.execute(_multi_row_sql(sql, size), list(_flat(chunk)))
            start += size

    def _insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        # Multi-row INSERTs rather than executemany, which takes the GIL back for every row.
        for start in range(0, len(rows), self._rows_per_insert):
            self._insert_chunk(rows[start : start + self._rows_per_insert])

    def _insert_chunk(self, rows: Sequence[Sequence[Any]]) -> int:
        before = self._db.total_changes
        self._db.execute(_insert_sql(len(rows)), list(_flat(rows)))
        return self._db.total_changes - before

    def _get_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _set_version(self, version: int) -> None:
        self._db.execute(f"PRAGMA user_version={int(version)}")

    def _integrity_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.IntegrityError,)

    def close(self) -> None:
        with self._lock:
            self._db.close()
