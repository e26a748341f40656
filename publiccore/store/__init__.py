"""The Store interface and how to open one.

``open_store`` picks the implementation from the settings: SQLite (the embedded default) for a
path, PostgreSQL for a ``postgresql://`` URL (several collectors sharing one database).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self

from publiccore.errors import StoreError
from publiccore.records import Record

if TYPE_CHECKING:
    from publiccore.config import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class PutResult:
    """What ``put_records`` did: new rows, ids this probe already stored, and conflicts.

    A conflict is a record id already stored from another probe: not stored, and not called a
    duplicate (that would tell a probe another probe's id exists and let it squat ids);
    ``conflict_ids`` lists them.
    """

    accepted: int
    duplicates: int
    conflicts: int = 0
    conflict_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeRegistration:
    """A probe known to the collector. Only a hash of its token is kept."""

    id: str
    country: str
    asn: int
    token_hash: str
    name: str = ""
    created: dt.datetime | None = None
    revoked: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """A derived number: ``subject`` (country, prefix, letter…) × ``metric`` × ``time``."""

    time: dt.datetime
    subject_kind: str
    subject: str
    metric: str
    value: float
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Provenance of a batch of observations (files, hashes, collectors, peer counts…)."""

    id: int
    kind: str
    created: dt.datetime
    meta: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ArchiveFileState:
    """One BGP archive file as the follower / backfill saw it (times in Unix seconds).

    ``status``: ``claimed`` (a process works on it until ``lease_until``), ``done`` (its
    observations are source ``source_id``), ``refused`` (inconsistent input, ``error`` says
    why) or ``failed`` (``attempts`` so far, retried on later polls).
    """

    source: str
    collector: str
    name: str
    kind: str
    file_time: float
    size: int | None
    sha256: str
    status: str
    error: str
    attempts: int
    owner: str
    lease_until: float | None
    source_id: int | None
    elements: int
    observations: int
    processed_at: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """Archive files of one source, collector and status: how many, attempts, the newest."""

    source: str
    collector: str
    status: str
    files: int
    attempts: int
    newest_time: float
    newest_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class FollowSchedule:
    """Missing archive files counted for one source, collector and kind (rib / updates)."""

    source: str
    collector: str
    kind: str
    missing_total: int
    checked_until: float | None


class Store(Protocol):
    """Where records and everything derived from them live."""

    def put_records(
        self,
        records: Iterable[Record],
        *,
        received: dt.datetime | None = None,
        bodies: Sequence[str] | None = None,
    ) -> PutResult:
        """Insert records in one transaction; a record id already stored counts as duplicate.

        A duplicate is an id stored from the same probe; an id stored from another probe is a
        conflict (``PutResult.conflicts``), not stored.

        ``bodies``, when the caller already has them (the ingest service does, from parsing),
        are the records' ``Record.dumps()`` in the same order, stored as they are instead of
        serialising every record again; raises ValueError when their number differs.
        """
        ...

    def get_record(self, record_id: str) -> Record | None: ...

    def get_body(self, record_id: str) -> str | None:
        """The stored record's canonical JSON, byte for byte as written (for citation)."""
        ...

    def iter_records(
        self,
        *,
        kind: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        probe_id: str | None = None,
        country: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Record]:
        """Records by start time (``since`` ≤ started < ``until``), oldest first."""
        ...

    def count_records(
        self,
        *,
        kind: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        probe_id: str | None = None,
        country: str | None = None,
    ) -> int: ...

    def newest_started(self, kind: str, *, until: dt.datetime) -> dt.datetime | None:
        """Start time of the newest record of ``kind`` started before ``until``."""
        ...

    def add_probe(self, probe: ProbeRegistration) -> None: ...

    def probe_by_token_hash(self, token_hash: str) -> ProbeRegistration | None: ...

    def list_probes(self) -> list[ProbeRegistration]: ...

    def revoke_probe(self, probe_id: str, *, when: dt.datetime | None = None) -> bool: ...

    def add_source(self, kind: str, meta: Mapping[str, Any]) -> int: ...

    def put_observations(self, source_id: int, observations: Iterable[Observation]) -> int: ...

    def iter_observations(
        self,
        *,
        metric: str | None = None,
        subject_kind: str | None = None,
        subject: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Iterator[Observation]: ...

    def get_source(self, source_id: int) -> Source | None: ...

    def fact_rows(
        self,
        table: str,
        *,
        since: float | None = None,
        until: float | None = None,
        country: str | None = None,
        asns: Collection[int] | None = None,
        without_round: bool = False,
        buckets: Sequence[float] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Rows of a facts table (``publiccore.store.facts``) by bucket (or time); with
        ``buckets`` (and one country and both bounds) only the rows of those buckets."""
        ...

    def claim_lease(self, name: str, *, owner: str, now: float, seconds: float) -> bool:
        """Take or renew a lease (one deriver per deployment); False while another holds it."""
        ...

    def put_snapshot(self, name: str, *, computed_at: float, body: str) -> None: ...

    def snapshot_time(self, name: str) -> float | None: ...

    def get_snapshot(self, name: str) -> tuple[float, str] | None: ...

    def active_probes(self, *, since: float, until: float) -> list[tuple[str, str]]:
        """Distinct (country, probe id) with a root-dns record in buckets [since, until)."""
        ...

    def bucket_versions(self, *, since: float, until: float) -> dict[float, int]:
        """Per bucket in [since, until), the count of root-dns records with facts in it (what
        changes when a record lands in the bucket)."""
        ...

    def rtt_cells(self, *, since: float, until: float) -> list[tuple[Any, ...]]:
        """Per bucket in [since, until) and cell of ``agg_root_rtt_all``: (bucket, country,
        source, letter, family, transport, bins, counts), a cell's bin rows in one row
        (``bins`` and ``counts``: integer sequences of one length, pairwise)."""
        ...

    def serial_transitions(
        self, *, since: float, until: float, country: str | None = None
    ) -> list[tuple[Any, ...]]:
        """(probe id, letter, country, interval, serial, previous interval or None) of the
        ``root_interval_serials`` rows in [since, until) whose serial differs from the previous
        row's of the same probe and letter (or that have none), by probe, letter, interval."""
        ...

    def rederive(self, *, chunk: int = 2000) -> int:
        """Rebuild the typed rows and buckets from the raw records; return records read."""
        ...

    def claim_archive_file(
        self,
        *,
        source: str,
        collector: str,
        name: str,
        kind: str,
        file_time: float,
        size: int | None,
        owner: str,
        lease_until: float,
        max_attempts: int,
        now: float,
        stale: Callable[[str], bool] | None = None,
    ) -> bool:
        """Take an archive file for processing atomically; True when ``owner`` holds it."""
        ...

    def renew_archive_claims(self, owner: str, lease_until: float) -> int: ...

    def finish_archive_file(
        self,
        *,
        source: str,
        collector: str,
        name: str,
        owner: str,
        status: str,
        now: float,
        sha256: str = "",
        size: int | None = None,
        error: str = "",
        elements: int = 0,
        source_kind: str = "",
        meta: Mapping[str, Any] | None = None,
        observations: Iterable[Observation] = (),
    ) -> bool:
        """End a claim (done with source + observations in one transaction, refused, failed)."""
        ...

    def archive_files(
        self,
        *,
        source: str | None = None,
        collector: str | None = None,
        status: str | None = None,
    ) -> list[ArchiveFileState]: ...

    def archive_summary(self) -> list[ArchiveSummary]: ...

    def add_missing_files(
        self,
        *,
        source: str,
        collector: str,
        kind: str,
        missing: int,
        checked_until: float,
        previous: float | None = None,
    ) -> bool:
        """Count missing files once (compare-and-set on ``previous``, the last check)."""
        ...

    def follow_schedules(self) -> list[FollowSchedule]: ...

    def get_atlas_position(self, measurement: int) -> dt.datetime | None:
        """Where following RIPE Atlas measurement ``measurement`` stands (None: not started)."""
        ...

    def set_atlas_position(self, measurement: int, position: dt.datetime) -> None:
        """Keep the end of the last window whose results of ``measurement`` are all stored."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self:
        """``with open_store(...) as store:`` closes the store when the block ends."""
        ...

    def __exit__(self, *exc_info: object) -> None: ...


def open_store(path: str = "", url: str = "") -> Store:
    """Open the store named by a SQLite ``path`` or a database ``url``; raise StoreError."""
    if url:
        if url.startswith(("postgresql://", "postgres://")):
            from publiccore.store.postgres import PostgresStore

            return PostgresStore(url)
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") - 1 :]
        else:
            raise StoreError(f"unsupported store URL {url!r}")
    from publiccore.store.sqlite import SqliteStore

    return SqliteStore(path)


def open_configured(settings: Settings, path: str | None = None) -> Store:
    """The store a command's ``--store PATH`` names, else the configured one ([store]).

    Its facts are written with the configured site table (``[aggregate] sites``).
    """
    store = open_store(path) if path else open_store(settings.store.path, settings.store.url)
    if settings.aggregate.sites:
        from publiccore.sites import load_sites

        try:
            store.sites = load_sites(settings.aggregate.sites)  # type: ignore[attr-defined]
        except Exception:
            store.close()
            raise
    return store
