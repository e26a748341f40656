"""``publiccore run``'s follower hook: started with ``[bgp.follow] enabled = true`` against a
local archive (the real rrc05 files under names of the last hours), stopped with the run."""

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
