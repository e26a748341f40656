"""Network-namespace plumbing shared by the test labs (dnslab, bgplab, tracelab).

Every lab names its namespaces ``pcl<pid>-<n>-<role>`` (``new_base`` gives the
``pcl<pid>-<n>`` part, unique within the process), so one stale cleanup
(``cleanup_stale_namespaces``) removes what a crashed run of any lab left behind.
``Namespaces`` holds one lab's namespaces and processes and removes them all in
``teardown``; the helpers build commands (``exec_cmd``, ``ns_sh``, ``address_lines``)
and run them with a bounded time (``run``, ``run_parallel``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

NS_PREFIX = "pcl"
_STALE_RE = re.compile(rf"^{NS_PREFIX}(\d+)-\d+-[a-z0-9]+$")

_counter = 0


class LabUnavailable(RuntimeError):
    """The lab cannot be built on this machine (not root, no netns, missing tool
    or data).  The pytest fixtures turn it into ``pytest.skip``."""


class LabError(RuntimeError):
    """Building the lab failed although it should have worked."""


def ip() -> str:
    """The ``ip`` binary (iproute2)."""
    return shutil.which("ip") or "/usr/sbin/ip"


def which(tool: str) -> str | None:
    """``tool``'s path, also looked for in the sbin folders a non-login PATH may lack."""
    return shutil.which(tool) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(p := f"{d}/{tool}", os.X_OK)),
        None,
    )


def require_root(what: str) -> None:
    """Raise LabUnavailable unless this is Linux and we are root."""
    if not sys.platform.startswith("linux"):
        raise LabUnavailable("needs Linux network namespaces")
    if os.geteuid() != 0:
        raise LabUnavailable(f"needs root for {what} (euid={os.geteuid()})")


def run(
    cmd: Sequence[str], *, timeout: float = 30, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (text output captured); with ``check``, raise LabError when it fails."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise LabError(f"command failed (rc={p.returncode}): {shlex.join(cmd)}\n{p.stderr.strip()}")
    return p


def run_parallel(cmds: Sequence[Sequence[str]], timeout: float = 30) -> None:
    """Run ``cmds`` at once; raise LabError naming every one that failed or timed out."""
    procs = [
        (c, subprocess.Popen(list(c), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for c in cmds
    ]
    errors = []
    for c, p in procs:
        try:
            _out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _out, err = p.communicate()
            errors.append(f"timeout: {shlex.join(c)}")
            continue
        if p.returncode != 0:
            errors.append(f"rc={p.returncode}: {shlex.join(c)}\n{err.strip()}")
    if errors:
        raise LabError("lab setup command(s) failed:\n" + "\n".join(errors))


def exec_cmd(ns: str, *argv: str) -> list[str]:
    """``argv`` run inside namespace ``ns``."""
    return [ip(), "netns", "exec", ns, *argv]


def ns_sh(ns: str, lines: Iterable[str]) -> list[str]:
    """One ``sh -e`` script of ``lines`` run inside ``ns`` (one process for many commands)."""
    return exec_cmd(ns, "sh", "-ec", "\n".join(lines))


def address_lines(dev: str, ipv4_cidr: str, ipv6_cidr: str) -> list[str]:
    """Script lines giving ``dev`` an IPv4 and an IPv6 address (no DAD) and bringing it up."""
    return [
        f"ip addr add {ipv4_cidr} dev {dev}",
        f"ip -6 addr add {ipv6_cidr} dev {dev} nodad",
        f"ip link set {dev} up",
    ]


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
    """A veth pair: ``dev_a`` in ``ns_a``, ``dev_b`` in ``ns_b`` (both still down)."""
    peer = ["peer", "name", dev_b, "netns", ns_b]
    run([ip(), "link", "add", dev_a, "netns", ns_a, "type", "veth", *peer])


def die_with_parent(sig: str = "TERM") -> list[str]:
    """``setpriv --pdeathsig SIG --`` prefix so a daemon goes away with this process
    even if it is SIGKILLed (only from the main thread: the signal fires when the
    creating *thread* exits)."""
    setpriv = which("setpriv")
    if setpriv and threading.current_thread() is threading.main_thread():
        return [setpriv, "--pdeathsig", sig, "--"]
    return []


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ns_pids(ns: str) -> list[int]:
    """The processes running in ``ns``."""
    p = run([ip(), "netns", "pids", ns], check=False, timeout=10)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def delete_ns(ns: str) -> None:
    """Kill what still runs in *ns* (our own daemons) and delete it."""
    for _ in range(3):
        pids = [p for p in ns_pids(ns) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    run([ip(), "netns", "del", ns], check=False, timeout=10)


def list_lab_namespaces() -> list[str]:
    """Every lab namespace (``pcl<pid>-<n>-<role>``) that exists now."""
    p = run([ip(), "netns", "list"], check=False, timeout=10)
    names = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
    return [n for n in names if _STALE_RE.match(n)]


def cleanup_stale_namespaces() -> list[str]:
    """Delete ``pcl<pid>-...`` namespaces whose creating process is gone."""
    removed = []
    for ns in list_lab_namespaces():
        m = _STALE_RE.match(ns)
        assert m is not None
        if pid_alive(int(m.group(1))):
            continue
        delete_ns(ns)
        removed.append(ns)
    return removed


def new_base(offset: int = 0) -> str:
    """A fresh ``pcl<pid>-<n>`` prefix for one lab's namespace names."""
    global _counter
    _counter += 1
    return f"{NS_PREFIX}{os.getpid()}-{offset + _counter}"


class Namespaces:
    """Namespaces and processes of one lab; torn down by :meth:`teardown`."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[Any]] = []

    def add(self, ns: str) -> None:
        """Create ``ns``; the first failure means netns is not permitted (LabUnavailable)."""
        p = run([ip(), "netns", "add", ns], check=False, timeout=10)
        if p.returncode != 0:
            msg = p.stderr.strip()
            if not self.namespaces:  # the very first one: a permission problem
                raise LabUnavailable(f"`ip netns add` is not permitted here: {msg}")
            raise LabError(f"ip netns add {ns} failed: {msg}")
        self.namespaces.append(ns)

    def teardown(self, *, grace_seconds: float = 3.0) -> None:
        """Stop every process (TERM, then KILL after the grace), delete every namespace."""
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        deadline = time.monotonic() + grace_seconds
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)
        self.procs.clear()
        for f in self.logs:
            with contextlib.suppress(Exception):
                f.close()
        self.logs.clear()
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                delete_ns(ns)
        self.namespaces.clear()
