"""The derive stage at scale: ingest with typed rows, window refresh, report, history export.

    python benchmarks/derive.py [--sizes 10k,100k,1M] [--window-sizes 10k,1M]

For each size, a fresh SQLite store is filled through the real write path (``put_records``, in
batches of 500) with root-dns records of 50 countries spread over 30 days (probes: size / 1000,
between 100 and 10,000; each round covers 13 letters × 2 families). Printed per size:

- ingest: records/s with the typed rows and buckets, next to a raw batched insert of the same
  rows into the records table alone (plain sqlite3, same batches; what the store did before
  parse-once), and their ratio over the same first slices (target ≥ 0.5; the raw baseline runs
  on the first million records only);
- refresh: seconds of one live-window refresh (``Aggregator.refresh``) at the end of the period;
- report: seconds of a 30-day report build (``exporters.report.build``, one country);
- export: seconds of a 1-day OpenMetrics history (5-minute steps, every country);
- peak RSS of the process that measured that size (fill and measurement run in processes of
  their own): after the refresh and the report ("report RSS", the target's figure), and after
  the export too ("peak RSS"); store bytes per record.

Then the window scaling: stores whose last 15 minutes hold ``--window-sizes`` records (and the
same history behind them). The live window moves incrementally (``derive.state.LiveWindow``):
printed are the refresh a minute after the previous one, when the last minute's records have
arrived (one bucket in, one out, one re-read in rotation: what ``/metrics`` costs every 30 s),
and the first refresh of a deriver that starts (the whole window read once), with the ratio of
the largest to the smallest window (target: refresh ≤ 1 s with 1M records in the window), and
the peak RSS of the process that measured them (and filled the store, unless it was kept).
Sizes take suffixes k and M; 10M is accepted (its fill takes about an hour here). With
``--keep DIR`` the filled stores stay in DIR, and a later run measures them again without
refilling (ingest figures are then those of the fill).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import io
import multiprocessing
import os
import pathlib
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator

import pycountry
from publiccore.collectors.aggregate import Aggregator
from publiccore.exporters import openmetrics, report

from publiccore import records as rec
from publiccore.config import AggregateSettings
from publiccore.store.sqlite import SqliteStore

DAYS = 30
COUNTRIES = [c.alpha_2 for c in list(pycountry.countries)[:50]]
LETTERS = "abcdefghijklm"
BATCH = 500
END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
WIRE = "q80EAAABAAEAAAABAAAGAAEAAAYAAQABUYAAQAFhBHJvb3Qtc2VydmVycwNuZXQABW5zdGxkDHZlcmlzaWdu"


def parse_size(text: str) -> int:
    text = text.strip()
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("kM")) * scale)


def _templates() -> dict[tuple[str, str], rec.Record]:
    """One record per letter × family; the fill varies id, probe, time and RTT."""
    out = {}
    for letter in LETTERS:
        for family in ("ipv4", "ipv6"):
            queries = tuple(
                rec.DnsQuery(
                    qname=".",
                    qclass="IN",
                    qtype="SOA",
                    transport=t,  # type: ignore[arg-type]
                    rcode="NOERROR",
                    aa=True,
                    tc=False,
                    rtt_seconds=0.02,
                    serial=2026113000,
                    nsid_text=f"{letter}1.ams",
                    size_bytes=512,
                    wire_b64=WIRE,
                )
                for t in ("udp", "tcp")
            )
            out[(letter, family)] = rec.make_record(
                kind="root-dns",
                probe=rec.ProbeRef(id="x"),
                target=rec.RootTarget(
                    letter=letter,
                    name=f"{letter}.root-servers.net.",
                    address="192.0.2.1" if family == "ipv4" else "2001:db8::1",
                    family=family,  # type: ignore[arg-type]
                ),
                result=rec.RootResult(
                    queries=queries,
                    identity=rec.SiteIdentity(nsid=f"{letter}1.ams"),
                    integrity=rec.Integrity(outcome="iana"),
                ),
                started=END,
                finished=END,
            )
    return out


def generate(
    count: int, *, since: dt.datetime, until: dt.datetime, probes: int, seed: int
) -> Iterator[list[rec.Record]]:
    """``count`` records in batches, rounds of 26 records per probe, times in [since, until)."""
    rng = random.Random(seed)
    templates = _templates()
    refs = [
        rec.ProbeRef(
            id=f"p{i}", asn=64512 + i % max(1, probes // 3), country=COUNTRIES[i % len(COUNTRIES)]
        )
        for i in range(probes)
    ]
    span = (until - since).total_seconds()
    rounds = max(1, count // (len(LETTERS) * 2))
    batch: list[rec.Record] = []
    made = 0
    for n in range(rounds):
        probe = refs[n % probes]
        started = since + dt.timedelta(seconds=span * n / rounds)
        round_id = f"r{seed}-{n}"
        for template in templates.values():
            if made >= count:
                break
            rtt = rng.uniform(0.005, 0.2)
            soa = tuple(
                dataclasses.replace(q, rtt_seconds=round(rtt, 6)) for q in template.result.queries
            )  # type: ignore[union-attr]
            batch.append(
                dataclasses.replace(
                    template,
                    id=rec.uuid7(int(started.timestamp() * 1e9) + made),
                    probe=probe,
                    started=started,
                    finished=started,
                    round=round_id,
                    result=dataclasses.replace(template.result, queries=soa),  # type: ignore[arg-type]
                )
            )
            made += 1
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _rows(batch: list[rec.Record], received: float) -> list[tuple[object, ...]]:
    return [
        (
            r.id,
            r.kind,
            r.probe.id,
            r.probe.country,
            r.probe.asn,
            r.started.timestamp(),
            r.finished.timestamp(),
            received,
            r.dumps(),
        )
        for r in batch
    ]


def fill(
    path: pathlib.Path, batches: list[list[rec.Record]], *, baseline: bool = True
) -> tuple[float, float | None]:
    """(seconds through ``put_records``, seconds of the raw baseline or None) for the batches."""
    with SqliteStore(path) as store:
        t0 = time.perf_counter()
        for batch in batches:
            store.put_records(batch)
        ingest = time.perf_counter() - t0
    if not baseline:
        return ingest, None
    raw_path = path.with_suffix(".raw.sqlite")
    SqliteStore(raw_path).close()
    db = sqlite3.connect(raw_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    received = time.time()
    for batch in batches:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR IGNORE INTO records (id, kind, probe_id, country, asn, started, "
            "finished, received, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows(batch, received),  # serialising, as put_records does
        )
        db.execute("COMMIT")
    raw = time.perf_counter() - t0
    db.close()
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(str(raw_path) + suffix).unlink(missing_ok=True)
    return ingest, raw


def _store_bytes(path: pathlib.Path) -> int:
    return sum(
        pathlib.Path(str(path) + s).stat().st_size
        for s in ("", "-wal")
        if pathlib.Path(str(path) + s).exists()
    )


BASELINE_RECORDS = 1_000_000  # the raw baseline runs on the first slices up to this many records


def fill_size(size: int, directory: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Fill the store of ``size`` records unless a kept one is there; figures go to ``out``."""
    path = pathlib.Path(directory) / f"store-{size}.sqlite"
    done = path.with_suffix(".filled")  # a kept store (--keep) is measured again, not refilled
    probes = min(10_000, max(100, size // 1000))
    since = END - dt.timedelta(days=DAYS)
    if done.exists():
        ingest, paired, raw, raw_n = (float(v) for v in done.read_text().split())
    else:
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(str(path) + suffix).unlink(missing_ok=True)
        ingest = paired = raw = raw_n = 0.0
        # Fill in slices so the batches of one slice (and the raw copy) fit in memory; the raw
        # baseline runs on the first slices only (a rate: 10M raw inserts would add half an hour).
        slice_records = 200_000
        for start in range(0, size, slice_records):
            n = min(slice_records, size - start)
            lo = since + dt.timedelta(days=DAYS * start / size)
            hi = since + dt.timedelta(days=DAYS * (start + n) / size)
            batches = list(generate(n, since=lo, until=hi, probes=probes, seed=start))
            a, b = fill(path, batches, baseline=start < BASELINE_RECORDS)
            ingest += a
            if b is not None:
                paired, raw, raw_n = paired + a, raw + b, raw_n + n
        done.write_text(f"{ingest} {paired} {raw} {raw_n}\n")
    out.put((size, probes, size / ingest, raw_n / raw, raw_n / paired))


def measure_size(size: int, directory: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Refresh, report and export over a filled store, in a process of their own (peak RSS)."""
    path = pathlib.Path(directory) / f"store-{size}.sqlite"
    since = END - dt.timedelta(days=DAYS)
    settings = AggregateSettings()
    with SqliteStore(path) as store:
        t0 = time.perf_counter()
        Aggregator(store, settings).refresh(END)
        refresh = time.perf_counter() - t0
        t0 = time.perf_counter()
        report.build(store, country=COUNTRIES[0], since=since, until=END, settings=settings)
        report_s = time.perf_counter() - t0
        report_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        t0 = time.perf_counter()
        sink = io.StringIO()
        for families in openmetrics.history_chunks(
            store,
            settings,
            since=END - dt.timedelta(days=1),
            until=END,
            step_seconds=300,
            chunk_seconds=6 * 3600,
        ):
            openmetrics.write(families, sink)
        export = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.put((refresh, report_s, export, report_rss, rss, _store_bytes(path) / size))


def window_refresh(size: int, directory: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """A store with ``size`` records in its last 15 minutes and 100k records of history (a kept
    store, ``--keep``, is measured again without refilling: the window that starts a minute
    before the end does not see the last minute's records, so they may be stored already)."""
    path = pathlib.Path(directory) / f"window-{size}.sqlite"
    done = path.with_suffix(".filled")
    last_minute = END - dt.timedelta(minutes=1)
    if not done.exists():
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(str(path) + suffix).unlink(missing_ok=True)
        with SqliteStore(path) as store:
            _fill_window(store, size)
        done.write_text(f"{size}\n")
    with SqliteStore(path) as store:
        aggregator = Aggregator(store, AggregateSettings())
        t0 = time.perf_counter()
        aggregator.refresh(last_minute)  # a deriver that starts: the whole window is read
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        snapshot = aggregator.refresh(END)  # a minute later: one bucket in, one out
        warm = time.perf_counter() - t0
        records = sum(c.sample.records for c in snapshot.figures.root.countries)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # with the fill's, if any
    out.put((size, warm, int(records), cold, rss))


def _fill_window(store: SqliteStore, size: int) -> None:
    """The history, then the window's records (in time order: the last minute's last)."""
    history = generate(
        100_000,
        since=END - dt.timedelta(days=DAYS),
        until=END - dt.timedelta(hours=1),
        probes=1000,
        seed=1,
    )
    for batch in history:
        store.put_records(batch)
    probes = min(10_000, max(100, size // 100))
    recent = generate(size, since=END - dt.timedelta(minutes=14), until=END, probes=probes, seed=2)
    for batch in recent:  # in time order
        store.put_records(batch)


def _run(target: object, size: int, directory: str) -> tuple[object, ...]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(size, directory, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--window-sizes", default="10k,1M")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument(
        "--keep",
        default=None,
        metavar="DIR",
        help="keep the filled stores in DIR and measure a kept one again without refilling",
    )
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    windows = [parse_size(s) for s in args.window_sizes.split(",") if s]
    with contextlib.ExitStack() as stack:
        if args.keep:
            directory = args.keep
            pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
        else:
            directory = stack.enter_context(
                tempfile.TemporaryDirectory(dir=args.dir, prefix="publiccore-derive-")
            )
        print(
            f"{'records':>10} {'probes':>6} {'ingest/s':>9} {'raw/s':>9} {'ratio':>6} "
            f"{'refresh s':>9} {'report s':>9} {'export s':>9} {'report RSS':>10} "
            f"{'peak RSS':>9} {'B/record':>8}"
        )
        for size in sizes:
            size_, probes, rate, raw, paired = _run(fill_size, size, directory)  # type: ignore[misc]
            measured = _run(measure_size, size, directory)
            refresh, rep, export, report_rss, rss, per = measured  # type: ignore[misc]
            print(
                f"{size_:>10,} {probes:>6} {rate:>9,.0f} {raw:>9,.0f} {paired / raw:>6.2f} "
                f"{refresh:>9.3f} {rep:>9.2f} {export:>9.2f} {report_rss / 2**20:>8.0f}MB "
                f"{rss / 2**20:>7.0f}MB {per:>8,.0f}",
                flush=True,
            )
            if not args.keep:
                for suffix in ("", "-wal", "-shm"):
                    pathlib.Path(directory, f"store-{size}.sqlite{suffix}").unlink(missing_ok=True)
        results = []
        for size in windows:
            results.append(_run(window_refresh, size, directory))
            size_, warm, records, cold, rss = results[-1]  # type: ignore[misc]
            print(
                f"window of {records:>10,} records: refresh {warm:.3f} s a minute after the "
                f"last (one bucket in, one out); {cold:.3f} s for a deriver that starts; "
                f"peak RSS {rss / 2**20:.0f} MB",
                flush=True,
            )
        if len(results) >= 2:
            ratio = results[-1][1] / results[0][1]  # type: ignore[operator]
            print(
                f"refresh ratio {results[-1][2]:,} / {results[0][2]:,} records "
                f"in the window: {ratio:.1f} (a deriver that starts: "
                f"{results[-1][3] / results[0][3]:.1f})"  # type: ignore[operator]
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
