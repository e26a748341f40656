"""RIS and RouteViews archives: where files live, what a directory listing says, downloads.

Layouts (``base`` is a setting, so that mirrors, local archives and tests work the same way):

- RIS: ``<base>/rrcNN/YYYY.MM/bview.YYYYMMDD.HHMM.gz`` (RIB, every 8 h) and
  ``updates.YYYYMMDD.HHMM.gz`` (every 5 min);
- RouteViews: ``<base>/<collector>/bgpdata/YYYY.MM/RIBS/rib.YYYYMMDD.HHMM.bz2`` (every 2 h) and
  ``…/UPDATES/updates.YYYYMMDD.HHMM.bz2`` (every 15 min); ``route-views2`` lives at
  ``<base>/bgpdata/`` directly.

Discovery reads the HTML directory index of each month (Apache / nginx style, sizes exact or
human-readable such as ``14M``). Downloads use aiohttp with a per-host connection bound,
timeouts, retries with backoff, ``Range`` resume (or a restart when the server ignores it), a
size check against the listing and a temporary ``.part`` name until the file is complete.
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import datetime as dt
import html.parser
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import aiohttp

from publiccore.errors import InputError, PubliccoreError

SourceName = Literal["ris", "routeviews"]
Kind = Literal["rib", "updates"]
SOURCES: tuple[SourceName, ...] = ("ris", "routeviews")
DEFAULT_BASES: dict[SourceName, str] = {
    "ris": "https://data.ris.ripe.net",
    "routeviews": "https://archive.routeviews.org",
}


MAX_HEAD_REQUESTS = 3000  # names asked for one by one per directory without a listing


class DownloadError(PubliccoreError):
    """A file could not be downloaded; ``reason`` is a short snake_case code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """File names and publication periods of one archive."""

    source: SourceName
    rib_prefix: str
    rib_seconds: int
    updates_seconds: int
    extension: str

    def period(self, kind: Kind) -> int:
        """Seconds between two files of ``kind``."""
        return self.rib_seconds if kind == "rib" else self.updates_seconds


LAYOUTS: dict[SourceName, Layout] = {
    "ris": Layout("ris", "bview", 8 * 3600, 300, "gz"),
    "routeviews": Layout("routeviews", "rib", 2 * 3600, 900, "bz2"),
}

_COLLECTOR = re.compile(r"^(rrc\d\d|route-views[0-9]*(\.[a-z0-9-]+)?)$")


def source_of(collector: str) -> SourceName:
    """``ris`` for ``rrcNN``, ``routeviews`` for ``route-views*``; raise InputError otherwise."""
    if not _COLLECTOR.match(collector):
        raise InputError(f"unknown collector {collector!r} (rrcNN or route-views…)")
    return "ris" if collector.startswith("rrc") else "routeviews"


@dataclasses.dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One file of an archive: where it is, when its data starts, and the listed size."""

    source: SourceName
    collector: str
    kind: Kind
    name: str
    url: str
    time: float  # Unix seconds of the file name's timestamp
    size: int | None = None  # bytes, as listed (None: the listing does not say)
    size_tolerance: int = 0  # the listing's rounding (human-readable sizes)


def parse_name(name: str, source: SourceName) -> tuple[Kind, float] | None:
    """The kind and start time a file name says, or None for any other file."""
    layout = LAYOUTS[source]
    found = re.fullmatch(
        rf"({layout.rib_prefix}|updates)\.(\d{{8}})\.(\d{{4}})\.{layout.extension}", name
    )
    if found is None:
        return None
    try:
        when = dt.datetime.strptime(found.group(2) + found.group(3), "%Y%m%d%H%M")
    except ValueError:
        return None
    kind: Kind = "updates" if found.group(1) == "updates" else "rib"
    return kind, float(calendar.timegm(when.timetuple()))


def file_name(source: SourceName, kind: Kind, when: float) -> str:
    """The archive's name for the file of ``kind`` starting at ``when``."""
    layout = LAYOUTS[source]
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y%m%d.%H%M")
    prefix = layout.rib_prefix if kind == "rib" else "updates"
    return f"{prefix}.{stamp}.{layout.extension}"


def collector_base(base: str, source: SourceName, collector: str) -> str:
    """The URL under which a collector's month directories are (no trailing slash)."""
    base = base.rstrip("/")
    if source == "ris":
        return f"{base}/{collector}"
    if collector == "route-views2":
        return f"{base}/bgpdata"
    return f"{base}/{collector}/bgpdata"


def month_directory(
    base: str, source: SourceName, collector: str, year: int, month: int, kind: Kind
) -> str:
    """URL of the directory holding a month's files of ``kind`` (trailing slash)."""
    root = f"{collector_base(base, source, collector)}/{year:04d}.{month:02d}/"
    if source == "ris":
        return root
    return root + ("RIBS/" if kind == "rib" else "UPDATES/")


