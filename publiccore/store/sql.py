"""What the SQLite and PostgreSQL stores share: the queries, written once.

A dialect subclass supplies the connection, its transactions, its migrations and its
parameter style; statements here are written with ``?`` placeholders and rewritten once by
``_sql``. Schema versions: ``MIGRATIONS[n]`` takes version n to n+1; add at the end, never edit
an applied one.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Self

import numpy

from publiccore import records as rec
from publiccore.clock import utc_now
from publiccore.errors import StoreError
from publiccore.sites import SiteTable, load_sites
from publiccore.store import (
    ArchiveFileState,
    ArchiveSummary,
    FollowSchedule,
    Observation,
    ProbeRegistration,
    PutResult,
    Source,
    compact,
)
from publiccore.store import facts as factmod
from publiccore.store.zones import RootZoneTables

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

# BGP archive follower (publiccore bgp follow / backfill): one row per archive file, claimed
# atomically, finished in the same transaction as its source and observations; and per
# (source, collector, kind) the missing-file counter and how far the schedule was checked.
SCHEMA_BGP_FOLLOW = """
    CREATE TABLE bgp_archive_files (
        source TEXT NOT NULL,
        collector TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        file_time {real} NOT NULL,
        size {bigint},
        sha256 TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT NOT NULL DEFAULT '',
        lease_until {real},
        source_id {bigint},
        elements {bigint} NOT NULL DEFAULT 0,
        observations {bigint} NOT NULL DEFAULT 0,
        processed_at {real},
        PRIMARY KEY (source, collector, name)
    );
    CREATE INDEX bgp_archive_files_time ON bgp_archive_files (source, collector, file_time);
    CREATE TABLE bgp_follow_schedule (
        source TEXT NOT NULL,
        collector TEXT NOT NULL,
        kind TEXT NOT NULL,
        missing_total {bigint} NOT NULL DEFAULT 0,
        checked_until {real},
        PRIMARY KEY (source, collector, kind)
    )
"""

_ARCHIVE_COLUMNS = (
    "source, collector, name, kind, file_time, size, sha256, status, error, attempts, owner, "
    "lease_until, source_id, elements, observations, processed_at"
)


# The RIPE Atlas follower's position per measurement (collectors/atlas/api.py): the end of the
# last time window whose results are all stored. {real} as in SCHEMA_V1.
SCHEMA_ATLAS_POSITIONS = """
    CREATE TABLE atlas_positions (
        measurement {bigint} PRIMARY KEY,
        position {real} NOT NULL,
        updated {real} NOT NULL
    )
"""


_SHORT_LIST = 64  # characters: shorter integer lists are parsed by int() (numpy's call costs more)


def _int_list(text: str) -> Any:
    """The integers of a comma-separated text, as an int64 array (``.tolist()``, ``len``):
    numpy's C parser for long texts, a few times faster than int() per value."""
    if len(text) > _SHORT_LIST:
        return numpy.fromstring(text, dtype=numpy.int64, sep=",")
    try:
        return array.array("q", map(int, text.split(",")))
    except ValueError:
        raise StoreError(f"unreadable integer list {text!r}") from None


def ts(when: dt.datetime) -> float:
    return when.timestamp()


def from_ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


_PROBE_COLUMNS = "id, name, country, asn, token_hash, created, revoked"


