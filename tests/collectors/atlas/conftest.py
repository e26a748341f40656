"""A local RIPE Atlas REST API (aiohttp on 127.0.0.1, port 0) serving real Atlas results.

It serves ``/api/v2/measurements/ID/`` (the definition), ``/api/v2/measurements/ID/results/``
(``start``/``stop`` inclusive, as Atlas does) and ``/api/v2/probes/?id__in=…`` (paged by
``next`` links, two probes a page so paging is exercised). ``fail_next`` makes the next results
requests answer 429 / 500 first. It runs on its own event loop in a thread, so the command under
test can run ``asyncio.run`` itself or in another process.
"""

from __future__ import annotations

import asyncio
import collections
import json
import pathlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web


class AtlasServer:
    def __init__(self) -> None:
        self.results: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        self.definitions: dict[int, dict[str, Any]] = {}
        self.probes: dict[int, dict[str, Any]] = {}
        self.fail_next: list[int] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.probe_ids_asked: list[int] = []  # every id in an id__in, in order
        self.lock = threading.Lock()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def add(self, results: list[dict[str, Any]]) -> None:
        with self.lock:
            for r in results:
                self.results[r["msm_id"]].append(r)

    async def _results(self, request: web.Request) -> web.Response:
        self.requests["results"] += 1
        with self.lock:
            if self.fail_next:
                return web.Response(status=self.fail_next.pop(0), text="busy")
            msm = int(request.match_info["msm"])
            start = int(request.query.get("start", "0"))
            stop = int(request.query.get("stop", str(2**40)))
            out = [r for r in self.results[msm] if start <= r["timestamp"] <= stop]
        return web.json_response(out)

    async def _definition(self, request: web.Request) -> web.Response:
        self.requests["definition"] += 1
        msm = int(request.match_info["msm"])
        if msm not in self.definitions:
            return web.json_response({"error": {"status": 404}}, status=404)
        return web.json_response(self.definitions[msm])

    async def _probes(self, request: web.Request) -> web.Response:
        self.requests["probes"] += 1
        ids = sorted(int(x) for x in request.query.get("id__in", "").split(",") if x)
        if request.query.get("page", "1") == "1":
            self.probe_ids_asked.extend(ids)
        found = [self.probes[i] for i in ids if i in self.probes]
        page = int(request.query.get("page", "1"))
        chunk = found[(page - 1) * 2 : page * 2]
        more = page * 2 < len(found)
        base = f"{self.url}/api/v2/probes/?id__in={','.join(map(str, ids))}&page={page + 1}"
        return web.json_response(
            {"count": len(found), "next": base if more else None, "results": chunk}
        )

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v2/measurements/{msm}/results/", self._results)
        app.router.add_get("/api/v2/measurements/{msm}/", self._definition)
        app.router.add_get("/api/v2/probes/", self._probes)
        self._thread.start()

        async def up() -> str:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return f"http://127.0.0.1:{port}"

        self.url = asyncio.run_coroutine_threadsafe(up(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def atlas_server() -> Iterator[AtlasServer]:
    server = AtlasServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def atlas_dir(shared_data: pathlib.Path) -> pathlib.Path:
    path = shared_data / "atlas"
    if not path.is_dir():
        pytest.skip(f"no Atlas data at {path}")
    return path


@pytest.fixture(scope="session")
def monitor(atlas_dir: pathlib.Path) -> Any:
    """``monitor(msm)``: one ripe-atlas-monitor file (results, probes, meta_data), fresh."""

    def load(msm: int) -> dict[str, Any]:
        path = atlas_dir / "ripe-atlas-monitor" / f"{msm}.json"
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    return load
