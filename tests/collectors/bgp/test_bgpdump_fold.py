"""The bgpdump reader's RIB fast path (``BgpdumpRead.fold_into``, what ``Rib.apply`` takes for a
bgpdump read) gives the same table and report as applying its elements one by one: on every real
RIB of ../shared/data/mrt, and on hand-made ``-m`` lines that the fast path must hand over to the
element parser or count as unparsable (a stand-in ``bgpdump`` prints them)."""

from __future__ import annotations

import pathlib
import shutil
import stat

import pytest
from publiccore.collectors.bgp.bgpdump import BgpdumpReader
from publiccore.collectors.bgp.rib import Rib

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

RIBS = [
    "mrt/bgpdump/bview.20020722.2337.gz",
    "mrt/bgpdump/bview.64k_stream_overflow.gz",
    "mrt/pyasn/rib.20140523.0600_firstMB.bz2",  # truncated: partial report
    "mrt/pyasn/rib6.20151101.0600_firstMB.bz2",
]


def _both(path: pathlib.Path, reader: BgpdumpReader) -> tuple[tuple, tuple]:
    """(table, report) through the fast path, and through one Element at a time."""
    out = []
    for fast in (True, False):
        rib = Rib()
        read = reader.read(path, kind="rib", collector="rrc00")
        assert hasattr(read, "fold_into")
        rib.apply(read if fast else iter(list(read)))
        out.append(
            (
                rib.routes,
                list(rib.routes),
                [list(per_peer.items()) for per_peer in rib.routes.values()],
                rib.peers,
                rib.elements,
                read.report,
            )
        )
    return out[0], out[1]


@pytest.mark.parametrize("name", RIBS)
def test_fold_equals_elements_on_real_ribs(shared_data: pathlib.Path, name: str) -> None:
    fast, slow = _both(shared_data / name, BgpdumpReader())
    assert fast == slow
    assert fast[4] == fast[5].elements > 0


LINES = [
    "TABLE_DUMP2|1400824800|B|192.0.2.1|64500|10.0.0.0/8|64500 3356|IGP|192.0.2.1|0|0||NAG||",
    "TABLE_DUMP2|1400824800|B|192.0.2.2|64501|10.0.0.0/8|64501 174|IGP|192.0.2.2|0|0||NAG||",
    "TABLE_DUMP2|1400824800|B|192.0.2.1|64500|10.1.0.0/16|64500 3356|IGP|192.0.2.1|0|0||NAG||",
    "TABLE_DUMP2|1400824800|B|192.0.2.3|064500|10.2.0.0/16|1 2|IGP|192.0.2.3|0|0||NAG||",
    "TABLE_DUMP2|1400824800|B|192.0.2.1|64500|10.3.0.0/16|64500 3356",  # too few fields
    "TABLE_DUMP2|1400824800|B|192.0.2.1|64500|10.9.0.0/16|64500 1|IGP|192.0.2.1",  # 10 of 12
    "TABLE_DUMP2|later|B|192.0.2.1|64500|10.4.0.0/16|64500 1|IGP|192.0.2.1|0|0||NAG||",
    "TABLE_DUMP2|1400824801|B|192.0.2.9|AS9|10.5.0.0/16|9 1|IGP|192.0.2.9|0|0||NAG||",
    "BGP4MP|1400824802|W|192.0.2.2|64501|10.0.0.0/8",  # a withdrawal inside a RIB read
    "BGP4MP|1400824803|STATE|192.0.2.3|64500|6|1",  # the session of 064500 goes down
    "BGP4MP|1400824804|A|192.0.2.4|64502|10.6.0.0/16|64502 2|IGP|192.0.2.4|0|0|1:2|NAG||",
    "",
    "TABLE_DUMP2|1400824805|B|192.0.2.2|64501|10.0.0.0/8|64501 174|IGP|192.0.2.2|0|0||NAG||",
    "TABLE_DUMP2|1400824805|X|192.0.2.2|64501|10.7.0.0/16|64501|IGP|192.0.2.2|0|0||NAG||",
    "TABLE_DUMP2|1400824806|B|192.0.2.5|64503|10.8.0.0/16|64503 9|IGP|192.0.2.5|0|0||NAG||",
]


def test_fold_hands_every_other_line_to_the_element_parser(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "fake-bgpdump"
    body = "\n".join(LINES)
    script.write_text(f"#!/bin/sh\ncat <<'EOF' | head -c -1\n{body}\nEOF\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    mrt = tmp_path / "rib.mrt"
    mrt.write_bytes(b"not read by the stand-in")
    fast, slow = _both(mrt, BgpdumpReader(binary=str(script)))
    assert fast == slow
    routes, _order, _items, peers, elements, report = fast
    # unparsable: too few fields (twice), a bad time, a bad peer AS, the empty line; the X line
    # is of no element kind; the last line has no newline
    assert report.problem == "corrupt MRT data: 5 unparsable bgpdump lines"
    assert "10.3.0.0/16" not in routes and "10.9.0.0/16" not in routes
    assert elements == report.elements == 9
    assert routes["10.0.0.0/8"] == {0: "64500 3356", 1: "64501 174"}
    assert "10.2.0.0/16" not in routes  # its session went down
    assert routes["10.6.0.0/16"] == {3: "64502 2"} and routes["10.8.0.0/16"] == {4: "64503 9"}
    assert [(p.peer_asn, p.peer_address) for p in peers][:3] == [
        (64500, "192.0.2.1"),
        (64501, "192.0.2.2"),
        (64500, "192.0.2.3"),
    ]
    assert report.dump_time == 1400824800.0 and report.last_time == 1400824806.0
