"""The probe agent against a real collector: separate processes on 127.0.0.1.

The agent measures root hints that point at this host's loopback, where nothing answers DNS:
UDP queries time out (0.2 s here), TCP is refused, and every round still yields records, which is
all the spool and upload paths need. ``test_agent_lab.py`` measures real name servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import pathlib
import random
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from publiccore.probes import agent as agent_mod
from publiccore.probes.spool import Spool

from publiccore import config as cfg


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


# --- small pure pieces -----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, 1, 3, 8, 40])
def test_backoff_grows_with_jitter_and_cap(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(60.0, 2.0**attempt)
    for _ in range(50):
        delay = agent_mod.backoff_delay(attempt, base=1.0, cap=60.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_honours_retry_after() -> None:
    rng = random.Random(1)
    assert agent_mod.backoff_delay(0, base=1.0, cap=60.0, rng=rng, retry_after=30) >= 30


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Sun, 29 Nov 2026 03:00:30 GMT", 30.0),
        ("soon", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = dt.datetime(2026, 11, 29, 3, 0, 0, tzinfo=dt.UTC)
    assert agent_mod.parse_retry_after(header, now=now) == seconds


def test_schedule_skips_missed_slots() -> None:
    sched = agent_mod.Schedule(300.0, 60.0)
    assert sched.next_slot_index(1000.0, 1000.0) == 0
    assert sched.next_slot_index(1000.0, 1001.0) == 1
    assert sched.next_slot_index(1000.0, 1000.0 + 3 * 300 + 5) == 4
    with pytest.raises(ValueError):
        agent_mod.Schedule(0.0)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9478", ("127.0.0.1", 9478)),
        ("[::1]:0", ("::1", 0)),
    ],
)
def test_parse_listen(text: str, parsed: tuple[str, int]) -> None:
    assert cfg.parse_listen(text) == parsed


# --- the uploader against scripted collector answers (real sockets) ---------------------------


@pytest.fixture
def scripted(tmp_path: pathlib.Path) -> Iterator[tuple[Spool, list[Any]]]:
    spool = Spool(tmp_path / "spool.sqlite")
    spool.add([S.make_root_record("p1") for _ in range(4)])
    yield spool, []
    spool.close()


async def _scripted_server(answers: list[web.Response], seen: list[Any]) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp decompresses gzip for us here
        seen.append(
            (
                request.headers.get("Authorization"),
                request.headers.get("Content-Encoding"),
                json.loads(body),
            )
        )
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/api/v1/records", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _upload(
    spool: Spool, answers: list[web.Response], seen: list[Any], *, batch: int
) -> list[agent_mod.UploadOutcome]:
    outcomes = []
    async for url in _scripted_server(answers, seen):
        async with aiohttp.ClientSession() as session:
            uploader = agent_mod.Uploader(spool, session, url=url, token="t0k", batch_records=batch)
            while answers:
                outcomes.append(await uploader.upload_once())
    return outcomes


def test_uploader_acks_only_after_200_and_honours_retry_after(scripted: Any) -> None:
    spool, seen = scripted
    ids = spool.ids()
    answers = [
        web.json_response({"error": "rate_limited"}, status=429, headers={"Retry-After": "9"}),
        web.json_response({"error": "store_unavailable"}, status=503),
        web.json_response({"accepted": 3, "duplicates": 0, "rejected": 0}),
    ]
    outcomes = asyncio.run(_upload(spool, answers, seen, batch=3))
    assert [o.ok for o in outcomes] == [False, False, True]
    assert outcomes[0].retry_after == 9.0
    assert [s[0] for s in seen] == ["Bearer t0k"] * 3
    assert all(s[1] == "gzip" for s in seen)
    # the same oldest three, in order, every time; only the acknowledged leave
    assert [[r["id"] for r in s[2]] for s in seen] == [ids[:3]] * 3
    assert spool.ids() == ids[3:]
    stats = spool.stats()
    assert (stats.upload_failures_total, stats.upload_successes_total) == (2, 1)
    assert stats.last_failure_reason.startswith("HTTP 503")


def test_uploader_quarantines_a_refused_record_and_halves_on_413(scripted: Any) -> None:
    spool, seen = scripted
    ids = spool.ids()
    answers = [
        web.json_response({"error": "too_large"}, status=413),
        web.json_response({"error": "unknown_kind", "reason": "kind: bad", "index": 1}, status=400),
        web.json_response({"accepted": 2, "duplicates": 0, "rejected": 0}),
    ]
    outcomes = asyncio.run(_upload(spool, answers, seen, batch=4))
    assert [len(s[2]) for s in seen] == [4, 2, 2]
    assert (outcomes[0].retry_now, outcomes[1].retry_now) == (True, True)
    assert outcomes[1].quarantined == 1
    assert spool.ids() == ids[3:]  # ids[1] refused for good, ids[0] and ids[2] acknowledged
    stats = spool.stats()
    assert (stats.dropped_total, stats.quarantined) == (0, 1)
    ((kept, why),) = spool.quarantined_records()
    assert kept.id == ids[1] and "unknown_kind" in why


def test_uploader_keeps_records_the_collector_did_not_count(scripted: Any) -> None:
    spool, seen = scripted
    ids = spool.ids()
    answers = [
        web.json_response({"accepted": 1, "duplicates": 0, "rejected": 0}),
        web.json_response({"accepted": 2, "duplicates": 1, "rejected": 0}),
    ]
    outcomes = asyncio.run(_upload(spool, answers, seen, batch=3))
    assert [o.ok for o in outcomes] == [False, True]
    assert "acknowledged 1 + 0 duplicates of 3" in outcomes[0].failure
    assert spool.ids() == ids[3:]


# --- agent and collector processes -----------------------------------------------------------


@pytest.fixture
def collector(tmp_path: pathlib.Path) -> Iterator[Any]:
    config = S.write_toml(
        tmp_path / "collector.toml",
        {"serve": {"rate_limit_requests_per_minute": 1e9, "rate_limit_burst": 1_000_000}},
    )
    coll = S.Collector(config=config, store=tmp_path / "store.sqlite").start()
    coll.probe_id, coll.token = S.register_probe(coll.store, country="NL", asn=64500)
    yield coll
    if coll.process is not None and coll.process.poll() is None:
        assert coll.stop() == 0


def _spooled_total(spool: pathlib.Path) -> int:
    return int(S.spool_state(spool)[1].get("spooled_total", 0)) if spool.exists() else 0


def test_agent_uploads_with_registered_identity_and_exits_0(
    tmp_path: pathlib.Path, collector: Any
) -> None:
    hints = S.hints_file(tmp_path / "hints")
    config = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=collector.url,
        hints=hints,
        extra={"agent": {"metrics_listen": "127.0.0.1:0"}},
    )
    agent = S.start_agent(config, verbose=True)
    try:
        assert S.wait_until(lambda: len(S.store_ids(collector.store)) >= 6, timeout=60)
        assert agent.stderr is not None
        metrics_port = None
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as sel:  # bounded in time: never a blocking readline
            sel.register(agent.stderr, selectors.EVENT_READ)
            while metrics_port is None and time.monotonic() < deadline:
                if not sel.select(timeout=0.2):
                    continue
                line = agent.stderr.readline()
                found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
                if found:
                    metrics_port = int(found.group(1))
        assert metrics_port is not None
        status, body = S.get(metrics_port, "/metrics")
        text = body.decode()
        assert status == 200
        for name in (
            'publiccore_agent_rounds_total{kind="root"}',
            'publiccore_agent_queries_total{kind="root",transport="udp"}',
            'publiccore_agent_query_failures_total{code="tcp_refused",kind="root"}',
            "publiccore_agent_spool_records ",
            "publiccore_agent_spool_bytes ",
            "publiccore_agent_uploads_total ",
            "publiccore_agent_last_upload_success_timestamp_seconds ",
        ):
            assert name in text, name
        assert "python_gc" not in text  # its own registry, not the global one
    finally:
        code, err = S.stop_process(agent)
    assert code == 0, err
    ids, state = S.spool_state(tmp_path / "spool.sqlite")
    assert ids == []  # flushed at shutdown
    stored = S.store_rows(collector.store)
    assert len(stored) == state["spooled_total"] == state["acked_total"]
    for _id, probe_id, country, asn, body_text in stored:
        assert (probe_id, country, asn) == (collector.probe_id, "NL", 64500)
        assert "127.0.0.1" not in json.loads(body_text)["probe"].values()
    done = S.run_cli("agent", "status", "--config", str(config), "--json")
    status_json = json.loads(done.stdout)
    assert status_json["depth"] == 0 and status_json["last_upload_success"] is not None
    text_status = S.run_cli("agent", "status", "--config", str(config)).stdout
    assert "waiting         0 records" in text_status


def test_outage_backlog_drains_without_duplicates(tmp_path: pathlib.Path, collector: Any) -> None:
    hints = S.hints_file(tmp_path / "hints")
    spool = tmp_path / "spool.sqlite"
    config = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=collector.url,
        hints=hints,
        batch=7,
    )
    agent = S.start_agent(config)
    try:
        assert S.wait_until(lambda: len(S.store_ids(collector.store)) >= 4, timeout=60)
        assert collector.stop() == 0
        stored_before = len(S.store_ids(collector.store))
        assert S.wait_until(lambda: len(S.spool_state(spool)[0]) >= 20, timeout=60)
        status = S.run_cli("agent", "status", "--config", str(config))
        assert "cannot reach collector" in status.stdout
        backlog = len(S.spool_state(spool)[0])
        collector.start()  # same port, same store
        assert S.wait_until(
            lambda: len(S.store_ids(collector.store)) >= stored_before + backlog, timeout=60
        )
    finally:
        code, err = S.stop_process(agent)
    assert code == 0, err
    ids, state = S.spool_state(spool)
    stored = S.store_ids(collector.store)
    assert ids == [] and state["dropped_total"] == 0
    assert len(stored) == len(set(stored)) == state["spooled_total"]


def test_quota_overflow_drops_oldest_and_counts(tmp_path: pathlib.Path, collector: Any) -> None:
    hints = S.hints_file(tmp_path / "hints")
    spool = tmp_path / "spool.sqlite"
    closed_port = "http://127.0.0.1:9"  # nothing listens: every upload fails
    config = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=closed_port,
        hints=hints,
        quota=12_000,
    )
    agent = S.start_agent(config)
    try:
        assert S.wait_until(
            lambda: int(S.spool_state(spool)[1].get("dropped_total", 0)) >= 6, timeout=60
        )
    finally:
        code, err = S.stop_process(agent)
    assert code == 0, err
    ids, state = S.spool_state(spool)
    assert state["bytes"] <= 12_000
    assert state["spooled_total"] == state["dropped_total"] + len(ids)
    status = S.run_cli("agent", "status", "--config", str(config)).stdout
    assert f"dropped {state['dropped_total']}" in status
    # what is left are the newest records; they drain once a collector is reachable
    drain = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=collector.url,
        hints=hints,
        name="drain.toml",
    )
    done = S.run_cli("agent", "flush", "--config", str(drain), "--max-seconds", "60")
    assert done.returncode == 0, done.stderr
    assert sorted(S.store_ids(collector.store)) == sorted(ids)


def test_kill_9_at_random_moments_loses_nothing(tmp_path: pathlib.Path, collector: Any) -> None:
    """kill -9 the agent 50 times, mid-round and mid-upload; every spooled record arrives once."""
    hints = S.hints_file(tmp_path / "hints")
    spool = tmp_path / "spool.sqlite"
    config = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=collector.url,
        hints=hints,
        batch=3,
        interval=0.15,
    )
    rng = random.Random(20261129)
    seen_spooled: set[str] = set()
    kills = 0
    deadline = time.monotonic() + 240
    rounds_between_kills = 0
    while kills < 50 and time.monotonic() < deadline:
        before = _spooled_total(spool) if spool.exists() else 0
        agent = S.start_agent(config)
        # Kill once this run has spooled something (so rounds happen between kills, however
        # loaded the machine), then at a random moment: mid-round or mid-upload.
        if S.wait_until(lambda before=before: _spooled_total(spool) > before, timeout=30):
            rounds_between_kills += 1
        time.sleep(rng.uniform(0.0, 0.8))
        agent.send_signal(signal.SIGKILL)
        try:
            agent.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            agent.kill()
            agent.communicate(timeout=10)
        kills += 1
        if spool.exists():
            seen_spooled.update(S.spool_state(spool)[0])
    assert kills == 50
    assert rounds_between_kills == 50  # every run spooled before it was killed
    assert _spooled_total(spool) >= 50
    assert len(S.store_ids(collector.store)) > 0  # and uploads too
    done = S.run_cli("agent", "flush", "--config", str(config), "--max-seconds", "60")
    assert done.returncode == 0, done.stderr
    ids, state = S.spool_state(spool)
    stored = S.store_ids(collector.store)
    assert ids == []
    assert seen_spooled <= set(stored)
    assert state["dropped_total"] == 0
    # every record ever spooled reached the store, exactly once
    assert len(stored) == len(set(stored)) == state["spooled_total"] == state["acked_total"]


def test_agent_schedules_traceroutes_when_targets_are_set(
    tmp_path: pathlib.Path, collector: Any
) -> None:
    hints = S.hints_file(tmp_path / "hints")
    config = S.agent_config(
        tmp_path,
        probe_id=collector.probe_id,
        token=collector.token,
        collector_url=collector.url,
        hints=hints,
        extra={
            "traceroute": {
                "targets": ["127.0.0.1"],
                "interval_seconds": 0.5,
                "timeout_seconds": 0.3,
                "max_ttl": 2,
            }
        },
    )

    def kinds() -> set[str]:
        return {json.loads(row[4])["kind"] for row in S.store_rows(collector.store)}

    agent = S.start_agent(config)
    try:
        # without CAP_NET_RAW the traceroute records say permission_denied: still records
        assert S.wait_until(lambda: kinds() == {"root-dns", "traceroute"}, timeout=60)
    finally:
        code, err = S.stop_process(agent)
    assert code == 0, err