def months(start: float, end: float) -> list[tuple[int, int]]:
    """(year, month) of every month from ``start`` to ``end`` (Unix seconds), in order."""
    first = dt.datetime.fromtimestamp(start, dt.UTC)
    last = dt.datetime.fromtimestamp(end, dt.UTC)
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def slots(period: int, start: float, end: float) -> list[float]:
    """Publication times (multiples of ``period``) in ``[start, end]``."""
    first = -(-int(start) // period) * period
    return [float(t) for t in range(first, int(end) + 1, period)]


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)(i?B?)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> tuple[int, int] | None:
    """A listing's size column (``123456``, ``14M``, ``1.5K``) → (bytes, rounding), or None."""
    found = _SIZE.match(text.strip())
    if found is None:
        return None
    number, unit = found.group(1), found.group(2).upper()
    scale = _UNITS[unit]
    if not unit:
        return (int(float(number)), 0)
    decimals = len(number.partition(".")[2])
    step = scale / (10**decimals)
    return (round(float(number) * scale), int(step))  # the listing rounded to ±1 step


class _Listing(html.parser.HTMLParser):
    """Links of a directory index, each with the text that follows it (date, size)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.entries: list[tuple[str, str]] = []
        self._href: str | None = None
        self._after: list[str] = []

    def _flush(self) -> None:
        if self._href is not None:
            self.entries.append((self._href, " ".join(self._after)))
        self._href = None
        self._after = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._flush()
            self._href = dict(attrs).get("href") or None
        elif tag == "tr":
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._after.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def parse_listing(text: str) -> list[tuple[str, tuple[int, int] | None]]:
    """File names of an HTML directory index with their listed sizes (None when not shown)."""
    parser = _Listing()
    parser.feed(text)
    parser.close()
    out = []
    for href, after in parser.entries:
        name = href.rsplit("/", 1)[-1] if not href.endswith("/") else ""
        if not name or "?" in href:
            continue
        tokens = after.split()
        size = None
        if tokens:
            # the text after the link holds the link text again, then date and size columns
            for token in reversed(tokens):
                size = parse_size(token)
                if size is not None:
                    break
        out.append((name, size))
    return out


class Archive:
    """Discovery and downloads against one or more archive bases, over one aiohttp session."""

    def __init__(
        self,
        bases: dict[SourceName, str],
        *,
        connections_per_host: int = 2,
        timeout_seconds: float = 120.0,
        retries: int = 4,
        backoff_seconds: float = 2.0,
    ) -> None:
        self.bases = dict(bases)
        self.connections_per_host = connections_per_host
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Archive:
        connector = aiohttp.TCPConnector(limit_per_host=self.connections_per_host)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeout_seconds, sock_read=self.timeout_seconds
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session; raises RuntimeError outside ``async with``."""
        if self._session is None:
            raise RuntimeError("use the archive as an async context manager")
        return self._session

    async def listing(self, url: str) -> list[tuple[str, tuple[int, int] | None]] | None:
        """A directory's entries, or None when the directory does not exist (404).

        Raises DownloadError when the server keeps failing.
        """
        for attempt in range(self.retries + 1):
            try:
                async with self.session.get(url) as response:
                    if response.status == 404:
                        return None
                    if response.status >= 400:
                        raise DownloadError(
                            f"http_{response.status}", f"{url}: HTTP {response.status}"
                        )
                    return parse_listing(await response.text(errors="replace"))
            except (aiohttp.ClientError, TimeoutError, DownloadError) as exc:
                if attempt >= self.retries:
                    if isinstance(exc, DownloadError):
                        raise
                    raise DownloadError(_reason(exc), f"{url}: {_describe(exc)}") from None
                await asyncio.sleep(self.backoff_seconds * 2**attempt)
        return None  # not reached

    async def discover(
        self,
        collector: str,
        *,
        start: float,
        end: float,
        kinds: Sequence[Kind] = ("rib", "updates"),
    ) -> list[ArchiveFile]:
        """Files of ``collector`` whose names say ``start`` ≤ time ≤ ``end``, oldest first."""
        source = source_of(collector)
        base = self.bases[source]
        found: dict[str, ArchiveFile] = {}
        for year, month in months(start, end):
            directories = {month_directory(base, source, collector, year, month, k) for k in kinds}
            for directory in sorted(directories):
                try:
                    entries = await self.listing(directory)
                except DownloadError as exc:
                    if exc.reason not in ("http_401", "http_403"):
                        raise
                    # no index here (a mirror that forbids listings): ask for each due name
                    kinds_here = [
                        k
                        for k in kinds
                        if month_directory(base, source, collector, year, month, k) == directory
                    ]
                    for file in await self._probe(
                        source,
                        collector,
                        directory,
                        kinds_here,
                        year=year,
                        month=month,
                        start=start,
                        end=end,
                    ):
                        found[file.name] = file
                    continue
                for name, size in entries or ():
                    parsed = parse_name(name, source)
                    if parsed is None or parsed[0] not in kinds:
                        continue
                    kind, when = parsed
                    if not start <= when <= end:
                        continue
                    found[name] = ArchiveFile(
                        source=source,
                        collector=collector,
                        kind=kind,
                        name=name,
                        url=directory + name,
                        time=when,
                        size=size[0] if size else None,
                        size_tolerance=size[1] if size else 0,
                    )
        return sorted(found.values(), key=lambda f: (f.time, f.kind != "rib", f.name))

    async def _probe(
        self,
        source: SourceName,
        collector: str,
        directory: str,
        kinds: Sequence[Kind],
        *,
        year: int,
        month: int,
        start: float,
        end: float,
    ) -> list[ArchiveFile]:
        """HEAD every publication slot of a month's directory in [start, end]; the ones there.

        Raises DownloadError (``too_many_requests``) past ``MAX_HEAD_REQUESTS`` names.
        """
        first = calendar.timegm((year, month, 1, 0, 0, 0))
        following = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0))
        layout = LAYOUTS[source]
        wanted = [
            (kind, when)
            for kind in kinds
            for when in slots(layout.period(kind), max(start, first), min(end, following - 1))
        ]
        if len(wanted) > MAX_HEAD_REQUESTS:
            raise DownloadError(
                "too_many_requests",
                f"{directory}: no listing, and {len(wanted)} names to ask for one by one "
                f"(more than {MAX_HEAD_REQUESTS}): shorten the window",
            )
        out = []
        for kind, when in wanted:
            name = file_name(source, kind, when)
            async with self.session.head(directory + name) as response:
                if response.status != 200:
                    continue
                out.append(
                    ArchiveFile(
                        source=source,
                        collector=collector,
                        kind=kind,
                        name=name,
                        url=directory + name,
                        time=when,
                        size=response.content_length,
                    )
                )
        return out

    async def download(
        self, file: ArchiveFile, directory: pathlib.Path, *, retries: int | None = None
    ) -> pathlib.Path:
        """Fetch ``file`` into ``directory`` (``.part`` until complete); return its path.

        A complete file already there (a prefetch, ``--keep``) is used when its size agrees
        with the listing. ``retries`` overrides the archive's.

        Resumes a ``.part`` left by an interrupted transfer with a Range request (restarts when
        the server sends the whole file). Raises DownloadError with a reason code: ``not_found``,
        ``http_NNN``, ``timeout``, ``truncated``, ``size_mismatch``…
        """
        _mkdir(directory)
        final = directory / file.name
        part = directory / f".{file.name}.part"
        have = _size(final)
        if have and (file.size is None or abs(have - file.size) <= file.size_tolerance):
            return final
        last: DownloadError | None = None
        for attempt in range((self.retries if retries is None else retries) + 1):
            if attempt:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                await self._fetch(file, part)
            except DownloadError as exc:
                last = exc
                if exc.reason in ("not_found", "size_mismatch"):
                    break
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = DownloadError(_reason(exc), f"{file.url}: {_describe(exc)}")
                continue
            os.replace(part, final)
            return final
        assert last is not None
        if last.reason == "size_mismatch":
            part.unlink(missing_ok=True)  # a restart will not fix it, a resume would corrupt it
        raise last

    async def _fetch(self, file: ArchiveFile, part: pathlib.Path) -> None:
        have = _size(part)
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with self.session.get(file.url, headers=headers) as response:
            if response.status == 404:
                raise DownloadError("not_found", f"{file.url}: not found (404)")
            if response.status == 416 and have:
                _unlink(part)  # the part is longer than the file: start over
                raise DownloadError("restart", f"{file.url}: range not satisfiable, restarting")
            if response.status not in (200, 206):
                raise DownloadError(
                    f"http_{response.status}", f"{file.url}: HTTP {response.status}"
                )
            mode = "ab" if response.status == 206 and have else "wb"
            expected = response.content_length
            with part.open(mode) as out:
                async for chunk in response.content.iter_chunked(1 << 16):
                    out.write(chunk)
            got = _size(part)
            if expected is not None and got != expected + (have if mode == "ab" else 0):
                raise DownloadError("truncated", f"{file.url}: got {got} of {expected} bytes")
            if file.size is not None and abs(got - file.size) > file.size_tolerance:
                raise DownloadError(
                    "size_mismatch",
                    f"{file.url}: {got} bytes, the listing says {file.size}",
                )


def _mkdir(directory: pathlib.Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)


def _size(path: pathlib.Path) -> int:
    """Bytes of a file, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _unlink(path: pathlib.Path) -> None:
    path.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection_failed"
    return "download_failed"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def directory_bytes(directory: pathlib.Path) -> int:
    """Bytes of the files under ``directory`` (0 when absent)."""
    if not directory.exists():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def parse_source_overrides(items: Iterable[str]) -> dict[SourceName, str]:
    """``--source ris=URL`` items → {source: base}; raise InputError for a bad item."""
    out: dict[SourceName, str] = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or name not in SOURCES or not url.startswith(("http://", "https://")):
            raise InputError(f"--source must be ris=URL or routeviews=URL, not {item!r}")
        out[name] = url
    return out
