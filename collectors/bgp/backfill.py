"""``publiccore bgp backfill``: every archive file of a time window, file-parallel.

The window's files are cut into chains, one per RIB dump of a collector: the RIB and the update
files up to the next RIB (updates apply to their RIB's state, so a chain runs in order on one
worker; chains are independent). Workers — local processes by default, or an existing Dask
cluster (``distributed``, the ``dask`` extra) — download and process a chain with the same code
as the follower (``process``); the client stores each file with the follower's file-state
table: a file already done is skipped, so an interrupted backfill resumes, and a file is stored
at most once even with a follower or another backfill on the same store. Results are the same
as a serial run (``workers=1``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence

from publiccore.collectors.bgp import archive as arc
from publiccore.collectors.bgp import follow as fl
from publiccore.collectors.bgp import forked
from publiccore.collectors.bgp import process as proc

from publiccore.errors import InputError
from publiccore.store import Store


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    """A RIB (or none, for updates before the window's first RIB) and the updates after it."""

    files: tuple[arc.ArchiveFile, ...]
    store: tuple[bool, ...]  # per file: its outcome is to be stored (False: replay only)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainTask:
    """What a worker needs to run one chain (picklable)."""

    chain: Chain
    config: proc.ProcessConfig
    bases: dict[arc.SourceName, str]
    cache_dir: str
    keep: bool = False
    connections_per_host: int = 2
    timeout_seconds: float = 120.0
    retries: int = 4
    backoff_seconds: float = 2.0


@dataclasses.dataclass(slots=True)
class BackfillResult:
    """What a backfill did."""

    processed: int = 0
    refused: int = 0
    failed: int = 0
    skipped: int = 0  # done before (resumed) or taken by another process
    elements: int = 0


def chains(files: Sequence[arc.ArchiveFile]) -> list[list[arc.ArchiveFile]]:
    """Cut time-ordered files of one collector into chains, each starting at a RIB."""
    out: list[list[arc.ArchiveFile]] = []
    current: list[arc.ArchiveFile] = []
    for file in files:
        if file.kind == "rib" and current:
            out.append(current)
            current = []
        current.append(file)
    if current:
        out.append(current)
    return out


def run_chain(task: ChainTask) -> list[proc.Outcome]:
    """Download and process one chain in order (in a worker); delete files unless ``keep``."""
    processor = proc.Processor(task.config)
    archive = arc.Archive(
        task.bases,
        connections_per_host=task.connections_per_host,
        timeout_seconds=task.timeout_seconds,
        retries=task.retries,
        backoff_seconds=task.backoff_seconds,
    )
    outcomes: list[proc.Outcome] = []
    rib_failed = False
    for file, store in zip(task.chain.files, task.chain.store, strict=True):
        if file.kind == "updates" and (rib_failed or file is task.chain.files[0]):
            # no RIB at all: refused; a RIB that failed (download…): failed, retried next run
            status: proc.Status = "failed" if rib_failed else "refused"
            why = "its base RIB failed" if rib_failed else "updates need one"
            outcomes.append(
                proc.Outcome(
                    file.source,
                    file.collector,
                    file.name,
                    file.kind,
                    status,
                    f"no RIB of {file.collector} at or before {file.name} ({why})",
                )
            )
            continue
        directory = pathlib.Path(task.cache_dir) / file.source / file.collector
        try:
            path = asyncio.run(_download(archive, file, directory))
        except arc.DownloadError as exc:
            outcomes.append(
                proc.Outcome(
                    file.source,
                    file.collector,
                    file.name,
                    file.kind,
                    "failed",
                    f"{exc.reason}: {exc}",
                )
            )
            if file.kind == "rib":
                rib_failed = True
            continue
        try:
            job = proc.Job(
                source=file.source,
                collector=file.collector,
                kind=file.kind,
                name=file.name,
                path=str(path),
                file_time=file.time,
                store=store,
            )
            outcome = processor.process(job)
        finally:
            if not task.keep:
                path.unlink(missing_ok=True)
        if file.kind == "rib" and outcome.status != "done":
            rib_failed = True
        outcomes.append(outcome)
    return outcomes


async def _download(
    archive: arc.Archive, file: arc.ArchiveFile, directory: pathlib.Path
) -> pathlib.Path:
    async with archive:
        return await archive.download(file, directory)


async def discover(options: fl.FollowOptions, until: float) -> list[arc.ArchiveFile]:
    """The window's files of every collector (plus each collector's base RIB before it)."""
    if options.since is None:
        raise InputError("backfill needs --since")
    out: list[arc.ArchiveFile] = []
    async with fl.archive_for(options) as archive:
        for collector in options.collectors:
            layout = arc.LAYOUTS[arc.source_of(collector)]
            files = await archive.discover(
                collector, start=options.since - layout.rib_seconds, end=until
            )
            out.extend(fl._from_base(files, options.since))
    return out


def plan(
    store: Store, files: Sequence[arc.ArchiveFile], *, max_attempts: int
) -> tuple[list[Chain], int]:
    """Chains with the files still to store; return them and how many files are done already."""
    rows = {(r.source, r.collector, r.name): r for r in store.archive_files()}
    by_collector: dict[tuple[str, str], list[arc.ArchiveFile]] = {}
    for file in files:
        by_collector.setdefault((file.source, file.collector), []).append(file)
    out: list[Chain] = []
    skipped = 0
    for key in sorted(by_collector):
        for chain in chains(sorted(by_collector[key], key=lambda f: (f.time, f.kind != "rib"))):
            wanted = []
            for file in chain:
                row = rows.get((file.source, file.collector, file.name))
                done = row is not None and (
                    row.status in ("done", "refused")
                    or (row.status == "failed" and row.attempts >= max_attempts)
                )
                wanted.append(not done)
                skipped += done
            if any(wanted):
                out.append(Chain(files=tuple(chain), store=tuple(wanted)))
    return out, skipped


def _store_outcome(
    store: Store,
    file: arc.ArchiveFile,
    outcome: proc.Outcome,
    *,
    owner: str,
    options: fl.FollowOptions,
) -> str:
    """Claim and finish one file in the store; return processed/refused/failed/skipped."""
    now = time.time()
    if not store.claim_archive_file(
        source=file.source,
        collector=file.collector,
        name=file.name,
        kind=file.kind,
        file_time=file.time,
        size=file.size,
        owner=owner,
        lease_until=now + options.lease_seconds,
        max_attempts=options.max_attempts,
        now=now,
        stale=fl.owner_is_gone,
    ):
        return "skipped"
    status = outcome.status if outcome.status != "no_base" else "refused"
    done = status == "done" and outcome.meta is not None
    ok = store.finish_archive_file(
        source=file.source,
        collector=file.collector,
        name=file.name,
        owner=owner,
        status=status,
        now=now,
        sha256=outcome.sha256,
        size=outcome.size,
        error=outcome.error or ("no base RIB state" if outcome.status == "no_base" else ""),
        elements=outcome.elements,
        source_kind=fl.SOURCE_KIND,
        meta=dict(outcome.meta or {}, archive=fl._provenance(file)) if done else None,
        observations=outcome.observations if done else (),
    )
    if not ok:
        return "skipped"
    return {"done": "processed", "refused": "refused"}.get(status, "failed")


@contextlib.contextmanager
def _local(workers: int) -> Iterator[Callable[[Sequence[ChainTask]], Iterator[list[proc.Outcome]]]]:
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
    )

    def submit(tasks: Sequence[ChainTask]) -> Iterator[list[proc.Outcome]]:
        futures = [pool.submit(run_chain, t) for t in tasks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()

    try:
        yield submit
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _dask(address: str) -> Iterator[Callable[[Sequence[ChainTask]], Iterator[list[proc.Outcome]]]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(
            "--dask needs the distributed package: pip install 'publiccore[dask]'"
        ) from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler {address}: {exc}") from None

    def submit(tasks: Sequence[ChainTask]) -> Iterator[list[proc.Outcome]]:
        futures = [client.submit(run_chain, t, pure=False) for t in tasks]
        for future in as_completed(futures):
            yield future.result()

    try:
        yield submit
    finally:
        client.close()


def backfill(
    store: Store,
    options: fl.FollowOptions,
    config: proc.ProcessConfig,
    *,
    until: float,
    dask: str | None = None,
    progress: bool = False,
) -> BackfillResult:
    """Process every file of [``options.since``, ``until``]; return the counts (blocking)."""
    files = asyncio.run(discover(options, until))
    tasks_chains, skipped = plan(store, files, max_attempts=options.max_attempts)
    result = BackfillResult(skipped=skipped)
    cache = options.cache_dir
    busy = min(options.workers, len(tasks_chains))  # local worker processes with a chain
    if config.split is None:
        config = dataclasses.replace(config, split=dask is None and forked.spare_cores(busy))
    tasks = [
        ChainTask(
            chain=chain,
            config=config,
            bases=options.bases,
            cache_dir=str(cache),
            keep=options.keep,
            connections_per_host=options.connections_per_host,
            timeout_seconds=options.timeout_seconds,
            retries=options.retries,
            backoff_seconds=options.backoff_seconds,
        )
        for chain in tasks_chains
    ]
    owner = fl.owner_token()
    total = sum(sum(c.store) for c in tasks_chains)
    runner = _dask(dask) if dask is not None else _local(options.workers)
    started = time.monotonic()
    wanted = {
        (f.source, f.collector, f.name): (f, keep)
        for t in tasks
        for f, keep in zip(t.chain.files, t.chain.store, strict=True)
    }
    with runner as submit, _progress(progress, total) as advance:
        for outcomes in submit(tasks):
            for outcome in outcomes:
                file, keep = wanted[(outcome.source, outcome.collector, outcome.name)]
                if not keep:
                    continue
                what = _store_outcome(store, file, outcome, owner=owner, options=options)
                setattr(result, what, getattr(result, what) + 1)
                if what == "processed":
                    result.elements += outcome.elements
                advance(result.elements / max(time.monotonic() - started, 1e-6))
    return result


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[float], None]]:
    if not enabled:
        yield lambda _rate: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10,.0f} elements/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("files", total=total, rate=0.0)
        yield lambda rate: bar.update(task, advance=1, rate=rate)
