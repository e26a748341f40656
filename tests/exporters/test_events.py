"""The regulatory events: validation, the `events` commands, and idempotent Grafana annotations.

No Grafana is packaged for Debian, so push-grafana is tested as pure request building plus an
aiohttp test server implementing just Grafana's annotation endpoints (GET/POST/PUT
/api/annotations) with Grafana's tag semantics (every requested tag must match).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from publiccore.exporters import grafana

from publiccore import events as ev
from publiccore.errors import InputError

GOOD = {
    "id": "xx-2024-test-order",
    "date": "2024-03-01",
    "date_precision": "day",
    "country": "RU",
    "kind": "order",
    "scope": ["routing"],
    "title": "A test order",
    "summary": "Summary.",
    "sources": ["https://example.org/a"],
    "confidence": "high",
}


def test_bundled_dataset_loads():
    events = ev.load()
    assert len(events) == 80
    assert len({e.id for e in events}) == 80
    assert events == sorted(events, key=lambda e: (e.date, e.id))
    assert {e.country for e in events} >= {"RU", "INT", "EU", "IR"}
    shutdown = next(e for e in events if e.id == "eg-2011-national-shutdown")
    assert shutdown.timestamp == dt.datetime(2011, 1, 27, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"date": "2024-02-30"}, "date", "not a valid date"),
        ({"date": 20240301}, "date", "expected 'YYYY-MM-DD'"),
        ({"end_date": "2024-02-01"}, "end_date", "before date"),
        ({"kind": "decree"}, "kind", "not one of"),
        ({"scope": ["dns", "weather"]}, "scope", "not one of"),
        ({"scope": []}, "scope", "non-empty list"),
        ({"confidence": "low"}, "confidence", "not one of"),
        ({"country": "XX"}, "country", "not an ISO 3166-1"),
        ({"country": "ru"}, "country", "not an ISO 3166-1"),
        ({"date_precision": "month"}, "date", "must be the 1st"),
        ({"date_precision": "year"}, "date_precision", "not one of"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"title": ""}, "title", "non-empty text"),
    ],
)
def test_validation_names_event_and_field(change, field, reason):
    obj = {**GOOD, **change}
    if change == {"date_precision": "month"}:
        obj["date"] = "2024-03-05"
    with pytest.raises(InputError) as info:
        ev.parse_event(obj, "f.yaml events[0]")
    message = str(info.value)
    assert "event xx-2024-test-order" in message
    assert f"field {field}" in message
    assert reason in message


def test_missing_field_and_bad_id():
    obj = dict(GOOD)
    del obj["sources"]
    with pytest.raises(InputError, match="event xx-2024-test-order: field sources: missing"):
        ev.parse_event(obj, "f")
    with pytest.raises(InputError, match="field id"):
        ev.parse_event({**GOOD, "id": "Not A Slug"}, "f")


@pytest.mark.parametrize("country", ["INT", "EU", "GB", "US"])
def test_special_and_iso_countries(country):
    assert ev.parse_event({**GOOD, "country": country}, "f").country == country


def test_duplicate_ids_across_files(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump({"events": [{**GOOD, "id": "ru-2019-sovereign-internet-in-force"}]})
    )
    with pytest.raises(InputError, match="duplicate id"):
        ev.load([extra])
    extra.write_text(yaml.safe_dump({"events": [GOOD, GOOD]}))
    with pytest.raises(InputError, match="duplicate id"):
        ev.load_file(extra)


def test_select():
    events = ev.load()
    ru = ev.select(events, country="ru", since=dt.date(2022, 1, 1), until=dt.date(2023, 1, 1))
    assert ru and all(e.country == "RU" and e.date.year == 2022 for e in ru)


def cli(*args: str, config: str | None = None, tmp_path=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PUBLICCORE_CONFIG", None)
    if tmp_path is not None:
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    prefix = ["--config", config] if config else []
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *prefix, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"events": [GOOD]}))
    run = cli("events", "validate", str(good), tmp_path=tmp_path)
    assert run.returncode == 0 and "1 events, valid" in run.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"events": [{**GOOD, "end_date": "2020-01-01"}]}))
    run = cli("events", "validate", str(bad), tmp_path=tmp_path)
    assert run.returncode == 1
    assert "event xx-2024-test-order: field end_date" in run.stderr


def test_cli_list_with_extra_file(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"events": [GOOD]}))
    config = tmp_path / "publiccore.toml"
    config.write_text(f'[events]\nextra_files = ["{extra}"]\n')
    run = cli(
        "events",
        "list",
        "--country",
        "RU",
        "--since",
        "2024-01-01",
        "--json",
        config=str(config),
        tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert "xx-2024-test-order" in {e["id"] for e in listed}
    assert all(e["country"] == "RU" and e["date"] >= "2024-01-01" for e in listed)
    run = cli("events", "list", "--country", "NL", tmp_path=tmp_path)
    assert run.returncode == 0 and "nl-2020-ripe-ncc-sanctions-freeze" in run.stdout


# --- Grafana annotations -------------------------------------------------------------------


def test_annotation_body():
    event = next(e for e in ev.load() if e.end_date is not None)
    body = grafana.annotation(event)
    assert body["time"] == int(event.timestamp * 1000)
    assert body["timeEnd"] == int(event.end_timestamp * 1000) > body["time"]
    assert set(body["tags"]) == {
        "publiccore",
        f"country:{event.country}",
        f"kind:{event.kind}",
        f"event:{event.id}",
    }
    assert event.title in body["text"] and event.id in body["text"]


def test_plan_and_requests():
    event = ev.load()[0]
    create = grafana.plan(event, [])
    assert grafana.request_for(create, "http://g:3000/") == (
        "POST",
        "http://g:3000/api/annotations",
        create.body,
    )
    same = {"id": 7, **grafana.annotation(event)}
    assert grafana.plan(event, [same]).verb == "unchanged"
    assert grafana.request_for(grafana.plan(event, [same]), "http://g") is None
    moved = {**same, "time": same["time"] + 86_400_000}
    update = grafana.plan(event, [moved])
    assert update.verb == "update"
    assert grafana.request_for(update, "http://g")[:2] == ("PUT", "http://g/api/annotations/7")


class FakeGrafana:
    """Grafana's annotation endpoints, as far as push-grafana uses them."""

    def __init__(self) -> None:
        self.annotations: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.auth: set[str | None] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/annotations", self.find)
        app.router.add_post("/api/annotations", self.create)
        app.router.add_put("/api/annotations/{id}", self.update)
        return app

    async def find(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path_qs))
        self.auth.add(request.headers.get("Authorization"))
        wanted = set(request.query.getall("tags", []))
        found = [dict(a, id=i) for i, a in self.annotations.items() if wanted <= set(a["tags"])]
        return web.json_response(found[: int(request.query.get("limit", "100"))])

    async def create(self, request: web.Request) -> web.Response:
        self.requests.append(("POST", request.path))
        body = await request.json()
        new_id = len(self.annotations) + 1
        self.annotations[new_id] = body
        return web.json_response({"message": "Annotation added", "id": new_id})

    async def update(self, request: web.Request) -> web.Response:
        self.requests.append(("PUT", request.path))
        annotation_id = int(request.match_info["id"])
        if annotation_id not in self.annotations:
            return web.json_response({"message": "not found"}, status=404)
        self.annotations[annotation_id] = await request.json()
        return web.json_response({"message": "Annotation updated"})


