"""Root zone snapshots: import from a file, fetch from a (local) HTTP server, refuse bad input."""

from __future__ import annotations

import asyncio
import pathlib

import pytest
from aiohttp import web
from publiccore.collectors import rootzone

from publiccore.app import cli
from publiccore.errors import InputError
from publiccore.store.sqlite import SqliteStore


def _zone_2014(shared_data: pathlib.Path) -> pathlib.Path:
    return shared_data / "root" / "dns-root-data" / "root.zone"


async def _serve(routes: dict[str, tuple[int, bytes]]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        status, body = routes.get(request.path, (404, b"not found"))
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_fetch_stores_the_zone_by_serial_and_refuses_what_is_not_one(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    text = _zone_2014(shared_data).read_bytes()
    store = SqliteStore(tmp_path / "store.sqlite")

    async def run() -> None:
        runner, base = await _serve(
            {"/domain/root.zone": (200, text), "/garbage": (200, b"<html>hello</html>\n")}
        )
        try:
            done = await rootzone.fetch_zone(store, f"{base}/domain/root.zone")
            assert (done.serial, done.new, done.size) == (2014062501, True, len(text))
            again = await rootzone.fetch_zone(store, f"{base}/domain/root.zone")
            assert (again.serial, again.new) == (2014062501, False)
            with pytest.raises(InputError, match="HTTP 404"):
                await rootzone.fetch_zone(store, f"{base}/missing")
            with pytest.raises(InputError, match="not a root zone file"):
                await rootzone.fetch_zone(store, f"{base}/garbage")
        finally:
            await runner.cleanup()

    asyncio.run(run())
    [stored] = store.root_zones()
    assert stored.serial == 2014062501 and stored.source.endswith("/domain/root.zone")
    packed = store.get_root_zone(2014062501)
    assert packed is not None and rootzone.unpack(packed) == text
    store.close()


def test_import_command(
    shared_data: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "store.sqlite")
    assert cli.main(["root", "zone", "import", str(_zone_2014(shared_data)), "--store", db]) == 0
    assert "zone 2014062501 stored" in capsys.readouterr().out
    assert cli.main(["root", "zone", "list", "--store", db]) == 0
    assert capsys.readouterr().out.startswith("2014062501  stored ")
    bad = tmp_path / "not-a-zone.txt"
    bad.write_text("hello\n")
    assert cli.main(["root", "zone", "import", str(bad), "--store", db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("publiccore: error: ") and "not a root zone file" in err
    assert len(err.strip().splitlines()) == 1
    assert cli.main(["root", "correctness", "--store", db]) == 0
    assert "no answer judged in the window" in capsys.readouterr().out
