"""``publiccore bgp follow``: follow RIS / RouteViews archives by themselves.

Every poll, for each collector: list the month directories from the start of the window to now,
count the files that should be there by now and are not (past a grace period), then take each
new file in time order: claim it in the store (atomically: two followers on one store never
take the same file), download it, process it in a worker process (``process``) and finish it
in one store transaction with its observations. A kill -9 at any moment loses nothing and
stores nothing twice: an unfinished claim of a dead process is taken over, a ``.part`` file is
resumed, and a file's observations are stored in the same transaction that marks it done.

Each collector is pinned to one worker process, which keeps its latest RIB state for the update
files that follow; when that state is missing (a restart, a crashed worker) it is rebuilt from
the latest processed RIB and the update files processed since (replayed, not stored again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import multiprocessing
import multiprocessing.context
import os
import pathlib
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from publiccore.collectors.bgp import archive as arc
from publiccore.collectors.bgp import forked
from publiccore.collectors.bgp import process as proc
from publiccore.collectors.bgp.watch import ROOT_PEERS_SNAPSHOT

from publiccore.config import BgpFollowSettings, Settings
from publiccore.store import ArchiveFileState, Store

log = logging.getLogger(__name__)

SOURCE_KIND = "bgp"


def owner_token() -> str:
    """``host:pid:nonce``, the name a process claims files under."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs."""
    host, _sep, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclasses.dataclass(frozen=True, slots=True)
class FollowOptions:
    """How the follower runs (``[bgp.follow]`` with the command line's overrides)."""

    bases: dict[arc.SourceName, str]
    collectors: tuple[str, ...]
    cache_dir: pathlib.Path
    since: float | None = None  # None: now − lookback_seconds
    once: bool = False
    keep: bool = False
    poll_seconds: float = 60.0
    grace_seconds: float = 3600.0
    lookback_seconds: float = 86400.0
    cache_quota_bytes: int = 20 * 1024**3
    connections_per_host: int = 2
    timeout_seconds: float = 120.0
    retries: int = 4
    backoff_seconds: float = 2.0
    max_attempts: int = 5
    workers: int = 2
    lease_seconds: float = 900.0

    @classmethod
    def from_settings(
        cls,
        settings: BgpFollowSettings,
        *,
        bases: dict[arc.SourceName, str] | None = None,
        collectors: Sequence[str] = (),
        since: float | None = None,
        once: bool = False,
        keep: bool | None = None,
    ) -> FollowOptions:
        """Settings, overridden by whatever the command line gave."""
        chosen = {"ris": settings.ris, "routeviews": settings.routeviews}
        chosen.update(bases or {})
        return cls(
            bases=chosen,
            collectors=tuple(collectors or settings.collectors),
            cache_dir=pathlib.Path(settings.cache_dir),
            since=since,
            once=once,
            keep=settings.keep if keep is None else keep,
            poll_seconds=settings.poll_seconds,
            grace_seconds=settings.grace_seconds,
            lookback_seconds=settings.lookback_seconds,
            cache_quota_bytes=settings.cache_quota_bytes,
            connections_per_host=settings.connections_per_host,
            timeout_seconds=settings.timeout_seconds,
            retries=settings.retries,
            backoff_seconds=settings.backoff_seconds,
            max_attempts=settings.max_attempts,
            workers=settings.workers,
            lease_seconds=settings.lease_seconds,
        )


@dataclasses.dataclass(slots=True)
class PollCounts:
    """What one poll did."""

    processed: int = 0
    refused: int = 0
    failed: int = 0
    missing: int = 0
    waiting: int = 0  # files left for a later poll (order, quota, another follower)

    def add(self, other: PollCounts) -> None:
        """Add another poll's counts."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def archive_for(options: FollowOptions) -> arc.Archive:
    """The archive client the options describe."""
    return arc.Archive(
        options.bases,
        connections_per_host=options.connections_per_host,
        timeout_seconds=options.timeout_seconds,
        retries=options.retries,
        backoff_seconds=options.backoff_seconds,
    )


def cache_path(cache_dir: pathlib.Path, file: arc.ArchiveFile) -> pathlib.Path:
    """Where a file is downloaded: ``<cache>/<source>/<collector>/``."""
    return cache_dir / file.source / file.collector


def worker_context() -> multiprocessing.context.ForkServerContext:
    """The processes' start method: ``forkserver``, with the processing modules imported once in
    the server, so that each worker forked from it starts with them loaded."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["publiccore.collectors.bgp.process"])
    return context


