"""The exporter's refresh loop survives a stored row that makes every refresh raise.

A real ``publiccore serve`` process; the poisonous row (a root letter that is a lone surrogate,
which no UTF-8 encoder takes) goes straight into its SQLite store, past the ingest validation
that now refuses it. /metrics keeps answering with the last good snapshot and counts the
failures in ``publiccore_aggregate_errors_total``. Waits are bounded polls.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import pathlib
import sqlite3
import sys
from typing import Any

from publiccore.store import facts


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

        # A stored row that no reader can use: the letter of a bucket row is a lone surrogate
        # (what a record of a store from before ingest checked domains could leave; the write
        # path no longer lets one in, so the test puts it behind the store's back).
        bucket = facts.bucket_of(dt.datetime.now(dt.UTC).timestamp())
        db = sqlite3.connect(collector.store, timeout=30)
        try:
            with db:
                db.execute(
                    "INSERT INTO agg_root_cells_all (bucket, country, source, letter, family, "
                    "transport, sent, answered) VALUES (?, 'NL', 'volunteer', char(55296), "
                    "'ipv4', 'udp', 1, 1)",
                    (bucket,),
                )
                # and a record counted in its bucket, so the deriver (which reads a bucket
                # again only when its record count changes) reads the row
                db.execute(
                    "INSERT INTO agg_root_records (bucket, country, asn, source, outcome, n) "
                    "VALUES (?, 'NL', 64999, 'volunteer', 'iana', 1)",
                    (bucket,),
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
