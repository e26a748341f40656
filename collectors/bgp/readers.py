"""Reader choice: ``auto`` takes pybgpstream when importable, otherwise bgpdump."""

from __future__ import annotations

from typing import Literal

from publiccore.collectors.bgp import bgpdump, bgpstream
from publiccore.collectors.bgp.elements import Reader

from publiccore.errors import InputError

ReaderName = Literal["auto", "bgpstream", "bgpdump"]
READER_NAMES: tuple[str, ...] = ("auto", "bgpstream", "bgpdump")


def make_reader(name: str = "auto") -> Reader:
    """The reader called ``name``; raise InputError naming what to install when it is missing."""
    if name == "bgpstream":
        return bgpstream.BgpstreamReader()
    if name == "bgpdump":
        if not bgpdump.available():
            raise InputError("bgpdump not found: install Debian's bgpdump (apt install bgpdump)")
        return bgpdump.BgpdumpReader()
    if name != "auto":
        raise InputError(f"unknown reader {name!r} (choose auto, bgpstream or bgpdump)")
    if bgpstream.available():
        return bgpstream.BgpstreamReader()
    if bgpdump.available():
        return bgpdump.BgpdumpReader()
    raise InputError(
        "no MRT reader available: install libbgpstream and "
        "`pip install publiccore[bgpstream]`, or Debian's bgpdump "
        "(apt install bgpdump)"
    )
