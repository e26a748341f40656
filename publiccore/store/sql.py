"""What the SQLite and PostgreSQL stores share: the queries, written once.

A dialect subclass supplies the connection, its transactions, its migrations and its
parameter style; statements here are written with ``?`` placeholders and rewritten once by
``_sql``. Schema versions: ``MIGRATIONS[n]`` takes version n to n+1; add at the end, never edit
an applied one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from publiccore import records as rec
from publiccore.clock import utc_now
from publiccore.errors import StoreError
from publiccore.store import Observation, ProbeRegistration, PutResult, Source

# Schema version 1, written once for both dialects: {real} a float column type, {bigint} an
# integer wide enough for ASNs, {serial} an auto-numbered primary key, {records_options} table
# options for the records table.
SCHEMA_V1 = """
    CREATE TABLE records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        probe_id TEXT NOT NULL,
        country TEXT,
        asn {bigint},
        started {real} NOT NULL,
        finished {real} NOT NULL,
        received {real} NOT NULL,
        body TEXT NOT NULL
    ) {records_options};
    CREATE INDEX records_kind_started ON records (kind, started);
    CREATE INDEX records_probe_started ON records (probe_id, started);
    CREATE INDEX records_country_started ON records (country, kind, started);
    CREATE TABLE probes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        country TEXT NOT NULL,
        asn {bigint} NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created {real} NOT NULL,
        revoked {real}
    );
    CREATE TABLE sources (
        id {serial},
        kind TEXT NOT NULL,
        created {real} NOT NULL,
        meta TEXT NOT NULL
    );
    CREATE TABLE observations (
        id {serial},
        source_id {bigint} NOT NULL REFERENCES sources (id),
        time {real} NOT NULL,
        subject_kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        metric TEXT NOT NULL,
        value {real} NOT NULL,
        labels TEXT NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX observations_metric_time ON observations (metric, time);
    CREATE INDEX observations_subject ON observations (subject_kind, subject, metric, time)
"""


# The RIPE Atlas follower's position per measurement (collectors/atlas/api.py): the end of the
# last time window whose results are all stored. {real} as in SCHEMA_V1.
SCHEMA_ATLAS_POSITIONS = """
    CREATE TABLE atlas_positions (
        measurement {bigint} PRIMARY KEY,
        position {real} NOT NULL,
        updated {real} NOT NULL
    )
"""


def ts(when: dt.datetime) -> float:
    return when.timestamp()


def from_ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


_PROBE_COLUMNS = "id, name, country, asn, token_hash, created, revoked"


class SqlStore:
    """The Store protocol over a DB-API connection shared between threads under one lock."""

    MIGRATIONS: tuple[str, ...] = ()
    PARAM = "?"
    label = "store"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # --- dialect hooks -------------------------------------------------------------------------

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _insert_records(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert record rows in one transaction, skipping known ids; return how many were new."""
        raise NotImplementedError

    def _get_version(self) -> int:
        raise NotImplementedError

    def _set_version(self, version: int) -> None:
        raise NotImplementedError

    def _integrity_errors(self) -> tuple[type[Exception], ...]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- schema ------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.PARAM == "?" else sql.replace("?", self.PARAM)

    @property
    def schema_target(self) -> int:
        return len(self.MIGRATIONS)

    def schema_version(self) -> int:
        with self._lock:
            return self._get_version()

    def _migrate(self) -> None:
        with self._transaction():
            version = self._get_version()
            if version > self.schema_target:
                raise StoreError(
                    f"{self.label} has schema {version}, newer than this software "
                    f"({self.schema_target}); upgrade publiccore"
                )
            for step in range(version, self.schema_target):
                for statement in self.MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._execute(statement)
                self._set_version(step + 1)

    # --- records -----------------------------------------------------------------------------

    def put_records(
        self,
        records: Iterable[rec.Record],
        *,
        received: dt.datetime | None = None,
        bodies: Sequence[str] | None = None,
    ) -> PutResult:
        now = ts(received or utc_now())
        records = list(records)
        if bodies is None:
            bodies = [r.dumps() for r in records]
        elif len(bodies) != len(records):
            raise ValueError(f"{len(bodies)} bodies for {len(records)} records")
        rows = [
            (
                r.id,
                r.kind,
                r.probe.id,
                r.probe.country,
                r.probe.asn,
                ts(r.started),
                ts(r.finished),
                now,
                body,
            )
            for r, body in zip(records, bodies, strict=True)
        ]
        if not rows:
            return PutResult(accepted=0, duplicates=0)
        accepted = self._insert_records(rows)
        return PutResult(accepted=accepted, duplicates=len(rows) - accepted)

    def get_record(self, record_id: str) -> rec.Record | None:
        with self._lock:
            row = self._execute(
                self._sql("SELECT body FROM records WHERE id = ?"), (record_id,)
            ).fetchone()
        return None if row is None else rec.loads(row[0])

    @staticmethod
    def _where(
        kind: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        probe_id: str | None,
        country: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("kind", kind), ("probe_id", probe_id), ("country", country)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("started >= ?")
            args.append(ts(since))
        if until is not None:
            clauses.append("started < ?")
            args.append(ts(until))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def iter_records(
        self,
        *,
        kind: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        probe_id: str | None = None,
        country: str | None = None,
        limit: int | None = None,
    ) -> Iterator[rec.Record]:
        where, args = self._where(kind, since, until, probe_id, country)
        sql = f"SELECT body FROM records{where} ORDER BY started, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            bodies = [row[0] for row in self._execute(self._sql(sql), args).fetchall()]
        for body in bodies:
            yield rec.loads(body)

    def count_records(
        self,
        *,
        kind: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        probe_id: str | None = None,
        country: str | None = None,
    ) -> int:
        where, args = self._where(kind, since, until, probe_id, country)
        with self._lock:
            row = self._execute(self._sql(f"SELECT count(*) FROM records{where}"), args).fetchone()
        return int(row[0])

    # --- probes ------------------------------------------------------------------------------

    def add_probe(self, probe: ProbeRegistration) -> None:
        try:
            with self._transaction():
                self._execute(
                    self._sql(
                        "INSERT INTO probes (id, name, country, asn, token_hash, created, revoked) "
                        "VALUES (?, ?, ?, ?, ?, ?, NULL)"
                    ),
                    (
                        probe.id,
                        probe.name,
                        probe.country,
                        probe.asn,
                        probe.token_hash,
                        ts(probe.created or utc_now()),
                    ),
                )
        except self._integrity_errors() as exc:
            raise StoreError(f"probe {probe.id} cannot be added: {exc}") from None

    @staticmethod
    def _probe(row: Sequence[Any]) -> ProbeRegistration:
        return ProbeRegistration(
            id=row[0],
            name=row[1],
            country=row[2],
            asn=row[3],
            token_hash=row[4],
            created=from_ts(row[5]),
            revoked=from_ts(row[6]),
        )

    def probe_by_token_hash(self, token_hash: str) -> ProbeRegistration | None:
        with self._lock:
            row = self._execute(
                self._sql(f"SELECT {_PROBE_COLUMNS} FROM probes WHERE token_hash = ?"),
                (token_hash,),
            ).fetchone()
        return None if row is None else self._probe(row)

    def list_probes(self) -> list[ProbeRegistration]:
        with self._lock:
            rows = self._execute(
                f"SELECT {_PROBE_COLUMNS} FROM probes ORDER BY created, id"
            ).fetchall()
        return [self._probe(r) for r in rows]

    def revoke_probe(self, probe_id: str, *, when: dt.datetime | None = None) -> bool:
        with self._transaction():
            cur = self._execute(
                self._sql("UPDATE probes SET revoked = ? WHERE id = ? AND revoked IS NULL"),
                (ts(when or utc_now()), probe_id),
            )
            return bool(cur.rowcount > 0)

    # --- RIPE Atlas follow positions ---------------------------------------------------------

    def get_atlas_position(self, measurement: int) -> dt.datetime | None:
        with self._lock:
            row = self._execute(
                self._sql("SELECT position FROM atlas_positions WHERE measurement = ?"),
                (measurement,),
            ).fetchone()
        return None if row is None else from_ts(row[0])

    def set_atlas_position(self, measurement: int, position: dt.datetime) -> None:
        with self._transaction():
            self._execute(
                self._sql(
                    "INSERT INTO atlas_positions (measurement, position, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (measurement) DO UPDATE SET position = excluded.position, "
                    "updated = excluded.updated"
                ),
                (measurement, ts(position), ts(utc_now())),
            )

    # --- derived observations ----------------------------------------------------------------

    def add_source(self, kind: str, meta: Mapping[str, Any]) -> int:
        with self._transaction():
            row = self._execute(
                self._sql(
                    "INSERT INTO sources (kind, created, meta) VALUES (?, ?, ?) RETURNING id"
                ),
                (kind, ts(utc_now()), json.dumps(meta, sort_keys=True, default=str)),
            ).fetchone()
        return int(row[0])

    def get_source(self, source_id: int) -> Source | None:
        with self._lock:
            row = self._execute(
                self._sql("SELECT id, kind, created, meta FROM sources WHERE id = ?"), (source_id,)
            ).fetchone()
        if row is None:
            return None
        created = from_ts(row[2])
        assert created is not None
        return Source(id=row[0], kind=row[1], created=created, meta=json.loads(row[3]))

    def put_observations(self, source_id: int, observations: Iterable[Observation]) -> int:
        rows = [
            (
                source_id,
                ts(o.time),
                o.subject_kind,
                o.subject,
                o.metric,
                float(o.value),
                json.dumps(dict(o.labels), sort_keys=True),
            )
            for o in observations
        ]
        if rows:
            with self._transaction():
                self._executemany(
                    self._sql(
                        "INSERT INTO observations "
                        "(source_id, time, subject_kind, subject, metric, value, labels) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ),
                    rows,
                )
        return len(rows)

    def iter_observations(
        self,
        *,
        metric: str | None = None,
        subject_kind: str | None = None,
        subject: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Iterator[Observation]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("metric", metric),
            ("subject_kind", subject_kind),
            ("subject", subject),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("time >= ?")
            args.append(ts(since))
        if until is not None:
            clauses.append("time < ?")
            args.append(ts(until))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT time, subject_kind, subject, metric, value, labels FROM observations"
                    f"{where} ORDER BY time, id"
                ),
                args,
            ).fetchall()
        for row in rows:
            when = from_ts(row[0])
            assert when is not None
            yield Observation(
                time=when,
                subject_kind=row[1],
                subject=row[2],
                metric=row[3],
                value=row[4],
                labels=json.loads(row[5]),
            )
