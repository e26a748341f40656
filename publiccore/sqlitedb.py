"""SQLite as the probe spool and the embedded store both use it: WAL, one writer at a time.

``connect`` opens a file with the shared pragmas; ``transaction`` holds the caller's lock and one
transaction, committed on success and rolled back otherwise.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
from collections.abc import Iterator
from typing import Literal

BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's write lock


def connect(
    path: str | os.PathLike[str],
    *,
    synchronous: Literal["NORMAL", "FULL"],
    auto_vacuum: Literal["INCREMENTAL"] | None = None,
    foreign_keys: bool = False,
) -> sqlite3.Connection:
    """Open (creating it and its folder when absent) the SQLite file at ``path`` in WAL mode.

    The connection is in autocommit mode (``isolation_level=None``: transactions are explicit,
    see ``transaction``) and may be used from any thread under the caller's lock.
    ``auto_vacuum`` only takes effect on a new file. Raises OSError or sqlite3.Error.
    """
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if auto_vacuum is not None:
            db.execute(f"PRAGMA auto_vacuum={auto_vacuum}")  # before WAL and any table
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        if foreign_keys:
            db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error:
        db.close()
        raise
    return db


@contextlib.contextmanager
def transaction(
    db: sqlite3.Connection,
    lock: contextlib.AbstractContextManager[object],
    *,
    mode: Literal["IMMEDIATE", "DEFERRED"] = "IMMEDIATE",
) -> Iterator[None]:
    """Hold ``lock`` and one transaction on ``db``: commit on success, roll back otherwise.

    ``IMMEDIATE`` (a write) takes the database's write lock at the start, so it never fails
    half-way for another writer; ``DEFERRED`` suits a consistent read.
    """
    with lock:
        db.execute(f"BEGIN {mode}")
        committed = False
        try:
            yield
            db.execute("COMMIT")
            committed = True
        finally:
            if not committed:
                db.execute("ROLLBACK")
