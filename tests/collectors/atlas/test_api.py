"""``publiccore import atlas --measurement … [--follow]`` against a local Atlas API.

The server (conftest.py) serves real Atlas results from shared/data/atlas; for following, real
results are re-timed to the present (same content, new timestamps), since following reads up to
now.
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

from publiccore.collectors.atlas import mapping

from publiccore import records as rec
from publiccore.app import cli
from publiccore.store import open_store

REPO = pathlib.Path(__file__).resolve().parents[3]


def _config(tmp_path: pathlib.Path, **extra: float) -> pathlib.Path:
    settings = {"window_seconds": 60.0, "backoff_seconds": 0.01, "lag_seconds": 120.0, **extra}
    path = tmp_path / "publiccore.toml"
    path.write_text("[atlas]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return path


def _serve_monitor(server: Any, monitor: Any, msm: int) -> dict[str, Any]:
    data = monitor(msm)
    server.add(data["results"])
    server.definitions[msm] = data["meta_data"]
    for probe in data["probes"]["results"]:
        server.probes[probe["id"]] = probe
    return data


def _records(store_path: pathlib.Path) -> list[rec.Record]:
    store = open_store(str(store_path))
    try:
        return list(store.iter_records())
    finally:
        store.close()


def test_measurement_imports_exactly_the_window(
    atlas_server: Any, monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    data = _serve_monitor(atlas_server, monitor, 1071935)
    store = tmp_path / "s.sqlite"
    argv = ["import", "atlas", "--config", str(_config(tmp_path)), "--store", str(store)]
    argv += ["--measurement", "1071935", "--api", atlas_server.url, "--json"]
    code = cli.main([*argv, "--start", "1386240475", "--stop", "1386240478"])
    counts = json.loads(capsys.readouterr().out)
    assert code == 0
    inside = [r for r in data["results"] if 1386240475 <= r["timestamp"] < 1386240478]
    assert len(inside) == 3  # 475 (two probes) and 476; 474 and 478 are outside
    got = _records(store)
    assert {r.id for r in got} == {mapping.record_id(r, r["dst_addr"]) for r in inside}
    assert counts["stored"] == 3 and counts["malformed"] == 0
    # Probe metadata came from the probes API, page by page (two probes a page).
    assert {r.probe.id: r.probe.country for r in got} == {
        "atlas-10048": "GB",
        "atlas-10102": "GB",
        "atlas-11523": "BE",
    }
    assert atlas_server.requests["probes"] == 2  # three probes, two a page
    one = got[0]
    assert one.source is not None and one.source.name == "ripe-atlas"
    assert one.source.measurement == 1071935 and one.source.file_sha256 is None
    assert one.source.query == (
        f"{atlas_server.url}/api/v2/measurements/1071935/results/?start=1386240475&stop=1386240477"
    )


def test_429_and_500_are_retried(
    atlas_server: Any, monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    _serve_monitor(atlas_server, monitor, 1071935)
    argv = ["import", "atlas", "--config", str(_config(tmp_path)), "--json"]
    argv += ["--measurement", "1071935", "--api", atlas_server.url]
    argv += ["--start", "1386240400", "--stop", "1386240500"]  # two 60 s windows
    assert cli.main([*argv, "--store", str(tmp_path / "a.sqlite")]) == 0
    capsys.readouterr()
    baseline = atlas_server.requests["results"]
    assert baseline == 2
    atlas_server.fail_next = [429, 500, 503]
    assert cli.main([*argv, "--store", str(tmp_path / "b.sqlite")]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert atlas_server.requests["results"] - baseline == baseline + 3
    assert counts["stored"] == 5
    assert len(_records(tmp_path / "b.sqlite")) == 5


def test_exhausted_retries_are_one_clear_error(
    atlas_server: Any, monitor: Any, tmp_path: pathlib.Path, capsys: Any
) -> None:
    _serve_monitor(atlas_server, monitor, 1071935)
    atlas_server.fail_next = [500] * 10
    argv = ["import", "atlas", "--config", str(_config(tmp_path, retries=2))]
    argv += ["--measurement", "1071935", "--api", atlas_server.url, "--store"]
    argv += [str(tmp_path / "s.sqlite"), "--start", "1386240400", "--stop", "1386240460"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("publiccore: error: Atlas API ") and "HTTP 500 after 3 attempts" in err
    assert err.count("\n") == 1


def _retimed(results: list[dict[str, Any]], base: int) -> list[dict[str, Any]]:
    """Real results with new timestamps ``base``, ``base + 1``, … (content unchanged)."""
    out = []
    for i, result in enumerate(results):
        copy = json.loads(json.dumps(result))
        shift = base + i - copy["timestamp"]
        copy["timestamp"] += shift
        if isinstance(copy.get("endtime"), int):
            copy["endtime"] += shift
        out.append(copy)
    return out


def _follow(
    server: Any, store: pathlib.Path, config: pathlib.Path, msm: int, start: int
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "publiccore", "import", "atlas", "--config", str(config)]
    argv += ["--store", str(store), "--measurement", str(msm), "--api", server.url]
    argv += ["--follow", "--every", "0.02", "--start", str(start)]
    return subprocess.Popen(
        argv, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def _wait_round(process: subprocess.Popen[str], n: int, seconds: float = 120.0) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    for line in process.stderr:  # one line per round; bounded by the deadline below
        if line.startswith(f"round {n}:"):
            return
        assert time.monotonic() < deadline, "the follower did not finish its round"
    raise AssertionError(f"follower ended before round {n}: exit {process.wait()}")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _stored_ids(store: pathlib.Path) -> list[str]:
    """The stored record ids; none while the follower is still creating the store."""
    db = sqlite3.connect(store, timeout=30)
    try:
        return [row[0] for row in db.execute("SELECT id FROM records")]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def test_follow_picks_up_results_added_later(
    atlas_server: Any, monitor: Any, tmp_path: pathlib.Path
) -> None:
    data = monitor(1071935)
    atlas_server.definitions[1071935] = data["meta_data"]
    now = int(time.time())
    first = _retimed(data["results"][:3], now - 300)
    atlas_server.add(first)
    store = tmp_path / "s.sqlite"
    process = _follow(atlas_server, store, _config(tmp_path), 1071935, now - 600)
    try:
        _wait_round(process, 1)
        assert sorted(_stored_ids(store)) == sorted(
            mapping.record_id(r, r["dst_addr"]) for r in first
        )
        later = _retimed(data["results"][3:], int(time.time()))
        atlas_server.add(later)
        _wait_round(process, 3)
    finally:
        _stop(process)
    expected = {mapping.record_id(r, r["dst_addr"]) for r in first + later}
    ids = _stored_ids(store)
    assert len(ids) == 5 and set(ids) == expected


def test_kill_9_during_follow_resumes_without_loss_or_duplicates(
    atlas_server: Any, atlas_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    with gzip.open(atlas_dir / "recdnsfp-measurements/google/traceroute.json.gz") as handle:
        traces = json.load(handle)[:3000]
    now = int(time.time())
    start = now - 3000 - 60
    for trace in traces:
        trace["msm_id"] = 9040294  # one measurement to follow
    results = _retimed(traces, start + 30)
    expected = {mapping.record_id(r, r["dst_addr"]) for r in results}
    assert len(expected) == len(results)
    atlas_server.add(results)
    store = tmp_path / "s.sqlite"
    config = _config(tmp_path, batch_records=50)
    process = _follow(atlas_server, store, config, 9040294, start)
    try:
        deadline = time.monotonic() + 120
        while True:  # until some, not all, windows are stored; bounded by the deadline
            stored = len(_stored_ids(store)) if store.exists() else 0
            if stored >= 1200 or process.poll() is not None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        _stop(process)
    partial = _stored_ids(store)
    assert 0 < len(partial) < len(results), "the kill came too late to test a resume"
    requests_first = atlas_server.requests["results"]
    process = _follow(atlas_server, store, config, 9040294, start)
    try:
        _wait_round(process, 1)
    finally:
        _stop(process)
    ids = _stored_ids(store)
    assert len(ids) == len(set(ids)) == len(results)
    assert set(ids) == expected
    # It resumed from its stored position, not from --start: fewer windows than a full pass.
    windows_total = (now - start) // 60 + 2
    assert atlas_server.requests["results"] - requests_first < windows_total
