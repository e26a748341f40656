"""The one BGP element model (pybgpstream's) and what a reader reports about each file.

Every reader turns MRT data into ``Element`` values: the fields pybgpstream's ``BGPElem`` has
(type, time, collector, peer ASN, peer address, prefix, AS path, communities, next hop). RIB
entries are type ``R``, announcements ``A``, withdrawals ``W`` and peer state changes ``S``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple, Protocol

from publiccore.errors import InputError

ElementType = Literal["R", "A", "W", "S"]

# BGP FSM state 6 = Established (RFC 4271); any other new state ends the session's routes.
ESTABLISHED = 6


class Element(NamedTuple):
    """One BGP element, pybgpstream's model.

    A NamedTuple rather than a dataclass because millions are made per RIB: it is immutable,
    typed and four times cheaper to build than a frozen dataclass.

    ``as_path`` is the path as text, AS_SETs in braces (``"3333 1299 {64512,64513}"``);
    ``prefix`` is empty for state changes, whose ``new_state`` is the FSM state number.
    """

    type: ElementType
    time: float
    collector: str
    peer_asn: int
    peer_address: str
    prefix: str
    as_path: str = ""
    communities: tuple[str, ...] = ()
    next_hop: str = ""
    new_state: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class FileReport:
    """What reading one MRT file gave: provenance for citation and whether it is complete.

    ``partial`` is true when the reader hit a corrupt or truncated record; ``problem`` then
    says what and ``elements`` / ``last_time`` how far it got.
    """

    file: str
    sha256: str
    collector: str
    dump_time: float | None
    elements: int
    partial: bool
    problem: str = ""
    last_time: float | None = None
    reader: str = ""
    kind: Literal["rib", "updates"] = "rib"

    def to_json(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return dataclasses.asdict(self)


ProgressCallback = Callable[[str, int], None]
"""Called now and then with (current file name, elements read so far in that file)."""


class Reader(Protocol):
    """Turns MRT files into elements. Blocking: run it in a thread or process, never on a loop."""

    name: str

    def read(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ReadResult:
        """Open ``path``; the result yields elements, then holds the file's report."""
        ...


class ReadResult(Protocol):
    """An iterator of elements whose ``report`` is complete once it is exhausted."""

    def __iter__(self) -> Iterator[Element]: ...

    @property
    def report(self) -> FileReport: ...


_COLLECTOR_PATTERNS = (
    re.compile(r"\b(rrc\d\d)\b"),
    re.compile(r"\b(route-views[0-9]*(?:\.[a-z0-9-]+)?)(?=\.(?:updates|rib|bview)|/|$)"),
    re.compile(r"\b(route-views[0-9]*)\b"),
)


def collector_from_path(path: str | os.PathLike[str]) -> str:
    """Guess the collector (``rrc05``, ``route-views.jinx``) from a RIS/RouteViews file path.

    Returns ``"unknown"`` when the path does not name one; callers may pass the name instead.
    """
    text = pathlib.Path(path).as_posix()
    for pattern in _COLLECTOR_PATTERNS:
        found = pattern.findall(text)
        if found:
            return str(found[-1])
    return "unknown"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FileRead:
    """What every reader's result shares: the checked path, its hash and the final report.

    Raises InputError when the file is missing or unreadable. Subclasses set ``_report`` when
    their elements are exhausted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such MRT file")
        if not os.access(self.path, os.R_OK):
            raise InputError(f"{self.path}: not readable")
        self.kind: Literal["rib", "updates"] = kind
        self.collector = collector or collector_from_path(self.path)
        self.progress = progress
        self.sha256 = sha256_file(self.path)
        self._report: FileReport | None = None

    @property
    def report(self) -> FileReport:
        """The file's report; raises RuntimeError before the elements were read."""
        if self._report is None:
            raise RuntimeError("read the elements first")
        return self._report
