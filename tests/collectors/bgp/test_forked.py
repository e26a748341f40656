"""The forked child beside a computation (collectors/bgp/forked.py) and ``analyze(split=True)``.

The checks run in a fresh process started with ``spawn``: forking needs a single thread, and
the test process may hold threads of other tests' servers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pathlib
import shutil
import signal
import threading
import time

import pytest
from publiccore.collectors.bgp import forked


def _in_fresh_process(function, *args):  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result(timeout=600)


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _refuse(text: str) -> None:
    raise ValueError(text)


def _die_in_child(parent: int) -> str:
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return "computed in the parent"


def _take_all(claims: forked.Claims) -> list[int]:
    taken = []
    while (item := claims.take()) is not None:
        taken.append(item)
        time.sleep(0.001)  # the other process gets its turns
    return taken


def _forking_checks() -> dict[str, object]:
    out: dict[str, object] = {"can_fork": forked.can_fork()}
    child = forked.start(_pid_and, 21)
    assert child is not None
    pid, value = child.result()
    out["child_pid_differs"] = pid != os.getpid()
    out["value"] = value
    failing = forked.start(_refuse, "bad input")
    assert failing is not None
    try:
        failing.result()
    except ValueError as exc:
        out["raised"] = str(exc)
    dying = forked.start(_die_in_child, os.getpid())
    assert dying is not None
    out["after_death"] = dying.result()
    claims = forked.Claims(200)
    sharing = forked.start(_take_all, claims)
    assert sharing is not None
    mine = _take_all(claims)
    theirs = sharing.result()
    out["claims"] = (sorted(mine + theirs), bool(mine), bool(theirs))
    # with a second thread running, nothing is forked
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    out["with_thread"] = forked.start(_pid_and, 1)
    stop.set()
    thread.join()
    return out


def test_a_forked_child_computes_raises_dies_and_shares_work() -> None:
    out = _in_fresh_process(_forking_checks)
    assert out["can_fork"] is True
    assert out["child_pid_differs"] is True and out["value"] == 42
    assert out["raised"] == "bad input"  # the child's exception, raised in the parent
    assert out["after_death"] == "computed in the parent"  # never a lost result
    assert out["claims"] == (list(range(200)), True, True)  # each item once, both worked
    assert out["with_thread"] is None


def _split_and_serial(rib: str, delegated: list[str]) -> tuple[bool, object, object]:
    from publiccore.collectors.bgp.bgpdump import BgpdumpReader
    from publiccore.collectors.bgp.pipeline import analyze

    from publiccore.geo import Geo

    geo = Geo.from_files(delegated)

    def figures(split: bool) -> tuple[object, ...]:
        a = analyze(
            ribs=[rib], reader=BgpdumpReader(), geo=geo, transit_countries=["*"], split=split
        )
        return (a.transit, a.hegemony, a.countries, a.roots, a.summary, a.notes, a.peers)

    could = forked.can_fork()
    return could, figures(True), figures(False)


@pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")
@pytest.mark.parametrize(
    "name", ["pyasn/rib.20140523.0600_firstMB.bz2", "bgpdump/bview.20020722.2337.gz"]
)
def test_split_country_figures_equal_a_single_process(shared_data: pathlib.Path, name: str) -> None:
    """Every country's transit and hegemony computed by two processes taking countries in turn
    are exactly those of one process, and so is everything else of the analysis."""
    delegated = [
        str(shared_data / "rir/ipzone/delegated-ripencc-latest"),
        str(shared_data / "rir/ipzone/delegated-apnic-latest"),
        str(shared_data / "rir/ipzone/delegated-afrinic-latest"),
        str(shared_data / "rir/rir-mirror/delegated-lacnic-extended-latest"),
    ]
    could, split, serial = _in_fresh_process(
        _split_and_serial, str(shared_data / "mrt" / name), delegated
    )
    assert could is True  # the split run did fork
    assert split == serial
    transit = split[0]
    assert isinstance(transit, tuple) and len(transit) > 50


def test_followers_split_only_with_a_core_to_spare(tmp_path: pathlib.Path) -> None:
    from publiccore.collectors.bgp import follow as fl
    from publiccore.collectors.bgp import process as proc

    from publiccore.store import open_store

    cores = len(os.sched_getaffinity(0))
    assert forked.spare_cores(cores - 1) is True
    assert forked.spare_cores(cores) is False
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        for workers in (1, cores):
            options = fl.FollowOptions(
                bases={"ris": "http://127.0.0.1:9/"},
                collectors=("rrc00",),
                cache_dir=tmp_path / "cache",
                workers=workers,
            )
            follower = fl.Follower(store, options, proc.ProcessConfig())
            assert follower.config.split is forked.spare_cores(workers)
    finally:
        store.close()
