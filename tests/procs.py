"""The processes of this machine, read from /proc (for tests that check what a service left)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator


def proc_stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the stat fields after the name: state, ppid, pgrp, …) of every
    process that is still there when its stat is read."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        yield int(entry.name), name, stat[stat.rindex(")") + 2 :].split()
