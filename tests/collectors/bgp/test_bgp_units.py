"""Table-driven tests of the pure functions: path cleaning, shares, trimming, full-feed, blocks."""

from __future__ import annotations

import math
import types
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from publiccore.collectors.bgp import bgpstream, readers
from publiccore.collectors.bgp.bgpdump import parse_line
from publiccore.collectors.bgp.blocks import block, exclusive_sizes, union_size, units
from publiccore.collectors.bgp.elements import Element, collector_from_path
from publiccore.collectors.bgp.paths import clean_path, is_reserved_asn
from publiccore.collectors.bgp.rib import FullFeedRule, Rib, full_feed_sets, is_full_feed
from publiccore.collectors.bgp.transit import combine, effective_number, trimmed_mean, upstream_of

from publiccore.errors import InputError
from publiccore.geo import Geo, parse_delegated


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("1 2 3", (1, 2, 3)),
        ("1 2 2 2 3", (1, 2, 3)),  # prepending
        ("3333 1299 {64512,64513}", (3333, 1299)),  # AS_SET dropped
        ("1 {2 3 5} 4", (1, 4)),  # AS_SET with spaces
        ("2905 65023 16637", (2905, 16637)),  # private ASN dropped
        ("1 65001 1 2", (1, 2)),  # repeat left by a drop collapses
        ("174 23456 3356", (174, 3356)),  # AS_TRANS
        ("174 4200000001 3356", (174, 3356)),  # 32-bit private
        ("64496 64500", ()),  # documentation ASNs are reserved
        ("1.10 5", (5,)),  # asdot 1.10 = 65546, reserved
        ("3.1 5", (196609, 5)),  # asdot 3.1 = 196609, public
        ("", ()),
        ("x 7", (7,)),
    ],
)
def test_clean_path(path: str, cleaned: tuple[int, ...]) -> None:
    assert clean_path(path) == cleaned


def test_clean_path_keeps_documentation_asns_for_labs() -> None:
    assert clean_path("64496 64505 64505 64500", keep_documentation=True) == (64496, 64505, 64500)
    assert is_reserved_asn(64496) and not is_reserved_asn(64496, keep_documentation=True)
    assert is_reserved_asn(0) and is_reserved_asn(65535) and not is_reserved_asn(3333)


@pytest.mark.parametrize(
    ("shares", "expected"),
    [([1.0], 1.0), ([0.5, 0.5], 2.0), ([2 / 3, 1 / 3], 1.8), ([0.25] * 4, 4.0), ([], 0.0)],
)
def test_effective_number(shares: list[float], expected: float) -> None:
    assert effective_number(shares) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3], 2.0),  # n=3: floor(0.3)=0 trimmed
        (list(range(10)), 4.5),  # n=10: 0 and 9 dropped -> mean(1..8)
        ([0] * 9 + [100], 0.0),  # one outlier peer AS trimmed away
        ([5], 5.0),
    ],
)
def test_trimmed_mean(values: list[float], expected: float) -> None:
    assert trimmed_mean(values) == pytest.approx(expected)


def test_trimmed_mean_empty_is_nan() -> None:
    assert math.isnan(trimmed_mean([]))


def test_combine_trims_across_peer_asns() -> None:
    # 10 peer ASes: 9 reach the country via AS1, one sees only AS2; trimming drops the outlier
    per_peer = {i: {1: 1.0} for i in range(9)}
    per_peer[99] = {2: 1.0}
    assert [(u.asn, u.share) for u in combine(per_peer)] == [(1, 1.0)]
    # 3 peer ASes: nothing trimmed, shares renormalised
    got = combine({1: {10: 1.0}, 2: {10: 0.5, 20: 0.5}, 3: {20: 1.0}})
    assert [(u.asn, round(u.share, 4)) for u in got] == [(10, 0.5), (20, 0.5)]


COUNTRIES = {1: "NL", 2: "NL", 3: "DE", 4: "US"}


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ((4, 3, 2, 1), 3),  # origin 1 NL, 2 NL, first foreign is 3
        ((4, 1), 4),  # the peer AS itself is the upstream
        ((2, 1), None),  # never leaves the country
        ((1, 3), None),  # origin not in the country
        ((3, 1, 4, 2, 1), 4),  # first foreign from the origin side
        ((), None),
    ],
)
def test_upstream_of(path: tuple[int, ...], upstream: int | None) -> None:
    assert upstream_of(path, "NL", COUNTRIES.get) == upstream