class Follower:
    """The archive follower (see module doc). Use ``run`` from an event loop."""

    def __init__(
        self,
        store: Store,
        options: FollowOptions,
        config: proc.ProcessConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.options = options
        if config.split is None:
            config = dataclasses.replace(config, split=forked.spare_cores(options.workers))
        self.config = config
        self.clock = clock
        self.owner = owner_token()
        self.totals = PollCounts()
        self.processing_seconds = 0.0  # in the workers, files stored or refused
        self.processing_cpu_seconds = 0.0  # CPU of that (workers, their bgpdump and unpackers)
        self.worker_rss_kib: list[int] = []  # peak RSS of each worker process, read at close
        self._executors: list[concurrent.futures.ProcessPoolExecutor] = []
        self._stop = asyncio.Event()
        self._slots = {c: i % options.workers for i, c in enumerate(sorted(options.collectors))}
        for collector in options.collectors:
            arc.source_of(collector)  # InputError for an unknown name, before anything starts

    # --- process pool ---------------------------------------------------------------------

    def _executor(self, collector: str) -> concurrent.futures.ProcessPoolExecutor:
        while len(self._executors) < self.options.workers:
            self._executors.append(
                concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=worker_context(),
                    initializer=proc.init_worker,
                    initargs=(self.config,),
                )
            )
        return self._executors[self._slots[collector]]

    def _warm_up(self) -> None:
        """Start the worker processes now (each loads its tables while the first files are
        listed and downloaded) instead of at the first file."""
        for collector in self.options.collectors:
            self._executor(collector)
        for executor in self._executors:
            executor.submit(proc.peak_rss_kib)  # any call starts the process; result unused

    async def _call(self, collector: str, func: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(collector), func, *args)
        except concurrent.futures.process.BrokenProcessPool:
            # the worker died (out of memory, killed): a new one starts without any state
            index = self._slots[collector]
            self._executors[index].shutdown(wait=False, cancel_futures=True)
            self._executors[index] = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=worker_context(),
                initializer=proc.init_worker,
                initargs=(self.config,),
            )
            raise

    def close(self) -> None:
        """Stop the worker processes (noting each one's peak RSS first)."""
        for executor in self._executors:
            try:
                self.worker_rss_kib.append(executor.submit(proc.peak_rss_kib).result(timeout=30))
            except (concurrent.futures.process.BrokenProcessPool, TimeoutError):
                pass
            executor.shutdown(wait=True, cancel_futures=True)
        self._executors.clear()

    # --- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> PollCounts:
        """Poll until ``stop`` is set (or once with ``once``); return the total counts."""
        stop = stop or asyncio.Event()
        self._stop = stop
        renew = asyncio.create_task(self._renew_forever(stop))
        await asyncio.to_thread(self._warm_up)
        try:
            async with archive_for(self.options) as archive:
                while True:
                    counts = await self.poll(archive)
                    self.totals.add(counts)
                    log.info("poll: %s", counts)
                    if self.options.once or stop.is_set():
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.options.poll_seconds)
                    if stop.is_set():
                        break
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            await asyncio.to_thread(self.close)
        return self.totals

    async def _renew_forever(self, stop: asyncio.Event) -> None:
        every = max(0.5, self.options.lease_seconds / 3)
        while not stop.is_set():
            await asyncio.sleep(every)
            await asyncio.to_thread(
                self.store.renew_archive_claims,
                self.owner,
                self.clock() + self.options.lease_seconds,
            )

    async def poll(self, archive: arc.Archive) -> PollCounts:
        """One pass over every collector (concurrently); return what it did."""
        results = await asyncio.gather(
            *(self.follow_collector(archive, c) for c in self.options.collectors)
        )
        total = PollCounts()
        for counts in results:
            total.add(counts)
        return total

    async def follow_collector(self, archive: arc.Archive, collector: str) -> PollCounts:
        """Discover, download and process one collector's new files."""
        counts = PollCounts()
        source = arc.source_of(collector)
        layout = arc.LAYOUTS[source]
        now = self.clock()
        start = self.options.since
        if start is None:
            start = now - self.options.lookback_seconds
        try:
            # one RIB period earlier, to find the RIB the window's first updates apply to
            files = await archive.discover(collector, start=start - layout.rib_seconds, end=now)
        except arc.DownloadError as exc:
            log.warning("%s: listing failed: %s", collector, exc)
            counts.waiting += 1
            return counts
        files = _from_base(files, start)
        counts.missing = await asyncio.to_thread(
            self._count_missing, source, collector, files, start, now
        )
        rows = {r.name: r for r in await asyncio.to_thread(self._rows, source, collector)}
        todo = [f for f in files if not self._finished(rows.get(f.name))]
        prefetch: dict[str, asyncio.Task[None]] = {}
        try:
            await self._follow_files(archive, todo, files, rows, counts, prefetch)
        finally:
            for task in prefetch.values():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return counts

    def _finished(self, row: ArchiveFileState | None) -> bool:
        if row is None:
            return False
        exhausted = row.status == "failed" and row.attempts >= self.options.max_attempts
        return row.status in ("done", "refused") or exhausted

    async def _prefetch(self, archive: arc.Archive, file: arc.ArchiveFile) -> None:
        """Download the next file while the current one is processed (one attempt; the
        file's own turn retries and records a failure)."""
        if arc.directory_bytes(self.options.cache_dir) + (file.size or 0) > (
            self.options.cache_quota_bytes
        ):
            return
        with contextlib.suppress(arc.DownloadError):
            await archive.download(file, cache_path(self.options.cache_dir, file), retries=0)

    async def _follow_files(
        self,
        archive: arc.Archive,
        todo: Sequence[arc.ArchiveFile],
        files: Sequence[arc.ArchiveFile],
        rows: dict[str, ArchiveFileState],
        counts: PollCounts,
        prefetch: dict[str, asyncio.Task[None]],
    ) -> None:
        source, collector = (todo[0].source, todo[0].collector) if todo else ("", "")
        for index, file in enumerate(todo):
            if self._stop.is_set():
                break  # SIGTERM: the file in hand is finished, the rest waits for a restart
            if self._finished(rows.get(file.name)):
                continue
            if index + 1 < len(todo) and todo[index + 1].name not in prefetch:
                following = todo[index + 1]
                prefetch[following.name] = asyncio.create_task(self._prefetch(archive, following))
            if file.name in prefetch:
                await prefetch.pop(file.name)  # never two downloads of one file at once
            outcome = await self._take(archive, file, rows, files)
            if outcome == "wait":
                counts.waiting += 1
                if file.kind == "updates":
                    break  # update files apply in order: the rest waits for this one
                continue
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            rows.clear()
            rows.update({r.name: r for r in await asyncio.to_thread(self._rows, source, collector)})
            if outcome == "failed" and file.kind == "updates":
                break

    def _rows(self, source: str, collector: str) -> list[ArchiveFileState]:
        return self.store.archive_files(source=source, collector=collector)

    def _count_missing(
        self,
        source: arc.SourceName,
        collector: str,
        files: Sequence[arc.ArchiveFile],
        start: float,
        now: float,
    ) -> int:
        layout = arc.LAYOUTS[source]
        checked = {
            s.kind: s.checked_until
            for s in self.store.follow_schedules()
            if s.source == source and s.collector == collector
        }
        until = now - self.options.grace_seconds
        total = 0
        for kind in ("rib", "updates"):
            listed = {f.time for f in files if f.kind == kind}
            since = checked.get(kind)
            if since is None:
                first = min((t for t in listed if t >= start), default=None)
                if first is None:
                    continue  # nothing of this kind yet: nothing to measure gaps from
                since = first
            since = max(since, start - layout.rib_seconds)
            if until <= since:
                continue
            period = layout.period(kind)
            gaps = [t for t in arc.slots(period, since, until) if t > since and t not in listed]
            if self.store.add_missing_files(
                source=source,
                collector=collector,
                kind=kind,
                missing=len(gaps),
                checked_until=until,
                previous=checked.get(kind),
            ):
                total += len(gaps)
        return total

    async def _take(
        self,
        archive: arc.Archive,
        file: arc.ArchiveFile,
        rows: dict[str, ArchiveFileState],
        listed: Sequence[arc.ArchiveFile] = (),
    ) -> str:
        """Claim, download, process and finish one file: processed/refused/failed, or wait."""
        cache = cache_path(self.options.cache_dir, file)
        if file.kind == "updates" and _base_rib(rows, file) is None:
            pending = [
                r
                for r in rows.values()
                if r.kind == "rib"
                and r.file_time <= file.time
                and (
                    r.status == "claimed"
                    or (r.status == "failed" and r.attempts < self.options.max_attempts)
                )
            ]
            untried = [
                f for f in listed if f.kind == "rib" and f.time <= file.time and f.name not in rows
            ]
            if pending or untried:
                return "wait"  # a RIB before it may still be done
            return await self._refuse(
                file, f"no RIB of {file.collector} at or before {file.name} (updates need one)"
            )
        if arc.directory_bytes(self.options.cache_dir) + (file.size or 0) > (
            self.options.cache_quota_bytes
        ):
            log.warning("cache quota reached: %s waits", file.name)
            return "wait"
        if not await self._claim(file):
            return "wait"
        try:
            path = await archive.download(file, cache)
        except arc.DownloadError as exc:
            await self._finish(file, "failed", error=f"{exc.reason}: {exc}")
            return "failed"
        try:
            if file.kind == "updates":
                await self._ensure_base(archive, file, rows)
            job = proc.Job(
                source=file.source,
                collector=file.collector,
                kind=file.kind,
                name=file.name,
                path=str(path),
                file_time=file.time,
            )
            outcome: proc.Outcome = await self._call(file.collector, proc.run_job, job)
        except (arc.DownloadError, concurrent.futures.process.BrokenProcessPool, OSError) as exc:
            await self._finish(file, "failed", error=f"processing: {exc}")
            return "failed"
        finally:
            if not self.options.keep:
                path.unlink(missing_ok=True)
        self.processing_seconds += outcome.seconds
        self.processing_cpu_seconds += outcome.cpu_seconds
        status = outcome.status if outcome.status != "no_base" else "failed"
        await self._finish(
            file,
            status,
            error=outcome.error or ("no base RIB state" if outcome.status == "no_base" else ""),
            outcome=outcome,
        )
        return {"done": "processed", "refused": "refused"}.get(status, "failed")

    async def _claim(self, file: arc.ArchiveFile) -> bool:
        """Take ``file`` in the store's file-state table (False: another follower holds it)."""
        return bool(
            await asyncio.to_thread(
                self.store.claim_archive_file,
                source=file.source,
                collector=file.collector,
                name=file.name,
                kind=file.kind,
                file_time=file.time,
                size=file.size,
                owner=self.owner,
                lease_until=self.clock() + self.options.lease_seconds,
                max_attempts=self.options.max_attempts,
                now=self.clock(),
                stale=owner_is_gone,
            )
        )

    async def _refuse(self, file: arc.ArchiveFile, reason: str) -> str:
        if not await self._claim(file):
            return "wait"
        await self._finish(file, "refused", error=reason)
        return "refused"

    async def _finish(
        self,
        file: arc.ArchiveFile,
        status: str,
        *,
        error: str = "",
        outcome: proc.Outcome | None = None,
    ) -> None:
        done = status == "done" and outcome is not None
        ok = await asyncio.to_thread(
            self.store.finish_archive_file,
            source=file.source,
            collector=file.collector,
            name=file.name,
            owner=self.owner,
            status=status,
            now=self.clock(),
            sha256=outcome.sha256 if outcome else "",
            size=outcome.size if outcome else None,
            error=error,
            elements=outcome.elements if outcome else 0,
            source_kind=SOURCE_KIND,
            meta=dict(outcome.meta or {}, archive=_provenance(file)) if done and outcome else None,
            observations=outcome.observations if done and outcome else (),
        )
        if not ok:
            log.warning("%s: claim lost before it was finished; another process has it", file.name)
        elif done and outcome is not None and outcome.root_peers is not None:
            await asyncio.to_thread(self._save_root_peers, file, outcome.root_peers)

    def _save_root_peers(self, file: arc.ArchiveFile, peers: Mapping[str, Any]) -> None:
        """Keep the collector's newest ``root_peers`` (a late older file does not replace it)."""
        name = f"{ROOT_PEERS_SNAPSHOT}/{file.source}/{file.collector}"
        saved = self.store.snapshot_time(name)
        if saved is not None and saved > file.time:
            return
        body = {"version": 1, "file": file.name, "prefixes": peers}
        self.store.put_snapshot(name, computed_at=file.time, body=json.dumps(body))

    async def _ensure_base(
        self, archive: arc.Archive, file: arc.ArchiveFile, rows: dict[str, ArchiveFileState]
    ) -> None:
        """Make the collector's worker hold the state ``file`` applies to (rebuild if not)."""
        base = _base_rib(rows, file)
        if base is None:
            return
        applied = [
            r
            for r in rows.values()
            if r.kind == "updates"
            and r.status == "done"
            and base.file_time <= r.file_time < file.time
        ]
        applied.sort(key=lambda r: (r.file_time, r.name))
        want = (base.name, applied[-1].name if applied else "")
        have = await self._call(file.collector, proc.worker_base, file.source, file.collector)
        if have == want:
            return
        log.info("%s: rebuilding: %s + %d updates", file.collector, base.name, len(applied))
        for row in [base, *applied]:
            replay = _as_file(row, archive, file)
            path = await archive.download(replay, cache_path(self.options.cache_dir, replay))
            try:
                job = proc.Job(
                    source=row.source,
                    collector=row.collector,
                    kind=row.kind,
                    name=row.name,
                    path=str(path),
                    file_time=row.file_time,
                    store=False,
                )
                await self._call(file.collector, proc.run_job, job)
            finally:
                if not self.options.keep:
                    path.unlink(missing_ok=True)


