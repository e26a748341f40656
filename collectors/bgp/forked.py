"""One computation in a forked child process, beside the parent's own work (a spare core).

After a RIB is read, the derivation's parts are independent of each other and need the whole
table, which a child forked then shares copy-on-write: no copy, no pickling of the table. Only
the child's result crosses a pipe. ``start`` forks only where it is safe, in a process with a
single thread (a follower's or backfill's worker process, the ``bgp`` command), and on a
platform that has ``fork``; anywhere else (a Dask worker's task thread, a test with servers
in threads) it runs nothing and the caller computes the part itself. A child that dies
without a result (killed, out of memory) costs a second computation in the parent, never the
result: ``Forked.result`` then computes it there.

Parent and child share the work by taking items from one list in turn (``Claims``): each takes
the next item when it is free, so neither waits for the other whatever the items cost.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Claims:
    """Items ``0 … count-1`` handed out once each, to whichever process asks first (the
    counter lives in memory shared by the processes forked after it is made)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._next = multiprocessing.get_context("fork").Value("q", 0)

    @classmethod
    def shared(cls, count: int) -> Claims | None:
        """Claims for processes to be forked, or None where there is no shared memory."""
        if not can_fork():
            return None
        try:
            return cls(count)
        except (OSError, ValueError):  # no /dev/shm, no fork start method
            return None

    def take(self) -> int | None:
        """The next item no process has taken, or None when all are taken."""
        with self._next.get_lock():
            item = self._next.value
            if item >= self.count:
                return None
            self._next.value = item + 1
        return item


def spare_cores(busy: int) -> bool:
    """True when ``busy`` processes computing side by side leave a core of this machine idle."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return busy < cores


def can_fork() -> bool:
    """True when this process may fork a child that computes in Python: a single thread."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Forked(Generic[T]):
    """``function(*args)`` computing in a forked child; ``result()`` waits for its value."""

    def __init__(self, function: Callable[..., T], *args: object) -> None:
        self._function = function
        self._args = args
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, exit without the parent's exit handlers
            os.close(read)
            _child(write, function, args)
        os.close(write)
        self._pid: int | None = pid
        self._read = read

    def close(self) -> None:
        """Stop the child if its result was not taken (the caller failed before asking)."""
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        if self._read >= 0:
            os.close(self._read)
            self._read = -1
        os.waitpid(self._pid, 0)
        self._pid = None

    def result(self) -> T:
        """The child's value (its exception raised here); computed here if the child died."""
        if self._pid is None:
            raise RuntimeError("the child's result was taken or given up already")
        chunks = []
        read, self._read = self._read, -1
        with os.fdopen(read, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
        _pid, status = os.waitpid(self._pid, 0)
        self._pid = None
        if os.waitstatus_to_exitcode(status) != 0 or not chunks:
            return self._function(*self._args)
        ok, value = pickle.loads(b"".join(chunks))
        if not ok:
            raise value
        return value


def _child(write: int, function: Callable[..., object], args: tuple[object, ...]) -> None:
    code = 1
    try:
        # the parent's objects are not collected here: the collector would write to every
        # object's header and so copy the whole shared heap page by page
        gc.freeze()
        try:
            outcome: tuple[bool, object] = (True, function(*args))
        except Exception as exc:  # sent to the parent, which raises it
            exc.__traceback__ = None
            outcome = (False, exc)
        data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write, "wb") as pipe:
            pipe.write(data)
        code = 0
    except BaseException:  # nothing reaches the parent's handlers from here
        traceback.print_exc()
    finally:
        os._exit(code)


def start(function: Callable[..., T], *args: object) -> Forked[T] | None:
    """``function(*args)`` in a forked child, or None where forking is not safe (see module)."""
    if not can_fork():
        return None
    try:
        return Forked(function, *args)
    except OSError:  # no process or pipe to be had: the caller computes it
        return None
