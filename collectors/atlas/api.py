"""The RIPE Atlas REST API: results by time window, measurement definitions, probes; follow.

``/api/v2/measurements/ID/results/?start=…&stop=…`` returns every result of a window at once, so
a long period is read window by window (``[atlas] window_seconds``). A 429 or 5xx answer, or a
broken connection, is retried with doubling delays (``retries``, ``backoff_seconds``, honouring a
numeric ``Retry-After``); any other error stops with a one-line error. ``follow`` keeps, per
measurement, the end of the last window whose results are all stored (``atlas_positions`` in the
store) and re-reads ``lag_seconds`` before it on every poll for results that arrive late; the
deterministic record ids make the overlap store nothing twice, and a restart resumes there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiohttp
from publiccore.collectors.atlas import files, importer, mapping, probemeta

from publiccore.clock import Clock, utc_now
from publiccore.config import AtlasSettings
from publiccore.errors import InputError
from publiccore.records import RecordSource
from publiccore.store import Store

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
PROBES_PER_REQUEST = 500
LOOKUP_CHUNK = 5000  # file imports: results read before their unknown probes are looked up


class AtlasApi:
    """A small client of the Atlas REST API over one aiohttp session."""

    def __init__(
        self,
        settings: AtlasSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.base = settings.api_url.rstrip("/")
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        self.retried = 0

    async def __aenter__(self) -> AtlasApi:
        headers = {"Accept": "application/json"}
        if self.settings.key:
            headers["Authorization"] = f"Key {self.settings.key}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        """GET ``url`` (absolute, or a path under the base URL) as JSON; raise InputError."""
        assert self._session is not None, "use AtlasApi as an async context manager"
        if url.startswith("/"):
            url = self.base + url
        delay = self.settings.backoff_seconds
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            self.requests += 1
            wait: float | None = None
            try:
                async with self._session.get(url, params=params) as response:
                    if response.status == 200:
                        try:
                            return await response.json(content_type=None)
                        except ValueError:
                            raise InputError(f"Atlas API {url}: the answer is not JSON") from None
                    if response.status not in RETRY_STATUS:
                        raise InputError(f"Atlas API {url}: HTTP {response.status}")
                    wait = _retry_after(response.headers.get("Retry-After"))
                    problem = f"HTTP {response.status}"
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                problem = type(exc).__name__
            if attempt == attempts:
                raise InputError(f"Atlas API {url}: {problem} after {attempts} attempts")
            self.retried += 1
            pause = min(self.settings.backoff_max_seconds, wait if wait is not None else delay)
            await self._sleep(pause)
            delay = min(self.settings.backoff_max_seconds, delay * 2)
        raise AssertionError("unreachable")

    async def results(self, measurement: int, start: int, stop: int) -> list[Any]:
        """Results of ``measurement`` with ``start`` ≤ timestamp < ``stop`` (POSIX seconds)."""
        data = await self.get_json(
            f"/api/v2/measurements/{measurement}/results/",
            {"start": str(start), "stop": str(stop - 1), "format": "json"},
        )
        if not isinstance(data, list):
            raise InputError(f"Atlas API: results of {measurement} are not a JSON array")
        return [
            r
            for r in data
            if not (isinstance(r, dict) and isinstance(r.get("timestamp"), int | float))
            or start <= r["timestamp"] < stop
        ]

    async def measurement(self, measurement: int) -> dict[str, Any]:
        """The definition of ``measurement``."""
        data = await self.get_json(f"/api/v2/measurements/{measurement}/")
        if not isinstance(data, dict):
            raise InputError(f"Atlas API: measurement {measurement} is not a JSON object")
        return data

    async def probes(self, ids: Iterable[int]) -> dict[int, probemeta.ProbeInfo]:
        """Metadata of the probes ``ids`` (pages followed by their ``next`` link)."""
        wanted = sorted(set(ids))
        out: dict[int, probemeta.ProbeInfo] = {}
        for i in range(0, len(wanted), PROBES_PER_REQUEST):
            chunk = ",".join(map(str, wanted[i : i + PROBES_PER_REQUEST]))
            url: str | None = "/api/v2/probes/"
            params: dict[str, str] | None = {"id__in": chunk, "page_size": "500"}
            pages = 0
            while url and pages < 1000:
                page = await self.get_json(url, params)
                pages += 1
                out.update(probemeta.table(probemeta.probe_objects(page)))
                url = page.get("next") if isinstance(page, dict) else None
                params = None
        return out


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def windows(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into windows of ``size`` seconds (the last one shorter)."""
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def probe_ids(results: Iterable[object]) -> set[int]:
    """The integer ``prb_id`` of every result that has one."""
    return {r["prb_id"] for r in results if isinstance(r, dict) and type(r.get("prb_id")) is int}


