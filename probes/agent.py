"""The volunteer probe agent: rounds on a schedule → durable spool → background upload.

- Each measurement kind runs on its own schedule (root: every 5 minutes with a random 0–60 s start
  delay, as RSSAC047 does). Slots are fixed, so a slow round never makes the schedule drift; a
  slot missed while a round overran is skipped.
- Every record of a round is committed to the spool (``probes.spool``) before anything uploads.
- The uploader sends the oldest records first as one gzip JSON array per request with the probe's
  bearer token, and removes a record only after the collector acknowledged it (accepted or
  duplicate). Failures back off exponentially with full jitter and honour ``Retry-After``
  (never sooner than the backoff: ``Retry-After: 0`` or a past date does not mean "at once").
- Records the collector refuses for good (a validation refusal, another probe's record, too
  large, an id another probe holds) are quarantined in the spool (``Spool.quarantine``), so the
  records behind them keep uploading; a 401 (token unknown or revoked) is not the records' fault
  and keeps them waiting.
- The probe's own numbers are on a local ``/metrics`` (a registry passed in, never the global one).

The agent never puts its own address in a record: records carry the probe id, registered country
and ASN only (``probes.commands.probe_ref``), and the collector rewrites those from the
registration anyway.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import logging
import math
import random
import signal
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

import aiohttp
import dns.rcode
import prometheus_client
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from publiccore.probes.failure import rcode
from publiccore.probes.spool import Spool, SpooledRecord, SpoolError, SpoolStats

from publiccore import __version__
from publiccore.clock import Clock, utc_now
from publiccore.config import parse_listen
from publiccore.records import Record, RootResult

log = logging.getLogger("publiccore.agent")

UPLOAD_PATH = "/api/v1/records"
UPLOAD_MAX_BYTES = 4 * 1024 * 1024  # uncompressed batch size, below the collector's default 5 MiB
BACKOFF_BASE_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 60.0
SHUTDOWN_FLUSH_SECONDS = 5.0

RoundRunner = Callable[[], Coroutine[Any, Any, list[Record]]]


# --- schedule ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """Rounds every ``interval_seconds``, each started a random 0–``start_delay_max`` s late."""

    interval_seconds: float
    start_delay_max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.interval_seconds > 0:
            raise ValueError("interval must be positive")
        if self.start_delay_max_seconds < 0:
            raise ValueError("start delay must not be negative")

    def next_slot_index(self, first: float, now: float) -> int:
        """The first slot whose base time is not before ``now`` (slots missed are skipped)."""
        return max(0, math.ceil((now - first) / self.interval_seconds))


@dataclasses.dataclass(frozen=True, slots=True)
class Measurement:
    """One kind of measurement the agent runs: a name, its schedule and how to run a round."""

    kind: str
    schedule: Schedule
    run_round: RoundRunner
    grace_seconds: float = 10.0  # how long a running round may finish after a stop request


# --- backoff ----------------------------------------------------------------------------------


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Exponential backoff with jitter: U(c/2, c) with c = min(cap, base·2^attempt).

    A ``Retry-After`` from the collector is a floor: never retry sooner than it asks.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    delay = rng.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import email.utils

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


# --- metrics ----------------------------------------------------------------------------------


class AgentMetrics:
    """The probe's own counters, registered in the registry passed in."""

    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.registry = registry
        self.rounds = prometheus_client.Counter(
            "publiccore_agent_rounds", "Rounds completed and spooled.", ["kind"], registry=registry
        )
        self.round_failures = prometheus_client.Counter(
            "publiccore_agent_round_failures",
            "Rounds that could not run.",
            ["kind"],
            registry=registry,
        )
        self.queries = prometheus_client.Counter(
            "publiccore_agent_queries", "Queries sent.", ["kind", "transport"], registry=registry
        )
        self.query_failures = prometheus_client.Counter(
            "publiccore_agent_query_failures",
            "Queries without a usable answer, by failure code.",
            ["kind", "code"],
            registry=registry,
        )
        self.uploads = prometheus_client.Counter(
            "publiccore_agent_uploads", "Batches the collector acknowledged.", registry=registry
        )
        self.upload_failures = prometheus_client.Counter(
            "publiccore_agent_upload_failures", "Upload attempts that failed.", registry=registry
        )
        self.uploaded_records = prometheus_client.Counter(
            "publiccore_agent_uploaded_records",
            "Records the collector acknowledged.",
            registry=registry,
        )
        self.spool = _SpoolCollector()
        registry.register(self.spool)

    def observe_round(self, kind: str, records: Sequence[Record]) -> None:
        """Count one spooled round: its queries by transport and failures by code."""
        self.rounds.labels(kind=kind).inc()
        for record in records:
            if not isinstance(record.result, RootResult):
                continue
            for query in record.result.queries:
                self.queries.labels(kind=kind, transport=query.transport).inc()
                if query.failure and not query.answered:
                    self.query_failures.labels(kind=kind, code=query.failure).inc()
                elif query.rcode and rcode(query.rcode) != dns.rcode.Rcode.NOERROR:
                    self.query_failures.labels(kind=kind, code=f"rcode_{query.rcode.lower()}").inc()


