"""Backfill of a window of the local archive (real MRT files): a Dask LocalCluster with two
workers, and local processes, give exactly the observations and file states of a serial run;
a second run resumes (nothing again)."""

from __future__ import annotations

import collections
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from publiccore.collectors.bgp import backfill as bf
from publiccore.collectors.bgp import follow as fl
from publiccore.collectors.bgp import process as proc

from publiccore.clock import parse_when
from publiccore.store import open_store
from tests.collectors.bgp.archive_server import ArchiveServer, ris_archive, routeviews_archive

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

SINCE = "2002-07-22"
UNTIL = "2018-09-20"
COLLECTORS = ("rrc05", "rrc00", "route-views2", "route-views.jinx")


@pytest.fixture
def archive(shared_data: pathlib.Path):
    files = {**ris_archive(shared_data), **routeviews_archive(shared_data)}
    server = ArchiveServer(files)
    server.start()
    yield server
    server.stop()


def _options(url: str, cache: pathlib.Path, workers: int = 1) -> fl.FollowOptions:
    return fl.FollowOptions(
        bases={"ris": url, "routeviews": url},
        collectors=COLLECTORS,
        cache_dir=cache,
        since=parse_when(SINCE).timestamp(),
        once=True,
        workers=workers,
        retries=1,
        backoff_seconds=0.05,
    )


def _config(shared_data: pathlib.Path) -> proc.ProcessConfig:
    delegated = str(shared_data / "rir/rir-mirror/delegated-lacnic-extended-latest")
    return proc.ProcessConfig(delegated=(delegated,), command="bgp backfill")


def _observations(store) -> collections.Counter[tuple]:
    return collections.Counter(
        (o.time.timestamp(), o.subject_kind, o.subject, o.metric, o.value, json.dumps(o.labels))
        for o in store.iter_observations()
    )


def _files(store) -> dict[tuple[str, str], tuple[str, str, int]]:
    return {
        (r.collector, r.name): (r.status, r.sha256, r.observations) for r in store.archive_files()
    }


EXPECTED = {
    ("rrc05", "bview.20020722.2337.gz"): "done",
    ("rrc05", "updates.20100722.2015.gz"): "done",
    ("rrc00", "updates.20071015.1505.gz"): "refused",  # no RIB before it
    ("rrc00", "bview.20180919.0800.gz"): "done",
    ("route-views2", "rib.20140523.0600.bz2"): "done",
    ("route-views.jinx", "updates.20150401.0000.bz2"): "refused",
}


def test_dask_local_cluster_gives_the_serial_result(
    archive: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    distributed = pytest.importorskip("distributed")
    until = parse_when(UNTIL).timestamp()
    serial = open_store(str(tmp_path / "serial.sqlite"))
    try:
        result = bf.backfill(
            serial, _options(archive.url, tmp_path / "c1"), _config(shared_data), until=until
        )
        assert (result.processed, result.refused, result.failed) == (4, 2, 0)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster:
            parallel = open_store(str(tmp_path / "dask.sqlite"))
            try:
                on_dask = bf.backfill(
                    parallel,
                    _options(archive.url, tmp_path / "c2"),
                    _config(shared_data),
                    until=until,
                    dask=cluster.scheduler_address,
                )
                assert (on_dask.processed, on_dask.refused, on_dask.elements) == (
                    result.processed,
                    result.refused,
                    result.elements,
                )
                assert {k: v[0] for k, v in _files(parallel).items()} == EXPECTED
                assert _files(parallel) == _files(serial)
                assert _observations(parallel) == _observations(serial)
                assert sum(_observations(serial).values()) > 200
            finally:
                parallel.close()
    finally:
        serial.close()


def test_backfill_command_local_processes_and_resume(
    archive: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store_path = tmp_path / "b.sqlite"
    args = [
        sys.executable, "-m", "publiccore", "bgp", "backfill", "--since", SINCE, "--until", UNTIL,
        "--source", f"ris={archive.url}", "--source", f"routeviews={archive.url}",
        "--collector", *COLLECTORS, "--workers", "2", "--store", str(store_path),
        "--cache", str(tmp_path / "cache"), "--no-progress",
    ]  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    assert "processed 4 files" in first.stderr
    gets = sum(archive.gets.values())
    second = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr
    assert "processed 0 files" in second.stderr and "already done 6" in second.stderr
    downloads = [p for p in archive.gets if not p.endswith("/")]
    assert all(archive.gets[p] == 1 for p in downloads)  # no file fetched again
    assert sum(archive.gets.values()) > gets  # only listings
    store = open_store(str(store_path))
    try:
        assert {k: v[0] for k, v in _files(store).items()} == EXPECTED
    finally:
        store.close()
