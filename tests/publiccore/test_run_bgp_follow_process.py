"""``publiccore run`` as a real process with ``[bgp.follow] enabled = true``: against a local
aiohttp archive (the real rrc05 files under names of the last hours, loopback, port 0) it
processes both files, ``bgp follow status`` and ``/metrics`` show them, and SIGTERM stops it
cleanly (exit 0, its worker processes gone, no claim left open). The probe's root rounds go to
loopback hints where nothing answers."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from publiccore.collectors.bgp import archive as arc

from publiccore.store import open_store
from tests.collectors.bgp.archive_server import ArchiveServer
from tests.collectors.test_ingest_support import hints_file, write_toml
from tests.procs import proc_stats

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")


def _path(when: float, kind: arc.Kind) -> str:
    day = dt.datetime.fromtimestamp(when, dt.UTC)
    return f"rrc05/{day:%Y.%m}/{arc.file_name('ris', kind, when)}"


def _descendants(pid: int) -> set[int]:
    """Processes under ``pid`` (children, their children…), from /proc."""
    parents = {child: int(fields[1]) for child, _name, fields in proc_stats()}
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _first_line(process: subprocess.Popen[str], prefix: str, seconds: float) -> str:
    """The first stdout line starting with ``prefix`` (bounded wait)."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.startswith(prefix):
                return line
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"no {prefix!r} line from publiccore run")


def test_publiccore_run_process_follows_and_stops_on_sigterm(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    mrt = shared_data / "mrt" / "bgpdump"
    rib_time = arc.slots(8 * 3600, time.time() - 9 * 3600, time.time() - 600)[0]
    rib, updates = _path(rib_time, "rib"), _path(rib_time + 300, "updates")
    server = ArchiveServer(
        {rib: mrt / "bview.20020722.2337.gz", updates: mrt / "updates.20100722.2015.gz"}
    )
    url = server.start()
    store_path = tmp_path / "s.sqlite"
    config = write_toml(
        tmp_path / "c.toml",
        {
            "root": {
                "hints": str(hints_file(tmp_path / "named.root")),
                "timeout_seconds": 0.2,
                "interval_seconds": 3600,
            },
            "agent": {"spool_path": str(tmp_path / "spool.sqlite"), "metrics_listen": ""},
            "bgp.follow": {
                "enabled": True,
                "ris": url,
                "collectors": ["rrc05"],
                "cache_dir": str(tmp_path / "cache"),
                "workers": 1,
            },
        },
    )
    base = [sys.executable, "-m", "publiccore", "--config", str(config)]
    process = subprocess.Popen(
        [*base, "run", "--listen", "127.0.0.1:0", "--store", str(store_path), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(process, "collector http://127.0.0.1:", 60)
        collector = line.split()[1]
        done: list[str] = []
        for _ in range(1200):  # bounded: 120 s for both files
            with open_store(str(store_path)) as store:
                done = [r.name for r in store.archive_files(status="done")]
            if len(done) == 2 or process.poll() is not None:
                break
            time.sleep(0.1)
        assert sorted(done) == sorted(n.rsplit("/", 1)[1] for n in (rib, updates))
        assert server.gets[rib] >= 1 and server.gets[updates] >= 1
        with urllib.request.urlopen(collector + "/metrics", timeout=30) as answer:
            metrics = answer.read().decode()
        lag = [m for m in metrics.splitlines() if m.startswith("publiccore_bgp_follow_lag_seconds")]
        assert len(lag) == 1 and 'collector="rrc05"' in lag[0], lag
        assert float(lag[0].rsplit(" ", 1)[1]) > 0
        processed = [
            m
            for m in metrics.splitlines()
            if m.startswith("publiccore_bgp_follow_files_processed") and "rrc05" in m
        ]
        assert processed and float(processed[0].rsplit(" ", 1)[1]) == 2.0, processed
        status = subprocess.run(
            [*base, "bgp", "follow", "status", "--store", str(store_path), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (row,) = json.loads(status.stdout)
        assert (row["collector"], row["processed"], row["last_file"]) == (
            "rrc05",
            2,
            updates.rsplit("/", 1)[1],
        )
        workers = _descendants(process.pid)
        assert workers, "the follower's worker processes run under publiccore run"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate(timeout=10)
        server.stop()
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    for _ in range(100):  # bounded (10 s): the worker processes end with it
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]
    with open_store(str(store_path)) as store:
        assert [r.status for r in store.archive_files()] == ["done", "done"]
    assert os.path.isdir(tmp_path / "cache")
