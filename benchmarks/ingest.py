"""Ingest throughput: records/s through HTTP into SQLite vs a raw batched insert, same run.

    python benchmarks/ingest.py [--uploaders 50] [--batches 8] [--batch-records 200]

Starts ``publiccore serve --workers N`` (default: one per core) as a separate process on
127.0.0.1 (port 0) over a fresh store and waits until every worker is up, registers one probe
per uploader, and has ``--uploaders`` concurrent aiohttp clients each POST ``--batches`` gzip
JSON batches of realistic ``root-dns`` records (bodies built before the clock starts). Then
inserts the same rows into another fresh store of the same schema with plain ``sqlite3``
executemany, one transaction per batch, in the order the uploads arrive (the baseline), and
checks that both stores hold the same rows. Prints records/s for both, their ratio, p50/p99
request latency and the CPU each worker used while uploads ran. Targets: ratio ≥ 0.3 and ≥ 5,000
records/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import json
import os
import pathlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

from publiccore import records as rec
from publiccore.store import ProbeRegistration
from publiccore.store.registry import new_probe_id, new_token, token_hash
from publiccore.store.sqlite import SqliteStore

WIRE = ("q80EAAABAAEAAAABAAAGAAEAAAYAAQABUYAAQAFhBHJvb3Qtc2VydmVycwNuZXQABW5zdGxkDHZlcmlzaWdu") * 3


def make_record(probe_id: str, when: dt.datetime, n: int) -> rec.Record:
    """A realistic root-dns record: SOA over UDP and TCP answered, CH TXT, DNSKEY."""

    def query(qname: str, qclass: str, qtype: str, transport: rec.Transport) -> rec.DnsQuery:
        return rec.DnsQuery(
            qname=qname,
            qclass=qclass,
            qtype=qtype,
            transport=transport,
            rcode="NOERROR",
            aa=True,
            tc=False,
            rtt_seconds=0.0123 + n % 7,
            serial=2026112900 if qtype == "SOA" else None,
            nsid_hex="6e73312e6c6178",
            nsid_text="ns1.lax",
            size_bytes=120,
            wire_b64=WIRE,
        )

    queries = (
        query(".", "IN", "SOA", "udp"),
        query(".", "IN", "SOA", "tcp"),
        query("hostname.bind.", "CH", "TXT", "udp"),
        query("id.server.", "CH", "TXT", "udp"),
        query(".", "IN", "DNSKEY", "udp"),
    )
    result = rec.RootResult(
        queries=queries,
        identity=rec.SiteIdentity(nsid="ns1.lax", hostname_bind="b1-lax", id_server="b1-lax"),
        integrity=rec.Integrity(
            outcome="iana", key_tags=(20326, 38696), validated_at="2026-11-29T00:00:00.000000Z"
        ),
        consistency=rec.Consistency(status="consistent"),
    )
    letter = "abcdefghijklm"[n % 13]
    return rec.make_record(
        kind="root-dns",
        probe=rec.ProbeRef(id=probe_id, asn=64500, country="NL"),
        target=rec.RootTarget(
            letter=letter, name=f"{letter}.root-servers.net", address="192.0.2.4", family="ipv4"
        ),
        result=result,
        started=when,
        finished=when + dt.timedelta(seconds=0.2),
    )


def start_server(
    store: pathlib.Path, config: pathlib.Path, workers: int
) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publiccore",
            "serve",
            "--config",
            str(config),
            "--store",
            str(store),
            "--listen",
            "127.0.0.1:0",
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, int(line.split()[2].rsplit(":", 1)[1])


def worker_cpu(server: subprocess.Popen[str]) -> dict[int, float] | None:
    """CPU seconds used so far by each of the server's worker processes (Linux /proc)."""
    children = pathlib.Path(f"/proc/{server.pid}/task/{server.pid}/children")
    if not children.exists():
        return None
    used = {}
    for pid in map(int, children.read_text().split()):
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def wait_for_workers(server: subprocess.Popen[str], workers: int, timeout: float = 60.0) -> None:
    """Return once ``workers`` worker processes run and have gone idle (they serve).

    ``serve --workers`` prints its address before it forks: uploaders connecting at once would
    all land on the first worker up and keep those connections, leaving the others idle. Reads
    Linux's /proc; elsewhere (or past ``timeout``) it just waits a few seconds.
    """
    if workers <= 1:
        return
    if worker_cpu(server) is None:
        time.sleep(5)
        return
    deadline = time.monotonic() + timeout
    last: dict[int, float] | None = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        used = worker_cpu(server)
        if used is not None and len(used) >= workers and used == last:
            return
        last = used


async def upload_all(
    port: int, work: list[tuple[str, list[bytes]]]
) -> tuple[float, list[float], int]:
    """Every uploader POSTs its batches one after another; all uploaders at once."""
    url = f"http://127.0.0.1:{port}/api/v1/records"
    latencies: list[float] = []
    accepted = 0
    connector = aiohttp.TCPConnector(limit=len(work) + 4)

    async def uploader(session: aiohttp.ClientSession, token: str, bodies: list[bytes]) -> None:
        nonlocal accepted
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        }
        for body in bodies:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                out = await response.json()
                if response.status != 200:
                    raise SystemExit(f"upload refused: {response.status} {out}")
            latencies.append(time.perf_counter() - t0)
            accepted += out["accepted"]

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(uploader(session, token, bodies) for token, bodies in work))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, accepted


