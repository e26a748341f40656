"""Root zone snapshots: read a root zone file, store it by serial, and load it back for judging.

The RSSAC047 correctness judge (``collectors.derive.correctness``) compares answers with "the
root zones seen in the preceding 48 hours" (RSSAC047 [ooy], [yhu]). The collector keeps every
zone it is given in the store (``root_zones``: one row per SOA serial, the text zstd-compressed,
about 40% of its size), from ``publiccore root zone import FILE`` or from ``fetch_zone``
(``[aggregate] root_zone_url``, by default IANA's ``https://www.internic.net/domain/root.zone``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import os
import pathlib
import threading
import time
from typing import Protocol

import dns.exception
import dns.name
import dns.node
import dns.rdataset
import dns.rdatatype
import dns.zone
import zstandard

from publiccore.errors import InputError
from publiccore.store.zones import StoredZone

MAX_ZONE_BYTES = 64 * 1024 * 1024  # the root zone is about 2.3 MB signed (2023)
ZSTD_LEVEL = 10
CACHED_ZONES = 4  # parsed zones kept in memory (about 48 h of root zones: 2 a day)


class ZoneStore(Protocol):
    """The store methods this module uses (``SqlStore`` has them)."""

    def put_root_zone(
        self, *, serial: int, packed: bytes, source: str, sha256: str, size: int, imported: float
    ) -> bool: ...

    def root_zones(self) -> list[StoredZone]: ...

    def get_root_zone(self, serial: int) -> bytes | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class RootZone:
    """A parsed root zone: its serial and its data (absolute names).

    ``memo`` keeps what judging computed from the zone (its RRsets in canonical form, the
    signatures already verified), so that judging many answers costs set look-ups.
    """

    serial: int
    zone: dns.zone.Zone
    memo: dict[object, object] = dataclasses.field(default_factory=dict, compare=False)

    def canonical(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> frozenset[bytes] | None:
        """The zone's RRset of ``name`` and ``rdtype`` as its rdatas' canonical wire forms."""
        key = ("canonical", name, rdtype)
        if key not in self.memo:
            data = self.rdataset(name, rdtype)
            self.memo[key] = None if data is None else frozenset(r.to_digestable() for r in data)
        return self.memo[key]  # type: ignore[return-value]

    def rdataset(
        self,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        covers: dns.rdatatype.RdataType = dns.rdatatype.NONE,
    ) -> dns.rdataset.Rdataset | None:
        """The zone's RRset of ``name`` and ``rdtype`` (an RRSIG set: of ``covers``), or None."""
        node: dns.node.Node | None = self.zone.nodes.get(name)
        if node is None:
            return None
        return node.get_rdataset(self.zone.rdclass, rdtype, covers)


def parse_zone(text: bytes, *, where: str) -> RootZone:
    """Parse a root zone file (master file format, origin ``.``).

    Raises InputError with a one-line reason when it is not a root zone with one SOA.
    """
    try:
        zone = dns.zone.from_text(
            text.decode("utf-8"), origin=dns.name.root, relativize=False, check_origin=True
        )
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not a text zone file (byte {exc.start})") from None
    except (dns.exception.DNSException, ValueError) as exc:
        raise InputError(f"{where}: not a root zone file: {exc}") from None
    soa = zone.get_rdataset(dns.name.root, dns.rdatatype.SOA)
    if soa is None or len(soa) != 1:
        raise InputError(f"{where}: the zone has no single root SOA")
    return RootZone(serial=int(soa[0].serial), zone=zone)


