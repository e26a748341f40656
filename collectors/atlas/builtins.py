"""RIPE Atlas built-in measurements towards the root servers: id → letter, family, question.

Only ids confirmed by a citable source are listed (docs/atlas.md, "Atlas built-in measurements
of the root servers", gives every source and what could not be confirmed):

- ``CHAOS``: the CH TXT ``hostname.bind`` built-ins, every letter on both families. Source: RIPE
  Labs, Giovane Moura (SIDN Labs), "RootViz: New Root DNS Reachability Dashboard",
  https://labs.ripe.net/author/giovane_moura/rootviz-new-root-dns-reachability-dashboard (the
  table "Below are links to each RIPE Atlas measurement", IPv4 and IPv6 rows, letters A … M);
  the query is named there and in https://github.com/SIDN/rootviz (README: "All probes (10k+)
  send chaos TXT hostname.bind to each Root Server Letter"). 10301 (K, IPv4) is also confirmed
  by a real result: tests/fixtures/atlas/README.md.
- ``SOA``: 10001, ``. SOA`` to k.root-servers.net over IPv4 (interval 1800 s), from a public
  survey of the Atlas API that quotes the measurement object and one of its results (destination
  193.0.14.129, answer ``. SOA``); the other letters' SOA ids (10004 … 10016 in one public
  script) and all IPv6 SOA ids could not be confirmed and are not listed.

``questions()`` gives the file importer what each built-in asks, so that a result whose answer
does not say (a timeout, or an answer without a question section) is kept as data instead of
skipped as ``unknown_query``. A definition read from the API replaces it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from publiccore.collectors.atlas.mapping import Question

from publiccore.records import Family

BuiltinKind = Literal["hostname.bind", "soa"]

_RIPE_LABS_ROOTVIZ = (
    "RIPE Labs, RootViz: New Root DNS Reachability Dashboard, "
    "https://labs.ripe.net/author/giovane_moura/rootviz-new-root-dns-reachability-dashboard"
)
_SURVEY_10001 = (
    "a public survey of the Atlas API (firsthand checks of 2026-09-16) quoting msm 10001's "
    "definition and one result (dst_addr 193.0.14.129, answer . SOA)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Builtin:
    """One Atlas built-in DNS measurement towards one root letter on one family."""

    id: int
    letter: str
    family: Family
    kind: BuiltinKind
    source: str

    @property
    def question(self) -> Question:
        """What the measurement asks."""
        if self.kind == "soa":
            return Question(qname=".", qclass="IN", qtype="SOA")
        return Question(qname="hostname.bind.", qclass="CH", qtype="TXT")


# IPv4 and IPv6 ids of the CH TXT hostname.bind built-ins, as in the RIPE Labs table.
_CHAOS: dict[str, tuple[int, int]] = {
    "a": (10309, 11309),
    "b": (10310, 11310),
    "c": (10311, 11311),
    "d": (10312, 11312),
    "e": (10313, 11313),
    "f": (10304, 11304),
    "g": (10314, 11314),
    "h": (10315, 11315),
    "i": (10305, 11305),
    "j": (10316, 11316),
    "k": (10301, 11301),
    "l": (10308, 11308),
    "m": (10306, 11306),
}

_FAMILIES: tuple[Family, Family] = ("ipv4", "ipv6")

BUILTINS: tuple[Builtin, ...] = (
    Builtin(id=10001, letter="k", family="ipv4", kind="soa", source=_SURVEY_10001),
    *(
        Builtin(
            id=ident, letter=letter, family=family, kind="hostname.bind", source=_RIPE_LABS_ROOTVIZ
        )
        for letter, ids in sorted(_CHAOS.items())
        for ident, family in zip(ids, _FAMILIES, strict=True)
    ),
)

BY_ID: dict[int, Builtin] = {b.id: b for b in BUILTINS}


def questions() -> dict[int, Question]:
    """Measurement id → what the built-in asks (for results whose answer does not say)."""
    return {b.id: b.question for b in BUILTINS}
