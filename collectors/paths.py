"""Traceroutes → border crossings per country (M-path-border-crossings).

For each trace, the responding address of every hop is mapped to an AS (longest match in a
prefix → origin table) and a country (RIR delegated files). Starting from the probe's registered
country and ASN, the first hop whose country differs from the previous located hop is the
border crossing: (exit AS, entry AS, entry country). Per probe country, the distinct crossings,
their shares and the effective number 1 / Σ share² describe how many independent ways its
traffic leaves it.

Every trace has one outcome (``OUTCOMES``):

- ``crossed``: a located hop in another country was found (the crossing).
- ``left_unmapped``: no crossing, but after the last hop located in the probe's country (or
  from the start, when none is) the trace reaches public addresses that no RIR file maps to a
  country, and never comes back to a hop in the probe's country: the trace left through
  unmapped space (e.g. ARIN space when no ARIN file is read) and where it went is unknown.
- ``never_crossed``: every located hop is in the probe's country and the trace does not end in
  unmapped space.

Exit AS: the AS of the last located in-country hop, or the probe's ASN before any; an
in-country hop whose address is not in the prefix → AS table keeps the previous AS as the exit
AS. Entry AS: the AS of the first hop in the other country, ``None`` (printed "unknown") when
the table does not have it; all crossings with an unknown entry AS, the same exit AS and entry
country are one crossing.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import gzip
import ipaddress
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import pytricia

from publiccore.errors import InputError
from publiccore.geo import Geo
from publiccore.records import Record, TraceResult
from publiccore.store import Observation, Store


class AsnTable:
    """Longest-prefix match from address to origin AS (pyasn ``ipasn`` text: prefix<TAB>asn)."""

    def __init__(self) -> None:
        self._trees = {4: pytricia.PyTricia(32), 6: pytricia.PyTricia(128)}

    def add(self, prefix: str, asn: int) -> None:
        network = ipaddress.ip_network(prefix, strict=False)
        self._trees[network.version][str(network)] = asn

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AsnTable:
        """Read a pyasn ``ipasn`` file (optionally gzip); raise InputError with the line."""
        file = pathlib.Path(path)
        table = cls()
        opener: Any = gzip.open if file.suffix == ".gz" else open
        try:
            with opener(file, "rt", encoding="ascii", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip() or line.startswith(";"):
                        continue
                    try:
                        prefix, asn = line.split()[:2]
                        table.add(prefix, int(asn))
                    except ValueError:
                        raise InputError(f"{file}:{number}: expected 'prefix<TAB>asn'") from None
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read ASN table {file}: {exc}") from None
        return table

    def asn_of(self, address: str) -> int | None:
        ip = ipaddress.ip_address(address)
        tree = self._trees[ip.version]
        value = tree.get(str(ip))
        return int(value) if value is not None else None


@dataclasses.dataclass(frozen=True, slots=True)
class Crossing:
    exit_asn: int | None
    entry_asn: int | None
    entry_country: str


CROSSED = "crossed"
LEFT_UNMAPPED = "left_unmapped"
NEVER_CROSSED = "never_crossed"
OUTCOMES: tuple[str, ...] = (CROSSED, LEFT_UNMAPPED, NEVER_CROSSED)


def asn_text(asn: int | None) -> str:
    """``AS64500``, or ``unknown`` when the AS is not known."""
    return f"AS{asn}" if asn is not None else "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class TraceOutcome:
    """What one trace says: its outcome (``OUTCOMES``) and its crossing when it crossed."""

    outcome: str
    crossing: Crossing | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CountryCrossings:
    """The crossings seen from one country's probes in a window, with the sample size."""

    country: str
    traces: int
    traces_crossing: int
    probes: int
    crossings: tuple[tuple[Crossing, float], ...]  # (crossing, share), largest first
    traces_left_unmapped: int = 0  # no crossing, left through unmapped space

    @property
    def distinct(self) -> int:
        return len(self.crossings)

    @property
    def effective_number(self) -> float:
        total = sum(share * share for _, share in self.crossings)
        return 1.0 / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "traces": self.traces,
            "traces_crossing": self.traces_crossing,
            "outcomes": {
                CROSSED: self.traces_crossing,
                LEFT_UNMAPPED: self.traces_left_unmapped,
                NEVER_CROSSED: self.traces - self.traces_crossing - self.traces_left_unmapped,
            },
            "probes": self.probes,
            "distinct": self.distinct,
            "effective_number": round(self.effective_number, 6),
            "crossings": [
                {
                    "exit_asn": c.exit_asn,
                    "entry_asn": c.entry_asn,
                    "entry_country": c.entry_country,
                    "share": round(share, 6),
                }
                for c, share in self.crossings
            ],
        }