@pytest.mark.parametrize(
    ("count", "largest", "rule", "full"),
    [
        (75, 100, FullFeedRule(), True),
        (74, 100, FullFeedRule(), False),
        (0, 0, FullFeedRule(), False),
        (500_000, 900_000, FullFeedRule(ratio=0.0, min_ipv4=400_000), True),  # IODA-style absolute
        (390_000, 400_000, FullFeedRule(ratio=0.0, min_ipv4=400_000), False),
        (390_000, 400_000, FullFeedRule(ratio=0.75, min_ipv4=400_000), False),  # both must hold
    ],
)
def test_is_full_feed(count: int, largest: int, rule: FullFeedRule, full: bool) -> None:
    assert is_full_feed(count, largest, rule, "ipv4") is full


def _r(peer: str, asn: int, prefix: str, path: str = "1 2", collector: str = "rrc00") -> Element:
    return Element("R", 0.0, collector, asn, peer, prefix, path)


def test_full_feed_per_collector_and_family() -> None:
    rib = Rib()
    rib.apply([_r("10.0.0.1", 1, f"10.{i}.0.0/16") for i in range(4)])
    rib.apply([_r("10.0.0.2", 2, f"10.{i}.0.0/16") for i in range(3)])
    rib.apply([_r("10.0.0.3", 3, f"10.{i}.0.0/16") for i in range(2)])
    rib.apply([_r("10.0.0.4", 4, "10.0.0.0/16", collector="rrc01")])  # alone at its collector
    rib.apply([_r("2001:db8::1", 1, "2001:db8::/32")])
    rows = rib.peer_table(FullFeedRule())
    ff = full_feed_sets(rows)
    names = {row.index: (row.peer.peer_address) for row in rows}
    assert sorted(names[i] for i in ff["ipv4"]) == ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
    assert sorted(names[i] for i in ff["ipv6"]) == ["2001:db8::1"]


def test_rib_withdraw_and_session_down() -> None:
    rib = Rib()
    rib.apply(
        [
            _r("10.0.0.1", 1, "10.0.0.0/8"),
            _r("10.0.0.1", 1, "11.0.0.0/8"),
            _r("10.0.0.2", 2, "10.0.0.0/8"),
        ]
    )
    rib.apply([Element("W", 1.0, "rrc00", 2, "10.0.0.2", "10.0.0.0/8")])
    assert rib.routes == {"10.0.0.0/8": {0: "1 2"}, "11.0.0.0/8": {0: "1 2"}}
    rib.apply([Element("S", 2.0, "rrc00", 1, "10.0.0.1", "", new_state=1)])
    assert rib.routes == {}
    rib.apply([Element("S", 2.0, "rrc00", 9, "0.0.0.0", "", new_state=3)])
    assert len(rib.peers) == 2  # a state change alone adds no peer


def test_blocks_units_and_overlaps() -> None:
    assert block("10.1.2.3/24") == ("ipv4", 0x0A010200, 256)
    assert block("2001:db8::/48")[2] == 1 << 80
    with pytest.raises(ValueError):
        block("10.0.0/24")
    nets = [
        block(p)[1:]
        for p in ("10.0.0.0/24", "10.0.0.0/25", "10.0.0.0/26", "10.0.1.0/24", "10.0.0.128/25")
    ]
    # more-specifics counted once: 10.0.0.0/24 + 10.0.1.0/24 = 2 /24s
    assert units(union_size(nets), "ipv4") == 2.0
    assert units(union_size([block("10.0.0.0/25")[1:]]), "ipv4") == 0.5
    assert (
        units(union_size([block("2001:db8::/32")[1:], block("2001:db8:1::/48")[1:]]), "ipv6")
        == 65536.0
    )
    # what each route carries under longest match
    assert exclusive_sizes(nets) == [0, 64, 64, 256, 128]
    assert sorted(exclusive_sizes([nets[0], nets[0]])) == [0, 256]


@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 63)).map(
            lambda b: ((b[1] >> b[0]) << b[0], 1 << b[0])
        ),
        max_size=25,
    )
)
@settings(max_examples=400, deadline=None)
def test_exclusive_sizes_is_the_space_no_more_specific_takes(
    blocks: list[tuple[int, int]],
) -> None:
    """Against the definition, address by address in a 64-address space: a block keeps the
    addresses that no smaller block of the list holds; of equal blocks the last copy keeps them."""

    def holds(j: int, address: int) -> bool:
        return blocks[j][0] <= address < blocks[j][0] + blocks[j][1]

    expected = []
    for i, (start, size) in enumerate(blocks):
        taken = {
            a
            for a in range(start, start + size)
            for j in range(len(blocks))
            if j != i
            and holds(j, a)
            and (blocks[j][1] < size or (blocks[j] == blocks[i] and j > i))
        }
        expected.append(size - len(taken))
    assert exclusive_sizes(blocks) == expected


