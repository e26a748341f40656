"""The agent sets aside what the collector refuses for good, and never retries at once.

Against a real ``publiccore serve`` process: records spooled under a revoked probe id (403 for
the new token) and records the collector's validation refuses are quarantined in the spool,
while the records behind them upload; ``agent flush`` then exits 0 and ``agent status`` shows
the quarantine. ``Retry-After: 0`` and a past date are floored at the normal backoff (a scripted
aiohttp collector on 127.0.0.1; the delays the agent chose are read from its log).
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import logging
import pathlib
import re
import sys
from typing import Any

import prometheus_client
import pytest
from aiohttp import web
from publiccore.probes import agent as agent_mod
from publiccore.probes.spool import Spool

from publiccore import records as rec


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


def test_refused_records_are_quarantined_and_the_rest_uploads(tmp_path: pathlib.Path) -> None:
    collector = S.Collector(config=S.write_toml(tmp_path / "c.toml", {}), store=tmp_path / "s.db")
    old_id, _old_token = S.register_probe(collector.store)
    done = S.run_cli("probes", "revoke", "--store", str(collector.store), old_id)
    assert done.returncode == 0, done.stderr
    new_id, new_token = S.register_probe(collector.store)
    spool_path = tmp_path / "spool.sqlite"
    spool = Spool(spool_path)
    stale = [S.make_root_record(old_id) for _ in range(3)]  # spooled before re-registration
    bad = S.make_root_record(new_id, letter="n")  # no such root letter
    fresh = [S.make_root_record(new_id) for _ in range(4)]
    spool.add([stale[0], fresh[0], stale[1], bad, fresh[1], stale[2], fresh[2], fresh[3]])
    spool.close()
    config = S.write_toml(
        tmp_path / "agent.toml",
        {
            "probe": {"id": new_id, "token": new_token, "collector_url": ""},
            "agent": {"spool_path": str(spool_path), "upload_batch_records": 4},
        },
    )
    collector.start()
    try:
        text = config.read_text().replace(
            'collector_url = ""', f'collector_url = "{collector.url}"'
        )
        config.write_text(text)
        done = S.run_cli("agent", "flush", "--config", str(config), "--max-seconds", "60")
        assert done.returncode == 0, done.stderr
        assert "4 records quarantined" in done.stderr
        stored = set(S.store_ids(collector.store))
        assert stored == {r.id for r in fresh}
    finally:
        assert collector.stop() == 0
    done = S.run_cli("agent", "status", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["depth"], status["quarantined"], status["acked_total"]) == (0, 4, 4)
    assert status["spooled_total"] == status["acked_total"] + status["quarantined"]
    done = S.run_cli("agent", "status", "--config", str(config))
    assert re.search(r"quarantined\s+4 records", done.stdout), done.stdout
    spool = Spool(spool_path)
    try:
        kept = {r.id: why for r, why in spool.quarantined_records()}
    finally:
        spool.close()
    assert set(kept) == {r.id for r in stale} | {bad.id}
    assert "wrong_probe" in kept[stale[0].id] and "target.letter" in kept[bad.id]
    done = S.run_cli("agent", "requeue", "--config", str(config))
    assert (done.returncode, done.stdout) == (0, "4 quarantined records back in the upload queue\n")
    status = json.loads(S.run_cli("agent", "status", "--config", str(config), "--json").stdout)
    assert (status["depth"], status["quarantined"]) == (4, 0)
    assert status["spooled_total"] == status["acked_total"] + status["depth"]


def test_an_id_held_by_another_probe_is_quarantined(tmp_path: pathlib.Path) -> None:
    collector = S.Collector(config=S.write_toml(tmp_path / "c.toml", {}), store=tmp_path / "s.db")
    a_id, a_token = S.register_probe(collector.store)
    b_id, b_token = S.register_probe(collector.store)
    collector.start()
    try:
        taken = S.make_root_record(a_id)
        assert S.post(collector.port, S.batch_body([taken]), token=a_token)[0] == 200
        spool = Spool(tmp_path / "spool.sqlite")
        mine = S.make_root_record(b_id)
        clash = rec.make_record(
            kind="root-dns",
            probe=rec.ProbeRef(id=b_id),
            target=taken.target,
            result=taken.result,
            started=taken.started,
            finished=taken.finished,
            record_id=taken.id,
        )
        spool.add([mine, clash])
        options = agent_mod.AgentOptions(collector_url=collector.url, token=b_token)
        stats = asyncio.run(agent_mod.flush_spool(spool, options, max_seconds=30))
        spool.close()
        assert (stats.depth, stats.quarantined, stats.acked_total) == (0, 1, 1)
        assert "another probe" in stats.last_quarantine_reason
    finally:
        assert collector.stop() == 0


async def _answering(answers: list[web.Response], seen: list[int]) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        seen.append(len(seen))
        return answers.pop(0) if answers else web.json_response({}, status=500)

    app = web.Application()
    app.router.add_post("/api/v1/records", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.mark.parametrize(
    "retry_after",
    ["0", email.utils.format_datetime(email.utils.localtime().replace(year=2001), usegmt=False)],
)
def test_retry_after_zero_or_past_is_floored_at_the_backoff(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, retry_after: str
) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    spool.add([S.make_root_record("p1") for _ in range(2)])
    refusals = 3
    base_ceiling = 0.4  # backoff_max_seconds: every wait is drawn from [0.2, 0.4]

    async def main() -> list[int]:
        seen: list[int] = []
        answers = [
            web.json_response(
                {"error": "store_unavailable"}, status=503, headers={"Retry-After": retry_after}
            )
            for _ in range(refusals)
        ] + [web.json_response({"accepted": 2, "duplicates": 0, "rejected": 0})]
        runner, url = await _answering(answers, seen)
        try:
            options = agent_mod.AgentOptions(
                collector_url=url,
                token="t",
                backoff_max_seconds=base_ceiling,
                upload_interval_seconds=60,
                shutdown_flush_seconds=0,
            )
            agent = agent_mod.Agent(
                spool, [], options, registry=prometheus_client.CollectorRegistry()
            )
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            for _ in range(600):  # bounded: at most 60 s
                if len(seen) > refusals or task.done():
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await task
        finally:
            await runner.cleanup()
        return seen

    with caplog.at_level(logging.WARNING, logger="publiccore.agent"):
        seen = asyncio.run(main())
    assert len(seen) == refusals + 1
    assert spool.stats().depth == 0
    spool.close()
    waits = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"next try in ([0-9.]+) s", r.getMessage()))
    ]
    assert len(waits) == refusals
    assert all(w >= base_ceiling / 2 - 0.05 for w in waits), waits
