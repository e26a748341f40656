"""A rich progress bar for long reads (elements, elements/s, current file), on a TTY only."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from publiccore.collectors.bgp.elements import ProgressCallback


@contextlib.contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[ProgressCallback | None]:
    """Yield a progress callback drawing on stderr, or None when stderr is not a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    totals: dict[str, int] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[elements]:>12,} elements"),
        TextColumn("{task.fields[rate]:>10,.0f} elements/s"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("reading", elements=0, rate=0.0)

        def update(name: str, count: int) -> None:
            totals[name] = count
            done = sum(totals.values())
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, description=name, elements=done, rate=done / elapsed)

        yield update
