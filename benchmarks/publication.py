"""RSSAC047 publication latency (collectors.derive.publication) at scale.

    python benchmarks/publication.py [--probes 20,200,1000] [--hours 48]

For each fleet size, a fresh SQLite store gets the facts of ``--hours`` of five-minute intervals
(every probe × 13 letters, a new serial every 12 h, each letter seeing it 0–60 minutes late),
written straight into ``root_interval_serials`` and ``root_serial_first`` (the tables the write path
fills; what is measured is the read side). Printed per size: the rows, the seconds of one live
computation (``publication.measure`` over the whole period), the seconds of reading the same
rows with a bare ``SELECT *`` in the same store, and their ratio (the computation's cost on top
of the read).
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sqlite3
import tempfile
import time

from publiccore.collectors.derive import publication

from publiccore.store.sqlite import SqliteStore

LETTERS = "abcdefghijklm"
START = 1_795_000_200.0  # on the 5-minute grid
CHANGE_SECONDS = 12 * 3600


def fill(path: pathlib.Path, *, probes: int, hours: int) -> int:
    """Write the facts; return the interval rows."""
    SqliteStore(path).close()  # the schema
    rng = random.Random(7)
    intervals = hours * 12
    changes = [START + k * CHANGE_SECONDS + 10 for k in range(hours * 3600 // CHANGE_SECONDS + 1)]
    delays = {
        (k, letter): rng.randrange(0, 13) * 300 for k in range(len(changes)) for letter in LETTERS
    }
    rows = []
    for p in range(probes):
        for letter in LETTERS:
            for i in range(intervals):
                t = START + i * 300
                serial = 2026000000
                for k, c in enumerate(changes):
                    if t >= c - 10 + delays[(k, letter)]:
                        serial = 2026000001 + k
                rows.append((t, f"p{p}", letter, "NL", serial))
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO root_interval_serials VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO root_serial_first VALUES (2026000000, ?)", (START - 600,))
        db.executemany(
            "INSERT INTO root_serial_first VALUES (?, ?)",
            [(2026000001 + k, c) for k, c in enumerate(changes)],
        )
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", default="20,200,1000")
    parser.add_argument("--hours", type=int, default=48)
    args = parser.parse_args()
    print("probes  rows        measure_s  select_s  ratio  measurements")
    for probes in (int(p) for p in args.probes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "s.sqlite"
            rows = fill(path, probes=probes, hours=args.hours)
            end = START + args.hours * 3600
            with SqliteStore(path) as store:
                began = time.perf_counter()
                result = publication.measure(store, since=START, until=end, horizon=end)
                measured = time.perf_counter() - began
            with sqlite3.connect(path) as db:
                began = time.perf_counter()
                fetched = db.execute("SELECT * FROM root_interval_serials").fetchall()
                selected = time.perf_counter() - began
            assert len(fetched) == rows
            print(
                f"{probes:<7} {rows:<11} {measured:<10.2f} {selected:<9.2f} "
                f"{measured / selected:<6.1f} {len(result.measurements)}"
            )


if __name__ == "__main__":
    main()
