"""Scrape cost of /metrics with 250 countries and every aggregate populated.

    python benchmarks/scrape.py [--countries 250] [--repeat 30]

Builds a synthetic snapshot (every series of every metric in exporters.catalogue.METRICS for
each country × letter × family × transport × quantile …, the 80 regulatory events, ingest
counters), publishes it to an Exporter (rendered once, as the background refresh does), then
times what a scrape does (``Exporter.render``, and a whole GET /metrics over 127.0.0.1)
against a baseline measured in the same run:
``generate_latest`` of an empty registry. Also shows what rendering the whole snapshot on every
scrape would cost (the reason it is pre-rendered). Budget: a scrape within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import pycountry
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from publiccore.collectors.aggregate import QUANTILES, SITE_OUTCOMES
from publiccore.exporters.catalogue import METRICS, Exposition
from publiccore.exporters.prometheus import (
    EXPORTER_KEY,
    Exporter,
    SnapshotCollector,
    metrics_handler,
)

from publiccore import events as ev
from publiccore.config import Settings
from publiccore.records import INTEGRITY_OUTCOMES
from publiccore.store.sqlite import SqliteStore

BUDGET_SECONDS = 0.100
VALUES: dict[str, tuple[str, ...]] = {
    "letter": tuple("abcdefghijklm"),
    "family": ("ipv4", "ipv6"),
    "transport": ("udp", "tcp"),
    "quantile": tuple(repr(q) for q in QUANTILES),
    "kind": ("root-dns",),
    "prefix_set": ("root",),
}


def synthetic_snapshot(countries: int) -> Exposition:
    """A snapshot with every label combination of every metric for ``countries`` countries."""
    codes = sorted(c.alpha_2 for c in pycountry.countries)[:countries]
    series: dict[str, dict[tuple[str, ...], float]] = {}
    for spec in METRICS:
        choices: list[tuple[str, ...]] = []
        for label in spec.labels:
            if label == "country":
                choices.append(tuple(codes))
            elif label == "outcome":
                choices.append(INTEGRITY_OUTCOMES if "integrity" in spec.name else SITE_OUTCOMES)
            elif label == "prefix":
                choices.append(("192.0.2.0/24",))
            else:
                choices.append(VALUES[label])
        series[spec.name] = {
            labels: 0.123456789 * (i % 97) for i, labels in enumerate(itertools.product(*choices))
        }
    now = dt.datetime.now(dt.UTC)
    return Exposition(
        computed_at=now,
        series=series,
        newest_record={"root-dns": now, "traceroute": now},
        newest_bgp_dump=now,
    )


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


async def _http_scrape(exporter: Exporter, repeat: int) -> float:
    """Median seconds of a full GET /metrics (body read) against the mounted route."""
    app = web.Application()
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/metrics", metrics_handler)
    runs = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for i in range(repeat + 1):
            start = time.perf_counter()
            response = await client.get("/metrics")
            await response.read()
            if i:
                runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--countries", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    snapshot = synthetic_snapshot(args.countries)
    samples = sum(len(s) for s in snapshot.series.values())
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(pathlib.Path(tmp) / "store.sqlite")
        counts = ({"root-dns": 1e6, "traceroute": 1e4}, {"schema": 3.0, "bad_token": 1.0})
        exporter = Exporter(
            store,
            Settings(),
            registry=CollectorRegistry(),
            events=ev.load(),
            ingest_counts=lambda: counts,
        )
        publish = timed(lambda: exporter.publish(snapshot), max(3, args.repeat // 10))
        body = exporter.render()

        empty = CollectorRegistry()
        baseline = timed(lambda: generate_latest(empty), args.repeat)
        scrape = timed(exporter.render, args.repeat)
        whole = CollectorRegistry(auto_describe=False)
        whole.register(SnapshotCollector(lambda: snapshot))
        per_scrape = timed(lambda: generate_latest(whole), max(3, args.repeat // 10))
        http = asyncio.run(_http_scrape(exporter, args.repeat))
        store.close()

    print(
        f"countries: {args.countries}, aggregate samples: {samples}, "
        f"/metrics body: {len(body) / 1e6:.1f} MB"
    )
    print(f"baseline  generate_latest(empty registry): {baseline * 1e6:9.1f} µs   ratio     1")
    print(
        f"scrape    Exporter.render():               {scrape * 1e3:9.2f} ms   ratio "
        f"{scrape / baseline:5.0f}"
    )
    print(
        f"http      GET /metrics on 127.0.0.1:        {http * 1e3:9.2f} ms   ratio "
        f"{http / baseline:5.0f}"
    )
    print(
        f"refresh   render the snapshot (background): {publish * 1e3:9.1f} ms   ratio "
        f"{publish / baseline:5.0f}"
    )
    print(f"(if rendered per scrape instead:            {per_scrape * 1e3:9.1f} ms)")
    ok = max(scrape, http) <= BUDGET_SECONDS
    print(f"scrape budget {BUDGET_SECONDS * 1e3:.0f} ms: {'met' if ok else 'EXCEEDED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
