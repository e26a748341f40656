"""Root zones by serial and the RSSAC047 correctness verdict of every root-dns record.

``root_zones`` keeps every root zone the collector was given (``publiccore root zone import``,
or fetched), one row per SOA serial, its text zstd-compressed. ``root_correctness`` holds, per
root-dns record, how many of its correctness answers were judged and how many were correct
(``publiccore.collectors.derive.correctness`` judges a record once and writes its row; a
record whose answers could not be judged, for want of a zone, is judged again once a zone
arrives: ``zones_version`` is the newest zone import its verdict saw).

The mixin ``RootZoneTables`` is part of ``SqlStore`` (both dialects); the SQL is written once
with ``?`` placeholders.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

# The migration, both dialects: {real} float type, {bigint} integer type, {blob} bytes.
SCHEMA_ROOT_ZONES = """
    CREATE TABLE root_zones (
        serial {bigint} PRIMARY KEY,
        imported {real} NOT NULL,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size {bigint} NOT NULL,
        zone {blob} NOT NULL
    );
    CREATE TABLE root_correctness (
        record_id TEXT PRIMARY KEY,
        time {real} NOT NULL,
        country TEXT NOT NULL,
        letter TEXT NOT NULL,
        judged INTEGER NOT NULL,
        correct INTEGER NOT NULL,
        unjudged INTEGER NOT NULL,
        zones_version {real} NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX root_correctness_time ON root_correctness (time)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredZone:
    """One stored root zone (without its text)."""

    serial: int
    imported: float
    source: str
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class CorrectnessRow:
    """The verdict of one record: ``judged`` answers, ``correct`` of them, ``unjudged`` ones
    (answered, but no zone of the window was known), and why answers were incorrect."""

    record_id: str
    time: float
    country: str
    letter: str
    judged: int
    correct: int
    unjudged: int
    zones_version: float
    detail: str = ""


class RootZoneTables:
    """Root zones and correctness verdicts, for ``SqlStore`` (uses its dialect hooks)."""

    # provided by SqlStore
    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    _lock: Any

    # --- zones ---------------------------------------------------------------------------------

    def put_root_zone(
        self, *, serial: int, packed: bytes, source: str, sha256: str, size: int, imported: float
    ) -> bool:
        """Store a zone (``packed``: its zstd-compressed text) unless its serial is stored;
        True when it was new."""
        with self._transaction():
            cur = self._execute(
                self._sql(
                    "INSERT INTO root_zones (serial, imported, source, sha256, size, zone) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING"
                ),
                (serial, imported, source, sha256, size, packed),
            )
            return bool(cur.rowcount == 1)

    def root_zones(self) -> list[StoredZone]:
        """Every stored zone, by serial."""
        with self._lock:
            rows = self._execute(
                "SELECT serial, imported, source, sha256, size FROM root_zones ORDER BY serial"
            ).fetchall()
        return [StoredZone(int(r[0]), float(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]

    def get_root_zone(self, serial: int) -> bytes | None:
        """The packed (zstd) text of the zone of ``serial``, or None."""
        with self._lock:
            row = self._execute(
                self._sql("SELECT zone FROM root_zones WHERE serial = ?"), (serial,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def root_zones_version(self) -> float:
        """When the newest zone was stored (0 with none): a verdict older than this that left
        answers unjudged is due again."""
        with self._lock:
            row = self._execute("SELECT max(imported) FROM root_zones").fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    def serial_spans(self) -> list[tuple[int, float, float]]:
        """(serial, first seen, last seen) of every SOA serial a letter answered with, over
        every country and letter (``root_serials``)."""
        with self._lock:
            rows = self._execute(
                "SELECT serial, min(first_seen), max(last_seen) FROM root_serials "
                "GROUP BY serial ORDER BY serial"
            ).fetchall()
        return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]

    # --- verdicts ------------------------------------------------------------------------------

    def records_to_judge(
        self, *, since: float, until: float, zones_version: float, limit: int
    ) -> list[str]:
        """Ids of root-dns records started in [since, until) with no verdict yet, or whose
        verdict left answers unjudged before the zones of ``zones_version`` (oldest first)."""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT r.id FROM records r LEFT JOIN root_correctness c "
                    "ON c.record_id = r.id "
                    "WHERE r.kind = 'root-dns' AND r.started >= ? AND r.started < ? "
                    "AND (c.record_id IS NULL OR (c.unjudged > 0 AND c.zones_version < ?)) "
                    "ORDER BY r.started, r.id LIMIT ?"
                ),
                (since, until, zones_version, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def put_correctness(self, rows: Iterable[CorrectnessRow]) -> int:
        """Write (or replace) verdicts; return how many."""
        values = [
            (
                r.record_id,
                r.time,
                r.country,
                r.letter,
                r.judged,
                r.correct,
                r.unjudged,
                r.zones_version,
                r.detail,
            )
            for r in rows
        ]
        if values:
            with self._transaction():
                self._executemany(
                    self._sql(
                        "INSERT INTO root_correctness (record_id, time, country, letter, judged, "
                        "correct, unjudged, zones_version, detail) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_id) DO UPDATE SET "
                        "judged = excluded.judged, correct = excluded.correct, "
                        "unjudged = excluded.unjudged, zones_version = excluded.zones_version, "
                        "detail = excluded.detail"
                    ),
                    values,
                )
        return len(values)

    def clear_correctness(self, *, since: float, until: float) -> int:
        """Drop the verdicts of records started in [since, until) (to judge them again after
        a definition change); return how many."""
        with self._transaction():
            cur = self._execute(
                self._sql("DELETE FROM root_correctness WHERE time >= ? AND time < ?"),
                (since, until),
            )
            return int(cur.rowcount)

    def correctness_totals(self, *, since: float, until: float) -> list[tuple[str, str, int, int]]:
        """(country, letter, judged, correct) summed over verdicts of records started in
        [since, until), for records with at least one judged answer."""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT country, letter, sum(judged), sum(correct) FROM root_correctness "
                    "WHERE time >= ? AND time < ? AND judged > 0 "
                    "GROUP BY country, letter ORDER BY country, letter"
                ),
                (since, until),
            ).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def iter_correctness(self, *, since: float, until: float) -> Iterator[CorrectnessRow]:
        """Verdicts of records started in [since, until), by time."""
        with self._lock:
            rows = self._execute(
                self._sql(
                    "SELECT record_id, time, country, letter, judged, correct, unjudged, "
                    "zones_version, detail FROM root_correctness "
                    "WHERE time >= ? AND time < ? ORDER BY time, record_id"
                ),
                (since, until),
            ).fetchall()
        for r in rows:
            yield CorrectnessRow(
                record_id=str(r[0]),
                time=float(r[1]),
                country=str(r[2]),
                letter=str(r[3]),
                judged=int(r[4]),
                correct=int(r[5]),
                unjudged=int(r[6]),
                zones_version=float(r[7]),
                detail=str(r[8]),
            )
