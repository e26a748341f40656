"""The collector's ingest service: probes POST batches of records; they are validated and stored.

``POST /api/v1/records`` takes a JSON array of records or JSON Lines (one record per line), plain
or with ``Content-Encoding: gzip``, and a probe's ``Authorization: Bearer <token>``. One batch is
one transaction: every record is validated first, and any bad record rejects the whole batch with
a 4xx JSON body ``{error, reason, index, path}`` so nothing of it is half-stored. A good batch is
answered ``200 {accepted, duplicates, rejected}``; a record id this probe already stored counts as
duplicate, so a retried batch never duplicates. An id already stored from another probe is a
conflict: not stored, counted (reason ``id_conflict``) and answered as ``rejected``, with
``conflicts`` and ``conflict_indexes`` (positions in the batch). ``GET /healthz`` answers
``{"status": "ok"}``.

The app never records or exposes a probe's address: the country and ASN stored are the ones the
probe was registered with (``publiccore probes add``), rewritten into every record.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import gc
import json
import math
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from publiccore.collectors import connections

from publiccore import domains
from publiccore.clock import Clock, utc_now
from publiccore.config import Settings
from publiccore.errors import RecordError, StoreError
from publiccore.records import ProbeRef, Record, dumps_wire, parse_record_wire
from publiccore.store import ProbeRegistration, PutResult, Store
from publiccore.store.registry import token_hash

RECORDS_PATH = "/api/v1/records"
HEALTH_PATH = "/healthz"
MAX_TOKEN_CHARS = 256
READ_CHUNK = 64 * 1024
STORE_THREADS = 4
GC_THRESHOLD = 10_000  # allocations between young collections while the app runs (CPython: 700)
GZIP_MAGIC = b"\x1f\x8b"


# --- counters ---------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class IngestStats:
    """Plain ingest counters for the Prometheus exporter to read (no labels per probe or IP).

    ``rejected_by_reason`` counts the records of rejected batches (1 when a body could not be
    split into records, e.g. bad JSON, or was refused before reading, e.g. a bad token).
    """

    accepted_by_kind: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    duplicates_by_kind: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    rejected_by_reason: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    batches_accepted: int = 0
    batches_rejected: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the counters."""
        return {
            "accepted_by_kind": dict(self.accepted_by_kind),
            "duplicates_by_kind": dict(self.duplicates_by_kind),
            "rejected_by_reason": dict(self.rejected_by_reason),
            "batches_accepted": self.batches_accepted,
            "batches_rejected": self.batches_rejected,
        }


