"""The exporter's refresh loop survives a stored row that makes every refresh raise.

A real ``publiccore serve`` process; the poisonous row (a root letter that is a lone surrogate,
which no UTF-8 encoder takes) goes straight into its SQLite store, past the ingest validation
that now refuses it. /metrics keeps answering with the last good snapshot and counts the
failures in ``publiccore_aggregate_errors_total``. Waits are bounded polls.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import pathlib
import sqlite3
import sys
from typing import Any


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


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    return None


def _metrics(port: int) -> str:
    status, body = S.get(port, "/metrics")
    assert status == 200
    return body.decode("utf-8")


def test_a_poisonous_row_does_not_freeze_metrics(tmp_path: pathlib.Path) -> None:
    config = S.write_toml(tmp_path / "c.toml", {"serve": {"aggregate_interval_seconds": 0.2}})
    collector = S.Collector(config=config, store=tmp_path / "store.sqlite")
    probe_id, token = S.register_probe(collector.store)
    collector.start()
    try:
        good = S.make_root_record(probe_id, letter="a")
        status, out, _ = S.post(collector.port, S.batch_body([good]), token=token)
        assert status == 200, out
        assert S.wait_until(
            lambda: 'letter="a"' in _metrics(collector.port), timeout=30, interval=0.2
        )
        assert _sample(_metrics(collector.port), "publiccore_aggregate_errors_total") == 0.0

        bad = S.make_root_record(probe_id, letter="b").to_json()
        bad["target"]["letter"] = "\ud800"
        body = json.dumps(bad, separators=(",", ":"), sort_keys=True)  # ASCII: "\\ud800"
        started = dt.datetime.fromisoformat(bad["started"]).timestamp()
        db = sqlite3.connect(collector.store, timeout=30)
        try:
            with db:
                db.execute(
                    "INSERT INTO records (id, kind, probe_id, country, asn, started, finished, "
                    "received, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (bad["id"], "root-dns", probe_id, "NL", 64500, started, started, started, body),
                )
        finally:
            db.close()

        def errors() -> float:
            return _sample(_metrics(collector.port), "publiccore_aggregate_errors_total") or 0.0

        assert S.wait_until(lambda: errors() >= 2, timeout=30, interval=0.2)
        text = _metrics(collector.port)
        assert 'letter="a"' in text  # the last good snapshot is still served
        assert _sample(text, "publiccore_aggregate_age_seconds") is not None
        assert collector.process is not None and collector.process.poll() is None
    finally:
        assert collector.stop() == 0
