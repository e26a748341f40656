"""The probe's durable local queue: one SQLite file in WAL mode.

Every record is committed here before anything is uploaded, and leaves only when the collector
has acknowledged it (``ack``) or when the size quota forces the oldest out (``add`` drops them and
counts them in ``dropped_total``; nothing is dropped silently). A ``kill -9`` at any moment loses
nothing already committed: SQLite's WAL with ``synchronous=FULL`` makes every commit durable.

Records the collector refuses for good (a validation refusal, another probe's id, a record too
large) are moved to a quarantine table (``quarantine``): kept on disk with the reason, counted,
shown by ``agent status``, and never uploaded again, so newer records do not wait behind them.
Their bytes count against the quota; past it the oldest quarantined records go first.

Counters kept in the same transactions as the rows they count, so that at every commit
``spooled_total == acked_total + dropped_total + depth + quarantined``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import pathlib
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from publiccore import sqlitedb
from publiccore.clock import utc_now
from publiccore.errors import PubliccoreError
from publiccore.records import Record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    spooled REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value
);
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    spooled REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    quarantined REAL NOT NULL,
    reason TEXT NOT NULL
);
"""
_COUNTERS = (
    "spooled_total",
    "acked_total",
    "dropped_total",
    "upload_successes_total",
    "upload_failures_total",
    "bytes",
    "quarantined_total",
)


class SpoolError(PubliccoreError):
    """The spool file cannot be opened or written."""


