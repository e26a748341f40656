"""One deriver per deployment: ``serve --workers 2`` serves one stored snapshot from both."""

from __future__ import annotations

import importlib.util
import pathlib
import sqlite3
import sys
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from publiccore.exporters.catalogue import Exposition

from publiccore.store.sqlite import SqliteStore

# Per-process or per-scrape parts: not derived, so not compared.
LIVE = (
    "publiccore_newest_record_age_seconds",
    "publiccore_bgp_newest_dump_age_seconds",
    "publiccore_aggregate_age_seconds",
    "publiccore_aggregate_duration_seconds",
    "publiccore_ingest_records",
    "publiccore_ingest_rejected_records",
    "publiccore_regulatory_event",
)


def load_support() -> Any:
    name = "publiccore_test_ingest_support"
    if name not in sys.modules:
        path = pathlib.Path(__file__).resolve().parents[1] / "collectors" / "test_ingest_support.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


S = load_support()


def _derived(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith(LIVE):
            continue
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_workers_serve_the_one_stored_snapshot(tmp_path: pathlib.Path) -> None:
    store_path = tmp_path / "store.sqlite"
    with SqliteStore(store_path) as store:
        records = [
            S.make_root_record(f"p{n % 5}", asn=64500 + n % 5, letter="abcdefghijklm"[n % 13])
            for n in range(130)
        ]
        store.put_records(records)
    config = S.write_toml(tmp_path / "c.toml", {"serve": {"aggregate_interval_seconds": 3600}})
    collector = S.Collector(config=config, store=store_path, args=("--workers", "2")).start()
    try:
        assert S.wait_until(
            lambda: (
                "publiccore_root_reachable_ratio{" in S.get(collector.port, "/metrics")[1].decode()
            ),
            timeout=60,
        )
        scrapes = [_derived(S.get(collector.port, "/metrics")[1].decode()) for _ in range(40)]
    finally:
        assert collector.stop() == 0
    with sqlite3.connect(store_path) as db:
        owners = db.execute("SELECT owner FROM leases WHERE name = 'aggregate'").fetchall()
        body = db.execute("SELECT body FROM derived_snapshots WHERE name = 'aggregate'").fetchone()
    assert len(owners) == 1  # one deriver
    stored = Exposition.loads(body[0])
    assert all(s == scrapes[0] for s in scrapes)  # whichever worker answered
    reach = {
        labels: value
        for (name, labels), value in scrapes[0].items()
        if name == "publiccore_root_reachable_ratio"
    }
    assert reach == {
        tuple(sorted(zip(("country", "letter", "family", "transport"), k, strict=True))): v
        for k, v in stored.series["publiccore_root_reachable_ratio"].items()
    }
    assert len(reach) == 13 * 2  # every letter, UDP and TCP
