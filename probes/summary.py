"""One summary of a root round, shown by ``probe root`` (a table) and ``run`` (the live view).

Per address and per letter: each ``. SOA`` query (answered by the record's own rule,
``DnsQuery.answered``; its RTT, serial, or what went wrong), the site, the DNSSEC outcome and
the consistency verdict. Text and layout are the caller's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from publiccore.records import (
    ConsistencyStatus,
    DnsQuery,
    Family,
    IntegrityOutcome,
    Record,
    RootResult,
    RootTarget,
    Transport,
)


@dataclasses.dataclass(frozen=True, slots=True)
class SoaOutcome:
    """One ``. SOA`` query: answered or not, RTT and serial, else ``problem``.

    ``problem`` is the failure code, else ``rcode X``, else ``no answer``; None when answered.
    """

    transport: Transport
    answered: bool
    rtt_seconds: float | None
    serial: int | None
    problem: str | None

    @classmethod
    def of(cls, query: DnsQuery) -> SoaOutcome:
        """The outcome of ``query`` (a ``. SOA`` query)."""
        answered = query.answered
        problem = None
        if not answered:
            problem = query.failure or (f"rcode {query.rcode}" if query.rcode else "no answer")
        return cls(
            transport=query.transport,
            answered=answered,
            rtt_seconds=query.rtt_seconds,
            serial=query.serial,
            problem=problem,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AddressSummary:
    """One root server address (one record) of the round."""

    letter: str
    family: Family
    address: str
    site: str | None
    integrity: IntegrityOutcome
    integrity_reason: str | None
    consistency: ConsistencyStatus
    differs: tuple[str, ...]
    soa: tuple[SoaOutcome, ...]

    @property
    def answered(self) -> bool:
        """Whether any ``. SOA`` query of this address was answered."""
        return any(q.answered for q in self.soa)


@dataclasses.dataclass(frozen=True, slots=True)
class LetterSummary:
    """One letter: its ``. SOA`` outcome per (family, transport), sites, serials, outcomes.

    ``sites``, ``serials`` (of answered queries) and ``outcomes`` are distinct, in record order.
    """

    letter: str
    soa: Mapping[tuple[Family, Transport], SoaOutcome]
    sites: tuple[str, ...]
    serials: tuple[int, ...]
    outcomes: tuple[IntegrityOutcome, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RoundSummary:
    """A root round: its addresses in record order, its letters in letter order."""

    addresses: tuple[AddressSummary, ...]
    letters: tuple[LetterSummary, ...]

    @property
    def answered_addresses(self) -> int:
        """How many addresses answered at least one ``. SOA`` query."""
        return sum(a.answered for a in self.addresses)

    def soa_answered(self, family: str, transport: str) -> tuple[int, int]:
        """(letters that answered, letters asked) for ``. SOA`` over ``family``/``transport``."""
        key = (family, transport)
        asked = [s.soa[key] for s in self.letters if key in s.soa]  # type: ignore[index]
        return sum(q.answered for q in asked), len(asked)

    def outcome_letters(self) -> dict[IntegrityOutcome, int]:
        """How many letters saw each DNSSEC outcome (a letter counts once per outcome)."""
        counts: dict[IntegrityOutcome, int] = {}
        for letter in self.letters:
            for outcome in letter.outcomes:
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts


def _soa_queries(result: RootResult) -> list[DnsQuery]:
    return [q for q in result.queries if q.qname == "." and q.qtype == "SOA"]


def summarise_round(records: Sequence[Record]) -> RoundSummary:
    """Summarise the ``root-dns`` records of one round (other records are left out)."""
    addresses = []
    for record in records:
        result, target = record.result, record.target
        if not isinstance(result, RootResult) or not isinstance(target, RootTarget):
            continue
        addresses.append(
            AddressSummary(
                letter=target.letter,
                family=target.family,
                address=target.address,
                site=result.identity.site,
                integrity=result.integrity.outcome,
                integrity_reason=result.integrity.reason,
                consistency=result.consistency.status,
                differs=result.consistency.differs,
                soa=tuple(SoaOutcome.of(q) for q in _soa_queries(result)),
            )
        )
    letters = []
    for letter in sorted({a.letter for a in addresses}):
        mine = [a for a in addresses if a.letter == letter]
        soa = {(a.family, q.transport): q for a in mine for q in a.soa}
        serials = (q.serial for a in mine for q in a.soa if q.answered and q.serial is not None)
        letters.append(
            LetterSummary(
                letter=letter,
                soa=soa,
                sites=tuple(dict.fromkeys(a.site for a in mine if a.site)),
                serials=tuple(dict.fromkeys(serials)),
                outcomes=tuple(dict.fromkeys(a.integrity for a in mine)),
            )
        )
    return RoundSummary(addresses=tuple(addresses), letters=tuple(letters))