class _SpoolCollector(Collector):
    """Spool numbers from the last snapshot the agent took (no disk access on scrape)."""

    def __init__(self) -> None:
        self.snapshot: SpoolStats | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.snapshot
        if stats is None:
            return
        yield GaugeMetricFamily(
            "publiccore_agent_spool_records", "Records waiting for upload.", value=stats.depth
        )
        yield GaugeMetricFamily(
            "publiccore_agent_spool_bytes",
            "Bytes of records waiting for upload.",
            value=stats.bytes,
        )
        yield GaugeMetricFamily(
            "publiccore_agent_spool_quota_bytes", "Spool size quota.", value=stats.quota_bytes
        )
        yield CounterMetricFamily(
            "publiccore_agent_spool_dropped_records",
            "Records dropped (quota overflow or refused for good).",
            value=stats.dropped_total,
        )
        yield CounterMetricFamily(
            "publiccore_agent_spooled_records", "Records ever spooled.", value=stats.spooled_total
        )
        yield GaugeMetricFamily(
            "publiccore_agent_spool_quarantined_records",
            "Records the collector refused for good, kept aside in the spool.",
            value=stats.quarantined,
        )
        if stats.last_upload_success is not None:
            yield GaugeMetricFamily(
                "publiccore_agent_last_upload_success_timestamp_seconds",
                "When the collector last acknowledged a batch.",
                value=stats.last_upload_success.timestamp(),
            )


