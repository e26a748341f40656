"""The embedded default store: one SQLite file in WAL mode.

Schema versions are kept in ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n to n+1.
Add a migration at the end, never edit an applied one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from publiccore import records as rec
from publiccore.clock import utc_now
from publiccore.errors import StoreError
from publiccore.store import Observation, ProbeRegistration, PutResult, Source

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: records, probes, derived observations with their sources
    """
    CREATE TABLE records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        probe_id TEXT NOT NULL,
        country TEXT,
        asn INTEGER,
        started REAL NOT NULL,
        finished REAL NOT NULL,
        received REAL NOT NULL,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX records_kind_started ON records (kind, started);
    CREATE INDEX records_probe_started ON records (probe_id, started);
    CREATE INDEX records_country_started ON records (country, kind, started);
    CREATE TABLE probes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        country TEXT NOT NULL,
        asn INTEGER NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        revoked REAL
    );
    CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        created REAL NOT NULL,
        meta TEXT NOT NULL
    );
    CREATE TABLE observations (
        source_id INTEGER NOT NULL REFERENCES sources (id),
        time REAL NOT NULL,
        subject_kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX observations_metric_time ON observations (metric, time);
    CREATE INDEX observations_subject ON observations (subject_kind, subject, metric, time);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _ts(when: dt.datetime) -> float:
    return when.timestamp()


def _dt(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


class SqliteStore:
    """Store implementation over one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = pathlib.Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._migrate()

    # --- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                version = self.schema_version()
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"store {self.path} has schema {version}, newer than this software "
                        f"({SCHEMA_VERSION}); upgrade publiccore")
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={step + 1}")
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot migrate store {self.path}: {exc}") from None
            except StoreError:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction; commit on success, roll back otherwise."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            committed = False
            try:
                yield
                self._db.execute("COMMIT")
                committed = True
            finally:
                if not committed:
                    self._db.execute("ROLLBACK")

    # --- records -----------------------------------------------------------------------------

    def put_records(self, records: Iterable[rec.Record], *, received: dt.datetime | None = None
                    ) -> PutResult:
        now = _ts(received or utc_now())
        rows = [
            (r.id, r.kind, r.probe.id, r.probe.country, r.probe.asn, _ts(r.started),
             _ts(r.finished), now, r.dumps())
            for r in records
        ]
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO records "
                "(id, kind, probe_id, country, asn, started, finished, received, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            accepted = self._db.total_changes - before
        return PutResult(accepted=accepted, duplicates=len(rows) - accepted)

    def get_record(self, record_id: str) -> rec.Record | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else rec.loads(row[0])

    @staticmethod
    def _where(kind: str | None, since: dt.datetime | None, until: dt.datetime | None,
               probe_id: str | None, country: str | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("kind", kind), ("probe_id", probe_id), ("country", country)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("started >= ?")
            args.append(_ts(since))
        if until is not None:
            clauses.append("started < ?")
            args.append(_ts(until))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def iter_records(self, *, kind: str | None = None, since: dt.datetime | None = None,
                     until: dt.datetime | None = None, probe_id: str | None = None,
                     country: str | None = None, limit: int | None = None
                     ) -> Iterator[rec.Record]:
        where, args = self._where(kind, since, until, probe_id, country)
        sql = f"SELECT body FROM records{where} ORDER BY started, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            bodies = [row[0] for row in self._db.execute(sql, args)]
        for body in bodies:
            yield rec.loads(body)

    def count_records(self, *, kind: str | None = None, since: dt.datetime | None = None,
                      until: dt.datetime | None = None, probe_id: str | None = None,
                      country: str | None = None) -> int:
        where, args = self._where(kind, since, until, probe_id, country)
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM records{where}", args).fetchone()[0])

    # --- probes ------------------------------------------------------------------------------

    def add_probe(self, probe: ProbeRegistration) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO probes (id, name, country, asn, token_hash, created, revoked) "
                    "VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (probe.id, probe.name, probe.country, probe.asn, probe.token_hash,
                     _ts(probe.created or utc_now())))
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"probe {probe.id} cannot be added: {exc}") from None

    @staticmethod
    def _probe(row: tuple[Any, ...]) -> ProbeRegistration:
        return ProbeRegistration(id=row[0], name=row[1], country=row[2], asn=row[3],
                                 token_hash=row[4], created=_dt(row[5]), revoked=_dt(row[6]))

    _PROBE_COLUMNS = "id, name, country, asn, token_hash, created, revoked"

    def probe_by_token_hash(self, token_hash: str) -> ProbeRegistration | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes WHERE token_hash = ?",
                (token_hash,)).fetchone()
        return None if row is None else self._probe(row)

    def list_probes(self) -> list[ProbeRegistration]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes ORDER BY created, id").fetchall()
        return [self._probe(r) for r in rows]

    def revoke_probe(self, probe_id: str, *, when: dt.datetime | None = None) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE probes SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (_ts(when or utc_now()), probe_id))
        return cur.rowcount > 0

    # --- derived observations ----------------------------------------------------------------

    def add_source(self, kind: str, meta: Mapping[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO sources (kind, created, meta) VALUES (?, ?, ?)",
                (kind, _ts(utc_now()), json.dumps(meta, sort_keys=True, default=str)))
        return int(cur.lastrowid or 0)

    def get_source(self, source_id: int) -> Source | None:
        with self._lock:
            row = self._db.execute("SELECT id, kind, created, meta FROM sources WHERE id = ?",
                                   (source_id,)).fetchone()
        if row is None:
            return None
        created = _dt(row[2])
        assert created is not None
        return Source(id=row[0], kind=row[1], created=created, meta=json.loads(row[3]))

    def put_observations(self, source_id: int, observations: Iterable[Observation]) -> int:
        rows = [
            (source_id, _ts(o.time), o.subject_kind, o.subject, o.metric, float(o.value),
             json.dumps(dict(o.labels), sort_keys=True))
            for o in observations
        ]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO observations "
                "(source_id, time, subject_kind, subject, metric, value, labels) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def iter_observations(self, *, metric: str | None = None, subject_kind: str | None = None,
                          subject: str | None = None, since: dt.datetime | None = None,
                          until: dt.datetime | None = None) -> Iterator[Observation]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("metric", metric), ("subject_kind", subject_kind),
                              ("subject", subject)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("time >= ?")
            args.append(_ts(since))
        if until is not None:
            clauses.append("time < ?")
            args.append(_ts(until))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT time, subject_kind, subject, metric, value, labels FROM observations"
                f"{where} ORDER BY time, rowid", args).fetchall()
        for row in rows:
            when = _dt(row[0])
            assert when is not None
            yield Observation(time=when, subject_kind=row[1], subject=row[2], metric=row[3],
                              value=row[4], labels=json.loads(row[5]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