@dataclasses.dataclass(slots=True)
class ProbeLookup:
    """Fills a probe table from ``/api/v2/probes/``: each probe it lacks is asked for once.

    A probe the API does not know stays out of the table (its records get no country and no
    ASN, and the importer counts it in ``probes_without_country``).
    """

    api: AtlasApi
    table: dict[int, probemeta.ProbeInfo]
    asked: set[int] = dataclasses.field(default_factory=set)
    found: int = 0

    async def fill(self, ids: Iterable[int]) -> None:
        """Look up the probes of ``ids`` neither in the table nor asked for before."""
        wanted = set(ids) - self.table.keys() - self.asked
        if not wanted:
            return
        answer = await self.api.probes(wanted)
        self.asked |= wanted
        self.found += len(answer.keys() & wanted)
        self.table.update(answer)


async def import_items(
    lookup: ProbeLookup,
    imp: importer.Importer,
    items: Iterable[files.Item | files.Malformed],
    *,
    source: RecordSource,
    label: str,
    chunk: int = LOOKUP_CHUNK,
) -> None:
    """Import one input (a file's items) ``chunk`` results at a time, each chunk after its
    unknown probes were looked up; raise InputError when the probes API fails."""
    batch: list[files.Item | files.Malformed] = []

    async def add() -> None:
        await lookup.fill(probe_ids(i.value for i in batch if isinstance(i, files.Item)))
        imp.add_items(batch, source=source, label=label)
        batch.clear()

    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            await add()
    if batch:
        await add()
    imp.flush()


@dataclasses.dataclass(slots=True)
class Fetcher:
    """Reads windows of measurements from the API into an Importer."""

    api: AtlasApi
    imp: importer.Importer
    probe_table: dict[int, probemeta.ProbeInfo]
    fetch_probes: bool = True
    _asked_probes: set[int] = dataclasses.field(default_factory=set)

    async def prepare(self, measurement: int) -> None:
        """Learn what ``measurement`` asks (for results whose answer does not say)."""
        try:
            definition = await self.api.measurement(measurement)
        except InputError:
            return  # a missing definition only costs timeouts their question
        question = mapping.question_of_definition(definition)
        if question is not None:
            questions = self.imp.mapper.questions
            assert isinstance(questions, dict)
            questions[measurement] = question

    async def window(self, measurement: int, start: int, stop: int) -> None:
        """Import the results of one window and write them all."""
        results = await self.api.results(measurement, start, stop)
        if self.fetch_probes:
            ids = (
                {
                    r["prb_id"]
                    for r in results
                    if isinstance(r, dict) and type(r.get("prb_id")) is int
                }
                - self.probe_table.keys()
                - self._asked_probes
            )
            if ids:
                self.probe_table.update(await self.api.probes(ids))
                self._asked_probes |= ids
        query = (
            f"{self.api.base}/api/v2/measurements/{measurement}/results/"
            f"?start={start}&stop={stop - 1}"
        )
        source = RecordSource(name=mapping.SOURCE_NAME, measurement=measurement, query=query)
        for index, result in enumerate(results, 1):
            self.imp.add(
                f"measurement {measurement} [{start}, {stop}) #{index}", result, source=source
            )
        self.imp.flush()


async def import_period(
    fetcher: Fetcher, measurements: Sequence[int], *, start: int, stop: int
) -> None:
    """Import ``[start, stop)`` of every measurement, window by window."""
    size = int(fetcher.api.settings.window_seconds)
    for measurement in measurements:
        await fetcher.prepare(measurement)
        for a, b in windows(start, stop, size):
            await fetcher.window(measurement, a, b)


async def follow(
    fetcher: Fetcher,
    store: Store,
    measurements: Sequence[int],
    *,
    start: int | None = None,
    rounds: int = 0,
    clock: Clock = utc_now,
    on_round: Callable[[int], None] | None = None,
) -> None:
    """Poll every ``follow_interval_seconds``; ``rounds`` > 0 stops after that many polls.

    A measurement without a stored position starts at ``start`` (else ``lag_seconds`` ago).
    """
    settings = fetcher.api.settings
    size = int(settings.window_seconds)
    lag = int(settings.lag_seconds)
    for measurement in measurements:
        await fetcher.prepare(measurement)
    done = 0
    while True:
        now = int(clock().timestamp())
        for measurement in measurements:
            position = store.get_atlas_position(measurement)
            begin = (
                int(position.timestamp()) - lag
                if position is not None
                else (start if start is not None else now - lag)
            )
            for a, b in windows(begin, now, size):
                await fetcher.window(measurement, a, b)
                store.set_atlas_position(measurement, dt.datetime.fromtimestamp(b, dt.UTC))
        done += 1
        if on_round is not None:
            on_round(done)
        if rounds and done >= rounds:
            return
        await asyncio.sleep(settings.follow_interval_seconds)