def _hop_address(replies: Iterable[Any]) -> str | None:
    """The address most replies of a hop came from (ties: the first seen)."""
    counts = collections.Counter(r.address for r in replies if r.address)
    return counts.most_common(1)[0][0] if counts else None


def border_crossing(record: Record, geo: Geo, asns: AsnTable) -> Crossing | None:
    """The first crossing on one trace, or None when it never leaves the probe's country."""
    return trace_outcome(record, geo, asns).crossing


def trace_outcome(record: Record, geo: Geo, asns: AsnTable) -> TraceOutcome:
    """The outcome of one trace (see module doc); ``never_crossed`` for a non-trace record."""
    if not isinstance(record.result, TraceResult) or not record.probe.country:
        return TraceOutcome(NEVER_CROSSED)
    country, asn = record.probe.country, record.probe.asn
    unmapped_since_home = False  # a public hop without country since the last in-country hop
    for hop in record.result.hops:
        address = _hop_address(hop.replies)
        if address is None or not _locatable(address):
            continue
        hop_country = geo.country_of_address(address)
        if hop_country is None:
            unmapped_since_home = True  # unlocated hops neither cross nor stay
            continue
        hop_asn = asns.asn_of(address)
        if hop_country != country:
            return TraceOutcome(
                CROSSED, Crossing(exit_asn=asn, entry_asn=hop_asn, entry_country=hop_country)
            )
        unmapped_since_home = False
        asn = hop_asn if hop_asn is not None else asn  # unknown AS: keep the previous one
    return TraceOutcome(LEFT_UNMAPPED if unmapped_since_home else NEVER_CROSSED)


def _order(crossing: Crossing) -> tuple[int, int]:
    """Sort key of a crossing's ASes, unknown (None) last."""
    return (
        crossing.exit_asn if crossing.exit_asn is not None else 1 << 33,
        crossing.entry_asn if crossing.entry_asn is not None else 1 << 33,
    )


_DOCUMENTATION = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def _locatable(address: str) -> bool:
    """Public addresses, and documentation ranges (labs and examples use them as public)."""
    ip = ipaddress.ip_address(address)
    return ip.is_global or any(ip in net for net in _DOCUMENTATION if net.version == ip.version)


def crossings_by_country(
    records: Iterable[Record], geo: Geo, asns: AsnTable
) -> list[CountryCrossings]:
    """Aggregate the traces of each probe country into crossings with shares."""
    per_country: dict[str, collections.Counter[Crossing]] = collections.defaultdict(
        collections.Counter
    )
    traces: collections.Counter[str] = collections.Counter()
    unmapped: collections.Counter[str] = collections.Counter()
    probes: dict[str, set[str]] = collections.defaultdict(set)
    for record in records:
        if record.kind != "traceroute" or not record.probe.country:
            continue
        country = record.probe.country
        traces[country] += 1
        probes[country].add(record.probe.id)
        found = trace_outcome(record, geo, asns)
        if found.crossing is not None:
            per_country[country][found.crossing] += 1
        elif found.outcome == LEFT_UNMAPPED:
            unmapped[country] += 1
    out = []
    for country in sorted(traces):
        counter = per_country[country]
        crossing_total = sum(counter.values())
        ranked = tuple(
            (c, n / crossing_total)
            for c, n in sorted(
                counter.items(),
                key=lambda item: (-item[1], item[0].entry_country, _order(item[0])),
            )
        )
        out.append(
            CountryCrossings(
                country=country,
                traces=traces[country],
                traces_crossing=crossing_total,
                probes=len(probes[country]),
                crossings=ranked,
                traces_left_unmapped=unmapped[country],
            )
        )
    return out


def store_crossings(
    store: Store,
    results: Sequence[CountryCrossings],
    *,
    at: dt.datetime,
    window: tuple[dt.datetime | None, dt.datetime | None],
    sources: Sequence[str],
) -> int:
    """Keep the per-country figures as observations, with the window and inputs as source."""
    source = store.add_source(
        "paths",
        {
            "since": window[0].isoformat() if window[0] else None,
            "until": window[1].isoformat() if window[1] else None,
            "inputs": list(sources),
            "traces": sum(r.traces for r in results),
        },
    )
    observations = []
    for result in results:
        for metric, value in (
            ("path_border_crossings_effective_number", result.effective_number),
            ("path_border_crossings_distinct", float(result.distinct)),
            ("path_traces", float(result.traces)),
            ("path_traces_left_unmapped", float(result.traces_left_unmapped)),
        ):
            observations.append(
                Observation(
                    time=at,
                    subject_kind="country",
                    subject=result.country,
                    metric=metric,
                    value=value,
                )
            )
    return store.put_observations(source, observations)
