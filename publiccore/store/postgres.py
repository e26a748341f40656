"""The same store on PostgreSQL, for several stateless collectors behind a load balancer.

``open_store(url="postgresql://…")`` selects it; needs the ``postgres`` extra (psycopg 3).
Migrations run under an advisory lock, so collectors starting together migrate once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from publiccore.errors import StoreError
from publiccore.store.facts import SCHEMA_INTERVAL_SERIALS, SCHEMA_SERIALS_BY_COUNTRY, SCHEMA_V2
from publiccore.store.sql import SCHEMA_ATLAS_POSITIONS, SCHEMA_BGP_FOLLOW, SCHEMA_V1, SqlStore
from publiccore.store.zones import SCHEMA_ROOT_ZONES

MIGRATIONS: tuple[str, ...] = (
    SCHEMA_V1.format(
        real="DOUBLE PRECISION", bigint="BIGINT", serial="BIGSERIAL PRIMARY KEY", records_options=""
    ),
    SCHEMA_V2.format(real="DOUBLE PRECISION", bigint="BIGINT", blob="BYTEA"),
    SCHEMA_BGP_FOLLOW.format(real="DOUBLE PRECISION", bigint="BIGINT"),
    SCHEMA_ATLAS_POSITIONS.format(real="DOUBLE PRECISION", bigint="BIGINT"),
    SCHEMA_INTERVAL_SERIALS.format(
        real="DOUBLE PRECISION", bigint="BIGINT", interval="FLOOR(time / 300) * 300"
    ),
    SCHEMA_ROOT_ZONES.format(real="DOUBLE PRECISION", bigint="BIGINT", blob="BYTEA"),
    SCHEMA_SERIALS_BY_COUNTRY,  # (SQLite's migration 7 also clusters its tables: no need here)
)
_MIGRATION_LOCK = 0x7075626C  # "publ": pg_advisory_xact_lock key


class PostgresStore(SqlStore):
    """Store over one PostgreSQL connection (autocommit, explicit transactions)."""

    MIGRATIONS = MIGRATIONS
    PARAM = "%s"
    LEAST, GREATEST = "LEAST", "GREATEST"
    REAL = "DOUBLE PRECISION"
    FOR_UPDATE = " FOR UPDATE"
    INT_LIST = "string_agg(CAST({} AS TEXT), ',' ORDER BY bin)"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "the PostgreSQL store needs psycopg: pip install 'publiccore[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.label = "PostgreSQL store"
        try:
            self._db = psycopg.connect(url, autocommit=True)
            self._migrate()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}".strip()) from None

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, args)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, self._db.transaction():
            yield

    def _insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(
                "INSERT INTO records "
                "(id, kind, probe_id, country, asn, started, finished, received, body, packed) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                rows,
            )

    def _get_version(self) -> int:
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0

    def _set_version(self, version: int) -> None:
        self._db.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def _integrity_errors(self) -> tuple[type[Exception], ...]:
        return (self._psycopg.IntegrityError,)

    def close(self) -> None:
        with self._lock:
            self._db.close()