def raw_insert(path: pathlib.Path, batches: list[list[rec.Record]]) -> float:
    """The baseline: the same rows, plain sqlite3 executemany, one transaction per batch.

    ``batches`` in the order they are to be inserted.
    """
    SqliteStore(path).close()  # same schema and pragmas
    received = time.time()
    rows = [
        [
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
        for batch in batches
    ]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    for batch in rows:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR IGNORE INTO records "
            "(id, kind, probe_id, country, asn, started, finished, received, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


def same_rows(first: pathlib.Path, second: pathlib.Path) -> bool:
    """Whether two stores hold the same records, column for column (``received`` aside)."""
    query = (
        "SELECT id, kind, probe_id, country, asn, started, finished, body FROM records ORDER BY id"
    )
    a, b = sqlite3.connect(first), sqlite3.connect(second)
    try:
        rows_a, rows_b = a.execute(query), b.execute(query)
        while True:
            chunk_a, chunk_b = rows_a.fetchmany(1000), rows_b.fetchmany(1000)
            if chunk_a != chunk_b:
                return False
            if not chunk_a:
                return True
    finally:
        a.close()
        b.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploaders", type=int, default=50)
    parser.add_argument("--batches", type=int, default=8, help="batches per uploader")
    parser.add_argument("--batch-records", type=int, default=200)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="publiccore serve --workers (default: one per core)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="publiccore-bench-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        store_path = tmp / "http.sqlite"
        config = tmp / "collector.toml"
        config.write_text(
            "[serve]\nrate_limit_requests_per_minute = 1e9\nrate_limit_burst = 1000000\n",
            encoding="utf-8",
        )
        store = SqliteStore(store_path)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        work: list[tuple[str, list[bytes]]] = []
        by_uploader: list[list[list[rec.Record]]] = []
        n = 0
        for _ in range(args.uploaders):
            token = new_token()
            probe_id = new_probe_id()
            store.add_probe(
                ProbeRegistration(
                    id=probe_id, country="NL", asn=64500, token_hash=token_hash(token)
                )
            )
            bodies = []
            by_uploader.append([])
            for _b in range(args.batches):
                batch = []
                for _r in range(args.batch_records):
                    batch.append(make_record(probe_id, now, n))
                    n += 1
                by_uploader[-1].append(batch)
                text = "[" + ",".join(r.dumps() for r in batch) + "]"
                bodies.append(gzip.compress(text.encode("utf-8"), 6))
            work.append((token, bodies))
        store.close()
        total = n
        record_bytes = statistics.mean(len(r.dumps()) for r in by_uploader[0][0])
        # The uploads arrive round-robin (every uploader's first batch, then every second…),
        # which scatters the ids over the primary key; the baseline inserts them so too.
        arrival = [batches[b] for b in range(args.batches) for batches in by_uploader]

        server, port = start_server(store_path, config, args.workers)
        try:
            wait_for_workers(server, args.workers)
            cpu_before = worker_cpu(server)
            elapsed, latencies, accepted = asyncio.run(upload_all(port, work))
            cpu_after = worker_cpu(server)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        if accepted != total:
            raise SystemExit(f"accepted {accepted} of {total} records")
        raw_elapsed = raw_insert(tmp / "raw.sqlite", arrival)
        if not same_rows(store_path, tmp / "raw.sqlite"):
            raise SystemExit("the HTTP and the raw store hold different rows")

    http_rate = total / elapsed
    raw_rate = total / raw_elapsed
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"records          {total} ({record_bytes:.0f} B each as JSON), "
        f"{args.uploaders} uploaders x {args.batches} batches x {args.batch_records}"
    )
    print(f"cores            {os.cpu_count()}, serve --workers {args.workers}")
    print(f"HTTP ingest      {http_rate:10.0f} records/s  ({elapsed:.2f} s)")
    print(f"raw SQLite       {raw_rate:10.0f} records/s  ({raw_elapsed:.2f} s)")
    print(f"ratio            {http_rate / raw_rate:10.3f}  (target >= 0.3; and >= 5000 records/s)")
    print(
        f"request latency  p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"({len(latencies)} requests)"
    )
    busy: list[float] = []
    if cpu_before is not None and cpu_after is not None:
        busy = [
            round((cpu_after[pid] - cpu_before.get(pid, 0.0)) / elapsed, 2)
            for pid in sorted(cpu_after)
        ]
        # Keep-alive connections stay with the worker that accepted them: an uneven share
        # of the uploaders' connections shows here as one worker busier than the others.
        print(f"worker CPU       {', '.join(f'{b:.2f}' for b in busy)} cores")
    print(
        json.dumps(
            {
                "workers": args.workers,
                "http_records_per_second": round(http_rate),
                "raw_records_per_second": round(raw_rate),
                "ratio": round(http_rate / raw_rate, 3),
                "p50_ms": round(p50 * 1000, 1),
                "p99_ms": round(p99 * 1000, 1),
                "worker_cpu_cores": busy,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