def make_metrics_app(registry: prometheus_client.CollectorRegistry) -> web.Application:
    """A tiny aiohttp app serving ``registry`` on GET /metrics."""

    async def metrics(_request: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(registry)
        return web.Response(
            body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


# --- uploader ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class UploadOutcome:
    """What one upload attempt did; ``delay`` is how long to wait before the next one."""

    sent: int
    acked: int
    dropped: int = 0
    failure: str = ""
    retry_after: float | None = None
    quarantined: int = 0
    retry_now: bool = False  # the agent made progress (quarantined, halved): try again at once

    @property
    def ok(self) -> bool:
        return not self.failure


class Uploader:
    """Sends the spool's oldest records to the collector, one batch per request."""

    def __init__(
        self,
        spool: Spool,
        session: aiohttp.ClientSession,
        *,
        url: str,
        token: str,
        batch_records: int,
        metrics: AgentMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.spool = spool
        self.session = session
        self.url = url.rstrip("/") + UPLOAD_PATH
        self.token = token
        self.batch_records = max(1, batch_records)
        self.metrics = metrics
        self.clock = clock

    def _batch(self, spooled: list[SpooledRecord]) -> tuple[list[SpooledRecord], bytes]:
        # One kind per batch, so the collector can count what it accepted by kind exactly.
        chosen: list[SpooledRecord] = []
        size = 2
        for item in spooled:
            size += len(item.body) + 1
            if chosen and (size > UPLOAD_MAX_BYTES or item.kind != chosen[0].kind):
                break
            chosen.append(item)
        payload = ("[" + ",".join(item.body for item in chosen) + "]").encode("utf-8")
        return chosen, gzip.compress(payload, compresslevel=6)

    async def upload_once(self) -> UploadOutcome:
        """Upload one batch of the oldest records; return what happened (never raises on I/O)."""
        spooled = await asyncio.to_thread(self.spool.peek, self.batch_records)
        if not spooled:
            return UploadOutcome(sent=0, acked=0)
        batch, body = await asyncio.to_thread(self._batch, spooled)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"publiccore-agent/{__version__}",
        }
        try:
            async with self.session.post(self.url, data=body, headers=headers) as response:
                text = await response.text(errors="replace")
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=self.clock()
                )
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = f"cannot reach collector: {type(exc).__name__}: {exc}"[:300]
            return await self._failed(len(batch), reason)
        if status == 200:
            return await self._acknowledged(batch, _error_json(text))
        detail = _error_detail(text)
        if status == 413 and len(batch) > 1:
            self.batch_records = max(1, len(batch) // 2)
            outcome = await self._failed(len(batch), f"HTTP 413 batch too large: {detail}")
            return dataclasses.replace(outcome, retry_now=True)
        doomed = _refused_for_good(status, _error_index(text), batch)
        if doomed:
            # The collector will never take these: keep them aside, keep the rest moving.
            first = doomed[0].id
            more = f" and {len(doomed) - 1} more" if len(doomed) > 1 else ""
            reason = f"HTTP {status} refused record {first}{more}: {detail}"
            moved = await asyncio.to_thread(
                self.spool.quarantine, [d.seq for d in doomed], reason=reason, now=self.clock()
            )
            log.warning(
                "collector refused %d record(s) for good (%s); quarantined in the spool",
                moved,
                detail,
            )
            outcome = await self._failed(len(batch), reason)
            return dataclasses.replace(outcome, quarantined=moved, retry_now=True)
        return await self._failed(len(batch), f"HTTP {status}: {detail}", retry_after=retry_after)

    async def _acknowledged(
        self, batch: list[SpooledRecord], answer: dict[str, object]
    ) -> UploadOutcome:
        """A 200: ack what the collector holds, quarantine the ids it called conflicts."""
        accepted, duplicates = answer.get("accepted"), answer.get("duplicates")
        conflicts = answer.get("conflicts", 0)
        indexes = answer.get("conflict_indexes", [])
        if (
            not isinstance(accepted, int)
            or not isinstance(duplicates, int)
            or not isinstance(conflicts, int)
            or not isinstance(indexes, list)
            or not all(isinstance(i, int) and 0 <= i < len(batch) for i in indexes)
            or len(set(indexes)) != conflicts
            or accepted + duplicates + conflicts != len(batch)
        ):
            # Acknowledge only what the collector says it holds, all of it or nothing.
            return await self._failed(
                len(batch),
                f"collector acknowledged {accepted!r} + {duplicates!r} duplicates "
                f"of {len(batch)} records",
            )
        quarantined = 0
        if conflicts:
            doomed = [batch[i] for i in sorted(set(indexes))]
            reason = (
                f"collector: record id {doomed[0].id} is already stored from another probe "
                f"({conflicts} such in one batch)"
            )
            quarantined = await asyncio.to_thread(
                self.spool.quarantine, [d.seq for d in doomed], reason=reason, now=self.clock()
            )
            log.warning("%d record id(s) conflict with another probe's; quarantined", conflicts)
        taken = {d.seq for d in batch} - {batch[i].seq for i in indexes}
        acked = await asyncio.to_thread(
            self.spool.ack, [b.seq for b in batch if b.seq in taken], now=self.clock()
        )
        if self.metrics is not None:
            self.metrics.uploads.inc()
            self.metrics.uploaded_records.inc(acked)
        return UploadOutcome(sent=len(batch), acked=acked, quarantined=quarantined)

    async def _failed(
        self, sent: int, reason: str, *, retry_after: float | None = None
    ) -> UploadOutcome:
        if self.metrics is not None:
            self.metrics.upload_failures.inc()
        await asyncio.to_thread(self.spool.note_failure, reason, now=self.clock())
        return UploadOutcome(sent=sent, acked=0, failure=reason, retry_after=retry_after)


def _refused_for_good(
    status: int, index: int | None, batch: list[SpooledRecord]
) -> list[SpooledRecord]:
    """The records of ``batch`` the collector will never take, from its answer; else [].

    - 400/422 naming a record (``index``): that record fails validation;
    - 400 naming none: the batch as a whole cannot be read (the agent wrote it, so it is the
      records' bytes, not a passing fault): every record of it;
    - 413 for a single record: that record is too large;
    - 403 naming a record: it belongs to another probe (records spooled under an earlier probe
      id): every record of the batch with that probe id.

    401 (token unknown or revoked) and every 5xx or 429 are not the records' fault: they wait.
    """
    if index is not None and not 0 <= index < len(batch):
        index = None
    if status in (400, 422) and index is not None:
        return [batch[index]]
    if status == 400:
        return list(batch)
    if status == 413 and len(batch) == 1:
        return list(batch)
    if status == 403 and index is not None:
        owner = _probe_id(batch[index].body)
        return [b for b in batch if _probe_id(b.body) == owner] or [batch[index]]
    return []


def _probe_id(body: str) -> object:
    try:
        probe = json.loads(body).get("probe")
    except (ValueError, AttributeError):
        return None
    return probe.get("id") if isinstance(probe, dict) else None


def _error_json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_detail(text: str) -> str:
    value = _error_json(text)
    if value:
        parts = [str(value[k]) for k in ("error", "reason") if value.get(k)]
        if parts:
            return ": ".join(parts)[:300]
    return text.strip()[:200] or "no detail"


def _error_index(text: str) -> int | None:
    index = _error_json(text).get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


# --- the agent --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AgentOptions:
    """How the agent uploads and where it serves its metrics."""

    collector_url: str
    token: str
    batch_records: int = 500
    upload_interval_seconds: float = 10.0
    backoff_max_seconds: float = 600.0
    metrics_listen: str = ""  # empty: no /metrics
    shutdown_flush_seconds: float = SHUTDOWN_FLUSH_SECONDS


class Agent:
    """Runs measurements on their schedules, spools every record and uploads in the background."""

    def __init__(
        self,
        spool: Spool,
        measurements: Sequence[Measurement],
        options: AgentOptions,
        *,
        registry: prometheus_client.CollectorRegistry,
        rng: random.Random | None = None,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.measurements = tuple(measurements)
        self.options = options
        self.metrics = AgentMetrics(registry)
        self.rng = rng or random.Random()
        self.clock = clock
        self.monotonic = monotonic
        self.spooled = asyncio.Event()  # set when a round was spooled: upload now
        self.round_counts: collections.Counter[str] = collections.Counter()
        self.metrics_address: tuple[str, int] | None = None

    async def refresh_stats(self) -> SpoolStats | None:
        """Take a fresh spool snapshot for /metrics; return it (None if the spool is unreadable)."""
        try:
            stats = await asyncio.to_thread(self.spool.stats)
        except SpoolError as exc:
            log.error("spool: %s", exc)
            return None
        self.metrics.spool.snapshot = stats
        return stats

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then end rounds cleanly, flush the spool and return."""
        await self.refresh_stats()
        runner: web.AppRunner | None = None
        if self.options.metrics_listen:
            host, port = parse_listen(self.options.metrics_listen)
            runner = web.AppRunner(make_metrics_app(self.metrics.registry), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            if runner.addresses:  # the bound address, also when port 0 was asked for
                bound = runner.addresses[0]
                self.metrics_address = (str(bound[0]), int(bound[1]))
            if self.metrics_address is not None:
                host, port = self.metrics_address
                shown = f"[{host}]" if ":" in host else host
                log.info("metrics on http://%s:%d/metrics", shown, port)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                uploader = None
                if self.options.collector_url:
                    uploader = Uploader(
                        self.spool,
                        session,
                        url=self.options.collector_url,
                        token=self.options.token,
                        batch_records=self.options.batch_records,
                        metrics=self.metrics,
                        clock=self.clock,
                    )
                else:
                    log.warning("no probe.collector_url configured: records stay in the spool")
                tasks = [
                    asyncio.create_task(self._schedule(m, stop), name=f"rounds-{m.kind}")
                    for m in self.measurements
                ]
                if uploader is not None:
                    tasks.append(
                        asyncio.create_task(self._upload_loop(uploader, stop), name="upload")
                    )
                try:
                    await stop.wait()
                finally:
                    await self._stop_tasks(tasks)
                if uploader is not None:
                    await self._flush(uploader)
        finally:
            if runner is not None:
                await runner.cleanup()
            await self.refresh_stats()

    async def _stop_tasks(self, tasks: list[asyncio.Task[None]]) -> None:
        # Schedulers finish a running round within its grace, then return on their own.
        grace = max((m.grace_seconds for m in self.measurements), default=0.0)
        _done, pending = await asyncio.wait(tasks, timeout=grace + 1.0)
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("agent task failed: %r", result)

    async def _schedule(self, measurement: Measurement, stop: asyncio.Event) -> None:
        sched = measurement.schedule
        first = self.monotonic()
        k = 0
        while not stop.is_set():
            start = (
                first
                + k * sched.interval_seconds
                + self.rng.uniform(0.0, sched.start_delay_max_seconds)
            )
            delay = start - self.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    return
            await self._one_round(measurement, stop)
            k = max(k + 1, sched.next_slot_index(first, self.monotonic()))

    async def _one_round(self, measurement: Measurement, stop: asyncio.Event) -> None:
        task = asyncio.create_task(measurement.run_round())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                # Asked to stop mid-round: let it finish within its grace, else abandon it.
                await asyncio.wait({task}, timeout=measurement.grace_seconds)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.info("abandoned a %s round at shutdown", measurement.kind)
                return
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
        try:
            records = task.result()
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            self.metrics.round_failures.labels(kind=measurement.kind).inc()
            log.error("%s round failed: %s", measurement.kind, exc)
            return
        try:
            dropped = await asyncio.to_thread(self.spool.add, records, now=self.clock())
        except SpoolError as exc:  # e.g. disk full: this round is lost, say so and go on
            self.metrics.round_failures.labels(kind=measurement.kind).inc()
            log.error("%s round of %d records not spooled: %s", measurement.kind, len(records), exc)
            return
        if dropped:
            log.warning("spool over quota: dropped the %d oldest records", dropped)
        self.metrics.observe_round(measurement.kind, records)
        self.round_counts[measurement.kind] += 1
        await self.refresh_stats()
        self.spooled.set()
        log.info("%s round: %d records spooled", measurement.kind, len(records))

    async def _upload_loop(self, uploader: Uploader, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                outcome = await uploader.upload_once()
            except SpoolError as exc:
                log.error("spool: %s", exc)
                outcome = UploadOutcome(sent=0, acked=0, failure=str(exc))
            await self.refresh_stats()
            if outcome.ok and outcome.sent:
                attempt = 0
                continue  # more may be waiting: oldest first, as fast as acknowledged
            if outcome.ok:
                attempt = 0
                delay = self.options.upload_interval_seconds
            elif outcome.retry_now:
                continue  # progress was made (records set aside, batch halved)
            else:
                # A Retry-After of 0 or a past date is floored at the normal backoff.
                delay = backoff_delay(
                    attempt,
                    base=BACKOFF_BASE_SECONDS,
                    cap=self.options.backoff_max_seconds,
                    rng=self.rng,
                    retry_after=outcome.retry_after,
                )
                attempt += 1
                log.warning("upload failed (%s); next try in %.1f s", outcome.failure, delay)
            self.spooled.clear()
            waiter = asyncio.create_task(self.spooled.wait()) if outcome.ok else None
            stopper = asyncio.create_task(stop.wait())
            waits = {stopper} | ({waiter} if waiter else set())
            try:
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _flush(self, uploader: Uploader) -> None:
        """At shutdown: upload what the spool holds while the collector keeps acknowledging."""
        deadline = self.monotonic() + self.options.shutdown_flush_seconds
        while self.monotonic() < deadline:
            try:
                outcome = await asyncio.wait_for(
                    uploader.upload_once(), timeout=max(0.1, deadline - self.monotonic())
                )
            except TimeoutError:
                return
            if not outcome.ok or not outcome.sent:
                return


async def flush_spool(
    spool: Spool,
    options: AgentOptions,
    *,
    max_seconds: float,
    clock: Clock = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> SpoolStats:
    """Upload until the spool is empty, the collector fails, or ``max_seconds`` pass.

    Returns the spool's stats afterwards (``depth`` 0 when everything was acknowledged).
    """
    deadline = monotonic() + max_seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        uploader = Uploader(
            spool,
            session,
            url=options.collector_url,
            token=options.token,
            batch_records=options.batch_records,
            clock=clock,
        )
        while monotonic() < deadline:
            outcome = await uploader.upload_once()
            if outcome.ok and not outcome.sent:
                break
            if not outcome.ok and not outcome.retry_now:
                break
    return await asyncio.to_thread(spool.stats)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the agent then ends cleanly and exits 0)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
