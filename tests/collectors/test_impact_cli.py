"""``publiccore impact``, ``export series`` and GET /api/v1/impact over one real store."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys

import pytest
from aiohttp import test_utils

from publiccore import config as cfg
from publiccore.app import services
from publiccore.store.sqlite import SqliteStore
from tests import impact_fixtures as fx

DAYS = 150
EVENT = fx.START + dt.timedelta(days=110)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with a step in NL at EVENT, an events file naming it, and a config file."""
    base = tmp_path_factory.mktemp("impact")
    store = SqliteStore(base / "store.sqlite")
    fx.fill(
        store,
        fx.Plan(
            country="NL",
            days=DAYS,
            non_iana=lambda i: 0.05 if i < 110 else 0.35,
            visible=lambda i: 52_000.0 + (i % 5) * 50 - (5000 if i >= 110 else 0),
        ),
    )
    store.close()
    events = base / "events.yaml"
    events.write_text(
        "events:\n"
        "  - id: nl-test-order\n"
        f"    date: {EVENT.isoformat()}\n"
        "    date_precision: day\n"
        "    country: NL\n"
        "    kind: order\n"
        "    scope: [dns]\n"
        "    title: A test order\n"
        "    summary: Synthetic event for the tests.\n"
        "    sources: ['https://example.org/order']\n"
        "    confidence: high\n"
    )
    config = base / "publiccore.toml"
    config.write_text(f'[events]\nextra_files = ["{events}"]\n')
    return base


def _cli(world, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CONFIG_HOME=str(world / "xdg"))
    env.pop("PUBLICCORE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "publiccore", "--config", str(world / "publiccore.toml"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_impact_event_json_and_table(world):
    store = str(world / "store.sqlite")
    run = _cli(
        world,
        "impact",
        "--country",
        "NL",
        "--event",
        "nl-test-order",
        "--metric",
        "root_non_iana_share",
        "bgp_visible_slash24",
        "--json",
        "--store",
        store,
    )
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    (one,) = body["impacts"]
    assert one["event"] == "nl-test-order" and one["definition"] == "M-impact"
    share, visible = one["metrics"]
    assert share["notable"] is True and share["interval"][0] > 0
    assert visible["change"] == pytest.approx(-5000.0, abs=200)
    run = _cli(world, "impact", "--country", "NL", "--date", str(EVENT), "--store", store)
    assert run.returncode == 0, run.stderr
    assert "root_non_iana_share" in run.stdout and "associated with" in run.stdout
    run = _cli(world, "impact", "--all", "--before", "10d", "--store", store)
    assert run.returncode == 0, run.stderr
    assert "nl-test-order" in run.stdout


def test_impact_bad_input_is_one_line(world):
    store = str(world / "store.sqlite")
    run = _cli(world, "impact", "--country", "NL", "--event", "nope", "--store", store)
    assert run.returncode == 1 and "no event 'nope'" in run.stderr
    run = _cli(world, "impact", "--country", "NL", "--metric", "bogus", "--store", store)
    assert run.returncode == 1 and "unknown metric 'bogus'" in run.stderr
    run = _cli(world, "impact", "--country", "NL", "--before", "x", "--store", store)
    assert run.returncode == 1 and "--before" in run.stderr


def test_export_series_csv_and_parquet(world):
    store = str(world / "store.sqlite")
    since, until = str(fx.START), str(fx.START + dt.timedelta(days=10))
    run = _cli(
        world, "export", "series", "--country", "NL", "--since", since, "--until", until,
        "--store", store,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    share = [r for r in rows if r["dimension"] == "root_non_iana_share"]
    assert len(share) == 10 and {r["definition"] for r in share} == {"M-root-integrity"}
    assert all(r["records"] == "26" and r["probe_asns"] == "2" for r in share)
    assert any(r["dimension"] == "profile:composite" for r in rows)
    assert {r["definition"] for r in rows if r["dimension"].startswith("profile:")} == {"M-profile"}
    out = world / "series.parquet"
    run = _cli(
        world, "export", "series", "--world", "--since", since, "--until", until,
        "--format", "parquet", "--out", str(out), "--store", store,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert len(table) == len(rows) and table[0]["country"] == "NL"


def test_api_impact_route(world):
    settings = cfg.load(world / "publiccore.toml")
    store = SqliteStore(world / "store.sqlite")

    async def go() -> tuple[int, dict, int, str]:
        app = services.collector_app(store, settings)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            ok = await client.get(
                "/api/v1/impact",
                params={"country": "NL", "event": "nl-test-order", "metric": "bgp_visible_slash24"},
            )
            body = await ok.json()
            bad = await client.get("/api/v1/impact", params={"country": "NL", "event": "nope"})
            return ok.status, body, bad.status, await bad.text()

    try:
        status, body, bad_status, bad_text = asyncio.run(go())
    finally:
        store.close()
    assert status == 200
    (m,) = body["impacts"][0]["metrics"]
    assert m["metric"] == "bgp_visible_slash24" and m["notable"] is True
    assert bad_status == 400 and "no event" in bad_text