def test_push_is_idempotent():
    fake = FakeGrafana()
    events = ev.load()

    async def run() -> None:
        async with TestServer(fake.app(), host="127.0.0.1") as server:
            url = str(server.make_url(""))
            first = await grafana.push(events, url=url, token="secret")
            assert first == {"create": 80}
            assert len(fake.annotations) == 80
            second = await grafana.push(events, url=url, token="secret")
            assert second == {"unchanged": 80}
            assert len(fake.annotations) == 80
            changed = [dataclasses.replace(events[0], title="Corrected title"), *events[1:]]
            writes_before = sum(m != "GET" for m, _ in fake.requests)
            third = await grafana.push(changed, url=url, token="secret")
            assert third == {"update": 1, "unchanged": 79}
            assert sum(m != "GET" for m, _ in fake.requests) == writes_before + 1
            dry = await grafana.push(
                [dataclasses.replace(events[1], title="x")], url=url, dry_run=True
            )
            assert dry == {"update": 1}
            with pytest.raises(grafana.GrafanaError, match="HTTP 404"):
                await grafana.push(events[:1], url=url + "/nothing-here/")

    asyncio.run(run())
    assert fake.auth == {"Bearer secret", None}
    by_event = {
        next(t for t in a["tags"] if t.startswith("event:")): a for a in fake.annotations.values()
    }
    assert by_event[f"event:{events[0].id}"]["text"].startswith("Corrected title")


def test_push_reports_unreachable_grafana(pcdata):
    port = pcdata.free_port()  # nothing listens there
    with pytest.raises(grafana.GrafanaError, match="cannot reach Grafana"):
        asyncio.run(grafana.push(ev.load()[:1], url=f"http://127.0.0.1:{port}"))