# --- rate limit -------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per probe: ``rate_per_minute`` sustained, ``burst`` at once (0: off)."""

    def __init__(
        self, rate_per_minute: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = max(1, burst)
        self.monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Spend one request for ``key``; return 0 when allowed, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = self.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


# --- rejection --------------------------------------------------------------------------------


class Rejection(Exception):
    """A request answered with a 4xx: ``status``, a short ``code`` and a precise ``reason``."""

    def __init__(
        self,
        status: int,
        code: str,
        reason: str,
        *,
        index: int | None = None,
        path: str = "",
        records: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.index = index
        self.path = path
        self.records = records
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {
            "error": self.code,
            "reason": self.reason,
            "index": self.index,
            "accepted": 0,
            "duplicates": 0,
            "rejected": self.records,
        }
        if self.path:
            body["path"] = self.path
        return web.json_response(body, status=self.status, headers=self.headers)


# --- body decoding (pure; runs in a worker thread) -------------------------------------------


def gunzip_capped(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (one or more members) without ever holding more than ``limit``.

    Raises Rejection 413 past the limit (a gzip bomb stops there) and 400 for a broken stream.
    """
    out = bytearray()
    remaining = data
    while remaining:
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk = remaining
        while True:
            try:
                piece = decomp.decompress(chunk, limit - len(out) + 1)
            except zlib.error as exc:
                raise Rejection(400, "bad_gzip", f"not a valid gzip stream: {exc}") from None
            out += piece
            if len(out) > limit:
                raise Rejection(413, "too_large", f"body exceeds {limit} bytes after decompression")
            chunk = decomp.unconsumed_tail
            if decomp.eof or (not chunk and not piece):
                break
        if not decomp.eof:
            raise Rejection(400, "bad_gzip", "truncated gzip stream")
        remaining = decomp.unused_data
        if remaining.strip(b"\0") == b"":
            break  # trailing zero padding after the last member
    return bytes(out)


def split_batch(body: bytes) -> list[Any]:
    """Decode a JSON array or JSON Lines body into its items; raise Rejection 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(400, "bad_encoding", f"body is not UTF-8 (byte {exc.start})") from None
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise Rejection(400, "empty_batch", "empty body: send a JSON array or JSON Lines")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except RecursionError:
            raise Rejection(400, "bad_json", "JSON nested too deeply") from None
        except ValueError as exc:
            raise Rejection(400, "bad_json", f"bad JSON: {exc}"[:300]) from None
        if not isinstance(items, list):  # e.g. "[1] x" fails above; keep the type honest
            raise Rejection(400, "bad_json", "expected a JSON array")
        return items
    items = []
    # "\n" only: str.splitlines also splits at U+2028, U+2029 and U+0085, which may stand
    # unescaped inside a JSON string of a valid line.
    for line in stripped.split("\n"):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except RecursionError:
            raise Rejection(400, "bad_json", "JSON nested too deeply", index=len(items)) from None
        except ValueError as exc:
            raise Rejection(
                400, "bad_json", f"bad JSON Lines: {exc}"[:300], index=len(items)
            ) from None
    return items


def validate_batch(
    items: list[Any], probe: ProbeRegistration, *, now: dt.datetime, max_future_seconds: float
) -> tuple[list[Record], list[str]]:
    """Parse every item as a record of ``probe``; rewrite its country/ASN from the registration.

    Every record is also held to the closed domains of ``publiccore.domains`` (root letters,
    IP addresses, bounded text, valid Unicode, times from 2000-01-01 to ``max_future_seconds``
    ahead of ``now``, no nil UUID). Returns the records and their canonical JSON
    (``Record.dumps()`` of each, with the registered country/ASN) for the store. Raises
    Rejection (400 invalid, 403 another probe's record) naming the first bad item.
    """
    registered = ProbeRef(id=probe.id, asn=probe.asn, country=probe.country)
    registered_wire = {"id": probe.id, "asn": probe.asn, "country": probe.country}
    records: list[Record] = []
    bodies: list[str] = []
    for index, item in enumerate(items):
        try:
            record, wire = parse_record_wire(item)
        except RecordError as exc:
            raise Rejection(
                400,
                exc.code,
                str(exc),
                index=index,
                path=exc.path,
                records=len(items),
            ) from None
        except RecursionError:
            raise Rejection(
                400, "invalid_value", "record nested too deeply", index=index, records=len(items)
            ) from None
        if record.probe.id != probe.id:
            raise Rejection(
                403,
                "wrong_probe",
                f"record for probe {_shown(record.probe.id)} sent with the token of "
                f"probe {probe.id!r}",
                index=index,
                path="probe.id",
                records=len(items),
            )
        if record.probe != registered:
            record = dataclasses.replace(record, probe=registered)
            wire = {**wire, "probe": registered_wire}
        body = dumps_wire(wire)
        try:
            domains.check_record(
                record, wire, now=now, max_future_seconds=max_future_seconds, body=body
            )
        except RecordError as exc:
            raise Rejection(
                400,
                _domain_error_code(exc),
                str(exc),
                index=index,
                path=exc.path,
                records=len(items),
            ) from None
        records.append(record)
        bodies.append(body)
    return records, bodies


def _shown(text: str) -> str:
    """``text`` for an error message: at most 64 characters, escaped (no lone surrogate)."""
    return ascii(text[:64])


def _domain_error_code(exc: RecordError) -> str:
    if exc.path in ("started", "finished"):
        return "future_timestamp" if "future" in exc.reason else "implausible_timestamp"
    return "invalid_value"


# --- the app ----------------------------------------------------------------------------------


STORE_KEY = web.AppKey("store", Store)
SETTINGS_KEY = web.AppKey("settings", Settings)
STATS_KEY = web.AppKey("ingest_stats", IngestStats)
LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
EXECUTOR_KEY = web.AppKey("store_executor", concurrent.futures.ThreadPoolExecutor)


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """One small thread pool for blocking store and parsing work; shut down with the app."""
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=STORE_THREADS, thread_name_prefix="ingest"
    )
    app[EXECUTOR_KEY] = executor
    try:
        yield
    finally:
        executor.shutdown(wait=True, cancel_futures=False)


async def _gc_ctx(_app: web.Application) -> AsyncIterator[None]:
    """While the app runs, collect the youngest generation every GC_THRESHOLD allocations.

    A batch of 200 records makes about 7,000 objects the collector tracks (decoded JSON, the
    records), all alive until the batch is stored. At CPython's default (one young collection
    every 700 allocations) they were traversed collection after collection, promoted and
    traversed again: about a third of a serve worker's CPU. The previous thresholds are put
    back on cleanup.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _in_thread(request: web.Request, func: Callable[[], Any]) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], func)


async def _authenticate(request: web.Request) -> ProbeRegistration:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="publiccore"'}
    if scheme.lower() != "bearer" or not token:
        raise Rejection(401, "unauthorized", "missing bearer token", headers=challenge)
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise Rejection(401, "unauthorized", "unknown token", headers=challenge)
    store = request.app[STORE_KEY]
    try:
        probe = await _in_thread(
            request, functools.partial(store.probe_by_token_hash, token_hash(token))
        )
    except (StoreError, sqlite3.Error) as exc:
        raise Rejection(
            503,
            "store_unavailable",
            f"store unavailable: {type(exc).__name__}",
            headers={"Retry-After": "5"},
        ) from None
    if probe is None:
        raise Rejection(401, "unauthorized", "unknown token", headers=challenge)
    if probe.revoked is not None:
        raise Rejection(401, "unauthorized", "token revoked", headers=challenge)
    return probe


async def _read_body(request: web.Request, limit: int, *, piece_seconds: float) -> bytes:
    """Read the body: at most ``limit`` bytes, each piece within ``piece_seconds``.

    Raises Rejection (413 too large, 408 stalled, 400 undecodable).
    """
    if request.content_length is not None and request.content_length > limit:
        raise Rejection(413, "too_large", f"body exceeds {limit} bytes")
    body = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(request.content.read(READ_CHUNK), piece_seconds)
        except TimeoutError:
            raise Rejection(
                408, "body_timeout", f"no body data for {piece_seconds:g} s: closing"
            ) from None
        except HttpProcessingError as exc:  # aiohttp's own decompression refused the body
            raise Rejection(400, "bad_gzip", f"cannot decode body: {exc.message}"[:300]) from None
        if not chunk:
            break
        body += chunk
        if len(body) > limit:
            raise Rejection(413, "too_large", f"body exceeds {limit} bytes")
    return bytes(body)


def _ingest_sync(
    store: Store,
    raw: bytes,
    *,
    gzipped: bool,
    limit: int,
    probe: ProbeRegistration,
    now: dt.datetime,
    max_future_seconds: float,
) -> tuple[list[Record], PutResult]:
    """Decode, validate and store one batch (runs in a worker thread)."""
    # A server built with auto_decompress=True (aiohttp's default) hands over the body already
    # decompressed (capped by _read_body); ``publiccore serve`` turns that off so the capped
    # decompression here gives precise reasons. Either way JSON never starts with gzip's magic.
    body = gunzip_capped(raw, limit) if gzipped and raw[:2] == GZIP_MAGIC else raw
    items = split_batch(body)
    records, bodies = validate_batch(items, probe, now=now, max_future_seconds=max_future_seconds)
    if not records:
        return records, PutResult(accepted=0, duplicates=0)
    try:
        result = store.put_records(records, received=now, bodies=bodies)
    except (StoreError, sqlite3.Error) as exc:
        raise Rejection(
            503,
            "store_unavailable",
            f"store unavailable: {type(exc).__name__}",
            records=len(records),
            headers={"Retry-After": "5"},
        ) from None
    return records, result


async def post_records(request: web.Request) -> web.Response:
    """POST /api/v1/records: authenticate, rate-limit, decode, validate, store one batch."""
    app = request.app
    stats = app[STATS_KEY]
    serve = app[SETTINGS_KEY].serve
    try:
        probe = await _authenticate(request)
        wait = app[LIMITER_KEY].take(probe.id)
        if wait > 0:
            raise Rejection(
                429,
                "rate_limited",
                "too many requests from this probe",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            raise Rejection(
                415,
                "unsupported_encoding",
                f"Content-Encoding {encoding[:40]!r} not supported (gzip or none)",
            )
        raw = await _read_body(
            request, serve.max_body_bytes, piece_seconds=serve.body_timeout_seconds
        )
        now = app[CLOCK_KEY]()
        records, result = await _in_thread(
            request,
            functools.partial(
                _ingest_sync,
                app[STORE_KEY],
                raw,
                gzipped=encoding == "gzip",
                limit=serve.max_body_bytes,
                probe=probe,
                now=now,
                max_future_seconds=serve.max_future_seconds,
            ),
        )
    except Rejection as rejection:
        stats.rejected_by_reason[rejection.code] += rejection.records
        stats.batches_rejected += 1
        response = rejection.response()
        if not request.content.at_eof():
            # Refused before the body was read (401, 413, 429, a stalled body): close now
            # rather than read and discard the rest of it.
            response.force_close()
        return response
    _count(stats, records, result)
    answer: dict[str, Any] = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.conflicts,
    }
    if result.conflicts:
        conflicting = set(result.conflict_ids)
        answer["conflicts"] = result.conflicts
        answer["conflict_indexes"] = [i for i, r in enumerate(records) if r.id in conflicting]
    return web.json_response(answer)


def _count(stats: IngestStats, records: list[Record], result: PutResult) -> None:
    stats.batches_accepted += 1
    if result.conflicts:
        stats.rejected_by_reason["id_conflict"] += result.conflicts
        conflicting = set(result.conflict_ids)
        records = [r for r in records if r.id not in conflicting]
    kinds = collections.Counter(r.kind for r in records)
    if result.duplicates == 0:
        stats.accepted_by_kind.update(kinds)
    elif result.accepted == 0:
        stats.duplicates_by_kind.update(kinds)
    elif len(kinds) == 1:
        (kind,) = kinds
        stats.accepted_by_kind[kind] += result.accepted
        stats.duplicates_by_kind[kind] += result.duplicates
    else:  # mixed kinds, some duplicates: the store does not say which; count as "mixed"
        stats.accepted_by_kind["mixed"] += result.accepted
        stats.duplicates_by_kind["mixed"] += result.duplicates


async def healthz(_request: web.Request) -> web.Response:
    """GET /healthz: the service is up and answering."""
    return web.json_response({"status": "ok"})


def make_app(
    store: Store,
    settings: Settings,
    *,
    clock: Clock = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """Build the ingest app over ``store``; mount it or add routes (e.g. /metrics) as needed.

    Shared state is under typed keys: ``STORE_KEY``, ``SETTINGS_KEY``, ``STATS_KEY`` (the
    counters an exporter reads), ``LIMITER_KEY``, ``CLOCK_KEY``; the worker pool for blocking
    store work lives in ``cleanup_ctx``.
    """
    app = web.Application(
        client_max_size=settings.serve.max_body_bytes,
        middlewares=[connections.request_started],
    )
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = settings
    app[STATS_KEY] = IngestStats()
    app[LIMITER_KEY] = RateLimiter(
        settings.serve.rate_limit_requests_per_minute,
        settings.serve.rate_limit_burst,
        monotonic=monotonic,
    )
    app[CLOCK_KEY] = clock
    app.cleanup_ctx.append(_executor_ctx)
    app.cleanup_ctx.append(_gc_ctx)
    app.router.add_post(RECORDS_PATH, post_records)
    app.router.add_get(HEALTH_PATH, healthz)
    return app