def configured_follower(store: Store, settings: Settings) -> Follower | None:
    """The follower ``[bgp.follow]`` describes, or None when it is not enabled."""
    follow = settings.bgp.follow
    if not follow.enabled:
        return None
    return Follower(
        store,
        FollowOptions.from_settings(follow),
        proc.ProcessConfig.from_settings(settings.bgp, hints=settings.root.hints),
    )


def _from_base(files: Sequence[arc.ArchiveFile], start: float) -> list[arc.ArchiveFile]:
    """The files from ``start`` on, plus the newest RIB before ``start`` (the base)."""
    before = [f for f in files if f.kind == "rib" and f.time < start]
    keep = [f for f in files if f.time >= start]
    return ([before[-1]] if before else []) + keep


def _base_rib(rows: dict[str, ArchiveFileState], file: arc.ArchiveFile) -> ArchiveFileState | None:
    ribs = [
        r
        for r in rows.values()
        if r.kind == "rib" and r.status == "done" and r.file_time <= file.time
    ]
    return max(ribs, key=lambda r: (r.file_time, r.name)) if ribs else None


def _as_file(row: ArchiveFileState, archive: arc.Archive, like: arc.ArchiveFile) -> arc.ArchiveFile:
    source: arc.SourceName = like.source
    when = dt.datetime.fromtimestamp(row.file_time, dt.UTC)
    directory = arc.month_directory(
        archive.bases[source],
        source,
        row.collector,
        when.year,
        when.month,
        row.kind,
    )
    return arc.ArchiveFile(
        source=source,
        collector=row.collector,
        kind=row.kind,
        name=row.name,
        url=directory + row.name,
        time=row.file_time,
        size=row.size,
    )