@dataclasses.dataclass(frozen=True, slots=True)
class SpooledRecord:
    """One record waiting for upload: its spool sequence number, id, kind and wire JSON."""

    seq: int
    id: str
    body: str
    kind: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool holds and how uploads went (``publiccore agent status``)."""

    depth: int
    bytes: int
    oldest_spooled: dt.datetime | None
    spooled_total: int
    acked_total: int
    dropped_total: int
    upload_successes_total: int
    upload_failures_total: int
    quota_bytes: int
    last_upload_success: dt.datetime | None = None
    last_upload_failure: dt.datetime | None = None
    last_failure_reason: str = ""
    quarantined: int = 0  # records refused for good, kept in the quarantine table
    quarantined_total: int = 0
    last_quarantine_reason: str = ""

    def to_json(self) -> dict[str, object]:
        """Return the stats as a JSON-ready dict (times as RFC 3339 text or null)."""
        out: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


def _ts(when: dt.datetime) -> float:
    return when.timestamp()


def _dt(value: object) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(float(value), dt.UTC)  # type: ignore[arg-type]


class Spool:
    """A bounded, durable FIFO of records; safe to share between threads."""

    def __init__(
        self, path: str | os.PathLike[str], *, quota_bytes: int = 100 * 1024 * 1024
    ) -> None:
        """Open (creating when absent) the spool at ``path``; raise SpoolError."""
        self.path = pathlib.Path(path)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        try:
            # auto_vacuum only takes effect on a new file: lets close() give freed pages back
            self._db = sqlitedb.connect(self.path, synchronous="FULL", auto_vacuum="INCREMENTAL")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                for key in _COUNTERS:
                    self._db.execute(
                        "INSERT OR IGNORE INTO state (key, value) VALUES (?, 0)", (key,)
                    )
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from None

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction under the lock: commit on success, roll back otherwise."""
        return sqlitedb.transaction(self._db, self._lock)

    def _bump(self, key: str, by: int) -> None:
        self._db.execute("UPDATE state SET value = value + ? WHERE key = ?", (by, key))

    def _set(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def _get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def add(self, records: Iterable[Record], *, now: dt.datetime | None = None) -> int:
        """Commit ``records`` (one transaction); past the quota drop the oldest and count them.

        Returns how many records were dropped to make room (0 normally). A record id already
        spooled is ignored.
        """
        when = _ts(now or utc_now())
        rows = []
        for record in records:
            body = record.dumps()
            rows.append((record.id, record.kind, when, len(body.encode("utf-8")), body))
        try:
            with self._transaction():
                added = 0
                added_bytes = 0
                for row in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO spool (id, kind, spooled, size, body) "
                        "VALUES (?, ?, ?, ?, ?)",
                        row,
                    )
                    if cur.rowcount > 0:
                        added += 1
                        added_bytes += row[3]
                self._bump("spooled_total", added)
                self._bump("bytes", added_bytes)
                dropped = self._enforce_quota()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        return dropped

    def _enforce_quota(self) -> int:
        """Inside a transaction: delete the oldest rows until the body bytes fit the quota.

        Quarantined records go first (they will never upload), then the oldest spooled ones.
        """
        total = int(self._get("bytes") or 0)
        if total <= self.quota_bytes:
            return 0
        excess = total - self.quota_bytes
        dropped = 0
        freed = 0
        for table in ("quarantine", "spool"):
            if freed >= excess:
                break
            cursor = self._db.execute(f"SELECT seq, size FROM {table} ORDER BY seq")
            doomed: list[tuple[int]] = []
            for seq, size in cursor:
                if freed >= excess:
                    break
                doomed.append((seq,))
                freed += size
                dropped += 1
            cursor.close()
            self._db.executemany(f"DELETE FROM {table} WHERE seq = ?", doomed)
        self._bump("dropped_total", dropped)
        self._bump("bytes", -freed)
        return dropped

    def quarantine(
        self, seqs: Iterable[int], *, reason: str, now: dt.datetime | None = None
    ) -> int:
        """Move records the collector refused for good out of the upload queue, with why.

        They stay on disk (``quarantined`` in ``stats``; ``quarantined_records``), are never
        peeked again, and count against the quota. Returns how many were moved.
        """
        when = _ts(now or utc_now())
        try:
            with self._transaction():
                moved = 0
                for seq in seqs:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO quarantine "
                        "(seq, id, kind, spooled, size, body, quarantined, reason) "
                        "SELECT seq, id, kind, spooled, size, body, ?, ? FROM spool WHERE seq = ?",
                        (when, reason[:500], seq),
                    )
                    self._db.execute("DELETE FROM spool WHERE seq = ?", (seq,))
                    moved += max(0, cur.rowcount)
                self._bump("quarantined_total", moved)
                self._set("last_quarantine_reason", reason[:500])
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        return moved

    def requeue(self) -> int:
        """Put every quarantined record back in the upload queue, where it was (e.g. once the
        collector was fixed); returns how many."""
        try:
            with self._transaction():
                moved = self._db.execute(
                    "INSERT OR IGNORE INTO spool (seq, id, kind, spooled, size, body) "
                    "SELECT seq, id, kind, spooled, size, body FROM quarantine"
                ).rowcount
                self._db.execute("DELETE FROM quarantine")
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        return max(0, moved)

    def quarantined_records(self, limit: int = 1000) -> list[tuple[SpooledRecord, str]]:
        """The quarantined records, oldest first, each with the collector's reason."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, body, kind, reason FROM quarantine ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [(SpooledRecord(seq=r[0], id=r[1], body=r[2], kind=r[3]), r[4]) for r in rows]

    def peek(self, limit: int) -> list[SpooledRecord]:
        """Return up to ``limit`` of the oldest records, oldest first (they stay spooled)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, body, kind FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledRecord(seq=r[0], id=r[1], body=r[2], kind=r[3]) for r in rows]

    def ack(self, seqs: Iterable[int], *, now: dt.datetime | None = None) -> int:
        """Remove records the collector acknowledged; note the successful upload. Returns count."""
        try:
            with self._transaction():
                removed = self._delete(seqs, counter="acked_total")
                self._bump("upload_successes_total", 1)
                self._set("last_upload_success", _ts(now or utc_now()))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        return removed

    def drop(self, seqs: Iterable[int], *, reason: str, now: dt.datetime | None = None) -> int:
        """Remove records the collector refused for good (counted as dropped, reason kept)."""
        try:
            with self._transaction():
                removed = self._delete(seqs, counter="dropped_total")
                self._set("last_drop_reason", reason[:500])
                self._set("last_drop", _ts(now or utc_now()))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        return removed

    def _delete(self, seqs: Iterable[int], *, counter: str) -> int:
        """Within a transaction: delete these records, add them to ``counter``; return count."""
        freed = 0
        removed = 0
        for seq in seqs:
            row = self._db.execute(
                "DELETE FROM spool WHERE seq = ? RETURNING size", (seq,)
            ).fetchone()
            if row is not None:
                removed += 1
                freed += row[0]
        self._bump(counter, removed)
        self._bump("bytes", -freed)
        return removed

    def note_failure(self, reason: str, *, now: dt.datetime | None = None) -> None:
        """Record that an upload failed, and why (a short text for ``agent status``)."""
        try:
            with self._transaction():
                self._bump("upload_failures_total", 1)
                self._set("last_upload_failure", _ts(now or utc_now()))
                self._set("last_failure_reason", reason[:500])
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None

    def stats(self) -> SpoolStats:
        """Return a consistent snapshot of the spool's contents and upload history."""
        try:
            with sqlitedb.transaction(self._db, self._lock, mode="DEFERRED"):
                depth, oldest = self._db.execute(
                    "SELECT count(*), min(spooled) FROM spool"
                ).fetchone()
                (quarantined,) = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
                state = dict(self._db.execute("SELECT key, value FROM state").fetchall())
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from None

        def count(key: str) -> int:
            return int(state.get(key) or 0)

        return SpoolStats(
            depth=int(depth),
            bytes=count("bytes"),
            oldest_spooled=_dt(oldest),
            spooled_total=count("spooled_total"),
            acked_total=count("acked_total"),
            dropped_total=count("dropped_total"),
            upload_successes_total=count("upload_successes_total"),
            upload_failures_total=count("upload_failures_total"),
            quota_bytes=self.quota_bytes,
            last_upload_success=_dt(state.get("last_upload_success")),
            last_upload_failure=_dt(state.get("last_upload_failure")),
            last_failure_reason=str(state.get("last_failure_reason") or ""),
            quarantined=int(quarantined),
            quarantined_total=count("quarantined_total"),
            last_quarantine_reason=str(state.get("last_quarantine_reason") or ""),
        )

    def ids(self) -> list[str]:
        """Return the ids of every spooled record, oldest first."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM spool ORDER BY seq")]

    def close(self) -> None:
        """Give freed pages back, checkpoint the WAL and close the file."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                # executescript steps the pragma to the end (execute frees a single page)
                self._db.executescript("PRAGMA incremental_vacuum;")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