class SqlStore(RootZoneTables):
    """The Store protocol over a DB-API connection shared between threads under one lock."""

    MIGRATIONS: tuple[str, ...] = ()
    PARAM = "?"
    LEAST, GREATEST = "min", "max"  # the dialect's two-argument minimum and maximum
    FOR_UPDATE = ""  # row lock clause of the dialect (PostgreSQL: " FOR UPDATE")
    REAL = "REAL"  # the dialect's float type (a bucket's)
    # the dialect's aggregate of a group's integers into one comma-separated text (``rtt_cells``:
    # the bins and the counts of a cell, in the same row order)
    INT_LIST = "group_concat({})"
    label = "store"
    ID_CHUNK = 500  # ids per "IN (...)" look-up

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sites: SiteTable | None = None

    @property
    def sites(self) -> SiteTable:
        """The site table facts are written with (the bundled one unless set)."""
        if self._sites is None:
            self._sites = load_sites()
        return self._sites

    @sites.setter
    def sites(self, table: SiteTable) -> None:
        self._sites = table

    # --- dialect hooks -------------------------------------------------------------------------

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _insert_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert record rows (none of them stored yet) inside the caller's transaction."""
        raise NotImplementedError

    def _get_version(self) -> int:
        raise NotImplementedError

    def _set_version(self, version: int) -> None:
        raise NotImplementedError

    def _integrity_errors(self) -> tuple[type[Exception], ...]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- schema ------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.PARAM == "?" else sql.replace("?", self.PARAM)

    @property
    def schema_target(self) -> int:
        return len(self.MIGRATIONS)

    def schema_version(self) -> int:
        with self._lock:
            return self._get_version()

    FACTS_SCHEMA = 2  # the migration that added the typed facts (rederived when upgrading)

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
        if 0 < version < self.FACTS_SCHEMA <= self.schema_target:
            self.rederive()  # a store from before parse-once: derive the facts of its records

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
        if not records:
            return PutResult(accepted=0, duplicates=0)
        with self._transaction():
            owners = self._owners([r.id for r in records])
            rows = []
            conflict_ids: list[str] = []
            answers: dict[str, bytes] = {}
            batch = factmod.FactBatch(sites=self.sites)
            for r, body in zip(records, bodies, strict=True):
                owner = owners.get(r.id)
                if owner is not None:
                    if owner != r.probe.id:  # another probe's id: a conflict, not a duplicate
                        conflict_ids.append(r.id)
                    continue
                owners[r.id] = r.probe.id
                packed = compact.pack(body, r.kind)
                answers.update(packed.answers)
                rows.append(
                    (
                        r.id,
                        r.kind,
                        r.probe.id,
                        r.probe.country,
                        r.probe.asn,
                        ts(r.started),
                        ts(r.finished),
                        now,
                        "",
                        packed.blob,
                    )
                )
                batch.add(r)
            if rows:
                self._put_answers(answers)
                self._insert_rows(rows)
                self._write_facts(batch)
        return PutResult(
            accepted=len(rows),
            duplicates=len(records) - len(rows) - len(conflict_ids),
            conflicts=len(conflict_ids),
            conflict_ids=tuple(conflict_ids),
        )

    def _owners(self, ids: Sequence[str]) -> dict[str, str]:
        """The probe id of each of ``ids`` already stored (absent ids are left out; inside the
        caller's transaction)."""
        owners: dict[str, str] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), self.ID_CHUNK):
            chunk = unique[start : start + self.ID_CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = self._sql(f"SELECT id, probe_id FROM records WHERE id IN ({marks})")
            owners.update(self._execute(sql, chunk).fetchall())
        return owners

    def _put_answers(self, answers: Mapping[str, bytes]) -> None:
        """Store the wire answers not stored yet (inside the caller's transaction)."""
        if answers:
            self._executemany(
                self._sql(
                    "INSERT INTO wire_answers (hash, blob) VALUES (?, ?) "
                    "ON CONFLICT (hash) DO NOTHING"
                ),
                list(answers.items()),
            )

    def _bodies(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        """The canonical JSON of stored (body, packed) rows: packed ones unpacked with their
        wire answers (looked up once per distinct answer of the rows)."""
        refs = {
            ref
            for body, packed in rows
            if packed is not None
            for ref in compact.answer_refs(packed)
        }
        answers: dict[str, bytes] = {}
        ordered = sorted(refs)
        for start in range(0, len(ordered), self.ID_CHUNK):
            chunk = ordered[start : start + self.ID_CHUNK]
            marks = ", ".join("?" * len(chunk))
            with self._lock:
                found = self._execute(
                    self._sql(f"SELECT hash, blob FROM wire_answers WHERE hash IN ({marks})"), chunk
                ).fetchall()
            answers.update((h, bytes(b)) for h, b in found)
        return [
            body if packed is None else compact.unpack(bytes(packed), answers)
            for body, packed in rows
        ]

    def get_body(self, record_id: str) -> str | None:
        """The stored record's canonical JSON, byte for byte as it was written, or None."""
        with self._lock:
            row = self._execute(
                self._sql("SELECT body, packed FROM records WHERE id = ?"), (record_id,)
            ).fetchone()
        return None if row is None else self._bodies([row])[0]

    def _write_facts(self, batch: factmod.FactBatch) -> None:
        """Add a batch's typed rows and bucket sums (inside the caller's transaction)."""
        for statement, rows in factmod.upserts(batch, least=self.LEAST, greatest=self.GREATEST):
            self._upsert_many(self._sql(statement), rows)

    def _upsert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a one-row ``INSERT … VALUES (…)`` statement (with its ``ON CONFLICT`` clause) for
        each of ``rows``, in order (a dialect may send several rows per statement)."""
        self._executemany(sql, rows)

    # --- derived facts (parse once) ----------------------------------------------------------

    def fact_rows(
        self,
        table: str,
        *,
        since: float | None = None,
        until: float | None = None,
        country: str | None = None,
        asns: Collection[int] | None = None,
        without_round: bool = False,
        buckets: Sequence[float] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of one facts table (``facts.AGG_TABLES``) with ``since`` ≤ bucket < ``until``
        (``root_serials``: every row; ``root_queries``: by ``time``, and with
        ``without_round`` only the rows of schema 1 records), optionally of one country; with
        ``buckets`` (a bucket table, one country, both bounds) the rows of those buckets only
        (a country's buckets with records, read once from ``agg_root_records``)."""
        if table not in factmod.AGG_TABLES:
            raise ValueError(f"not a facts table: {table}")
        column = "time" if table == "root_queries" else "bucket"
        clauses, args = [], []
        if table != "root_serials":
            if since is not None:
                clauses.append(f"{column} >= ?")
                args.append(since)
            if until is not None:
                clauses.append(f"{column} < ?")
                args.append(until)
        if country is not None:
            clauses.append("country = ?")
            args.append(country)
        if asns is not None:
            chosen = sorted(set(asns))
            clauses.append(f"asn IN ({', '.join('?' * len(chosen))})")
            args.extend(chosen)
        if without_round and table == "root_queries":
            clauses.append("round IS NULL")
        if (
            country is not None
            and table.startswith("agg_root_")
            and since is not None
            and until is not None
        ):
            # the bounds are the first two clauses; the rest (country, ASNs) follow
            if buckets is not None:
                return self._listed_bucket_rows(
                    table,
                    [b for b in buckets if since <= b < until],
                    clauses=clauses[2:],
                    args=args[2:],
                )
            return self._country_bucket_rows(
                table, since=since, until=until, clauses=clauses[2:], args=args[2:]
            )
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:  # both drivers give rows as tuples
            return list(self._execute(self._sql(f"SELECT * FROM {table}{where}"), args))

    def _country_bucket_rows(
        self, table: str, *, since: float, until: float, clauses: list[str], args: list[Any]
    ) -> list[tuple[Any, ...]]:
        """``fact_rows`` of buckets [since, until) matching ``clauses`` (one country's, some
        ASNs'): the buckets' primary keys lead with (bucket, country), so rows are sought
        bucket by bucket along the bucket grid instead of scanning every country's rows of the
        range and keeping one country's (fifty times fewer rows read with fifty countries)."""
        step = float(factmod.BUCKET_SECONDS)
        first = math.ceil(since / step) * step
        if first >= until:
            return []
        sql = (
            f"WITH RECURSIVE grid(b) AS (SELECT CAST(? AS {self.REAL}) UNION ALL "
            f"SELECT b + {step} FROM grid WHERE b + {step} < ?) "
            f"SELECT t.* FROM grid CROSS JOIN {table} t WHERE t.bucket = grid.b AND "
            + " AND ".join(f"t.{c}" for c in clauses)
        )
        with self._lock:
            return list(self._execute(self._sql(sql), [first, until, *args]))

    def _listed_bucket_rows(
        self, table: str, buckets: Sequence[float], *, clauses: list[str], args: list[Any]
    ) -> list[tuple[Any, ...]]:
        """``fact_rows`` of the listed buckets matching ``clauses``, sought bucket by bucket
        (``ID_CHUNK`` buckets per statement), in bucket order."""
        out: list[tuple[Any, ...]] = []
        where = " AND ".join(clauses)
        ordered = sorted(set(buckets))
        with self._lock:
            for at in range(0, len(ordered), self.ID_CHUNK):
                chunk = ordered[at : at + self.ID_CHUNK]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT * FROM {table} WHERE bucket IN ({marks}) AND {where}"
                out.extend(self._execute(self._sql(sql), [*chunk, *args]))
        return out

    def bucket_versions(self, *, since: float, until: float) -> dict[float, int]:
        """Per bucket in [since, until), the count of root-dns records with facts in it."""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT bucket, SUM(n) FROM agg_root_records "
                    "WHERE bucket >= ? AND bucket < ? GROUP BY bucket"
                ),
                [since, until],
            )
            return {float(b): int(n) for b, n in rows}

    def rtt_cells(self, *, since: float, until: float) -> list[tuple[Any, ...]]:
        """Per bucket in [since, until) and cell of ``agg_root_rtt_all``: (bucket, country,
        source, letter, family, transport, bins, counts), the cell's bin rows folded into one
        row by the database (a bucket's ~100,000 bin rows come out as a few thousand);
        ``bins`` and ``counts`` are int64 arrays of one length, pairwise (``.tolist()``).

        Raises StoreError if the database's lists do not parse as two of one length."""
        values = ", ".join(self.INT_LIST.format(c) for c in ("bin", "n"))
        sql = self._sql(
            "SELECT bucket, country, source, letter, family, transport, "
            f"{values} FROM agg_root_rtt_all WHERE bucket >= ? AND bucket < ? "
            "GROUP BY bucket, country, source, letter, family, transport"
        )
        with self._lock:
            rows = self._execute(sql, [since, until]).fetchall()
        out = []
        for *cell, bins_text, counts_text in rows:
            bins, counts = _int_list(bins_text), _int_list(counts_text)
            if len(bins) != len(counts) or len(bins) != bins_text.count(",") + 1:
                raise StoreError(f"unreadable RTT bins of {tuple(cell)}")
            out.append((*cell, bins, counts))
        return out

    def serial_transitions(
        self, *, since: float, until: float, country: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Where each probe × letter's lowest serial per interval changes (RSSAC047 §5.4; see
        ``Store.serial_transitions``): one scan in the database, few rows out."""
        where, args = "bucket >= ? AND bucket < ?", [since, until]
        if country is not None:
            where += " AND country = ?"
            args.append(country)
        window = "OVER (PARTITION BY probe_id, letter ORDER BY bucket)"
        sql = (
            "SELECT probe_id, letter, country, bucket, serial, previous FROM ("
            f"SELECT probe_id, letter, country, bucket, serial, LAG(bucket) {window} AS previous, "
            f"LAG(serial) {window} AS previous_serial FROM root_interval_serials WHERE {where}"
            ") AS rows WHERE previous_serial IS NULL OR serial <> previous_serial "
            "ORDER BY probe_id, letter, bucket"
        )
        with self._lock:
            return [tuple(r) for r in self._execute(self._sql(sql), args)]

    def active_probes(self, *, since: float, until: float) -> list[tuple[str, str]]:
        """Distinct (country, probe id) with a root-dns record in buckets [since, until)."""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT DISTINCT country, probe_id FROM agg_root_probes "
                    "WHERE bucket >= ? AND bucket < ?"
                ),
                (since, until),
            ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def rederive(self, *, chunk: int = 2000) -> int:
        """Rebuild every typed row and bucket from the raw records; return the records read.

        Run after a definition change (or a new site table). One transaction: readers see the
        old facts or the new ones, never a mix.
        """
        count = 0
        with self._transaction():
            for table in factmod.AGG_TABLES:
                self._execute(f"DELETE FROM {table}")
            for records in self._record_chunks(kind="root-dns", chunk=chunk):
                batch = factmod.FactBatch(sites=self.sites)
                batch.extend(records)
                self._write_facts(batch)
                count += len(records)
            # a new facts generation: derivers holding running sums start again from the facts
            self._execute(
                self._sql(
                    "INSERT INTO derived_snapshots (name, computed_at, body) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET computed_at = excluded.computed_at, "
                    "body = excluded.body"
                ),
                (factmod.GENERATION, time.time(), uuid.uuid4().hex),
            )
        return count

    def _record_chunks(self, *, kind: str, chunk: int) -> Iterator[list[rec.Record]]:
        """Every record of ``kind`` by (started, id), ``chunk`` at a time."""
        where, args = self._where(kind, None, None, None, None)
        yield from self._record_pages(where, args, page=chunk, limit=None)

    def _record_pages(
        self, where: str, args: list[Any], *, page: int, limit: int | None
    ) -> Iterator[list[rec.Record]]:
        """The records ``where`` selects, by (started, id), a page at a time: keyset paging, so
        memory stays bounded whatever the store holds (at most ``limit`` records)."""
        last: tuple[float, str] | None = None
        left = limit
        while left is None or left > 0:
            clause, page_args = where, list(args)
            if last is not None:
                clause += (" AND " if clause else " WHERE ") + (
                    "(started > ? OR (started = ? AND id > ?))"
                )
                page_args += [last[0], last[0], last[1]]
            size = page if left is None else min(page, left)
            sql = (
                f"SELECT started, id, body, packed FROM records{clause} "
                "ORDER BY started, id LIMIT ?"
            )
            with self._lock:
                rows = self._execute(self._sql(sql), [*page_args, size]).fetchall()
            if rows:
                yield [rec.loads(b) for b in self._bodies([(r[2], r[3]) for r in rows])]
            if len(rows) < size:
                return
            last = (rows[-1][0], rows[-1][1])
            if left is not None:
                left -= len(rows)

    def get_record(self, record_id: str) -> rec.Record | None:
        body = self.get_body(record_id)
        return None if body is None else rec.loads(body)

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
        for records in self._record_pages(where, args, page=1000, limit=limit):
            yield from records

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

    def newest_started(self, kind: str, *, until: dt.datetime) -> dt.datetime | None:
        """Start time of the newest record of ``kind`` that started before ``until`` (indexed)."""
        with self._lock:
            row = self._execute(
                self._sql("SELECT max(started) FROM records WHERE kind = ? AND started < ?"),
                (kind, ts(until)),
            ).fetchone()
        return from_ts(row[0]) if row and row[0] is not None else None

    # --- the deriver: one per deployment, its output shared by every HTTP worker -------------

    def claim_lease(self, name: str, *, owner: str, now: float, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``now + seconds``; False while
        another owner holds an unexpired one."""
        with self._transaction():
            row = self._execute(
                self._sql("SELECT owner, expires FROM leases WHERE name = ?"), (name,)
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            self._execute(
                self._sql(
                    "INSERT INTO leases (name, owner, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "expires = excluded.expires"
                ),
                (name, owner, now + seconds),
            )
        return True

    def put_snapshot(self, name: str, *, computed_at: float, body: str) -> None:
        """Store the newest derived snapshot ``name`` (replacing the previous one)."""
        with self._transaction():
            self._execute(
                self._sql(
                    "INSERT INTO derived_snapshots (name, computed_at, body) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET computed_at = excluded.computed_at, "
                    "body = excluded.body"
                ),
                (name, computed_at, body),
            )

    def snapshot_time(self, name: str) -> float | None:
        """When the stored snapshot ``name`` was computed, or None (a cheap look-up)."""
        with self._lock:
            row = self._execute(
                self._sql("SELECT computed_at FROM derived_snapshots WHERE name = ?"), (name,)
            ).fetchone()
        return None if row is None else float(row[0])

    def get_snapshot(self, name: str) -> tuple[float, str] | None:
        """(computed_at, body) of the stored snapshot ``name``, or None."""
        with self._lock:
            row = self._execute(
                self._sql("SELECT computed_at, body FROM derived_snapshots WHERE name = ?"),
                (name,),
            ).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

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
            return self._insert_source(kind, meta)

    def _insert_source(self, kind: str, meta: Mapping[str, Any]) -> int:
        """Insert a source row inside the caller's transaction; return its id."""
        row = self._execute(
            self._sql("INSERT INTO sources (kind, created, meta) VALUES (?, ?, ?) RETURNING id"),
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
        with self._transaction():
            return self._insert_observations(source_id, observations)

    def _insert_observations(self, source_id: int, observations: Iterable[Observation]) -> int:
        """Insert observation rows inside the caller's transaction; return how many."""
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

    # --- BGP archive files (follow / backfill) ---------------------------------------------

    @staticmethod
    def _archive_state(row: Sequence[Any]) -> ArchiveFileState:
        return ArchiveFileState(
            source=row[0],
            collector=row[1],
            name=row[2],
            kind=row[3],
            file_time=float(row[4]),
            size=None if row[5] is None else int(row[5]),
            sha256=row[6],
            status=row[7],
            error=row[8],
            attempts=int(row[9]),
            owner=row[10],
            lease_until=None if row[11] is None else float(row[11]),
            source_id=None if row[12] is None else int(row[12]),
            elements=int(row[13]),
            observations=int(row[14]),
            processed_at=None if row[15] is None else float(row[15]),
        )

    def claim_archive_file(
        self,
        *,
        source: str,
        collector: str,
        name: str,
        kind: str,
        file_time: float,
        size: int | None,
        owner: str,
        lease_until: float,
        max_attempts: int,
        now: float,
        stale: Callable[[str], bool] | None = None,
    ) -> bool:
        """Take a file for processing, atomically; True when this owner now holds it.

        A file is taken when it is new, failed fewer than ``max_attempts`` times, or claimed
        by an owner whose lease ran out or that ``stale`` says is gone (a dead process). A
        done or refused file is never taken again.
        """
        with self._transaction():
            cur = self._execute(
                self._sql(
                    f"INSERT INTO bgp_archive_files ({_ARCHIVE_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, '', 'claimed', '', 0, ?, ?, NULL, 0, 0, NULL) "
                    "ON CONFLICT (source, collector, name) DO NOTHING"
                ),
                (source, collector, name, kind, file_time, size, owner, lease_until),
            )
            if cur.rowcount == 1:
                return True
            row = self._execute(
                self._sql(
                    "SELECT status, owner, lease_until, attempts FROM bgp_archive_files "
                    f"WHERE source = ? AND collector = ? AND name = ?{self.FOR_UPDATE}"
                ),
                (source, collector, name),
            ).fetchone()
            status, holder, lease, attempts = row
            if status in ("done", "refused"):
                return False
            if status == "failed" and attempts >= max_attempts:
                return False
            if (
                status == "claimed"
                and holder != owner
                and (lease or 0) > now
                and not (stale is not None and stale(holder))
            ):
                return False
            self._execute(
                self._sql(
                    "UPDATE bgp_archive_files SET status = 'claimed', owner = ?, lease_until = ?, "
                    "size = COALESCE(?, size) WHERE source = ? AND collector = ? AND name = ?"
                ),
                (owner, lease_until, size, source, collector, name),
            )
            return True

    def renew_archive_claims(self, owner: str, lease_until: float) -> int:
        """Extend every claim ``owner`` holds; return how many."""
        with self._transaction():
            cur = self._execute(
                self._sql(
                    "UPDATE bgp_archive_files SET lease_until = ? "
                    "WHERE owner = ? AND status = 'claimed'"
                ),
                (lease_until, owner),
            )
            return int(cur.rowcount)

    def finish_archive_file(
        self,
        *,
        source: str,
        collector: str,
        name: str,
        owner: str,
        status: str,
        now: float,
        sha256: str = "",
        size: int | None = None,
        error: str = "",
        elements: int = 0,
        source_kind: str = "",
        meta: Mapping[str, Any] | None = None,
        observations: Iterable[Observation] = (),
    ) -> bool:
        """End a claim: ``done`` (with its source and observations), ``refused`` or ``failed``.

        One transaction: the observations are stored if and only if the file's row says done.
        Returns False (and changes nothing) when ``owner`` no longer holds the claim.
        """
        if status not in ("done", "refused", "failed"):
            raise ValueError(f"unknown file status {status!r}")
        with self._transaction():
            row = self._execute(
                self._sql(
                    "SELECT status, owner FROM bgp_archive_files "
                    f"WHERE source = ? AND collector = ? AND name = ?{self.FOR_UPDATE}"
                ),
                (source, collector, name),
            ).fetchone()
            if row is None or row[0] != "claimed" or row[1] != owner:
                return False
            source_id = None
            stored = 0
            if status == "done" and meta is not None:
                source_id = self._insert_source(source_kind, meta)
                stored = self._insert_observations(source_id, observations)
            self._execute(
                self._sql(
                    "UPDATE bgp_archive_files SET status = ?, owner = '', lease_until = NULL, "
                    "sha256 = ?, size = COALESCE(?, size), error = ?, elements = ?, "
                    "observations = ?, source_id = ?, processed_at = ?, "
                    "attempts = attempts + ? WHERE source = ? AND collector = ? AND name = ?"
                ),
                (
                    status,
                    sha256,
                    size,
                    error,
                    elements,
                    stored,
                    source_id,
                    now,
                    1 if status == "failed" else 0,
                    source,
                    collector,
                    name,
                ),
            )
            return True

    def archive_files(
        self,
        *,
        source: str | None = None,
        collector: str | None = None,
        status: str | None = None,
    ) -> list[ArchiveFileState]:
        """File rows, oldest file first (then by name)."""
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("source", source), ("collector", collector), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            rows = self._execute(
                self._sql(
                    f"SELECT {_ARCHIVE_COLUMNS} FROM bgp_archive_files{where} "
                    "ORDER BY file_time, name"
                ),
                args,
            ).fetchall()
        return [self._archive_state(r) for r in rows]

    def archive_summary(self) -> list[ArchiveSummary]:
        """Per source, collector and status: files, attempts, and the newest file."""
        with self._lock:
            rows = self._execute(
                "SELECT source, collector, status, count(*), sum(attempts), max(file_time), "
                "(SELECT b.name FROM bgp_archive_files b WHERE b.source = a.source "
                "AND b.collector = a.collector AND b.status = a.status "
                "ORDER BY b.file_time DESC, b.name DESC LIMIT 1) "
                "FROM bgp_archive_files a GROUP BY source, collector, status "
                "ORDER BY source, collector, status"
            ).fetchall()
        return [
            ArchiveSummary(
                source=r[0],
                collector=r[1],
                status=r[2],
                files=int(r[3]),
                attempts=int(r[4] or 0),
                newest_time=float(r[5]),
                newest_name=r[6],
            )
            for r in rows
        ]

    def add_missing_files(
        self,
        *,
        source: str,
        collector: str,
        kind: str,
        missing: int,
        checked_until: float,
        previous: float | None = None,
    ) -> bool:
        """Add ``missing`` to a collector's missing-file counter and note how far it was checked,
        if it was still checked up to ``previous`` (None: never); False when another process
        counted first (nothing changed, so no slot is counted twice)."""
        with self._transaction():
            row = self._execute(
                self._sql(
                    "SELECT checked_until FROM bgp_follow_schedule "
                    f"WHERE source = ? AND collector = ? AND kind = ?{self.FOR_UPDATE}"
                ),
                (source, collector, kind),
            ).fetchone()
            if (row[0] if row is not None else None) != previous:
                return False
            self._execute(
                self._sql(
                    "INSERT INTO bgp_follow_schedule "
                    "(source, collector, kind, missing_total, checked_until) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (source, collector, kind) DO UPDATE SET "
                    "missing_total = bgp_follow_schedule.missing_total + excluded.missing_total, "
                    "checked_until = excluded.checked_until"
                ),
                (source, collector, kind, missing, checked_until),
            )
            return True

    def follow_schedules(self) -> list[FollowSchedule]:
        """Missing-file counters and schedule checks, per source, collector and kind."""
        with self._lock:
            rows = self._execute(
                "SELECT source, collector, kind, missing_total, checked_until "
                "FROM bgp_follow_schedule ORDER BY source, collector, kind"
            ).fetchall()
        return [
            FollowSchedule(
                source=r[0],
                collector=r[1],
                kind=r[2],
                missing_total=int(r[3]),
                checked_until=None if r[4] is None else float(r[4]),
            )
            for r in rows
        ]