_BLOCK = st.tuples(st.integers(0, 6), st.integers(0, 63)).map(
    lambda b: ((b[1] >> b[0]) << b[0], 1 << b[0])
)


@given(
    st.lists(_BLOCK, max_size=12),
    st.lists(st.tuples(st.booleans(), _BLOCK, st.integers(0, 30)), max_size=60),
)
@settings(max_examples=400, deadline=None)
def test_coverage_follows_adds_and_removes(
    start: list[tuple[int, int]], steps: list[tuple[bool, tuple[int, int], int]]
) -> None:
    """After every add and remove, Coverage.union is union_size of the blocks present."""
    from publiccore.collectors.bgp.blocks import Coverage

    present = list(start)
    coverage = Coverage.from_blocks(present)
    assert coverage.union == union_size(present)
    for remove, block_, pick in steps:
        if remove and present:
            gone = present.pop(pick % len(present))
            coverage.remove(*gone)
        else:
            present.append(block_)
            coverage.add(*block_)
        assert coverage.union == union_size(present)


def test_parse_bgpdump_lines() -> None:
    rib = parse_line(
        "TABLE_DUMP2|1400824800|B|196.7.106.245|2905|0.0.0.0/0|2905 65023 16637|"
        "IGP|196.7.106.245|0|0|2905:65535 2905:1|NAG||\n",
        "route-views2",
    )
    assert rib == Element(
        "R",
        1400824800.0,
        "route-views2",
        2905,
        "196.7.106.245",
        "0.0.0.0/0",
        "2905 65023 16637",
        ("2905:65535", "2905:1"),
        "196.7.106.245",
    )
    w = parse_line("BGP4MP|1470931200|W|2001:7f8:54:5::7|8218|2001:df0:bd::/48\n", "rrc21")
    assert (w.type, w.prefix, w.peer_asn) == ("W", "2001:df0:bd::/48", 8218)
    s = parse_line("BGP4MP_ET|1445565678.509481|STATE|206.220.231.55|3856|1|2\n", "pch")
    assert (s.type, s.new_state, s.time) == ("S", 2, 1445565678.509481)
    legacy = parse_line(
        "BGP|945188487|A|195.211.222.11|5409|208.138.236.32/27|5409 3352|"
        "INCOMPLETE|195.211.222.11|0|0|NAG||\n",
        "rrc00",
    )
    assert (legacy.type, legacy.communities) == ("A", ())


@pytest.mark.parametrize(
    ("path", "collector"),
    [
        ("/data/rrc05/2002.07/bview.20020722.2337.gz", "rrc05"),
        ("routeviews.route-views.jinx.updates.1427846400.bz2", "route-views.jinx"),
        ("ris.rrc06.updates.1427846400.gz", "rrc06"),
        ("/archive/route-views2/bgpdata/rib.20140523.0600.bz2", "route-views2"),
        ("/x/bview.20020722.2337.gz", "unknown"),
    ],
)
def test_collector_from_path(path: str, collector: str) -> None:
    assert collector_from_path(path) == collector


def test_delegated_parsing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "delegated-test-extended-latest"
    file.write_text(
        "2.3|test|20230323|6|19870101|20230322|-0300\n"
        "# comment\n"
        "test|*|ipv4|*|4|summary\n"
        "test|NL|ipv4|10.0.0.0|768|20200101|allocated|x\n"  # not a power of two: /23 + /24
        "test|DE|ipv4|10.0.3.0|256|20200101|assigned|y\n"
        "test||ipv4|10.0.4.0|256||available|\n"
        "test|ZZ|ipv4|10.0.5.0|256||reserved|\n"
        "test|NL|ipv6|2001:db8::|32|20200101|allocated|x\n"
        "test|NL|asn|64500|3|20200101|allocated|x\n"
    )
    rows = list(parse_delegated(file))
    assert [r.country for r in rows] == ["NL", "DE", "NL", "NL"]
    geo = Geo.from_files([file])
    assert geo.country_of_address("10.0.2.255") == "NL"
    assert geo.country_of_address("10.0.3.1") == "DE"
    assert geo.country_of_address("10.0.4.1") is None
    assert geo.country_of_asn(64502) == "NL" and geo.country_of_asn(64503) is None
    assert geo.country_pieces("10.0.2.0/24") == [("NL", "10.0.2.0/24")]
    # an aggregate over two countries' delegations splits into them
    assert sorted(geo.country_pieces("10.0.0.0/22")) == [
        ("DE", "10.0.3.0/24"),
        ("NL", "10.0.0.0/23"),
        ("NL", "10.0.2.0/24"),
    ]
    assert geo.country_pieces("2001:db8:5::/48") == [("NL", "2001:db8:5::/48")]


