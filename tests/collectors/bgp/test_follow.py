"""The archive follower against a local RIS / RouteViews archive serving the real MRT files of
shared/data/mrt: each file found, downloaded, processed and stored once; faults of the network
and of the archive; kill -9 at any moment; consistency refusals."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
from publiccore.collectors.bgp import follow as fl
from publiccore.collectors.bgp import process as proc
from publiccore.collectors.bgp.archive import DownloadError, parse_listing, parse_size

from publiccore.clock import parse_when
from publiccore.store import open_store
from tests.collectors.bgp.archive_server import (
    ArchiveServer,
    Fault,
    ris_archive,
    routeviews_archive,
)
from tests.procs import proc_stats

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

RIB = "rrc05/2002.07/bview.20020722.2337.gz"
UPDATES = "rrc05/2010.07/updates.20100722.2015.gz"
NOW = "2010-07-22T21:00:00Z"
SINCE = "2002-07-22"


def _delegated(data: pathlib.Path) -> list[str]:
    return [str(data / "rir/rir-mirror/delegated-lacnic-extended-latest")]


@pytest.fixture
def ris(shared_data: pathlib.Path):
    server = ArchiveServer(ris_archive(shared_data))
    server.start()
    yield server
    server.stop()


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _follow_args(
    url: str,
    store: pathlib.Path,
    cache: pathlib.Path,
    data: pathlib.Path,
    *,
    countries: bool = False,
) -> list[str]:
    return [
        "bgp", "follow", "--once", "--source", f"ris={url}", "--collector", "rrc05",
        "--since", SINCE, "--now", NOW, "--store", str(store), "--cache", str(cache),
    ] + (["--delegated", *_delegated(data)] if countries else [])  # fmt: skip


def _options(url: str, tmp: pathlib.Path, **kwargs: object) -> fl.FollowOptions:
    values: dict[str, object] = {
        "bases": {"ris": url, "routeviews": url},
        "collectors": ("rrc05",),
        "cache_dir": tmp / "cache",
        "since": parse_when(SINCE).timestamp(),
        "once": True,
        "retries": 2,
        "backoff_seconds": 0.05,
        "timeout_seconds": 5.0,
        "workers": 1,
    }
    values.update(kwargs)
    return fl.FollowOptions(**values)  # type: ignore[arg-type]


def _follow(store, options: fl.FollowOptions, config: proc.ProcessConfig) -> fl.PollCounts:
    now = parse_when(NOW).timestamp()
    return asyncio.run(fl.Follower(store, options, config, clock=lambda: now).run())


def _observations(store) -> collections.Counter[tuple]:
    return collections.Counter(
        (o.time.timestamp(), o.subject_kind, o.subject, o.metric, o.value, json.dumps(o.labels))
        for o in store.iter_observations()
    )


def _statuses(store) -> dict[str, str]:
    return {r.name: r.status for r in store.archive_files()}


def test_listing_parser_reads_apache_and_sizes() -> None:
    text = (
        '<pre><a href="../">../</a>\n<a href="bview.20020722.2337.gz">bview.20020722.2337.gz</a>'
        '   22-Jul-2002 23:37   1.1M\n<a href="updates.20100722.2015.gz">updates.20100722.2015.gz'
        "</a>  22-Jul-2010 20:20  39512\n</pre>"
    )
    assert parse_listing(text) == [
        ("bview.20020722.2337.gz", (1153434, 104857)),
        ("updates.20100722.2015.gz", (39512, 0)),
    ]
    assert parse_size("14M") == (14 * 1024 * 1024, 1024 * 1024)
    assert parse_size("-") is None


def test_follower_stores_each_file_once_with_the_visibility_observations(
    ris: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store_path = tmp_path / "follow.sqlite"
    run = _cli(*_follow_args(ris.url, store_path, tmp_path / "cache", shared_data, countries=True))
    assert run.returncode == 0, run.stderr
    assert "processed 2 files" in run.stderr
    store = open_store(str(store_path))
    try:
        rows = {r.name: r for r in store.archive_files()}
        assert rows["bview.20020722.2337.gz"].status == "done"
        assert rows["bview.20020722.2337.gz"].sha256.startswith("8086090ad2e3a88a")
        assert rows["updates.20100722.2015.gz"].status == "done"
        assert rows["updates.20100722.2015.gz"].elements == 5654  # PROVENANCE.md: 5,654 lines
        followed = _observations(store)
        metrics = {key[3] for key in followed}
        assert "bgp_country_visible_slash24" in metrics  # the 5-minute series
        bins = {key[0] for key in followed if key[0] >= parse_when("2010-07-22").timestamp()}
        assert bins == {parse_when("2010-07-22T20:15Z").timestamp(),
                        parse_when("2010-07-22T20:20Z").timestamp()}  # fmt: skip
        assert len(store.archive_files()) == 2
    finally:
        store.close()
    # the RIB's observations are exactly those `bgp visibility --transit` stores for the file
    manual_path = tmp_path / "manual.sqlite"
    manual = _cli(
        "bgp", "visibility", "--transit", "--reader", "bgpdump", "--collector", "rrc05",
        "--mrt", str(shared_data / "mrt/bgpdump/bview.20020722.2337.gz"),
        "--delegated", *_delegated(shared_data), "--store", str(manual_path),
    )  # fmt: skip
    assert manual.returncode == 0, manual.stderr
    store, manual_store = open_store(str(store_path)), open_store(str(manual_path))
    try:
        rib_time = parse_when("2002-07-22T23:37:35Z").timestamp()
        from_rib = collections.Counter(
            {k: v for k, v in _observations(store).items() if k[0] < rib_time + 10}
        )
        assert from_rib == _observations(manual_store)
        assert sum(from_rib.values()) > 100
    finally:
        store.close()
        manual_store.close()
    # a second run: nothing downloaded or stored again
    gets = ris.gets[RIB] + ris.gets[UPDATES]
    again = _cli(
        *_follow_args(ris.url, store_path, tmp_path / "cache", shared_data, countries=True)
    )
    assert again.returncode == 0, again.stderr
    assert "processed 0 files" in again.stderr
    assert ris.gets[RIB] + ris.gets[UPDATES] == gets
    status = _cli("bgp", "follow", "status", "--store", str(store_path), "--now", NOW, "--json")
    rows_json = {r["collector"]: r for r in json.loads(status.stdout)}
    assert rows_json["rrc05"]["last_file"] == "updates.20100722.2015.gz"
    assert round(rows_json["rrc05"]["lag_seconds"]) == 45 * 60
    assert rows_json["rrc05"]["processed"] == 2
    assert rows_json["rrc05"]["missing"] > 0  # 8-hourly RIBs between 2002 and 2010 are absent
    assert not list(tmp_path.joinpath("cache").rglob("*.gz"))  # processed files deleted


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        (Fault(truncate_times=1), "done", ""),
        (Fault(status=500, status_times=2), "done", ""),
        (Fault(status=404, status_times=99), "failed", "not_found"),
        (Fault(stall_times=1, stall_seconds=30), "done", ""),
        (Fault(listed_size=10_000), "failed", "size_mismatch"),
    ],
    ids=["truncated", "500-twice", "404", "stall", "listing-lies"],
)
def test_download_faults(
    ris: ArchiveServer,
    shared_data: pathlib.Path,
    tmp_path: pathlib.Path,
    fault: Fault,
    status: str,
    error: str,
) -> None:
    ris.faults[UPDATES] = fault
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        config = proc.ProcessConfig()
        counts = _follow(store, _options(ris.url, tmp_path, timeout_seconds=1.0), config)
        rows = {r.name: r for r in store.archive_files()}
        assert rows["bview.20020722.2337.gz"].status == "done"
        row = rows["updates.20100722.2015.gz"]
        assert row.status == status, row.error
        assert row.error.startswith(error)
        if status == "done":
            assert row.elements == 5654
            assert row.sha256.startswith("4e4870770e8d7db7")
            assert counts.processed == 2
        else:
            assert counts.failed == 1
            assert row.observations == 0
            assert not list(tmp_path.joinpath("cache").rglob("updates.*"))  # never complete
    finally:
        store.close()


def test_failed_file_is_retried_on_a_later_poll(ris: ArchiveServer, tmp_path: pathlib.Path) -> None:
    ris.faults[UPDATES] = Fault(status=500, status_times=3)  # more than one poll's retries
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        options = _options(ris.url, tmp_path, retries=1)
        first = _follow(store, options, proc.ProcessConfig())
        assert first.failed == 1
        assert _statuses(store)["updates.20100722.2015.gz"] == "failed"
        second = _follow(store, options, proc.ProcessConfig())
        assert second.processed == 1  # the state was rebuilt from the stored RIB in a new worker
        row = {r.name: r for r in store.archive_files()}["updates.20100722.2015.gz"]
        assert (row.status, row.attempts, row.elements) == ("done", 1, 5654)
        assert ris.gets[RIB] == 2  # downloaded again, to rebuild (not stored again)
        assert len([s for s in store.archive_files() if s.source_id]) == 2
    finally:
        store.close()


def test_update_file_older_than_its_rib_or_from_another_collector_is_refused(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    mrt = shared_data / "mrt"
    folder = tmp_path / "ris" / "rrc00"
    folder.mkdir(parents=True)
    rib = folder / "bview.20180919.0800.gz"
    shutil.copy(mrt / "bgpdump/bview.64k_stream_overflow.gz", rib)
    old = folder / "updates.20071015.1505.gz"
    shutil.copy(mrt / "bgpdump/updates.20071015.1505.gz", old)
    other = tmp_path / "ris" / "rrc05"
    other.mkdir()
    foreign = other / "updates.20180919.0805.gz"
    shutil.copy(mrt / "bgpdump/updates.20100722.2015.gz", foreign)
    processor = proc.Processor(proc.ProcessConfig())

    def job(path: pathlib.Path, kind: str, when: str) -> proc.Job:
        return proc.Job("ris", "rrc00", kind, path.name, str(path), parse_when(when).timestamp())  # type: ignore[arg-type]

    assert processor.process(job(rib, "rib", "2018-09-19T08:00Z")).status == "done"
    refused = processor.process(job(old, "updates", "2007-10-15T15:05Z"))
    assert refused.status == "refused"
    assert (
        refused.error
        == "updates.20071015.1505.gz is older than its base RIB bview.20180919.0800.gz"
    )
    assert refused.observations == ()
    foreign_outcome = processor.process(job(foreign, "updates", "2018-09-19T08:05Z"))
    assert foreign_outcome.status == "refused"
    assert "from rrc05" in foreign_outcome.error
    assert processor.base("ris", "rrc00") == ("bview.20180919.0800.gz", "")  # nothing mixed in


def test_routeviews_layout_and_updates_without_a_rib(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    server = ArchiveServer(routeviews_archive(shared_data), exact_sizes=True)
    url = server.start()
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        options = _options(
            url,
            tmp_path,
            collectors=("route-views2", "route-views.jinx"),
            since=parse_when("2014-05-23").timestamp(),
        )
        now = parse_when("2015-04-01T01:00Z").timestamp()
        asyncio.run(fl.Follower(store, options, proc.ProcessConfig(), clock=lambda: now).run())
        rows = {(r.collector, r.name): r for r in store.archive_files()}
        rib = rows[("route-views2", "rib.20140523.0600.bz2")]
        assert rib.status == "done"
        assert rib.elements == 270_005  # PROVENANCE.md: complete records of the truncated file
        meta = store.get_source(rib.source_id).meta  # type: ignore[union-attr, arg-type]
        assert meta["partial"] is True
        jinx = rows[("route-views.jinx", "updates.20150401.0000.bz2")]
        assert jinx.status == "refused"
        assert "no RIB of route-views.jinx" in jinx.error
        assert server.gets["bgpdata/2014.05/RIBS/"] == 1
    finally:
        store.close()
        server.stop()


def _group_processes(pgid: int) -> list[tuple[int, str]]:
    return [(pid, name) for pid, name, fields in proc_stats() if int(fields[2]) == pgid]


def _kill_when(process: subprocess.Popen[str], ready, limit: float = 120) -> bool:
    """kill -9 the follower's whole process group once ``ready()``; False if it ended first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("moment", ["download", "processing"])