def _provenance(file: arc.ArchiveFile) -> dict[str, Any]:
    return {"source": file.source, "collector": file.collector, "name": file.name, "url": file.url}


# --- status and metrics ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CollectorStatus:
    """One collector as the store says: last file, lag, counts (for status and /metrics)."""

    source: str
    collector: str
    last_file: str
    last_file_time: float | None
    lag_seconds: float | None  # None: nothing processed yet (absent, not zero)
    processed: int
    refused: int
    failed: int
    failing: int  # failed files still to be retried
    claimed: int
    missing: int
    last_error: str


def collector_status(
    store: Store, *, now: float | None = None, with_errors: bool = True
) -> list[CollectorStatus]:
    """Every followed collector's state, from the file-state table (``last_error`` only with
    ``with_errors``: it reads the refused and failed rows)."""
    now = time.time() if now is None else now
    summary = store.archive_summary()
    missing: dict[tuple[str, str], int] = {}
    for s in store.follow_schedules():
        missing[(s.source, s.collector)] = missing.get((s.source, s.collector), 0) + s.missing_total
    errors: dict[tuple[str, str], str] = {}
    if with_errors:
        for status in ("refused", "failed"):
            for r in store.archive_files(status=status):
                errors[(r.source, r.collector)] = f"{r.name}: {r.error}"
    keys = sorted({(r.source, r.collector) for r in summary} | set(missing))
    out = []
    for source, collector in keys:
        mine = {r.status: r for r in summary if (r.source, r.collector) == (source, collector)}
        done = mine.get("done")
        out.append(
            CollectorStatus(
                source=source,
                collector=collector,
                last_file=done.newest_name if done else "",
                last_file_time=done.newest_time if done else None,
                lag_seconds=max(0.0, now - done.newest_time) if done else None,
                processed=done.files if done else 0,
                refused=mine["refused"].files if "refused" in mine else 0,
                failed=sum(r.attempts for r in mine.values()),
                failing=mine["failed"].files if "failed" in mine else 0,
                claimed=mine["claimed"].files if "claimed" in mine else 0,
                missing=missing.get((source, collector), 0),
                last_error=errors.get((source, collector), ""),
            )
        )
    return out
