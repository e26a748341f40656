"""The forked child beside a computation (collectors/bgp/forked.py).

The checks run in a fresh process started with ``spawn``: forking needs a single thread, and
the test process may hold threads of other tests' servers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time

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