def test_delegated_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="cannot read delegated file"):
        Geo.from_files([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.write_text("2|x|1|0|0|0|0\n")
    with pytest.raises(InputError, match="no allocated/assigned rows"):
        Geo.from_files([empty])


def test_auto_reader_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers.bgpstream, "available", lambda: False)
    monkeypatch.setattr(readers.bgpdump, "available", lambda: False)
    with pytest.raises(
        InputError,
        match=r"pip install publiccore\[bgpstream\].*apt install "
        r"bgpdump",
    ):
        readers.make_reader("auto")
    monkeypatch.setattr(readers.bgpdump, "available", lambda: True)
    assert readers.make_reader("auto").name == "bgpdump"


def test_bgpstream_reader_without_libbgpstream() -> None:
    if bgpstream.available():
        pytest.skip("pybgpstream is installed here")
    with pytest.raises(InputError, match="libbgpstream"):
        readers.make_reader("bgpstream")


def test_bgpstream_element_conversion() -> None:
    # the attribute names pybgpstream's BGPElem has (type, time, peer_asn, peer_address, fields)
    elem = types.SimpleNamespace(
        type="A",
        time=1427846400.5,
        peer_asn=25152,
        peer_address="202.249.2.185",
        fields={
            "prefix": "1.2.3.0/24",
            "as-path": "25152 2914 1",
            "communities": ["2914:410", "2914:1001"],
            "next-hop": "202.249.2.185",
        },
    )
    assert bgpstream.to_element(elem, "rrc06") == Element(
        "A",
        1427846400.5,
        "rrc06",
        25152,
        "202.249.2.185",
        "1.2.3.0/24",
        "25152 2914 1",
        ("2914:410", "2914:1001"),
        "202.249.2.185",
    )
    state = types.SimpleNamespace(
        type="S",
        time=1.0,
        peer_asn=1,
        peer_address="::1",
        fields={"old-state": "established", "new-state": "idle"},
    )
    assert bgpstream.to_element(state, "rrc06").new_state == 1


def test_unpack_hands_over_everything_and_says_how_far(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip as gz
    import io

    from publiccore.collectors.bgp.unpack import unpack

    payload = bytes(range(256)) * 4000
    two_members = tmp_path / "two.gz"
    two_members.write_bytes(gz.compress(payload[:1000]) + gz.compress(payload[1000:]))
    sink = io.BytesIO()
    assert unpack(str(two_members), "gzip", sink) == "" and sink.getvalue() == payload
    import bz2 as bz

    whole = bz.compress(payload)
    cut = tmp_path / "cut.bz2"
    cut.write_bytes(whole[: len(whole) // 2])
    sink = io.BytesIO()
    problem = unpack(str(cut), "bzip2", sink)
    assert problem.startswith("bzip2 stream ends early (truncated) after ")
    assert f"/ {len(sink.getvalue()):,} decompressed bytes" in problem


def test_unpack_writes_in_small_pieces(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A chunk that decodes to megabytes goes out PIECE bytes at a time (the reader is kept
    fed while the next chunk decodes), and the bytes are the same."""
    import bz2 as bz
    import gzip as gz

    from publiccore.collectors.bgp.unpack import PIECE, unpack

    payload = bytes(range(256)) * 40_000  # 10 MB, compresses to a few kB
    writes: list[int] = []

    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes) -> int:
            writes.append(len(data))
            self.data += data
            return len(data)

        def flush(self) -> None:
            pass

    for compression, packed in (("bzip2", bz.compress(payload)), ("gzip", gz.compress(payload))):
        path = tmp_path / f"big.{compression}"
        path.write_bytes(packed)
        writes.clear()
        sink = Sink()
        assert unpack(str(path), compression, sink) == ""  # type: ignore[arg-type]
        assert bytes(sink.data) == payload
        assert max(writes) <= PIECE and len(writes) >= len(payload) // PIECE


class _FakeStream:
    """Stands in for pybgpstream.BGPStream (its documented attributes only)."""

    calls: ClassVar[list[tuple[object, ...]]] = []
    records_to_give: ClassVar[list[object]] = []

    def __init__(self, **kwargs: object) -> None:
        _FakeStream.calls.append(("init", tuple(sorted(kwargs.items()))))

    def set_data_interface_option(self, *args: object) -> None:
        _FakeStream.calls.append(("option", *args))

    def records(self) -> list[object]:
        return list(_FakeStream.records_to_give)


class _FakeRecord:
    def __init__(self, status: str, elems: list[object], collector: str = "rrc06") -> None:
        self.status = status
        self.collector = collector
        self._elems = elems

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._elems)


def test_bgpstream_reader_flow(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sys

    fake = types.ModuleType("pybgpstream")
    fake.BGPStream = _FakeStream  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pybgpstream", fake)
    elem = types.SimpleNamespace(
        type="R",
        time=10.0,
        peer_asn=1,
        peer_address="10.0.0.1",
        fields={"prefix": "10.0.0.0/8", "as-path": "1 2"},
    )
    _FakeStream.records_to_give = [
        _FakeRecord("valid", [elem]),
        _FakeRecord("corrupted-record", []),
    ]
    _FakeStream.calls = []
    path = tmp_path / "rib.gz"
    path.write_bytes(b"x")
    read = readers.make_reader("auto").read(path, kind="rib", collector="rrc06")
    assert [e.prefix for e in read] == ["10.0.0.0/8"]
    assert read.report.partial and read.report.problem == "record status corrupted-record"
    assert ("option", "singlefile", "rib-file", str(path)) in _FakeStream.calls
    reader = readers.make_reader("bgpstream")
    _FakeStream.records_to_give = [_FakeRecord("valid", [elem])]
    got = list(
        reader.window(
            start=0,
            end=3600,
            collectors=["rrc00"],  # type: ignore[attr-defined]
            kind="rib",
        )
    )
    assert got[0].collector == "rrc06"
    init = dict(_FakeStream.calls[-1][1])  # type: ignore[arg-type]
    assert init["from_time"] == "1970-01-01 00:00:00" and init["record_type"] == "ribs"


def test_country_visibility_unseen_and_overlaps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from publiccore.collectors.bgp.visibility import all_country_visibility, country_index, tally

    file = tmp_path / "delegated"
    file.write_text(
        "x|NL|ipv4|10.0.0.0|1024|20200101|allocated\nx|DE|ipv4|10.0.4.0|1024|20200101|allocated\n"
    )
    geo = Geo.from_files([file])
    rib = Rib()
    for peer, asn in (("192.0.2.1", 1), ("192.0.2.2", 2), ("192.0.2.3", 3)):
        rib.apply(
            [_r(peer, asn, p) for p in ("10.0.0.0/22", "10.0.0.0/24", "10.0.4.0/24", "10.0.5.0/24")]
        )
    rib.apply([_r("192.0.2.1", 1, "10.0.1.0/25")])  # one full-feed peer of three: not visible
    rib.apply([_r("192.0.2.9", 9, "10.0.6.0/24")])  # a partial peer only: unseen
    rib.apply([_r("192.0.2.1", 1, "10.0.0.0/21")])  # an aggregate over NL and DE
    ff = full_feed_sets(rib.peer_table(FullFeedRule(ratio=0.5)))  # 4 of 6 prefixes suffice
    assert len(ff["ipv4"]) == 3
    counts, summary = tally(rib, ff)
    rows = {
        c.country: c
        for c in all_country_visibility(country_index(rib.routes, geo), rib, counts, ff)
    }
    nl, de = rows["NL"], rows["DE"]
    # NL: /22 + /24 + /25 inside + its piece of the /21 (= the /22 itself): 4 /24s routed and
    # visible (the /22 is visible, so the not-visible /25 inside it is covered)
    assert (nl.prefixes, nl.routed_units, nl.visible_units, nl.unseen_prefixes) == (4, 4.0, 4.0, 0)
    # DE: 10.0.4.0/24, 10.0.5.0/24 visible; 10.0.6.0/24 unseen; the /21's DE piece (/22) is
    # routed (by one full-feed peer of three: not visible)
    assert (de.prefixes, de.routed_units, de.visible_units, de.unseen_prefixes) == (4, 4.0, 2.0, 1)
    assert de.visible_ratio == 0.5
    assert summary.prefixes_seen["ipv4"] == 7 and summary.prefixes_visible["ipv4"] == 4