def pack(text: bytes) -> bytes:
    """The stored form of a zone's text (zstd)."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(text)


def unpack(packed: bytes) -> bytes:
    """The zone text ``pack`` stored."""
    return zstandard.ZstdDecompressor().decompress(packed, max_output_size=MAX_ZONE_BYTES)


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    """What storing a zone did: its serial, whether it was new, its size and hash."""

    serial: int
    new: bool
    size: int
    sha256: str
    packed_size: int


def store_zone(
    store: ZoneStore, text: bytes, *, source: str, now: dt.datetime | None = None
) -> Imported:
    """Validate a zone's text and store it under its serial (a stored serial is kept as it is).

    Raises InputError for a file that is not a root zone.
    """
    digest = hashlib.sha256(text).hexdigest()
    known = next((z for z in store.root_zones() if z.sha256 == digest), None)
    if known is not None:  # this very file is stored: nothing to parse
        return Imported(
            serial=known.serial, new=False, size=len(text), sha256=digest, packed_size=0
        )
    zone = parse_zone(text, where=source)
    packed = pack(text)
    when = (now or dt.datetime.now(dt.UTC)).timestamp()
    new = store.put_root_zone(
        serial=zone.serial,
        packed=packed,
        source=source,
        sha256=digest,
        size=len(text),
        imported=when,
    )
    if new:
        _CACHE.put((zone.serial, digest), zone)
    return Imported(
        serial=zone.serial, new=new, size=len(text), sha256=digest, packed_size=len(packed)
    )


def import_zone_file(
    store: ZoneStore, path: str | os.PathLike[str], *, now: dt.datetime | None = None
) -> Imported:
    """Read ``path`` and store its zone (``store_zone``); raises InputError when unreadable."""
    where = pathlib.Path(path)
    try:
        size = where.stat().st_size
        if size > MAX_ZONE_BYTES:
            raise InputError(f"{where}: {size} bytes, more than a root zone ({MAX_ZONE_BYTES})")
        text = where.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror}") from None
    return store_zone(store, text, source=str(where), now=now)


async def fetch_zone(
    store: ZoneStore, url: str, *, timeout_seconds: float = 60.0, now: dt.datetime | None = None
) -> Imported:
    """Download the root zone from ``url`` and store it (``store_zone``).

    Raises InputError when the download fails or is not a root zone.
    """
    import asyncio

    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http,
            http.get(url) as response,
        ):
            if response.status != 200:
                raise InputError(f"{url}: HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ZONE_BYTES:
                    break
            text = b"".join(chunks)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise InputError(f"{url}: download failed ({type(exc).__name__})") from None
    if len(text) > MAX_ZONE_BYTES:
        raise InputError(f"{url}: more than {MAX_ZONE_BYTES} bytes, not a root zone")
    return await asyncio.to_thread(store_zone, store, text, source=url, now=now)


class _ZoneCache:
    """Parsed zones by (serial, sha256), the least recently used dropped beyond CACHED_ZONES."""

    def __init__(self) -> None:
        self._zones: collections.OrderedDict[tuple[int, str], RootZone] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> RootZone | None:
        with self._lock:
            zone = self._zones.get(key)
            if zone is not None:
                self._zones.move_to_end(key)
            return zone

    def put(self, key: tuple[int, str], zone: RootZone) -> None:
        with self._lock:
            self._zones[key] = zone
            self._zones.move_to_end(key)
            while len(self._zones) > CACHED_ZONES:
                self._zones.popitem(last=False)


_CACHE = _ZoneCache()
_PARSE_SECONDS = [0.0]  # time spent parsing stored zones in this process (for judging budgets)


def parse_seconds() -> float:
    """Seconds this process spent parsing stored zones so far (``load_zone``)."""
    return _PARSE_SECONDS[0]


def load_zone(store: ZoneStore, stored: StoredZone) -> RootZone | None:
    """The parsed zone of a stored row (parsed once, then from memory); None if it is gone."""
    key = (stored.serial, stored.sha256)
    zone = _CACHE.get(key)
    if zone is None:
        packed = store.get_root_zone(stored.serial)
        if packed is None:
            return None
        began = time.monotonic()
        zone = parse_zone(unpack(packed), where=f"stored root zone {stored.serial}")
        _PARSE_SECONDS[0] += time.monotonic() - began
        _CACHE.put(key, zone)
    return zone
