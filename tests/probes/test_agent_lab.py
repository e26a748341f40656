"""Agent and collector inside the DNS lab's probe namespace, measuring real NSD root servers.

Both processes run in the probe namespace (``lab.probe_cmd``) and talk over its own loopback;
the agent's rounds go to the lab's servers (hints ``lab.hints_path``). Needs root; skips
otherwise (the lab fixture decides).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from typing import Any

import pytest

from publiccore import records as rec

pytestmark = pytest.mark.lab


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


def test_agent_measures_the_lab_and_uploads_in_namespace(
    dns_lab_default: Any, tmp_path: pathlib.Path
) -> None:
    lab = dns_lab_default
    up = lab.run_in_probe("ip", "link", "set", "lo", "up", timeout=30)
    assert up.returncode == 0, up.stderr
    prefix = lab.probe_cmd()
    config = S.write_toml(
        tmp_path / "collector.toml",
        {"serve": {"rate_limit_requests_per_minute": 1e6, "rate_limit_burst": 10_000}},
    )
    collector = S.Collector(config=config, store=tmp_path / "store.sqlite", prefix=prefix)
    collector.start()
    try:
        probe_id, token = S.register_probe(collector.store, country="NL", asn=64500)
        targets = sum(bool(s.ipv4) + bool(s.ipv6) for s in lab.servers)
        agent_cfg = S.agent_config(
            tmp_path,
            probe_id=probe_id,
            token=token,
            collector_url=collector.url,
            hints=lab.hints_path,
            interval=3.0,
            extra={"root": {"timeout_seconds": 1.5, "start_delay_max_seconds": 0.2}},
        )
        agent = S.start_agent(agent_cfg, prefix=prefix)
        try:
            assert S.wait_until(
                lambda: len(S.store_ids(collector.store)) >= 2 * targets, timeout=120, interval=0.5
            )
        finally:
            code, err = S.stop_process(agent)
        assert code == 0, err
    finally:
        assert collector.stop() == 0
    ids, state = S.spool_state(tmp_path / "spool.sqlite")
    rows = S.store_rows(collector.store)
    assert ids == [] and len(rows) == state["spooled_total"]
    records = [rec.loads(body) for *_rest, body in rows]
    assert {(r.probe.country, r.probe.asn) for r in records} == {("NL", 64500)}
    outcomes: dict[str, set[bool]] = {}
    for record in records:
        assert isinstance(record.target, rec.RootTarget)
        assert isinstance(record.result, rec.RootResult)
        soa_udp = next(
            q for q in record.result.queries if q.qtype == "SOA" and q.transport == "udp"
        )
        outcomes.setdefault(lab.server(record.target.letter).scenario, set()).add(soa_udp.answered)
        assert "127.0.0.1" not in json.dumps(record.to_json()["probe"])
    assert outcomes["iana"] == {True}
    assert outcomes["silent"] == {False}
