"""Atlas results → records → the store's one write path, in batches, with counts per reason."""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Iterable

from publiccore.collectors.atlas import files, mapping, wire

from publiccore import domains
from publiccore.clock import Clock, utc_now
from publiccore.errors import RecordError
from publiccore.records import Record, RecordSource
from publiccore.store import Store

MAX_REPORTED = 100  # malformed positions kept for the report (all are counted)


@dataclasses.dataclass(slots=True)
class ImportStats:
    """What one import did: read, stored, already stored, skipped per reason, malformed."""

    results: int = 0
    stored: int = 0
    duplicates: int = 0
    kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    malformed: int = 0
    malformed_at: list[str] = dataclasses.field(default_factory=list)
    probes_without_country: set[str] = dataclasses.field(default_factory=set)

    def add_malformed(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_at) < MAX_REPORTED:
            self.malformed_at.append(f"{where}: {reason}")

    def to_json(self) -> dict[str, object]:
        return {
            "results": self.results,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "records": dict(sorted(self.kinds.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "malformed": self.malformed,
            "malformed_at": list(self.malformed_at),
            "probes_without_country": len(self.probes_without_country),
        }


class Importer:
    """Maps results and writes them through ``store.put_records`` ``batch`` at a time.

    Every record is held to the closed domains the ingest service checks
    (``publiccore.domains.check_record``, times up to ``max_future_seconds`` ahead of ``clock``);
    one that fails is reported as malformed, never stored.
    """

    def __init__(
        self,
        mapper: mapping.Mapper,
        store: Store,
        *,
        batch: int = 1000,
        max_future_seconds: float = 300.0,
        clock: Clock = utc_now,
    ) -> None:
        self.mapper = mapper
        self.store = store
        self.batch = batch
        self.max_future_seconds = max_future_seconds
        self.clock = clock
        self.stats = ImportStats()
        self._pending: list[Record] = []
        self._bodies: list[str] = []

    def add(self, where: str, value: object, *, source: RecordSource) -> None:
        """Map one result (its position ``where`` is reported if it is malformed)."""
        self.stats.results += 1
        try:
            out = self.mapper.map(value, source=source)
        except mapping.MalformedResult as exc:
            self.stats.add_malformed(where, str(exc))
            return
        if isinstance(out, mapping.Skip):
            self.stats.skipped[out.reason] += 1
            return
        body = wire.body(out)
        try:
            domains.check_record(
                out,
                json.loads(body) if "\\u" in body else {},
                now=self.clock(),
                max_future_seconds=self.max_future_seconds,
                body=body,
            )
        except RecordError as exc:
            self.stats.add_malformed(where, str(exc))
            return
        self.stats.kinds[out.kind] += 1
        if out.probe.country is None:
            self.stats.probes_without_country.add(out.probe.id)
        self._pending.append(out)
        self._bodies.append(body)
        if len(self._pending) >= self.batch:
            self.flush()

    def add_items(
        self, items: Iterable[files.Item | files.Malformed], *, source: RecordSource, label: str
    ) -> None:
        """Add every item of one input; positions are reported as ``label: position``."""
        for item in items:
            if isinstance(item, files.Malformed):
                self.stats.add_malformed(f"{label}: {item.position}", item.reason)
                continue
            value = item.value
            measurement = value.get("msm_id") if isinstance(value, dict) else None
            self.add(
                f"{label}: {item.position}",
                value,
                source=dataclasses.replace(
                    source, measurement=measurement if type(measurement) is int else None
                ),
            )

    def flush(self) -> None:
        """Write what is pending in one transaction."""
        if not self._pending:
            return
        result = self.store.put_records(self._pending, bodies=self._bodies)
        self.stats.stored += result.accepted
        self.stats.duplicates += result.duplicates
        self._pending = []
        self._bodies = []
