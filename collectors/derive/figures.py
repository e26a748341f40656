"""The derive stage's typed aggregates: what a window of merged buckets says, without names.

These are the figures every reader takes from the derive stage: ``/metrics`` and the
OpenMetrics history (whose names, help texts, units and labels live in the exporters'
catalogue, ``exporters.catalogue``), reports, the daily series of event impact. A figure that
has no data is absent (None, or missing from its tuple), never a zero. Definitions:
docs/methodology.md (the id in each comment).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from publiccore.store import Observation

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)  # the RTT quantiles of every cell


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """What a country's root figures rest on over the window (M-sampling): raw counts."""

    records: int
    probes: int
    probe_asns: int
    top_asn_share: float  # unweighted share of the records from the largest probe ASN


@dataclasses.dataclass(frozen=True, slots=True)
class Cell:
    """One (letter, family, transport) of a country: . SOA reachability and RTT."""

    letter: str
    family: str
    transport: str
    reachable_ratio: float  # M-root-reachability, weighted
    rtt_seconds: tuple[float, ...]  # M-root-latency at QUANTILES; () when nothing answered


@dataclasses.dataclass(frozen=True, slots=True)
class Letter:
    """One letter of a country: RSSAC047 availability and latency, anycast sites."""

    letter: str
    availability_ratio: float  # M-root-reachability over families and transports
    median_latency_seconds: Mapping[str, float]  # transport → M-root-latency median
    sites: int  # M-root-site: distinct sites that answered
    site_location: Mapping[str, float]  # outcome → share of answered; {} when none located


@dataclasses.dataclass(frozen=True, slots=True)
class Rss:
    """RSSAC047 §6.1 and §6.2 of a country for one family and transport (M-root-rss-*)."""

    family: str
    transport: str
    availability_ratio: float | None
    latency_seconds: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class CountryRoot:
    """Every root figure of one country over a window (weighted per M-sampling)."""

    country: str
    sample: Sample
    cells: tuple[Cell, ...]
    letters: tuple[Letter, ...]
    letters_available: int  # letters meeting the RSSAC047 availability threshold
    system_available_ratio: float | None  # rounds with ≥ k of n letters answering
    rss: tuple[Rss, ...]
    integrity: Mapping[str, float]  # M-root-integrity: outcome → share; {} when none measured

    def letter(self, name: str) -> Letter | None:
        """The figures of letter ``name``; None without data."""
        return next((x for x in self.letters if x.letter == name), None)


@dataclasses.dataclass(frozen=True, slots=True)
class RootFigures:
    """The root figures of a window, one entry per country with records, in country order."""

    countries: tuple[CountryRoot, ...] = ()

    def country(self, code: str) -> CountryRoot | None:
        """The figures of ``code``; None without records."""
        return next((c for c in self.countries if c.country == code), None)


@dataclasses.dataclass(frozen=True, slots=True)
class NewestSerialLatency:
    """Publication latency of the newest SOA serial on a letter from a country (seconds; still
    growing while the letter serves an older serial)."""

    country: str
    letter: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class PublicationLetter:
    """RSSAC047 §5.4 on one letter over the publication period (M-root-publication-median)."""

    letter: str
    median_seconds: float
    measurements: int


@dataclasses.dataclass(frozen=True, slots=True)
class Publication:
    """RSSAC047 §5.4 per letter and §6.4 for the system over the publication period."""

    letters: tuple[PublicationLetter, ...] = ()
    rss_seconds: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Correctness:
    """RSSAC047 §5.3 of a letter from a country over the root window (M-root-correctness)."""

    country: str
    letter: str
    ratio: float
    judged: int


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """Everything derived for one moment: the root window's figures and the observations."""

    root: RootFigures = RootFigures()
    newest_serial: tuple[NewestSerialLatency, ...] = ()
    publication: Publication = Publication()
    correctness: tuple[Correctness, ...] = ()
    probes_active: Mapping[str, int] = dataclasses.field(default_factory=dict)
    sources: tuple[str, ...] = ()  # the record sources the root figures rest on
    observations: tuple[Observation, ...] = ()  # newest BGP and path values (M-bgp-*, M-path-*)