def test_kill_9_then_restart_loses_nothing_and_stores_nothing_twice(
    ris: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path, moment: str
) -> None:
    baseline = tmp_path / "baseline.sqlite"
    run = _cli(*_follow_args(ris.url, baseline, tmp_path / "c0", shared_data))
    assert run.returncode == 0, run.stderr
    store_path = tmp_path / "killed.sqlite"
    cache = tmp_path / "cache"
    if moment == "download":
        ris.faults[RIB] = Fault(stall_times=1, stall_seconds=60)

        def ready() -> bool:
            for part in cache.rglob(".*.part"):
                with contextlib.suppress(FileNotFoundError):  # renamed once complete
                    if part.stat().st_size > 0:
                        return True
            return False
    else:

        def ready() -> bool:
            return any(comm == "bgpdump" for _pid, comm in _group_processes(process.pid))

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publiccore",
            *_follow_args(ris.url, store_path, cache, shared_data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert _kill_when(process, ready), "the follower ended before the kill"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    ris.release()
    store = open_store(str(store_path))
    try:
        before = _statuses(store)
        assert "done" not in before.values() or moment == "processing"
    finally:
        store.close()
    restart = _cli(*_follow_args(ris.url, store_path, cache, shared_data))
    assert restart.returncode == 0, restart.stderr
    store, base = open_store(str(store_path)), open_store(str(baseline))
    try:
        assert (
            _statuses(store)
            == _statuses(base)
            == {
                "bview.20020722.2337.gz": "done",
                "updates.20100722.2015.gz": "done",
            }
        )
        assert _observations(store) == _observations(base)
        sources = [r.source_id for r in store.archive_files()]
        assert len(set(sources)) == 2
    finally:
        store.close()
        base.close()


def test_two_followers_on_one_store_take_each_file_once(
    ris: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store_path = tmp_path / "shared.sqlite"
    open_store(str(store_path)).close()  # migrated once, before both start
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "publiccore",
                *_follow_args(ris.url, store_path, tmp_path / f"cache{i}", shared_data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in processes:
        p.wait(300)
        assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    store = open_store(str(store_path))
    try:
        assert set(_statuses(store).values()) == {"done"}
        ids = [r.source_id for r in store.archive_files()]
        assert len(ids) == 2
        kinds = collections.Counter(
            store.get_source(i).meta["archive"]["name"]  # type: ignore[union-attr]
            for i in range(1, 10)
            if store.get_source(i) is not None
        )
        assert kinds == {"bview.20020722.2337.gz": 1, "updates.20100722.2015.gz": 1}
    finally:
        store.close()


def test_download_error_codes_are_snake_case() -> None:
    assert DownloadError("not_found", "x").reason == "not_found"


def test_without_once_it_polls_until_sigterm(
    ris: ArchiveServer, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store_path = tmp_path / "poll.sqlite"
    args = [
        a for a in _follow_args(ris.url, store_path, tmp_path / "c", shared_data) if a != "--once"
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "publiccore", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        done = False
        while time.monotonic() < deadline and process.poll() is None and not done:
            time.sleep(0.2)
            if store_path.exists():
                store = open_store(str(store_path))
                try:
                    done = set(_statuses(store).values()) == {"done"} and len(_statuses(store)) == 2
                finally:
                    store.close()
        assert done and process.poll() is None  # still running: it polls
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def test_cache_quota_makes_files_wait(ris: ArchiveServer, tmp_path: pathlib.Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        counts = _follow(
            store, _options(ris.url, tmp_path, cache_quota_bytes=1), proc.ProcessConfig()
        )
        assert (counts.processed, counts.waiting) == (0, 2)  # the RIB, then its updates behind it
        assert ris.gets[RIB] == 0 and store.archive_files() == []
        counts = _follow(store, _options(ris.url, tmp_path), proc.ProcessConfig())
        assert counts.processed == 2
    finally:
        store.close()


def test_without_listings_the_due_names_are_asked_for(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    server = ArchiveServer(routeviews_archive(shared_data))
    server.forbid_listings = True  # a mirror without directory indexes: HEAD per due name
    url = server.start()
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        options = _options(
            url,
            tmp_path,
            collectors=("route-views2",),
            since=parse_when("2014-05-23T05:30Z").timestamp(),
        )
        now = parse_when("2014-05-23T07:00Z").timestamp()
        counts = asyncio.run(
            fl.Follower(store, options, proc.ProcessConfig(), clock=lambda: now).run()
        )
        assert counts.processed == 1
        (row,) = store.archive_files()
        assert (row.name, row.status, row.elements) == ("rib.20140523.0600.bz2", "done", 270_005)
        assert row.size == 1_048_576  # from the HEAD answer's length
        assert server.gets["bgpdata/2014.05/RIBS/rib.20140523.0600.bz2"] == 2  # HEAD, then GET
        assert server.gets["bgpdata/2014.05/UPDATES/updates.20140523.0600.bz2"] == 1  # asked
    finally:
        store.close()
        server.stop()
