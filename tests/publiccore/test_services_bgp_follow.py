"""``publiccore run``'s follower hook: started with ``[bgp.follow] enabled = true`` against a
local archive (the real rrc05 files under names of the last hours), stopped with the run; not
started by default, and never by ``serve``."""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
import shutil
import time

import pytest
from publiccore.collectors.bgp import archive as arc

from publiccore import config as cfg
from publiccore.app import services
from publiccore.store import open_store
from tests.collectors.bgp.archive_server import ArchiveServer

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")


def _path(when: float, kind: arc.Kind) -> str:
    day = dt.datetime.fromtimestamp(when, dt.UTC)
    return f"rrc05/{day:%Y.%m}/{arc.file_name('ris', kind, when)}"


def test_run_hook_follows_only_when_enabled(shared_data: pathlib.Path, tmp_path) -> None:
    mrt = shared_data / "mrt" / "bgpdump"
    rib_time = arc.slots(8 * 3600, time.time() - 9 * 3600, time.time() - 600)[0]
    server = ArchiveServer(
        {
            _path(rib_time, "rib"): mrt / "bview.20020722.2337.gz",
            _path(rib_time + 300, "updates"): mrt / "updates.20100722.2015.gz",
        }
    )
    url = server.start()
    store = open_store(str(tmp_path / "s.sqlite"))
    try:

        async def run(settings: cfg.Settings) -> None:
            stop = asyncio.Event()
            task = services._start_bgp_follow(store, settings, stop)
            if task is None:
                return
            for _ in range(600):  # until both files are stored
                if len(store.archive_files(status="done")) == 2:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(task, 60)

        asyncio.run(run(cfg.Settings()))
        assert store.archive_files() == [] and server.gets == {}
        settings = cfg.from_mapping(
            {
                "bgp": {
                    "follow": {
                        "enabled": True,
                        "ris": url,
                        "collectors": ["rrc05"],
                        "cache_dir": str(tmp_path / "cache"),
                        "workers": 1,
                    }
                }
            }
        )
        asyncio.run(run(settings))
        assert [r.status for r in store.archive_files()] == ["done", "done"]
    finally:
        store.close()
        server.stop()


def _follow_settings(url: str, tmp_path: pathlib.Path, *, enabled: bool) -> cfg.Settings:
    return cfg.from_mapping(
        {
            "bgp": {
                "follow": {
                    "enabled": enabled,
                    "ris": url,
                    "collectors": ["rrc05"],
                    "cache_dir": str(tmp_path / "cache"),
                    "workers": 1,
                }
            }
        }
    )


def _run_until(
    store_path: pathlib.Path, settings: cfg.Settings, server: ArchiveServer, *, done: int
) -> None:
    """``publiccore run``'s services loop (``_run_async``, no probe measurements) until ``done``
    archive files are stored or, for ``done`` 0, until the archive sees a request or 3 s pass;
    then SIGTERM, as an operator stops it."""
    import os
    import signal
    import threading

    from publiccore.probes.spool import Spool

    store = open_store(str(store_path))
    spool_path, credentials = services.run_state_paths(settings, str(store_path))
    spool = Spool(spool_path, quota_bytes=settings.agent.spool_quota_bytes)
    probe = services.local_probe(store, settings, credentials)
    state = services.RunState(
        probe=probe.ref, url="", store_label=str(store_path), interval_seconds=60.0
    )
    finished = threading.Event()

    def stop_when_ready() -> None:
        watch = open_store(str(store_path))
        try:
            for _ in range(1200 if done else 30):  # bounded: 120 s, or 3 s for "nothing"
                if finished.wait(0.1):
                    return
                if done and len(watch.archive_files(status="done")) >= done:
                    break
                if not done and server.gets:
                    break
        finally:
            watch.close()
        os.kill(os.getpid(), signal.SIGTERM)  # run's own handler sets its stop event

    stopper = threading.Thread(target=stop_when_ready, daemon=True)
    stopper.start()
    try:
        asyncio.run(
            services._run_async(
                store,
                settings,
                spool,
                [],
                probe,
                state,
                host="127.0.0.1",
                port=0,
                rounds=None,
                live=False,
            )
        )
    finally:
        finished.set()
        stopper.join(timeout=30)
        spool.close()
        store.close()


def test_publiccore_run_follows_only_when_enabled(shared_data: pathlib.Path, tmp_path) -> None:
    mrt = shared_data / "mrt" / "bgpdump"
    rib_time = arc.slots(8 * 3600, time.time() - 9 * 3600, time.time() - 600)[0]
    server = ArchiveServer(
        {
            _path(rib_time, "rib"): mrt / "bview.20020722.2337.gz",
            _path(rib_time + 300, "updates"): mrt / "updates.20100722.2015.gz",
        }
    )
    url = server.start()
    try:
        # the default ([bgp.follow] enabled = false), with the archive configured all the same
        off = tmp_path / "off.sqlite"
        _run_until(off, _follow_settings(url, tmp_path, enabled=False), server, done=0)
        assert server.gets == {}
        with open_store(str(off)) as store:
            assert store.archive_files() == []
        on = tmp_path / "on.sqlite"
        _run_until(on, _follow_settings(url, tmp_path, enabled=True), server, done=2)
        with open_store(str(on)) as store:
            rows = store.archive_files()
        assert sorted((r.kind, r.status) for r in rows) == [("rib", "done"), ("updates", "done")]
        assert server.gets[_path(rib_time, "rib")] >= 1
    finally:
        server.stop()


def test_serve_never_follows(shared_data: pathlib.Path, tmp_path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    mrt = shared_data / "mrt" / "bgpdump"
    rib_time = arc.slots(8 * 3600, time.time() - 9 * 3600, time.time() - 600)[0]
    server = ArchiveServer({_path(rib_time, "rib"): mrt / "bview.20020722.2337.gz"})
    url = server.start()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[bgp.follow]\nenabled = true\nris = "{url}"\ncollectors = ["rrc05"]\n'
        f'cache_dir = "{tmp_path / "cache"}"\nworkers = 1\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "publiccore", "--config", str(config), "serve"]
    process = subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0", "--store", str(tmp_path / "s.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        with urllib.request.urlopen(line.split()[-1] + "/healthz", timeout=10) as answer:
            assert json.load(answer) == {"status": "ok"}
        for _ in range(30):  # bounded (3 s): a follower would list the archive at once
            if server.gets:
                break
            time.sleep(0.1)
        assert server.gets == {}
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        server.stop()
    assert process.returncode == 0, err
    with open_store(str(tmp_path / "s.sqlite")) as store:
        assert store.archive_files() == []
