"""Reader ``bgpstream``: CAIDA's pybgpstream, for local files and broker-driven time windows.

pybgpstream needs the libbgpstream C library, which the package registries do not carry on these
machines: install libbgpstream first (https://bgpstream.caida.org/docs/install/bgpstream, e.g.
CAIDA's apt repository: ``curl -s https://pkg.caida.org/os/$(lsb_release -si|awk '{print
tolower($0)}')/bootstrap.sh | bash && apt install bgpstream``), then ``pip install
publiccore[bgpstream]``. Without it ``--reader auto`` falls back to bgpdump.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from publiccore.collectors.bgp.elements import (
    ESTABLISHED,
    Element,
    ElementType,
    FileRead,
    FileReport,
    ProgressCallback,
)

from publiccore.errors import InputError

NAME = "bgpstream"
PROGRESS_EVERY = 20_000
_STATES = {
    "idle": 1,
    "connect": 2,
    "active": 3,
    "opensent": 4,
    "openconfirm": 5,
    "established": ESTABLISHED,
    "clearing": 7,
    "deleted": 8,
}
INSTALL_HINT = (
    "pybgpstream is not importable: install libbgpstream "
    "(https://bgpstream.caida.org/docs/install/bgpstream) and then "
    "`pip install publiccore[bgpstream]`"
)


def _module() -> Any:
    try:
        import pybgpstream
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return pybgpstream


def available() -> bool:
    """True when pybgpstream (and so libbgpstream) can be imported."""
    try:
        _module()
    except InputError:
        return False
    return True


def _utc_text(seconds: float) -> str:
    """pybgpstream parses times as text (dateutil, zone ignored): give UTC."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _communities(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    out = []
    for item in value:
        if isinstance(item, dict):  # older pybgpstream: {"asn": 1, "value": 2}
            out.append(f"{item.get('asn')}:{item.get('value')}")
        else:
            out.append(str(item))
    return tuple(out)


def to_element(elem: Any, collector: str) -> Element | None:
    """A pybgpstream ``BGPElem`` → an element (None for types the model does not carry)."""
    kind = elem.type
    if kind not in ("R", "A", "W", "S"):
        return None
    fields = elem.fields or {}
    etype: ElementType = kind
    new_state = 0
    if kind == "S":
        state = str(fields.get("new-state", "")).lower()
        new_state = _STATES.get(state, int(state) if state.isdigit() else 0)
    return Element(
        etype,
        float(elem.time),
        collector,
        int(elem.peer_asn),
        str(elem.peer_address),
        str(fields.get("prefix", "")),
        str(fields.get("as-path", "")),
        _communities(fields.get("communities")),
        str(fields.get("next-hop", "")),
        new_state,
    )


def _walk(
    records: Iterable[Any],
    collector: str | None,
    state: dict[str, Any],
    progress: ProgressCallback | None,
    name: str,
) -> Iterator[Element]:
    for record in records:
        status = getattr(record, "status", "valid")
        if status != "valid":
            if status not in ("filtered-source", "outside-time-interval"):
                state["problems"].append(f"record status {status}")
            continue
        for elem in record:
            element = to_element(elem, collector or str(getattr(record, "collector", "unknown")))
            if element is None:
                continue
            state["count"] += 1
            if state["first"] is None:
                state["first"] = element.time
            state["last"] = element.time
            if progress is not None and state["count"] % PROGRESS_EVERY == 0:
                progress(name, state["count"])
            yield element


class BgpstreamRead(FileRead):
    """Elements of one local file read through pybgpstream's ``singlefile`` interface."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.module = _module()
        super().__init__(path, kind=kind, collector=collector, progress=progress)

    def __iter__(self) -> Iterator[Element]:
        stream = self.module.BGPStream(data_interface="singlefile")
        option = "rib-file" if self.kind == "rib" else "upd-file"
        stream.set_data_interface_option("singlefile", option, str(self.path))
        state: dict[str, Any] = {"count": 0, "first": None, "last": None, "problems": []}
        yield from _walk(stream.records(), self.collector, state, self.progress, self.path.name)
        if self.progress is not None:
            self.progress(self.path.name, state["count"])
        problems = list(dict.fromkeys(state["problems"]))
        if state["count"] == 0:
            if self.path.stat().st_size == 0:
                raise InputError(f"{self.path}: empty file, no MRT records")
            raise InputError(
                f"{self.path}: not a readable MRT file "
                f"({'; '.join(problems[:3]) or 'no BGP elements in it'})"
            )
        self._report = FileReport(
            file=str(self.path),
            sha256=self.sha256,
            collector=self.collector,
            dump_time=state["first"],
            elements=state["count"],
            partial=bool(problems),
            problem="; ".join(problems[:5]),
            last_time=state["last"],
            reader=NAME,
            kind=self.kind,
        )


class BgpstreamReader:
    """The ``bgpstream`` reader (see module doc)."""

    name = NAME

    def __init__(self) -> None:
        _module()

    def read(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BgpstreamRead:
        """Open a local file; raise InputError when it cannot be read at all."""
        return BgpstreamRead(path, kind=kind, collector=collector, progress=progress)

    def window(
        self,
        *,
        start: float,
        end: float,
        collectors: Iterable[str],
        kind: Literal["rib", "updates"],
        progress: ProgressCallback | None = None,
    ) -> Iterator[Element]:
        """Elements of RIS/RouteViews archive files for a time window, found via the broker.

        The collectors (``rrc00``, ``route-views2``…) are the projects' names; needs network
        access to the BGPStream broker and the archives.
        """
        module = _module()
        stream = module.BGPStream(
            from_time=_utc_text(start),
            until_time=_utc_text(end),
            collectors=list(collectors),
            record_type="ribs" if kind == "rib" else "updates",
        )
        state: dict[str, Any] = {"count": 0, "first": None, "last": None, "problems": []}
        yield from _walk(stream.records(), None, state, progress, "broker")
